"""Map-style datasets of DNA windows, indexed by window id (see ``genomics.windows``).

- ``GenomeWindowDataset``: next-nucleotide LM samples: ``input_ids = [BOS] + x[:-1]``, ``labels = x`` with padding
  (and, by default, N) set to the ignore index, so padding never enters the loss.
- ``LabelledWindowDataset``: classification samples with a balanced label (``label = id % n_classes``).
- ``TiledWindowDataset``: every window of every record of one FASTA, for prediction.
Optional reverse-complement augmentation is decided per window from its own seeded generator.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from genomics.errors import FastaFormatError, TokenizerError
from genomics.fasta import FastaReader, n_fraction
from genomics.intervals import Interval
from genomics.tokenizer import BOS_ID, IGNORE_INDEX, N_ID, PAD_ID, DNATokenizer
from genomics.windows import WindowPicker, window_rng

MAX_DRAWS = 8  # redraws of a window that is mostly N before accepting it anyway


def encode_window(reader: FastaReader, tokenizer: DNATokenizer, chrom: str, start: int, end: int,
                  length: int, reverse: bool = False) -> tuple[np.ndarray, int]:
    """Token ids of ``chrom[start:end]`` padded with [PAD] to ``length``; returns (ids, number of real tokens)."""
    text = reader.fetch(chrom, start, end)
    try:
        ids = tokenizer.encode_array(text)
    except TokenizerError as exc:
        pos = start + (exc.position or 0)
        raise FastaFormatError(reader.path, f"{exc} (base {pos} of the record)", record=chrom,
                               line=reader.line_number(chrom, pos)) from exc
    if reverse:
        ids = tokenizer.reverse_complement_array(ids)
    real = len(ids)
    if real < length:
        ids = np.concatenate([ids, np.full(length - real, PAD_ID, dtype=ids.dtype)])
    return ids, real


def draw_window(picker: WindowPicker, reader_of: list[FastaReader], rng: np.random.Generator,
                max_n_fraction: float) -> tuple[Interval, int, int]:
    for _ in range(MAX_DRAWS):
        interval, start, end = picker.draw(rng)
        if max_n_fraction >= 1.0 or n_fraction(reader_of[interval.source].fetch(interval.chrom, start, end)) \
                <= max_n_fraction:
            break
    return interval, start, end


class GenomeWindowDataset(Dataset):
    def __init__(self, readers: list[FastaReader], intervals: list[Interval], length: int, num_windows: int,
                 seed: int, tokenizer: DNATokenizer | None = None, rc_prob: float = 0.0,
                 max_n_fraction: float = 0.1, ignore_n_in_loss: bool = True, short: str = "skip"):
        self.readers = readers
        self.picker = WindowPicker(intervals, length, short)
        if not self.picker:
            raise ValueError(f"no interval can hold a window of {length} bases (longest interval: "
                             f"{max((len(iv) for iv in intervals), default=0)}); lower the length or use "
                             "short_intervals='pad'")
        self.length, self.num_windows, self.seed = length, num_windows, seed
        self.tokenizer = tokenizer or DNATokenizer()
        self.rc_prob, self.max_n_fraction, self.ignore_n_in_loss = rc_prob, max_n_fraction, ignore_n_in_loss

    def __len__(self) -> int:
        return self.num_windows

    def locate(self, window_id: int) -> tuple[Interval, int, int, bool]:
        rng = window_rng(self.seed, window_id)
        interval, start, end = draw_window(self.picker, self.readers, rng, self.max_n_fraction)
        return interval, start, end, bool(rng.random() < self.rc_prob)

    def __getitem__(self, window_id: int) -> dict[str, torch.Tensor]:
        interval, start, end, reverse = self.locate(window_id)
        ids, real = encode_window(self.readers[interval.source], self.tokenizer, interval.chrom, start, end,
                                  self.length, reverse)
        labels = ids.copy()
        labels[real:] = IGNORE_INDEX
        if self.ignore_n_in_loss:
            labels[labels == N_ID] = IGNORE_INDEX
        inputs = np.concatenate([np.array([BOS_ID], dtype=ids.dtype), ids[:-1]])  # past the real bases: [PAD]
        return {"input_ids": torch.from_numpy(inputs), "labels": torch.from_numpy(labels)}


class LabelledWindowDataset(Dataset):
    """Windows of class ``id % n_classes`` drawn from that class's intervals (so labels are balanced)."""

    def __init__(self, readers: list[FastaReader], intervals_by_class: list[list[Interval]], class_names: list[str],
                 length: int, num_windows: int, seed: int, tokenizer: DNATokenizer | None = None,
                 rc_prob: float = 0.0, max_n_fraction: float = 0.1, short: str = "skip", split: str = ""):
        self.readers = readers
        self.pickers = [WindowPicker(ivs, length, short) for ivs in intervals_by_class]
        for name, picker, ivs in zip(class_names, self.pickers, intervals_by_class, strict=True):
            if not picker:
                raise ValueError(f"class '{name}' has no {split} interval that holds a window of {length} bases "
                                 f"(longest: {max((len(iv) for iv in ivs), default=0)}); give it more/longer records, "
                                 "lower the length, or use short_intervals='pad'")
        self.class_names = class_names
        self.length, self.num_windows, self.seed = length, num_windows, seed
        self.tokenizer = tokenizer or DNATokenizer()
        self.rc_prob, self.max_n_fraction = rc_prob, max_n_fraction

    def __len__(self) -> int:
        return self.num_windows

    def locate(self, window_id: int) -> tuple[int, Interval, int, int, bool]:
        label = window_id % len(self.pickers)
        rng = window_rng(self.seed, window_id)
        interval, start, end = draw_window(self.pickers[label], self.readers, rng, self.max_n_fraction)
        return label, interval, start, end, bool(rng.random() < self.rc_prob)

    def __getitem__(self, window_id: int) -> dict[str, torch.Tensor]:
        label, interval, start, end, reverse = self.locate(window_id)
        ids, real = encode_window(self.readers[interval.source], self.tokenizer, interval.chrom, start, end,
                                  self.length, reverse)
        mask = np.zeros(self.length, dtype=bool)
        mask[:real] = True
        return {"input_ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask), "label": torch.tensor(label)}


class TiledWindowDataset(Dataset):
    """All windows of all records of one FASTA: stride ``length``, the last window of a record aligned to its end
    (so every base is covered by a full window when the record is at least ``length`` long)."""

    def __init__(self, reader: FastaReader, length: int, tokenizer: DNATokenizer | None = None):
        self.reader, self.length = reader, length
        self.tokenizer = tokenizer or DNATokenizer()
        self.tiles: list[tuple[int, str, int, int]] = []  # (record index, name, start, end)
        for index, name in enumerate(reader.names):
            size = reader.length(name)
            starts = list(range(0, max(size - length, 0) + 1, length))
            if size > length and starts[-1] + length < size:
                starts.append(size - length)
            for start in starts if size > 0 else []:
                self.tiles.append((index, name, start, min(start + length, size)))

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        index, name, start, end = self.tiles[i]
        ids, real = encode_window(self.reader, self.tokenizer, name, start, end, self.length)
        mask = np.zeros(self.length, dtype=bool)
        mask[:real] = True
        n_count = int((ids[:real] == N_ID).sum())
        return {"input_ids": torch.from_numpy(ids), "mask": torch.from_numpy(mask), "tile": torch.tensor(i),
                "n_count": torch.tensor(n_count)}
