"""Synthetic "species" genomes for tests and GPU smoke runs: a random ancestor mutated along a great-ape-shaped tree.

The ancestor (per chromosome) is random sequence with a few interspersed repeat families (soft-masked lower case,
like RepeatMasker output) and one N gap. Each tree branch then applies substitutions at its own rate with a lineage-
specific GC content, and inserts copies of a lineage-specific repeat family and of a short lineage motif (6-10 bp,
like a lineage-specific binding-site or microsatellite expansion), on either strand, so descendants share most
sequence (like real apes) but differ in local statistics a classifier can learn; both signals are strand-symmetric,
like real genomes, so reverse-complement augmentation does not erase them; ``divergence`` scales how far they drift
(smaller = harder). Everything is seeded; one FASTA per species is written, 60 bases per line.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

BASES = np.frombuffer(b"ACGT", dtype=np.uint8)
# (child, parent, branch length); the root is "ancestor". Branch lengths roughly follow the ape tree's shape.
APE_TREE = (
    ("orangutan", "ancestor", 1.0),
    ("african", "ancestor", 0.35),
    ("gorilla", "african", 0.6),
    ("hominini", "african", 0.15),
    ("human", "hominini", 0.45),
    ("panini", "hominini", 0.25),
    ("chimpanzee", "panini", 0.2),
    ("bonobo", "panini", 0.2),
)
APE_SPECIES = ("human", "chimpanzee", "bonobo", "gorilla", "orangutan")


def _insert_repeats(seq: np.ndarray, masked: np.ndarray | None, rng: np.random.Generator, family: np.ndarray,
                    copies: int, copy_divergence: float) -> None:
    for _ in range(copies):
        start = int(rng.integers(0, len(seq) - len(family)))
        copy = family.copy() if rng.random() < 0.5 else (3 - family[::-1])  # either strand (codes: A0 C1 G2 T3)
        hits = rng.random(len(copy)) < copy_divergence
        copy[hits] = rng.integers(0, 4, int(hits.sum()))
        seq[start : start + len(copy)] = copy
        if masked is not None:
            masked[start : start + len(copy)] = True


def _strand_symmetric(gc: float) -> np.ndarray:
    """Base composition with p(A) = p(T) and p(C) = p(G), as real mutation biases are (the strands pair)."""
    return np.array([(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2])


def _evolve(seq: np.ndarray, masked: np.ndarray, rng: np.random.Generator, rate: float,
            composition: np.ndarray) -> None:
    hits = np.flatnonzero(rng.random(len(seq)) < rate)
    seq[hits] = rng.choice(4, size=len(hits), p=composition)


def make_species_genomes(out_dir: str | os.PathLike, species: tuple[str, ...] = APE_SPECIES,
                         n_chromosomes: int = 4, chromosome_length: int = 100_000, divergence: float = 1.0,
                         seed: int = 0, gap_length: int = 200, line_width: int = 60,
                         overwrite: bool = False) -> dict[str, Path]:
    """Write ``<out_dir>/<species>.fa`` for each species; returns {species: path}. Chromosomes shrink by 10 % each.

    ``divergence`` = 1 gives, per unit branch length, ~10 % substitutions, a lineage repeat copy every ~1.5 kb and
    a lineage motif every ~200 bases.
    Refuses to overwrite existing files unless ``overwrite``.
    """
    unknown = set(species) - {child for child, _, _ in APE_TREE}
    if unknown:
        raise ValueError(f"unknown species {sorted(unknown)}; the tree has {APE_SPECIES}")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {name: out_dir / f"{name}.fa" for name in species}
    if not overwrite:
        existing = [str(p) for p in paths.values() if p.exists()]
        if existing:
            raise FileExistsError(f"refusing to overwrite {existing}; pass overwrite=True or another folder")
    rng = np.random.default_rng(seed)
    shared_families = [rng.integers(0, 4, int(rng.integers(150, 400)), dtype=np.uint8) for _ in range(3)]
    lineage = {child: (_strand_symmetric(rng.uniform(0.2, 0.8)),  # lineage GC content of new substitutions
                       rng.integers(0, 4, int(rng.integers(200, 500)), dtype=np.uint8),  # lineage repeat family
                       rng.integers(0, 4, int(rng.integers(6, 11)), dtype=np.uint8))  # lineage short motif
               for child, _, _ in APE_TREE}
    records: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in species}
    for c in range(n_chromosomes):
        size = max(1000, int(chromosome_length * (1 - 0.1 * c)))
        genomes = {"ancestor": (rng.integers(0, 4, size, dtype=np.uint8), np.zeros(size, dtype=bool))}
        seq, masked = genomes["ancestor"]
        for family in shared_families:
            _insert_repeats(seq, masked, rng, family, copies=max(1, size // 4000), copy_divergence=0.15)
        for child, parent, length in APE_TREE:
            seq, masked = (a.copy() for a in genomes[parent])
            composition, family, motif = lineage[child]
            _evolve(seq, masked, rng, min(0.75, 0.1 * divergence * length), composition)
            copies = int(divergence * length * size / 1500)
            if copies:
                _insert_repeats(seq, masked, rng, family, copies, copy_divergence=0.1)
            motifs = int(divergence * length * size / 200)
            if motifs:
                _insert_repeats(seq, None, rng, motif, motifs, copy_divergence=0.0)
            genomes[child] = (seq, masked)
        for name in species:
            records[name].append(genomes[name])
    for name, path in paths.items():
        with open(path, "w") as out:
            for c, (seq, masked) in enumerate(records[name], start=1):
                text = BASES[seq].copy()
                text[masked] += 32  # soft-mask repeats: lower case
                if gap_length and len(text) > 4 * gap_length:
                    middle = len(text) // 2
                    text[middle : middle + gap_length] = ord("N")
                body = text.tobytes().decode("ascii")
                out.write(f">chr{c} synthetic {name} chromosome {c}\n")
                out.writelines(body[i : i + line_width] + "\n" for i in range(0, len(body), line_width))
    return paths
