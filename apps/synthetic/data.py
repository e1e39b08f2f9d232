"""On-the-fly data for the two synthetic tasks of the Mamba paper (arXiv 2312.00752, section 4.1 and appendix E.1).

Selective copying (the "variable" copying task of state-spaces/s4, as used in the Mamba paper):
    token 0 is noise, tokens 1 .. vocab_size-2 are data, token vocab_size-1 is the marker.
    ``num_tokens`` data tokens are written, in order, at random sorted positions of a ``context_len``-long noise
    region; ``num_tokens`` markers follow. The model must emit the data tokens, in order, at the marker positions
    (output at marker i predicts data token i). Input length is ``context_len + num_tokens``.
    Paper setting: context 4096, vocabulary 16 (noise and marker included), 16 tokens to memorise.

Induction heads (the H3 / HazyResearch safari ``induction_head`` task with one trigger, as in the Mamba paper):
    tokens 0 .. vocab_size-2 are content, token vocab_size-1 is the special (copy-prefix) token.
    A ``seq_len``-long sequence of uniform random content tokens gets the special token at one random position
    p in [0, seq_len-3] and again at the last position; the answer is the token at p+1 (the "key" that followed the
    earlier occurrence). The model is scored on its prediction at the last position only.
    Paper setting: train at seq_len 256, vocabulary 16, test at 2^6 .. 2^20.

Batches are generated whole (vectorised) from a torch.Generator seeded by (seed, batch index), so a data set is an
infinite, reproducible stream that costs no disk and no memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset

TASKS = ("selective_copying", "induction_heads")


class SyntheticTaskError(ValueError):
    """A synthetic task was asked for with impossible or unsupported settings."""


def _check_positive(name: str, value: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise SyntheticTaskError(f"{name} must be a positive integer, got {value!r}")


@dataclass(frozen=True)
class SelectiveCopyingSpec:
    """Token layout and sizes of one selective-copying setting."""

    context_len: int = 4096
    num_tokens: int = 16
    vocab_size: int = 16

    def __post_init__(self) -> None:
        _check_positive("context_len", self.context_len)
        _check_positive("num_tokens", self.num_tokens)
        _check_positive("vocab_size", self.vocab_size)
        if self.vocab_size < 3:
            raise SyntheticTaskError(
                f"selective copying needs vocab_size >= 3 (noise, marker and at least one data token), "
                f"got {self.vocab_size}"
            )
        if self.num_tokens > self.context_len:
            raise SyntheticTaskError(
                f"cannot scatter num_tokens={self.num_tokens} data tokens into context_len={self.context_len} positions"
            )

    noise_token = 0

    @property
    def marker_token(self) -> int:
        return self.vocab_size - 1

    @property
    def num_data_values(self) -> int:
        return self.vocab_size - 2

    @property
    def input_len(self) -> int:
        return self.context_len + self.num_tokens

    @property
    def chance_accuracy(self) -> float:
        return 1.0 / self.num_data_values


@dataclass(frozen=True)
class InductionHeadsSpec:
    """Token layout and sizes of one induction-heads setting."""

    seq_len: int = 256
    vocab_size: int = 16

    def __post_init__(self) -> None:
        _check_positive("seq_len", self.seq_len)
        _check_positive("vocab_size", self.vocab_size)
        if self.seq_len < 3:
            raise SyntheticTaskError(
                f"induction heads needs seq_len >= 3 (trigger, key, final trigger), got {self.seq_len}"
            )
        if self.vocab_size < 2:
            raise SyntheticTaskError(
                f"induction heads needs vocab_size >= 2 (content and special), got {self.vocab_size}"
            )

    @property
    def special_token(self) -> int:
        return self.vocab_size - 1

    @property
    def num_content_values(self) -> int:
        return self.vocab_size - 1

    @property
    def input_len(self) -> int:
        return self.seq_len

    @property
    def chance_accuracy(self) -> float:
        return 1.0 / self.num_content_values


def selective_copying_batch(
    spec: SelectiveCopyingSpec, batch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``inputs`` (batch, context_len + num_tokens) and ``targets`` (batch, num_tokens), both int64."""
    _check_positive("batch_size", batch_size)
    n, m = spec.context_len, spec.num_tokens
    data = torch.randint(1, spec.vocab_size - 1, (batch_size, m), generator=generator)
    positions = torch.rand(batch_size, n, generator=generator).argsort(dim=1)[:, :m].sort(dim=1).values
    context = torch.full((batch_size, n), spec.noise_token, dtype=torch.long)
    context.scatter_(1, positions, data)
    markers = torch.full((batch_size, m), spec.marker_token, dtype=torch.long)
    return torch.cat([context, markers], dim=1), data


def induction_heads_batch(
    spec: InductionHeadsSpec, batch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Returns ``inputs`` (batch, seq_len) and ``targets`` (batch,), both int64."""
    _check_positive("batch_size", batch_size)
    length = spec.seq_len
    inputs = torch.randint(0, spec.num_content_values, (batch_size, length), generator=generator)
    trigger = torch.randint(0, length - 2, (batch_size,), generator=generator)
    rows = torch.arange(batch_size)
    inputs[rows, trigger] = spec.special_token
    inputs[:, -1] = spec.special_token
    return inputs, inputs[rows, trigger + 1].clone()


def make_spec(
    task: str, seq_len: int, vocab_size: int, num_tokens: int = 16
) -> SelectiveCopyingSpec | InductionHeadsSpec:
    """Builds the spec of ``task``; for selective copying ``seq_len`` is the noise/context region length."""
    if task == "selective_copying":
        return SelectiveCopyingSpec(context_len=seq_len, num_tokens=num_tokens, vocab_size=vocab_size)
    if task == "induction_heads":
        return InductionHeadsSpec(seq_len=seq_len, vocab_size=vocab_size)
    raise SyntheticTaskError(f"unknown task {task!r}; expected one of {TASKS}")


def make_batch(
    spec: SelectiveCopyingSpec | InductionHeadsSpec, batch_size: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(spec, SelectiveCopyingSpec):
        return selective_copying_batch(spec, batch_size, generator)
    return induction_heads_batch(spec, batch_size, generator)


def seeded_generator(seed: int, index: int) -> torch.Generator:
    """A generator whose stream depends on both the data set seed and the batch index (no overlap between them)."""
    return torch.Generator().manual_seed((seed * 1_000_003 + index) % (2**63 - 1))


class SyntheticBatches(Dataset):
    """``num_batches`` reproducible whole batches; item i is always the same batch for the same seed."""

    def __init__(self, spec: SelectiveCopyingSpec | InductionHeadsSpec, batch_size: int, num_batches: int, seed: int):
        _check_positive("batch_size", batch_size)
        _check_positive("num_batches", num_batches)
        self.spec, self.batch_size, self.num_batches, self.seed = spec, batch_size, num_batches, seed

    def __len__(self) -> int:
        return self.num_batches

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if not 0 <= index < self.num_batches:
            raise IndexError(index)
        return make_batch(self.spec, self.batch_size, seeded_generator(self.seed, index))


class SyntheticDataModule(pl.LightningDataModule):
    """Train and validation streams for one synthetic task.

    Args:
        task: "selective_copying" or "induction_heads".
        seq_len: selective copying: noise/context region length (input is seq_len + num_tokens long);
            induction heads: the whole input length.
        vocab_size: all tokens, special ones included (noise/marker, or the induction trigger).
        num_tokens: data tokens to copy (selective copying only).
        batch_size: sequences per batch.
        batches_per_epoch: training batches per epoch; each epoch draws fresh data (the seed moves on).
        val_batches: fixed validation batches (their own seed, never seen in training).
        seed: base seed of the training stream.
        num_workers: DataLoader worker processes.
        curriculum: optional training lengths (same meaning as ``seq_len``) to go through first, each for
            ``curriculum_epochs`` epochs, before training at ``seq_len``; validation is always at ``seq_len``.
            For selective copying a model that has learned to skip noise (delta ~ 0 on it) does not depend on the
            context length, and short contexts cost less per step, so e.g. [256, 1024] then 4096 reaches the paper
            setting in fewer GPU minutes.
        curriculum_epochs: epochs per curriculum stage (with ``curriculum_advance_acc``: at least this many).
        curriculum_advance_acc: if given, a stage ends only once an epoch's mean training accuracy
            (``train/epoch_acc``, per answer token) reaches this value, so a model still on the loss plateau of a
            short stage is not moved on to a longer one; the stage reached is saved in checkpoints.
    """

    def __init__(
        self,
        task: str = "selective_copying",
        seq_len: int = 4096,
        vocab_size: int = 16,
        num_tokens: int = 16,
        batch_size: int = 64,
        batches_per_epoch: int = 1000,
        val_batches: int = 8,
        seed: int = 0,
        num_workers: int = 0,
        curriculum: list[int] | None = None,
        curriculum_epochs: int = 1,
        curriculum_advance_acc: float | None = None,
    ):
        super().__init__()
        self.save_hyperparameters()
        self.spec = make_spec(task, seq_len, vocab_size, num_tokens)
        _check_positive("curriculum_epochs", curriculum_epochs)
        self.curriculum_specs = [make_spec(task, n, vocab_size, num_tokens) for n in (curriculum or [])]
        self.curriculum_epochs = curriculum_epochs
        if curriculum_advance_acc is not None and not 0.0 < curriculum_advance_acc <= 1.0:
            raise SyntheticTaskError(f"curriculum_advance_acc must be in (0, 1], got {curriculum_advance_acc}")
        self.curriculum_advance_acc = curriculum_advance_acc
        self.stage, self.epochs_in_stage = 0, 0
        self.task = task
        self.batch_size = batch_size
        self.batches_per_epoch = batches_per_epoch
        self.val_batches = val_batches
        self.seed = seed
        self.num_workers = num_workers

    def _loader(self, dataset: Dataset) -> DataLoader:
        return DataLoader(
            dataset,
            batch_size=None,
            shuffle=False,
            num_workers=self.num_workers,
            pin_memory=torch.cuda.is_available(),
        )

    def train_spec(self, epoch: int) -> SelectiveCopyingSpec | InductionHeadsSpec:
        """The task setting trained on in ``epoch``: the curriculum stage it falls in, else the final one.

        With ``curriculum_advance_acc`` the stage is the one reached so far (see :meth:`_advance_stage`)."""
        stage = self.stage if self.curriculum_advance_acc is not None else epoch // self.curriculum_epochs
        return self.curriculum_specs[stage] if stage < len(self.curriculum_specs) else self.spec

    def _advance_stage(self, last_epoch_acc: float | None) -> None:
        """Accuracy-gated curriculum: called once per training epoch with the previous epoch's accuracy."""
        if self.stage >= len(self.curriculum_specs):
            return
        if (last_epoch_acc is not None and self.epochs_in_stage >= self.curriculum_epochs
                and last_epoch_acc >= self.curriculum_advance_acc):
            self.stage, self.epochs_in_stage = self.stage + 1, 0
        self.epochs_in_stage += 1

    def state_dict(self) -> dict:
        return {"stage": self.stage, "epochs_in_stage": self.epochs_in_stage}

    def load_state_dict(self, state_dict: dict) -> None:
        self.stage, self.epochs_in_stage = state_dict["stage"], state_dict["epochs_in_stage"]

    def train_dataloader(self) -> DataLoader:
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        reload_every = getattr(self.trainer, "reload_dataloaders_every_n_epochs", 1)
        if self.curriculum_specs and reload_every != 1:
            raise SyntheticTaskError(
                "data.curriculum changes the training length between epochs, so it needs "
                f"trainer.reload_dataloaders_every_n_epochs 1 (got {reload_every})")
        if self.curriculum_advance_acc is not None:
            metrics = getattr(self.trainer, "callback_metrics", {}) if self.trainer is not None else {}
            last = metrics.get("train/epoch_acc")
            self._advance_stage(None if last is None else float(last))
        # A different seed per epoch gives fresh data every epoch, also after resuming from a checkpoint.
        seed = self.seed + 1 + epoch * 7919
        return self._loader(SyntheticBatches(self.train_spec(epoch), self.batch_size, self.batches_per_epoch, seed))

    def val_dataloader(self) -> DataLoader:
        return self._loader(SyntheticBatches(self.spec, self.batch_size, self.val_batches, seed=-(self.seed + 1)))
