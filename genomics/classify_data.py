"""DataModule for sequence classification from labelled FASTA files (great apes, or the user's own data).

Labels come either from the file (``fasta_files: {label: path or [paths]}``, one class per species/assembly) or from
each record's header via ``label_regex`` (first capture group, or a group named ``label``) over ``files``.
Records are split train/valid/test per class (stratified; see ``genomics.intervals.split_records``), so no window
leaks between splits; when all classes have the same record names (chromosomes of related species) the same names
are held out in every class; training windows are fresh each epoch, evaluation windows fixed, labels balanced
(``label = window id % n_classes``). ``predict_fasta`` tiles every record of a new FASTA for ``predict``.
"""

from __future__ import annotations

import os
import re
import warnings

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader

from genomics.datasets import LabelledWindowDataset, TiledWindowDataset
from genomics.fasta import FastaReader
from genomics.intervals import SPLITS, Interval, compile_label_regex, label_from_header, split_records
from genomics.tokenizer import DNATokenizer
from genomics.windows import WindowIdSampler

_SPLIT_SEEDS = {"train": 0, "valid": 1_000_003, "test": 2_000_029, "calibration": 3_000_017}


def shared_held_out_records(records: dict[str, list[tuple[int, str, int]]], fractions: tuple[float, float, float],
                            seed: int) -> tuple[list[str] | None, list[str] | None]:
    """When every class has the same record names (homologous chromosomes of related species), hold out the same
    names in every class, so that no class trains on a chromosome whose homologue is evaluated in another class."""
    names = [{name for _, name, _ in recs} for recs in records.values()]
    common = sorted(set.intersection(*names))
    if len(common) < 3 or any(len(n) != len(common) for n in names):
        return None, None
    order = [common[i] for i in np.random.default_rng(seed).permutation(len(common))]
    n_valid = max(1, round(fractions[1] * len(common)))
    n_test = max(1, round(fractions[2] * len(common)))
    return order[:n_valid], order[n_valid : n_valid + n_test]


class SequenceClassificationDataModule(pl.LightningDataModule):
    def __init__(self, fasta_files: dict[str, str | list[str]] | None = None, files: list[str] | None = None,
                 label_regex: str | None = None, length: int = 1024, batch_size: int = 8,
                 train_windows: int = 4096, valid_windows: int = 512, test_windows: int = 512,
                 split_by: str = "auto", split_fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 valid_records: list[str] | None = None, test_records: list[str] | None = None,
                 exclude_records: str | None = None, rc_prob: float = 0.0, max_n_fraction: float = 0.1,
                 short_intervals: str = "skip", uppercase: bool = True, strict: bool = False,
                 index_dir: str | None = None, seed: int = 1234, num_workers: int = 0,
                 predict_fasta: str | None = None, predict_batch_size: int | None = None):
        super().__init__()
        self.save_hyperparameters()
        if (fasta_files is None) == (label_regex is None):
            raise ValueError("give either fasta_files {label: path} (label = file) or files + label_regex "
                             "(label parsed from each record header)")
        if label_regex is not None and not files:
            raise ValueError("label_regex needs files: [paths of FASTA files]")
        self.tokenizer = DNATokenizer(strict=strict)
        self.readers: list[FastaReader] = []
        self.class_names: list[str] = []
        self.intervals: dict[str, list[list[Interval]]] = {}

    def _open(self, path: str) -> int:
        self.readers.append(FastaReader(path, uppercase=self.hparams.uppercase, index_dir=self.hparams.index_dir))
        return len(self.readers) - 1

    def prepare_classes(self) -> list[str]:
        """Open/index all files, assign records to classes and split them (idempotent); returns the class names."""
        if self.class_names:
            return self.class_names
        hp = self.hparams
        exclude = re.compile(hp.exclude_records) if hp.exclude_records else None
        records: dict[str, list[tuple[int, str, int]]] = {}
        if hp.fasta_files is not None:
            for label, paths in hp.fasta_files.items():
                for path in [paths] if isinstance(paths, (str, os.PathLike)) else paths:
                    source = self._open(path)
                    records.setdefault(str(label), []).extend(
                        (source, name, size) for name, size in self.readers[source].lengths().items())
        else:
            regex = compile_label_regex(hp.label_regex)
            unlabelled = 0
            for path in hp.files:
                source = self._open(path)
                reader = self.readers[source]
                for name, size in reader.lengths().items():
                    label = label_from_header(regex, reader.header(name))
                    if label is None:
                        unlabelled += 1
                    else:
                        records.setdefault(label, []).append((source, name, size))
            if unlabelled:
                warnings.warn(f"{unlabelled} records match no label_regex {hp.label_regex!r} and are ignored",
                              stacklevel=2)
            records = dict(sorted(records.items()))
        for label in records:
            records[label] = [r for r in records[label] if r[2] > 0 and not (exclude and exclude.search(r[1]))]
        if len(records) < 2:
            raise ValueError(f"classification needs at least 2 classes, found {sorted(records)}")
        empty = [label for label, recs in records.items() if not recs]
        if empty:
            raise ValueError(f"classes {empty} have no usable records (all empty or excluded)")
        self.class_names = list(records)
        valid_names, test_names = hp.valid_records, hp.test_records
        if not valid_names and not test_names and hp.split_by != "region":
            valid_names, test_names = shared_held_out_records(records, tuple(hp.split_fractions), hp.seed)
        self.intervals = {split: [] for split in SPLITS}
        for index, label in enumerate(self.class_names):
            parts = split_records(records[label], tuple(hp.split_fractions), hp.seed + index, hp.split_by,
                                  valid_names, test_names)
            for split in SPLITS:
                self.intervals[split].append(parts[split])
        return self.class_names

    def setup(self, stage: str | None = None) -> None:
        if stage != "predict":
            self.prepare_classes()

    def _dataset(self, split: str, num_windows: int) -> LabelledWindowDataset:
        hp = self.hparams
        self.prepare_classes()
        return LabelledWindowDataset(self.readers, self.intervals[split], self.class_names, hp.length, num_windows,
                                     seed=hp.seed + _SPLIT_SEEDS[split], tokenizer=self.tokenizer,
                                     rc_prob=hp.rc_prob if split == "train" else 0.0,
                                     max_n_fraction=hp.max_n_fraction, short=hp.short_intervals, split=split)

    def calibration_dataset(self, num_windows: int) -> LabelledWindowDataset:
        """Fixed, balanced training-split windows without augmentation (like evaluation windows, but from the
        training records): the classifier re-estimates its pooled-feature statistics on them before validating."""
        hp = self.hparams
        self.prepare_classes()
        return LabelledWindowDataset(self.readers, self.intervals["train"], self.class_names, hp.length, num_windows,
                                     seed=hp.seed + _SPLIT_SEEDS["calibration"], tokenizer=self.tokenizer,
                                     rc_prob=0.0, max_n_fraction=hp.max_n_fraction, short=hp.short_intervals,
                                     split="train")

    def _loader(self, dataset, batch_size: int, sampler=None) -> DataLoader:
        workers = self.hparams.num_workers
        return DataLoader(dataset, batch_size=batch_size, sampler=sampler, num_workers=workers,
                          pin_memory=torch.cuda.is_available(),
                          multiprocessing_context="fork" if workers and os.name == "posix" else None)

    def train_dataloader(self) -> DataLoader:
        dataset = self._dataset("train", self.hparams.train_windows)
        return self._loader(dataset, self.hparams.batch_size, WindowIdSampler(len(dataset), fresh_each_epoch=True))

    def val_dataloader(self) -> DataLoader:
        dataset = self._dataset("valid", self.hparams.valid_windows)
        return self._loader(dataset, self.hparams.batch_size, WindowIdSampler(len(dataset), fresh_each_epoch=False))

    def test_dataloader(self) -> DataLoader:
        dataset = self._dataset("test", self.hparams.test_windows)
        return self._loader(dataset, self.hparams.batch_size, WindowIdSampler(len(dataset), fresh_each_epoch=False))

    def predict_dataloader(self) -> DataLoader:
        hp = self.hparams
        if not hp.predict_fasta:
            raise ValueError("predict needs data.predict_fasta: the FASTA file to classify")
        self.predict_dataset = TiledWindowDataset(FastaReader(hp.predict_fasta, uppercase=True,
                                                              index_dir=hp.index_dir), hp.length, self.tokenizer)
        return self._loader(self.predict_dataset, hp.predict_batch_size or hp.batch_size)
