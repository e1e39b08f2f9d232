"""Random access to the records of a plain (via pyfaidx) or BGZF-compressed FASTA file.

``FastaReader`` validates/indexes the file once (``genomics.fasta_index``), then serves 0-based half-open slices.
Soft-masked (lower-case) bases are upper-cased by default (HyenaDNA turned them into UNK); ``uppercase=False`` keeps
them, and ``soft_mask`` gives the repeat mask as booleans. File handles are opened per process, so one reader can be
shared by forked DataLoader workers without seek races.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pyfaidx

from genomics.bgzf import BgzfReader
from genomics.errors import FastaFormatError
from genomics.fasta_index import FaiEntry, index_paths, load_index

_N_RUN = re.compile(r"[Nn]+")


class FastaReader:
    def __init__(self, path: str | os.PathLike, uppercase: bool = True, index_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        self.uppercase = uppercase
        self.index_dir = index_dir
        entries, self._blocks = load_index(self.path, index_dir)
        self.entries: dict[str, FaiEntry] = {e.name: e for e in entries}
        self._backend = None
        self._pid = None

    @property
    def compressed(self) -> bool:
        return self._blocks is not None

    @property
    def names(self) -> list[str]:
        return list(self.entries)

    def __contains__(self, name: str) -> bool:
        return name in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def length(self, name: str) -> int:
        return self._entry(name).length

    def lengths(self) -> dict[str, int]:
        return {name: e.length for name, e in self.entries.items()}

    def _entry(self, name: str) -> FaiEntry:
        try:
            return self.entries[name]
        except KeyError:
            shown = ", ".join(list(self.entries)[:5]) + (", ..." if len(self.entries) > 5 else "")
            raise FastaFormatError(self.path, f"no record named '{name}' (records: {shown})") from None

    def _reader(self):
        if self._backend is None or self._pid != os.getpid():
            if self.compressed:
                self._backend = BgzfReader(self.path, self._blocks)
            else:
                fai, _ = index_paths(self.path, self.index_dir)
                self._backend = pyfaidx.Faidx(str(self.path), indexname=str(fai), as_raw=True, build_index=False,
                                              rebuild=False, one_based_attributes=False)
            self._pid = os.getpid()
        return self._backend

    def _byte_offset(self, entry: FaiEntry, pos: int) -> int:
        return entry.offset + (pos // entry.line_bases) * entry.line_width + pos % entry.line_bases

    def fetch(self, name: str, start: int = 0, end: int | None = None) -> str:
        """Bases ``[start, end)`` of record ``name`` (0-based); upper-cased unless the reader keeps soft-masking."""
        entry = self._entry(name)
        end = entry.length if end is None else end
        if not 0 <= start <= end <= entry.length:
            raise FastaFormatError(self.path, f"interval [{start}, {end}) is outside the record (length "
                                              f"{entry.length})", record=name)
        if start == end:
            return ""
        if self.compressed:
            first = self._byte_offset(entry, start)
            last = self._byte_offset(entry, end - 1) + 1
            text = self._reader().read(first, last - first).decode("ascii")
            text = text.replace("\n", "").replace("\r", "")
        else:
            text = self._reader().fetch(name, start + 1, end)
        if len(text) != end - start:
            raise FastaFormatError(self.path, f"read {len(text)} bases for [{start}, {end}): file changed or "
                                              "truncated after indexing (delete the .fai to rebuild)", record=name)
        return text.upper() if self.uppercase else text

    def header(self, name: str) -> str:
        """The full header line of a record (without '>'), e.g. for parsing labels with a regex."""
        entry = self._entry(name)
        back = min(entry.offset, 65536)
        start = entry.offset - back
        if self.compressed:
            chunk = self._reader().read(start, back)
        else:
            with open(self.path, "rb") as handle:
                handle.seek(start)
                chunk = handle.read(back)
        text = chunk.decode("utf-8", "replace").rstrip("\r\n")
        line = text[text.rfind("\n") + 1 :]
        if not line.startswith(">"):
            raise FastaFormatError(self.path, "header line longer than 64 KiB or index out of date", record=name)
        return line[1:].strip()

    def line_number(self, name: str, pos: int) -> int:
        """1-based line of the file holding base ``pos`` of ``name`` (used in error messages only: reads the file)."""
        entry = self._entry(name)
        target = self._byte_offset(entry, pos)
        count = 0
        step = 1 << 20
        for start in range(0, target, step):
            n = min(step, target - start)
            if self.compressed:
                count += self._reader().read(start, n).count(b"\n")
            else:
                with open(self.path, "rb") as handle:
                    handle.seek(start)
                    count += handle.read(n).count(b"\n")
        return count + 1


def n_runs(sequence: str, min_length: int = 1) -> list[tuple[int, int]]:
    """Half-open intervals of runs of N/n at least ``min_length`` long (assembly gaps, unknown bases)."""
    return [(m.start(), m.end()) for m in _N_RUN.finditer(sequence) if m.end() - m.start() >= min_length]


def soft_mask(sequence: str) -> np.ndarray:
    """True where a base is lower-case (soft-masked repeat)."""
    codes = np.frombuffer(sequence.encode("ascii"), dtype=np.uint8)
    return (codes >= ord("a")) & (codes <= ord("z"))


def n_fraction(sequence: str) -> float:
    if not sequence:
        return 0.0
    return (sequence.count("N") + sequence.count("n")) / len(sequence)
