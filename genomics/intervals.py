"""Genomic intervals: BED reading (HyenaDNA ``sequences.bed`` with a split column) and train/valid/test splitting.

Splits are made of whole intervals, and windows are later drawn strictly inside one interval, so no window ever
crosses a split boundary. For classification data the split unit is a whole record (chromosome), stratified by
class, or, when a class has too few records (a single mitochondrion, one contig), contiguous blocks of each record.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from genomics.errors import BedFormatError

SPLITS = ("train", "valid", "test")
_SPLIT_ALIASES = {"train": "train", "training": "train", "valid": "valid", "val": "valid", "validation": "valid",
                  "test": "test", "testing": "test"}


@dataclass(frozen=True)
class Interval:
    chrom: str
    start: int
    end: int
    split: str | None = None
    source: int = 0  # which FASTA file (index into the data module's list of readers)

    def __len__(self) -> int:
        return self.end - self.start


def read_bed(path: str | os.PathLike, lengths: dict[str, int] | None = None) -> list[Interval]:
    """Read BED3+ lines; a 4th column, when it is a split name (train/valid/test), becomes ``Interval.split``.

    With ``lengths`` (record -> length of the FASTA) every interval is checked to lie inside its record.
    """
    path = Path(path)
    intervals = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise BedFormatError(path, f"cannot read BED file: {exc}") from exc
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith(("#", "track", "browser")):
            continue
        fields = line.split("\t") if "\t" in line else line.split()
        if len(fields) < 3:
            raise BedFormatError(path, f"expected at least 3 columns (chrom, start, end), got {len(fields)}",
                                 line=number)
        try:
            start, end = int(fields[1]), int(fields[2])
        except ValueError:
            raise BedFormatError(path, f"start/end must be integers, got {fields[1]!r}, {fields[2]!r}",
                                 line=number) from None
        if not 0 <= start < end:
            raise BedFormatError(path, f"need 0 <= start < end, got start={start} end={end}", line=number)
        chrom = fields[0]
        split = _SPLIT_ALIASES.get(fields[3].strip().lower()) if len(fields) > 3 else None
        if lengths is not None:
            if chrom not in lengths:
                raise BedFormatError(path, f"record '{chrom}' is not in the FASTA", line=number)
            if end > lengths[chrom]:
                raise BedFormatError(path, f"end {end} is past the end of '{chrom}' (length {lengths[chrom]})",
                                     line=number)
        intervals.append(Interval(chrom, start, end, split))
    if not intervals:
        raise BedFormatError(path, "no intervals in BED file")
    return intervals


def by_split(intervals: list[Interval], path: str | os.PathLike = "<bed>") -> dict[str, list[Interval]]:
    """Group intervals by their split column; a BED without one is an error (say which splits are wanted)."""
    groups: dict[str, list[Interval]] = {s: [] for s in SPLITS}
    for interval in intervals:
        if interval.split is None:
            raise BedFormatError(path, f"interval {interval.chrom}:{interval.start}-{interval.end} has no "
                                       "train/valid/test column (HyenaDNA sequences.bed format: chrom start end split)")
        groups[interval.split].append(interval)
    return groups


def merge_touching(intervals: list[Interval]) -> list[Interval]:
    """Merge overlapping or abutting intervals of the same record, split and source (BED blocks -> long regions),
    so that windows longer than one BED line still fit without leaving their split."""
    merged: list[Interval] = []
    for iv in sorted(intervals, key=lambda iv: (iv.source, iv.chrom, iv.split or "", iv.start)):
        last = merged[-1] if merged else None
        if last and (last.source, last.chrom, last.split) == (iv.source, iv.chrom, iv.split) and iv.start <= last.end:
            merged[-1] = Interval(last.chrom, last.start, max(last.end, iv.end), last.split, last.source)
        else:
            merged.append(iv)
    return merged


def extend_to_length(intervals: list[Interval], length: int, record_lengths: dict[str, int]) -> list[Interval]:
    """HyenaDNA-style: grow intervals shorter than ``length`` around their centre (shifted, never padded, at record
    ends). Windows may then overlap neighbouring intervals of other splits; use only when merging is not enough."""
    out = []
    for iv in intervals:
        size = record_lengths[iv.chrom]
        if len(iv) >= length or size <= len(iv):
            out.append(iv)
            continue
        target = min(length, size)
        start = max(0, min(iv.start - (target - len(iv)) // 2, size - target))
        out.append(Interval(iv.chrom, start, start + target, iv.split, iv.source))
    return out


def _counts(n: int, fractions: tuple[float, float, float]) -> tuple[int, int, int]:
    n_valid = max(1, round(fractions[1] * n))
    n_test = max(1, round(fractions[2] * n))
    return n - n_valid - n_test, n_valid, n_test


def split_records(records: list[tuple[int, str, int]], fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                  seed: int = 0, by: str = "auto", valid_records: list[str] | None = None,
                  test_records: list[str] | None = None) -> dict[str, list[Interval]]:
    """Split the records of one class, given as (source, name, length), into train/valid/test intervals.

    ``by="record"``: whole records go to one split (random, seeded, or listed by name in valid/test_records).
    ``by="region"``: every record is cut into three contiguous blocks with the given fractions.
    ``by="auto"``: records if there are at least three (one per split), else regions.
    """
    if by not in ("auto", "record", "region"):
        raise ValueError(f"split_by must be 'auto', 'record' or 'region', got {by!r}")
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    named = set(valid_records or []) | set(test_records or [])
    if by == "auto":
        by = "record" if len(records) >= 3 or named else "region"
    out: dict[str, list[Interval]] = {s: [] for s in SPLITS}
    if by == "region":
        for source, name, length in records:
            cuts = np.round(np.cumsum((0.0,) + tuple(fractions)) * length).astype(int)
            for split, a, b in zip(SPLITS, cuts[:-1], cuts[1:], strict=True):
                if b > a:
                    out[split].append(Interval(name, int(a), int(b), split, source))
        return out
    if named:
        for source, name, length in records:
            split = "valid" if name in (valid_records or []) else "test" if name in (test_records or []) else "train"
            out[split].append(Interval(name, 0, length, split, source))
        return out
    if len(records) < 3:
        raise ValueError(f"split_by='record' needs at least 3 records per class, got {len(records)}; "
                         "use split_by='region'")
    order = np.random.default_rng(seed).permutation(len(records))
    n_train, n_valid, _ = _counts(len(records), fractions)
    for rank, i in enumerate(order):
        source, name, length = records[i]
        split = "train" if rank < n_train else "valid" if rank < n_train + n_valid else "test"
        out[split].append(Interval(name, 0, length, split, source))
    return out


def compile_label_regex(pattern: str) -> re.Pattern:
    regex = re.compile(pattern)
    if regex.groups < 1 and "label" not in regex.groupindex:
        raise ValueError(f"label_regex {pattern!r} needs a capture group (the label), e.g. 'species=(\\w+)'")
    return regex


def label_from_header(regex: re.Pattern, header: str) -> str | None:
    match = regex.search(header)
    if match is None:
        return None
    return match.group("label") if "label" in regex.groupindex else match.group(1)
