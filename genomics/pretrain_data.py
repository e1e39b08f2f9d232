"""DataModule for next-nucleotide pretraining on a genome FASTA (e.g. hg38) and a BED of split intervals.

With ``bed`` (HyenaDNA ``sequences.bed``: chrom, start, end, split) windows come from the intervals of each split;
without it every record is cut into contiguous train/valid/test blocks (``split_fractions``). Training draws fresh
random windows each epoch, validation/test use fixed seeded windows (``genomics.windows``). Abutting BED intervals
of one split are merged, so windows longer than a BED line fit without leaving the split; ``interval_mode="extend"``
instead grows short intervals around their centre like HyenaDNA (may overlap other splits; never pads with N).

Sequence-length warmup (``warmup_min_length``): training starts at the short length and doubles it every
``warmup_epochs_per_stage`` epochs up to ``length``, keeping tokens per batch fixed (batch size grows as windows
shrink) and steps per epoch fixed. The training loader is rebuilt each epoch, so the Trainer needs
``reload_dataloaders_every_n_epochs: 1`` (checked). Validation always runs at the target length.
"""

from __future__ import annotations

import os

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader

from genomics.datasets import GenomeWindowDataset
from genomics.fasta import FastaReader
from genomics.intervals import Interval, by_split, extend_to_length, merge_touching, read_bed, split_records
from genomics.tokenizer import DNATokenizer
from genomics.windows import WindowIdSampler

_SPLIT_SEEDS = {"train": 0, "valid": 1_000_003, "test": 2_000_029}


def warmup_length(epoch: int, target: int, min_length: int | None, epochs_per_stage: int) -> int:
    """Window length used for training in ``epoch`` under sequence-length warmup (doubling, capped at target)."""
    if not min_length or min_length >= target:
        return target
    return min(target, min_length << (epoch // max(1, epochs_per_stage)))


class GenomePretrainDataModule(pl.LightningDataModule):
    def __init__(self, fasta: str, bed: str | None = None, length: int = 1024, batch_size: int = 8,
                 train_windows: int = 8192, valid_windows: int = 512, test_windows: int = 512,
                 rc_prob: float = 0.0, max_n_fraction: float = 0.1, ignore_n_in_loss: bool = True,
                 short_intervals: str = "skip", split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 uppercase: bool = True, strict: bool = False, index_dir: str | None = None, seed: int = 1234,
                 num_workers: int = 0, warmup_min_length: int | None = None, warmup_epochs_per_stage: int = 1,
                 interval_mode: str = "merge"):
        super().__init__()
        self.save_hyperparameters()
        if interval_mode not in ("merge", "extend"):
            raise ValueError(f"interval_mode must be 'merge' or 'extend', got {interval_mode!r}")
        if length < 2:
            raise ValueError(f"length must be >= 2, got {length}")
        if warmup_min_length is not None and (warmup_min_length < 2 or length % warmup_min_length
                                              or (length // warmup_min_length) & (length // warmup_min_length - 1)):
            raise ValueError(f"warmup_min_length must divide length by a power of two, got {warmup_min_length} "
                             f"for length {length}")
        self.reader: FastaReader | None = None
        self.intervals: dict[str, list[Interval]] = {}
        self.tokenizer = DNATokenizer(strict=strict)

    def setup(self, stage: str | None = None) -> None:
        if self.reader is not None:
            return
        hp = self.hparams
        self.reader = FastaReader(hp.fasta, uppercase=hp.uppercase, index_dir=hp.index_dir)
        if hp.bed:
            groups = by_split(read_bed(hp.bed, self.reader.lengths()), hp.bed)
            self.intervals = {split: merge_touching(ivs) for split, ivs in groups.items()}
            if hp.interval_mode == "extend":
                self.intervals = {split: extend_to_length(ivs, hp.length, self.reader.lengths())
                                  for split, ivs in self.intervals.items()}
        else:
            records = [(0, name, size) for name, size in self.reader.lengths().items()]
            self.intervals = split_records(records, tuple(hp.split_fractions), hp.seed, by="region")

    def _dataset(self, split: str, length: int, num_windows: int) -> GenomeWindowDataset:
        hp = self.hparams
        if not self.intervals.get(split):
            raise ValueError(f"{hp.bed or hp.fasta}: no {split} intervals")
        return GenomeWindowDataset([self.reader], self.intervals[split], length, num_windows,
                                   seed=hp.seed + _SPLIT_SEEDS[split], tokenizer=self.tokenizer,
                                   rc_prob=hp.rc_prob if split == "train" else 0.0,
                                   max_n_fraction=hp.max_n_fraction, ignore_n_in_loss=hp.ignore_n_in_loss,
                                   short=hp.short_intervals)

    def current_train_length(self) -> int:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        return warmup_length(epoch, self.hparams.length, self.hparams.warmup_min_length,
                             self.hparams.warmup_epochs_per_stage)

    def _loader(self, dataset, batch_size: int, fresh: bool) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=WindowIdSampler(len(dataset), fresh),
                          num_workers=workers, pin_memory=torch.cuda.is_available(),
                          multiprocessing_context="fork" if workers and os.name == "posix" else None)

    def train_dataloader(self) -> DataLoader:
        hp = self.hparams
        if hp.warmup_min_length and self.trainer is not None and self.trainer.reload_dataloaders_every_n_epochs != 1:
            raise ValueError("sequence-length warmup rebuilds the training loader each epoch: set "
                             "trainer.reload_dataloaders_every_n_epochs: 1")
        length = self.current_train_length()
        scale = hp.length // length
        dataset = self._dataset("train", length, hp.train_windows * scale)
        return self._loader(dataset, hp.batch_size * scale, fresh=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("valid", self.hparams.length, self.hparams.valid_windows),
                            self.hparams.batch_size, fresh=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self._dataset("test", self.hparams.length, self.hparams.test_windows),
                            self.hparams.batch_size, fresh=False)
