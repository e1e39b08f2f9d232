"""Autoregressive waveform datasets and their Lightning DataModules: SC09 (Speech Commands digits) and long files.

Every item is ``(inputs, targets)``, two int64 tensors of equal length: ``targets`` are the mu-law tokens of the clip
(:mod:`audio.mulaw`, per-clip min-max scaling) and ``inputs`` are the same tokens shifted right by one with
``ZERO_TOKEN`` (128) first, so position t is predicted from samples < t. Batches are padded on the right: inputs with
128, targets with ``IGNORE_INDEX`` (-100) so the loss skips padding; the padded length is rounded up to a multiple of
``pad_multiple`` (the U-Net's total pooling factor, 16 for pool [4, 4]).

SC09 follows the Speech Commands layout used by SaShiMi: ``<root>/{zero,...,nine}/*.wav`` plus ``validation_list.txt``
and ``testing_list.txt`` naming files as ``<class>/<file>.wav``; train is every digit file in neither list. Entries for
other classes (the full Speech Commands lists) are ignored.

The long-waveform set (YouTubeMix-style) is a folder of long audio files cut into consecutive fixed windows of
``sample_len`` samples (SaShiMi used up to 1M-sample windows). Files are split by natural-sorted order, 88% / 6% / 6%
for train / validation / test as upstream. Windows are read straight from disk when the file is already at the target
rate; otherwise the whole file is read and resampled once (the last file is cached).

Under DDP/FSDP (``--trainer.devices N``) every rank trains on a disjoint shard of one shared per-epoch shuffle, and
``batch_size`` is per device (global batch = devices x batch_size x accumulate_grad_batches; docs/scaling.md).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import lightning.pytorch as pl
import soundfile as sf
import torch
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from audio import mulaw
from audio.wav_io import AudioFileError, read_audio

IGNORE_INDEX = -100
SC09_CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
SPLITS = ("train", "validation", "test")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".aiff", ".aif")
MAX_SAMPLE_LEN = 1 << 21  # ~2M samples: beyond the paper's 1M windows, and a guard against typos


class DatasetLayoutError(ValueError):
    """A dataset folder is missing, lacks its split lists, or names files that are not there."""


def autoregressive_pair(tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """targets = tokens; inputs = [ZERO_TOKEN, tokens[:-1]]."""
    inputs = torch.empty_like(tokens)
    inputs[0] = mulaw.ZERO_TOKEN
    inputs[1:] = tokens[:-1]
    return inputs, tokens


def collate_autoregressive(batch, pad_multiple: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad (inputs, targets) pairs to a common length, a multiple of ``pad_multiple``."""
    longest = max(len(x) for x, _ in batch)
    length = -(-longest // pad_multiple) * pad_multiple
    inputs = torch.full((len(batch), length), mulaw.ZERO_TOKEN, dtype=torch.long)
    targets = torch.full((len(batch), length), IGNORE_INDEX, dtype=torch.long)
    for row, (x, y) in enumerate(batch):
        inputs[row, : len(x)] = x
        targets[row, : len(y)] = y
    return inputs, targets


class _Collate:
    """Picklable collate function (DataLoader workers need one)."""

    def __init__(self, pad_multiple: int):
        self.pad_multiple = pad_multiple

    def __call__(self, batch):
        return collate_autoregressive(batch, self.pad_multiple)


def _check_sample_len(sample_len: int, what: str) -> None:
    if isinstance(sample_len, bool) or not isinstance(sample_len, int) or not 0 < sample_len <= MAX_SAMPLE_LEN:
        raise ValueError(f"{what} must be an int in [1, {MAX_SAMPLE_LEN}], got {sample_len!r}")


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        raise DatasetLayoutError(
            f"{path}: SC09 split list is missing (expected validation_list.txt and testing_list.txt)")
    entries = set()
    for line in path.read_text().splitlines():
        line = line.strip().replace("\\", "/")
        if line:
            entries.add(line)
    return entries


def sc09_split_files(root: str | os.PathLike, split: str) -> list[Path]:
    """Sorted digit files of one SC09 split, decided by the two list files."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    root = Path(root)
    if not root.is_dir():
        raise DatasetLayoutError(f"{root}: SC09 root folder does not exist")
    validation = _read_list(root / "validation_list.txt")
    testing = _read_list(root / "testing_list.txt")
    listed = {name for name in validation | testing if name.split("/")[0] in SC09_CLASSES}
    present = set()
    for label in SC09_CLASSES:
        folder = root / label
        if folder.is_dir():
            present.update(f"{label}/{p.name}" for p in folder.iterdir() if p.suffix.lower() == ".wav")
    if not present:
        raise DatasetLayoutError(f"{root}: no <digit>/*.wav files found (expected folders {', '.join(SC09_CLASSES)})")
    missing = sorted(listed - present)
    if missing:
        raise DatasetLayoutError(
            f"{root}: {len(missing)} file(s) named in the split lists do not exist, e.g. {missing[0]}")
    if split == "validation":
        chosen = validation & present
    elif split == "test":
        chosen = testing & present
    else:
        chosen = present - validation - testing
    if not chosen:
        raise DatasetLayoutError(f"{root}: SC09 split {split!r} is empty")
    return [root / name for name in sorted(chosen)]


class SC09Dataset(Dataset):
    """One SC09 split as autoregressive mu-law pairs; clips longer than ``sample_len`` are truncated."""

    def __init__(self, root: str | os.PathLike, split: str = "train", sample_len: int = 16000,
                 sample_rate: int = 16000):
        _check_sample_len(sample_len, "sample_len")
        self.files = sc09_split_files(root, split)
        self.split = split
        self.sample_len = sample_len
        self.sample_rate = sample_rate

    def __len__(self) -> int:
        return len(self.files)

    def label(self, index: int) -> int:
        return SC09_CLASSES.index(self.files[index].parent.name)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        waveform = read_audio(self.files[index], self.sample_rate)[: self.sample_len]
        return autoregressive_pair(mulaw.encode(waveform))


def _natural_key(path: Path):
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _audio_info(path: Path):
    try:
        return sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
        raise AudioFileError(f"{path}: cannot decode audio (corrupt or unsupported format): {err}") from err


class LongWaveformDataset(Dataset):
    """Consecutive ``sample_len`` windows of the long files in one split of a folder (YouTubeMix-style).

    ``drop_last=True`` (default) drops each file's final partial window; otherwise it is kept (shorter, padded by the
    collate function with ignored targets). Each window is min-max scaled and mu-law encoded on its own, as upstream.
    """

    def __init__(self, root: str | os.PathLike, split: str = "train", sample_len: int = 16000 * 8,
                 sample_rate: int = 16000, train_fraction: float = 0.88, drop_last: bool = True):
        _check_sample_len(sample_len, "sample_len")
        if split not in SPLITS:
            raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
        if not 0 < train_fraction < 1:
            raise ValueError(f"train_fraction must be in (0, 1), got {train_fraction}")
        root = Path(root)
        if not root.is_dir():
            raise DatasetLayoutError(f"{root}: audio folder does not exist")
        files = sorted((p for p in root.iterdir() if p.suffix.lower() in AUDIO_SUFFIXES), key=_natural_key)
        if not files:
            raise DatasetLayoutError(f"{root}: no audio files ({', '.join(AUDIO_SUFFIXES)}) found")
        n = len(files)
        cut_val = int(train_fraction * n)
        cut_test = int((train_fraction + (1 - train_fraction) / 2) * n)
        self.files = {"train": files[:cut_val], "validation": files[cut_val:cut_test], "test": files[cut_test:]}[split]
        self.sample_len = sample_len
        self.sample_rate = sample_rate
        self.windows: list[tuple[Path, int, int, int]] = []  # (file, file_rate, start, length) in target-rate samples
        for path in self.files:
            info = _audio_info(path)
            if info.frames == 0:
                raise AudioFileError(f"{path}: audio has zero samples")
            total = info.frames if info.samplerate == sample_rate else int(info.frames * sample_rate / info.samplerate)
            starts = range(0, total - sample_len + 1, sample_len)
            self.windows += [(path, info.samplerate, start, sample_len) for start in starts]
            tail = total % sample_len
            if tail and not drop_last:
                self.windows.append((path, info.samplerate, total - tail, tail))
        if not self.windows:
            raise DatasetLayoutError(
                f"{root}: split {split!r} has no {sample_len}-sample windows ({len(self.files)} of {n} files)")
        self._cache: tuple[Path, torch.Tensor] | None = None

    def __len__(self) -> int:
        return len(self.windows)

    def _read_window(self, path: Path, file_rate: int, start: int, length: int) -> torch.Tensor:
        if file_rate == self.sample_rate:
            try:
                data, _ = sf.read(str(path), start=start, stop=start + length, dtype="float32", always_2d=True)
            except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
                raise AudioFileError(f"{path}: cannot decode audio (corrupt or unsupported format): {err}") from err
            wave = torch.from_numpy(data.mean(axis=1))
            if len(wave) != length or not torch.isfinite(wave).all():
                raise AudioFileError(f"{path}: window at sample {start} is truncated or contains NaN/inf samples")
            return wave
        if self._cache is None or self._cache[0] != path:
            self._cache = (path, read_audio(path, self.sample_rate))
        return self._cache[1][start : start + length]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        return autoregressive_pair(mulaw.encode(self._read_window(*self.windows[index])))


class _AutoregressiveDataModule(pl.LightningDataModule):
    def __init__(self, batch_size: int, num_workers: int, pad_multiple: int, eval_batch_size: int | None):
        super().__init__()
        if batch_size < 1 or pad_multiple < 1:
            raise ValueError("batch_size and pad_multiple must be >= 1")
        self.batch_size = batch_size
        self.eval_batch_size = eval_batch_size or batch_size
        self.num_workers = num_workers
        self.pad_multiple = pad_multiple
        self.datasets: dict[str, Dataset] = {}

    def _make(self, split: str) -> Dataset:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        wanted = {"fit": ("train", "validation"), "validate": ("validation",), "test": ("test",)}.get(stage, SPLITS)
        for split in wanted:
            if split not in self.datasets:
                self.datasets[split] = self._make(split)

    def _train_sampler(self, dataset: Dataset) -> DistributedSampler | None:
        """Under DDP/FSDP: each rank a disjoint shard of one shared shuffle (reshuffled every epoch by Lightning's
        ``set_epoch``). Unlike the sampler Lightning would insert, the ``len % world`` left-over clips are dropped
        instead of padding the epoch with repeats, so no clip is trained on twice in an epoch."""
        trainer = self.trainer
        if trainer is None or trainer.world_size < 2:
            return None
        return DistributedSampler(dataset, num_replicas=trainer.world_size, rank=trainer.global_rank, shuffle=True,
                                  seed=int(os.environ.get("PL_GLOBAL_SEED", 0)), drop_last=True)

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        if split not in self.datasets:
            self.datasets[split] = self._make(split)
        dataset = self.datasets[split]
        sampler = self._train_sampler(dataset) if shuffle else None
        return DataLoader(
            dataset, batch_size=self.batch_size if shuffle else self.eval_batch_size,
            shuffle=shuffle and sampler is None, sampler=sampler, num_workers=self.num_workers,
            collate_fn=_Collate(self.pad_multiple), persistent_workers=self.num_workers > 0, drop_last=False)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


class SC09DataModule(_AutoregressiveDataModule):
    """SC09 (Speech Commands digits, 1 s at 16 kHz) for autoregressive training; SaShiMi/Mamba used batch 16."""

    def __init__(self, root: str, batch_size: int = 16, num_workers: int = 0, sample_len: int = 16000,
                 sample_rate: int = 16000, pad_multiple: int = 16, eval_batch_size: int | None = None):
        super().__init__(batch_size, num_workers, pad_multiple, eval_batch_size)
        self.save_hyperparameters()
        self.root = root
        self.sample_len = sample_len
        self.sample_rate = sample_rate

    def _make(self, split: str) -> Dataset:
        return SC09Dataset(self.root, split, sample_len=self.sample_len, sample_rate=self.sample_rate)


class LongWaveformDataModule(_AutoregressiveDataModule):
    """A folder of long recordings cut into ``sample_len`` windows (YouTubeMix-style)."""

    def __init__(self, root: str, sample_len: int = 16000 * 8, batch_size: int = 1, num_workers: int = 0,
                 sample_rate: int = 16000, train_fraction: float = 0.88, drop_last: bool = True,
                 pad_multiple: int = 16, eval_batch_size: int | None = None):
        super().__init__(batch_size, num_workers, pad_multiple, eval_batch_size)
        self.save_hyperparameters()
        self.root = root
        self.sample_len = sample_len
        self.sample_rate = sample_rate
        self.train_fraction = train_fraction
        self.drop_last = drop_last

    def _make(self, split: str) -> Dataset:
        return LongWaveformDataset(self.root, split, sample_len=self.sample_len, sample_rate=self.sample_rate,
                                   train_fraction=self.train_fraction, drop_last=self.drop_last)
