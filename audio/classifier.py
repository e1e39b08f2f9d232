"""SC09 spoken-digit classifier: the feature extractor behind the FID / IS / mIS / AM sample-quality metrics.

Follows the SaShiMi evaluation recipe (state-spaces/s4, sashimi/sc09_classifier): each clip is padded or cut to
1 s at 16 kHz, turned into a 32-band mel spectrogram (n_fft 2048, hop 512 -> 32 x 32, Slaney mel scale and
filter normalisation, power in dB relative to the clip's maximum, floored 80 dB below it) and classified by a small
ResNeXt-style CNN. The mel front end is part of the model, so a checkpoint maps raw waveforms to predictions and the
scorer needs nothing else. :meth:`SC09Classifier.features` returns the penultimate activations (the input of the
final linear layer) used for FID.

Data: :class:`SC09ClipDataset` reads the SC09 layout ``<root>/{zero..nine}/*.wav`` with ``validation_list.txt`` /
``testing_list.txt`` (see :mod:`audio.fsdd`). Training: :class:`SC09ClassifierModule` (LightningModule) +
:class:`SC09DataModule`, driven by :func:`run_classifier_cli` (LightningCLI; resume with ``--ckpt_path``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from audio.dsp import mel_spectrogram
from audio.fsdd import DIGIT_WORDS
from audio.wav_io import read_audio

__all__ = [
    "CLASSES",
    "SPLITS",
    "MelFrontEnd",
    "SC09Classifier",
    "sc09_split_files",
    "fix_length",
    "SC09ClipDataset",
    "SC09DataModule",
    "SC09ClassifierModule",
    "load_classifier",
    "run_classifier_cli",
]

CLASSES = DIGIT_WORDS
SPLITS = ("train", "validation", "test", "all")


class MelFrontEnd(nn.Module):
    """Waveform (B, T) -> normalised log-mel image (B, 1, n_mels, frames); clips are padded/cut to ``clip_samples``."""

    def __init__(self, sample_rate: int = 16000, clip_samples: int = 16000, n_mels: int = 32, n_fft: int = 2048,
                 hop_length: int = 512, top_db: float = 80.0):
        super().__init__()
        self.sample_rate, self.clip_samples, self.n_mels = sample_rate, clip_samples, n_mels
        self.n_fft, self.hop_length, self.top_db = n_fft, hop_length, top_db

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        wave = fix_length(wave, self.clip_samples)
        mel = mel_spectrogram(wave, self.sample_rate, n_fft=self.n_fft, hop_length=self.hop_length,
                              n_mels=self.n_mels, scale="slaney", norm="slaney")
        db = 10.0 * torch.log10(mel.clamp_min(1e-10))
        db = db - db.amax(dim=(-2, -1), keepdim=True)  # 0 dB at the clip's loudest bin
        db = db.clamp_min(-self.top_db)
        return (db / (self.top_db / 2) + 1.0).unsqueeze(1)  # roughly [-1, 1]


class _ResNeXtBlock(nn.Module):
    """1x1 reduce -> grouped 3x3 (stride) -> 1x1 expand, batch-normed, with a projection shortcut when needed."""

    def __init__(self, in_ch: int, out_ch: int, stride: int, groups: int):
        super().__init__()
        mid = max(groups, out_ch // 2 // groups * groups)
        self.body = nn.Sequential(
            nn.Conv2d(in_ch, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.ReLU(inplace=True),
            nn.Conv2d(mid, mid, 3, stride=stride, padding=1, groups=groups, bias=False), nn.BatchNorm2d(mid),
            nn.ReLU(inplace=True),
            nn.Conv2d(mid, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch),
        )
        self.shortcut = nn.Identity() if stride == 1 and in_ch == out_ch else nn.Sequential(
            nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.body(x) + self.shortcut(x))


class SC09Classifier(nn.Module):
    """Mel front end + ResNeXt-style CNN + one hidden layer. ``widths`` gives the channels of each stage (every
    stage after the first halves the resolution), ``blocks_per_stage`` the residual blocks per stage, ``groups`` the
    cardinality (1 = plain residual CNN, much faster on CPU). The last feature map is average-pooled to a
    ``pool_size`` x ``pool_size`` grid (keeping coarse time/frequency position, which a tiny net cannot otherwise
    see) and mapped to ``hidden_dim`` ReLU units: the penultimate features used for FID."""

    def __init__(self, num_classes: int = 10, sample_rate: int = 16000, clip_samples: int = 16000, n_mels: int = 32,
                 n_fft: int = 2048, hop_length: int = 512, widths: Sequence[int] = (32, 64, 128),
                 blocks_per_stage: int = 1, groups: int = 8, pool_size: int = 4, hidden_dim: int = 256,
                 dropout: float = 0.5):
        super().__init__()
        self.front_end = MelFrontEnd(sample_rate, clip_samples, n_mels, n_fft, hop_length)
        self.stem = nn.Sequential(nn.Conv2d(1, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]),
                                  nn.ReLU(inplace=True))
        blocks, in_ch = [], widths[0]
        for stage, width in enumerate(widths):
            for b in range(blocks_per_stage):
                blocks.append(_ResNeXtBlock(in_ch, width, 2 if stage > 0 and b == 0 else 1, min(groups, width)))
                in_ch = width
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(pool_size)
        self.hidden = nn.Sequential(nn.Linear(in_ch * pool_size * pool_size, hidden_dim), nn.ReLU(inplace=True))
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_dim, num_classes)
        self.feature_dim = hidden_dim

    def features(self, wave: torch.Tensor) -> torch.Tensor:
        """Penultimate activations (B, hidden_dim): the input of the final linear layer."""
        x = self.pool(self.blocks(self.stem(self.front_end(wave))))
        return self.hidden(x.flatten(1))

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.features(wave)))

    @torch.no_grad()
    def features_and_probs(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Eval-mode helper: (penultimate features, softmax probabilities)."""
        feats = self.features(wave)
        return feats, torch.softmax(self.classifier(feats), dim=-1)


def fix_length(wave: torch.Tensor, length: int) -> torch.Tensor:
    """Zero-pad on the right or cut (..., T) to (..., length)."""
    if wave.shape[-1] >= length:
        return wave[..., :length]
    return F.pad(wave, (0, length - wave.shape[-1]))


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text().splitlines() if line.strip()}


def sc09_split_files(root: str | Path, split: str = "train", classes: Sequence[str] = CLASSES
                     ) -> list[tuple[Path, int]]:
    """(path, label) of the SC09-layout clips in ``split``: ``validation`` / ``test`` are the files named in
    ``validation_list.txt`` / ``testing_list.txt``, ``train`` all other clips of the class folders, ``all`` every
    clip. Sorted by class, then file name."""
    root = Path(root)
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not root.is_dir():
        raise ValueError(f"{root}: SC09 root folder does not exist")
    missing = [c for c in classes if not (root / c).is_dir()]
    if len(missing) == len(classes):
        raise ValueError(f"{root}: not an SC09-layout folder (no {', '.join(classes[:3])}, ... class folders)")
    val, test = _read_list(root / "validation_list.txt"), _read_list(root / "testing_list.txt")
    if split in ("validation", "test") and not (val if split == "validation" else test):
        list_name = "validation_list.txt" if split == "validation" else "testing_list.txt"
        raise ValueError(f"{root}: split {split!r} needs a non-empty {list_name}")
    out = []
    for label, name in enumerate(classes):
        folder = root / name
        if not folder.is_dir():
            continue
        for wav in sorted(folder.glob("*.wav")):
            rel = f"{name}/{wav.name}"
            held = "validation" if rel in val else "test" if rel in test else "train"
            if split == "all" or split == held:
                out.append((wav, label))
    if not out:
        raise ValueError(f"{root}: no .wav files in split {split!r}")
    return out


class SC09ClipDataset(Dataset):
    """Labelled clips of one split, read once into memory (int16) at ``sample_rate`` and fixed to ``clip_samples``.

    ``augment=True`` (training) moves each clip by a random shift of up to ``max_shift`` samples, padding with zeros
    (the SaShiMi classifier's time-shift augmentation)."""

    def __init__(self, root: str | Path, split: str = "train", sample_rate: int = 16000, clip_samples: int = 16000,
                 augment: bool = False, max_shift: int = 3200, classes: Sequence[str] = CLASSES,
                 progress: bool = True):
        self.files = sc09_split_files(root, split, classes)
        self.augment, self.max_shift, self.clip_samples = augment, max_shift, clip_samples
        bar = tqdm(self.files, desc=f"load {Path(root).name}/{split}", unit="clip", disable=not progress)
        waves = [fix_length(read_audio(p, sample_rate), clip_samples) for p, _ in bar]
        self.waves = (torch.stack(waves) * 32767).round().to(torch.int16)
        self.labels = torch.tensor([label for _, label in self.files])

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        wave = self.waves[index].to(torch.float32) / 32767
        if self.augment and self.max_shift > 0:
            shift = int(torch.randint(-self.max_shift, self.max_shift + 1, ()))
            wave = torch.roll(wave, shift)
            if shift > 0:
                wave[:shift] = 0
            elif shift < 0:
                wave[shift:] = 0
        return wave, int(self.labels[index])


class SC09DataModule(pl.LightningDataModule):
    """Train / validation / test splits of an SC09-layout folder (e.g. tests/data/sc09_mini)."""

    def __init__(self, root: str, batch_size: int = 64, num_workers: int = 0, sample_rate: int = 16000,
                 clip_samples: int = 16000, augment: bool = True, classes: Sequence[str] = CLASSES):
        super().__init__()
        self.root, self.batch_size, self.num_workers, self.classes = root, batch_size, num_workers, tuple(classes)
        self.sample_rate, self.clip_samples, self.augment = sample_rate, clip_samples, augment
        self._sets: dict[str, SC09ClipDataset] = {}

    def _set(self, split: str) -> SC09ClipDataset:
        if split not in self._sets:
            self._sets[split] = SC09ClipDataset(self.root, split, self.sample_rate, self.clip_samples,
                                                augment=self.augment and split == "train", classes=self.classes)
        return self._sets[split]

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(self._set(split), batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("validation", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class SC09ClassifierModule(pl.LightningModule):
    """Cross-entropy training of :class:`SC09Classifier` with AdamW and a cosine learning-rate decay over the run;
    logs ``train_loss``, ``val_loss``, ``val_acc`` (and ``test_acc``)."""

    def __init__(self, classes: Sequence[str] = CLASSES, sample_rate: int = 16000, clip_samples: int = 16000,
                 n_mels: int = 32, n_fft: int = 2048, hop_length: int = 512, widths: Sequence[int] = (32, 64, 128),
                 blocks_per_stage: int = 1, groups: int = 8, pool_size: int = 4, hidden_dim: int = 256,
                 dropout: float = 0.5, lr: float = 3e-3, weight_decay: float = 1e-2, label_smoothing: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        if len(classes) < 2 or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be >= 2 distinct folder names, got {list(classes)}")
        self.classes = tuple(classes)
        self.model = SC09Classifier(len(classes), sample_rate, clip_samples, n_mels, n_fft, hop_length,
                                    tuple(widths), blocks_per_stage, groups, pool_size, hidden_dim, dropout)

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        return self.model(wave)

    def _step(self, batch, stage: str) -> torch.Tensor:
        wave, label = batch
        logits = self.model(wave)
        loss = F.cross_entropy(logits, label, label_smoothing=self.hparams.label_smoothing if stage == "train"
                               else 0.0)
        acc = (logits.argmax(-1) == label).float().mean()
        self.log(f"{stage}_loss", loss, prog_bar=stage != "test", batch_size=len(label))
        self.log(f"{stage}_acc", acc, prog_bar=True, batch_size=len(label))
        return loss

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
        max_epochs = self.trainer.max_epochs if self.trainer and self.trainer.max_epochs else 1
        max_epochs = max(1, max_epochs)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda epoch: 0.5 * (1 + math.cos(math.pi * min(epoch, max_epochs) / max_epochs)))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}


def load_classifier(checkpoint: str | Path, map_location: str | torch.device = "cpu") -> SC09Classifier:
    """The eval-mode :class:`SC09Classifier` stored in a Lightning checkpoint of :class:`SC09ClassifierModule`;
    its ``classes`` attribute holds the class folder names it was trained on, in label order."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise ValueError(f"{checkpoint}: classifier checkpoint not found")
    try:
        module = SC09ClassifierModule.load_from_checkpoint(str(checkpoint), map_location=map_location)
    except (KeyError, RuntimeError, EOFError, TypeError) as err:
        raise ValueError(f"{checkpoint}: not a readable SC09ClassifierModule checkpoint: {err}") from err
    model = module.model.eval()
    model.classes = module.classes
    return model


def run_classifier_cli(argv: Sequence[str] | None = None):
    """``mamba-audio train-classifier --data.root tests/data/sc09_mini [--trainer.max_epochs N] [--ckpt_path X]``.

    Fits, then evaluates the best checkpoint on the test split when the root has a testing_list.txt. Checkpoints
    (``best.ckpt`` by val_acc, ``last.ckpt``) go to ``<trainer.default_root_dir>/checkpoints``;
    ``--ckpt_path <dir>/checkpoints/last.ckpt`` resumes an interrupted run.
    """
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.cli import LightningCLI

    class _ClassifierCLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_argument("--ckpt_path", type=str | None, default=None,
                                help="checkpoint to resume from (e.g. <default_root_dir>/checkpoints/last.ckpt)")
            parser.add_argument("--skip_test", type=bool, default=False, help="do not evaluate on the test split")
            for name in ("classes", "sample_rate", "clip_samples"):
                parser.link_arguments(f"data.{name}", f"model.{name}")

        def instantiate_trainer(self, **kwargs):
            # fixed checkpoint folder (not lightning_logs/version_N), so resuming and scoring know where to look
            config = self._get(self.config_init, "trainer", default={})
            self.best_checkpoint = ModelCheckpoint(
                dirpath=Path(config.get("default_root_dir") or ".") / "checkpoints", filename="best",
                monitor="val_acc", mode="max", save_last=True)
            user = config.get("callbacks") or []
            user = list(user) if isinstance(user, (list, tuple)) else [user]
            return super().instantiate_trainer(callbacks=[*user, self.best_checkpoint], **kwargs)

    with warnings.catch_warnings():  # argv comes from our own dispatcher, not a second command line
        warnings.filterwarnings("ignore", message=".*args parameter is intended to run from within Python.*")
        cli = _ClassifierCLI(
            SC09ClassifierModule, SC09DataModule, run=False, args=None if argv is None else list(argv),
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"max_epochs": 30, "default_root_dir": "runs/sc09_classifier", "log_every_n_steps": 5},
            parser_kwargs={"prog": "mamba-audio train-classifier"},
        )
    ckpt_cb = cli.best_checkpoint
    cli.trainer.fit(cli.model, cli.datamodule, ckpt_path=cli.config.get("ckpt_path"))
    if not cli.config.get("skip_test") and (Path(cli.datamodule.root) / "testing_list.txt").is_file():
        cli.trainer.test(cli.model, cli.datamodule, ckpt_path=ckpt_cb.best_model_path or None)
    print(f"best checkpoint: {ckpt_cb.best_model_path}  (val_acc {float(ckpt_cb.best_model_score or 0):.3f})")
    return cli
