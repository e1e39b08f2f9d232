"""Score folders of generated clips against SC09 with the trained digit classifier (SaShiMi / Mamba Table 4 style).

For every clip set -- the classifier's training split ("train"), its test split ("test") and each folder of
generated WAVs -- the classifier gives penultimate features and softmax probabilities; the table then holds
(formulas in :mod:`audio.metrics`):

=========  ==================================================================================================
NLL        blank (a likelihood comes from the generative model, not from here)
FID        Frechet distance between the set's features and the *train* features (train row: 0 by construction)
IS         textbook inception score ``exp(mean_i KL(p_i || p_bar))``
mIS        modified inception score, exact over all pairs
AM         AM score against the *train* mean prediction
IS_sashimi the SaShiMi script's IS (KL along the sample axis; comparable to published SC09 numbers)
mIS_sashimi the SaShiMi script's sampled mIS (10000 pairs, seed 0)
acc        classifier accuracy (labelled train/test sets only)
N          number of clips
=========  ==================================================================================================

Features of each set are cached in ``cache_dir`` under a key made of the checkpoint file's hash and a hash of the
set (relative paths + file contents + split), so re-scoring new samples only runs the classifier on the new clips.
Clips of any sample rate are resampled to the classifier's rate and padded/cut to its clip length (1 s).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from audio.classifier import SC09Classifier, fix_length, load_classifier, sc09_split_files
from audio.metrics import (
    am_score,
    fid_from_features,
    inception_score,
    inception_score_sashimi,
    modified_inception_score,
    modified_inception_score_sampled,
)
from audio.wav_io import read_audio

__all__ = ["ClipSet", "ClipFeatures", "COLUMNS", "sample_folder_set", "sc09_set", "file_sha256", "clip_set_key",
           "extract_features", "score_sets", "format_markdown", "write_table", "score_cli"]

COLUMNS = ("set", "N", "NLL", "FID", "IS", "mIS", "AM", "IS_sashimi", "mIS_sashimi", "acc")


@dataclass
class ClipSet:
    """A named list of clips; ``labels`` (class indices) only for labelled reference sets."""

    name: str
    root: Path
    paths: list[Path]
    labels: list[int] | None = None
    tag: str = ""  # extra identity for the cache key (e.g. the split)


@dataclass
class ClipFeatures:
    features: np.ndarray  # (N, feature_dim) float32
    probs: np.ndarray  # (N, num_classes) float64


def _natural_key(path: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", str(path))]


def sample_folder_set(folder: str | Path, name: str | None = None) -> ClipSet:
    """All ``*.wav`` files under ``folder`` (recursively, natural order) as an unlabelled set."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValueError(f"{folder}: sample folder does not exist")
    paths = sorted(folder.rglob("*.wav"), key=_natural_key)
    if len(paths) < 2:
        raise ValueError(f"{folder}: need at least 2 .wav clips to score, found {len(paths)}")
    return ClipSet(name or folder.name, folder, paths)


def sc09_set(root: str | Path, split: str, classes: Sequence[str], name: str | None = None) -> ClipSet:
    """A labelled split of an SC09-layout folder (see :func:`audio.classifier.sc09_split_files`)."""
    files = sc09_split_files(root, split, classes)
    return ClipSet(name or split, Path(root), [p for p, _ in files], [label for _, label in files], tag=split)


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def clip_set_key(clips: ClipSet) -> str:
    """Hash of the set's identity: split tag, labels, and each clip's path relative to the root plus its bytes."""
    h = hashlib.sha256(f"{clips.tag}\n{clips.labels}\n".encode())
    for p in clips.paths:
        h.update(str(p.relative_to(clips.root)).encode() + b"\0")
        h.update(file_sha256(p).encode())
    return h.hexdigest()


@torch.no_grad()
def extract_features(model: SC09Classifier, clips: ClipSet, batch_size: int = 64, device: str = "cpu",
                     progress: bool = True) -> ClipFeatures:
    """Run the classifier over the set: penultimate features and softmax probabilities."""
    model = model.to(device).eval()
    rate, length = model.front_end.sample_rate, model.front_end.clip_samples
    feats, probs = [], []
    bar = tqdm(range(0, len(clips.paths), batch_size), desc=f"classify {clips.name}", unit="batch",
               disable=not progress)
    for start in bar:
        batch = torch.stack([fix_length(read_audio(p, rate), length) for p in clips.paths[start:start + batch_size]])
        f, p = model.features_and_probs(batch.to(device))
        feats.append(f.float().cpu())
        probs.append(p.double().cpu())
    return ClipFeatures(torch.cat(feats).numpy(), torch.cat(probs).numpy())


def _cached_features(model, clips, ckpt_hash, cache_dir, batch_size, device, progress) -> ClipFeatures:
    if cache_dir is None:
        return extract_features(model, clips, batch_size, device, progress)
    cache_file = Path(cache_dir) / f"sc09feat-{ckpt_hash[:16]}-{clip_set_key(clips)[:24]}.npz"
    if cache_file.is_file():
        with np.load(cache_file) as data:
            return ClipFeatures(data["features"], data["probs"])
    out = extract_features(model, clips, batch_size, device, progress)
    cache_file.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache_file.with_name(cache_file.name + ".tmp.npz")
    np.savez(tmp, features=out.features, probs=out.probs)
    tmp.replace(cache_file)
    return out


def score_sets(classifier_ckpt: str | Path, reference: ClipSet, others: Sequence[ClipSet], batch_size: int = 64,
               device: str = "cpu", cache_dir: str | Path | None = None, progress: bool = True,
               model: SC09Classifier | None = None) -> list[dict]:
    """One row per set (reference first, then ``others``): see the module docstring for the columns.
    ``model`` may pass the classifier already loaded from ``classifier_ckpt``."""
    model = load_classifier(classifier_ckpt, map_location=device) if model is None else model
    ckpt_hash = file_sha256(classifier_ckpt)
    ref = _cached_features(model, reference, ckpt_hash, cache_dir, batch_size, device, progress)
    rows = []
    for clips in [reference, *others]:
        out = ref if clips is reference else _cached_features(model, clips, ckpt_hash, cache_dir, batch_size,
                                                               device, progress)
        if len(out.probs) < 2:
            raise ValueError(f"{clips.root}: set {clips.name!r} has {len(out.probs)} clip(s); need at least 2")
        acc = None
        if clips.labels is not None:
            acc = float(np.mean(out.probs.argmax(1) == np.asarray(clips.labels)))
        rows.append({
            "set": clips.name, "N": len(out.probs), "NLL": None,
            "FID": fid_from_features(ref.features, out.features),
            "IS": inception_score(out.probs), "mIS": modified_inception_score(out.probs),
            "AM": am_score(ref.probs, out.probs),
            "IS_sashimi": inception_score_sashimi(out.probs),
            "mIS_sashimi": modified_inception_score_sampled(out.probs),
            "acc": acc,
        })
    return rows


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 1e6 else f"{value:.3e}"
    return str(value)


def format_markdown(rows: Sequence[dict]) -> str:
    """Markdown table: columns as in SaShiMi/Mamba Table 4 (NLL, FID down, IS up, mIS up, AM down) plus extras."""
    head = ["set", "N", "NLL", "FID ↓", "IS ↑", "mIS ↑", "AM ↓", "IS (SaShiMi script) ↑", "mIS (sampled) ↑", "acc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|"]
    for row in rows:
        lines.append("| " + " | ".join(_fmt(row[c]) for c in COLUMNS) + " |")
    return "\n".join(lines) + "\n"


def write_table(rows: Sequence[dict], out_prefix: str | Path, overwrite: bool = False) -> tuple[Path, Path]:
    """Write ``<out_prefix>.csv`` and ``<out_prefix>.md``; refuses to replace existing files unless ``overwrite``."""
    out_prefix = Path(out_prefix)
    csv_path, md_path = out_prefix.with_name(out_prefix.name + ".csv"), out_prefix.with_name(out_prefix.name + ".md")
    for path in (csv_path, md_path):
        if path.exists() and not overwrite:
            raise ValueError(f"{path}: exists; refusing to overwrite it (pass --overwrite or another --out)")
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(COLUMNS), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row[k] is None else row[k]) for k in COLUMNS})
    csv_path.write_text(buf.getvalue())
    md_path.write_text(format_markdown(rows))
    return csv_path, md_path


def score_cli(argv: Sequence[str] | None = None) -> int:
    """``mamba-audio score --classifier CKPT --train-root ROOT [--test-root ROOT] SAMPLE_DIR ... --out PREFIX``."""
    parser = argparse.ArgumentParser(
        prog="mamba-audio score",
        description="FID / IS / mIS / AM of folders of generated clips, with the SC09 classifier; rows train, test, "
        "then each sample folder. Prints a markdown table and writes <out>.csv and <out>.md.",
    )
    parser.add_argument("samples", nargs="*", help="folders of generated .wav clips (searched recursively)")
    parser.add_argument("--classifier", required=True, help="SC09 classifier checkpoint (train-classifier output)")
    parser.add_argument("--train-root", required=True, help="SC09-layout folder holding the reference train set")
    parser.add_argument("--train-split", default="train", choices=["train", "validation", "test", "all"])
    parser.add_argument("--test-root", default=None, help="SC09-layout folder for the test row (default: train root)")
    parser.add_argument("--test-split", default="test", choices=["train", "validation", "test", "all"])
    parser.add_argument("--no-test", action="store_true", help="leave out the test row")
    parser.add_argument("--out", default=None, help="output prefix for <out>.csv / <out>.md (default: print only)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing <out>.csv / <out>.md")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cache-dir", default=str(Path.home() / ".cache" / "mamba-audio" / "sc09-features"),
                        help="feature cache folder")
    parser.add_argument("--no-cache", action="store_true", help="do not read or write the feature cache")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)

    model = load_classifier(args.classifier, map_location=args.device)
    classes = model.classes
    reference = sc09_set(args.train_root, args.train_split, classes, name="train")
    others = []
    if not args.no_test:
        test_root = args.test_root or args.train_root
        others.append(sc09_set(test_root, args.test_split, classes, name="test"))
    others += [sample_folder_set(folder) for folder in args.samples]
    rows = score_sets(args.classifier, reference, others, batch_size=args.batch_size, device=args.device,
                      cache_dir=None if args.no_cache else args.cache_dir, progress=not args.no_progress,
                      model=model)
    print(format_markdown(rows), end="")
    if args.out:
        csv_path, md_path = write_table(rows, args.out, overwrite=args.overwrite)
        print(f"wrote {csv_path} and {md_path}")
    return 0
