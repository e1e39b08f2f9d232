"""LightningModule training any of the three synthetic-task models (see models.py) on either task (see data.py).

Both tasks are scored only where an answer is due, which is always the last n positions of the input:
selective copying answers the n data tokens at the n markers, induction heads answers one token at the final
trigger. So targets (batch, n) or (batch,) are compared with the logits of the last n positions; accuracy is per
answer token (and, for selective copying, also per whole sequence).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from torch import nn

from mamba_core.models import InferenceCache
from mamba_core.utils import warmup_cosine, warmup_cosine_factor

from .data import TASKS
from .models import ARCHITECTURES, build_model

LR_SCHEDULES = ("steps", "time")


def time_cosine_factor(step: int, fraction: float, warmup_steps: int, min_lr_ratio: float,
                       decay_start: float = 0.0) -> float:
    """LR multiplier: linear warm-up over ``warmup_steps`` steps, 1 until the elapsed ``fraction`` of the time
    budget reaches ``decay_start``, then cosine down to ``min_lr_ratio`` at fraction 1 (held there after)."""
    return warmup_cosine_factor(step, warmup_steps, (fraction - decay_start) / (1.0 - decay_start), min_lr_ratio)


def _training_timer(trainer) -> pl.callbacks.Timer:
    """The Timer that enforces ``Trainer(max_time=...)``; the time schedule needs one."""
    timers = [c for c in (trainer.callbacks if trainer is not None else []) if isinstance(c, pl.callbacks.Timer)]
    if not timers or timers[0].time_remaining() is None:
        raise ValueError("model.lr_schedule='time' needs trainer.max_time (the wall-clock budget the cosine spans)")
    return timers[0]


def timer_fraction(timer: pl.callbacks.Timer) -> float:
    """Elapsed share of the timer's training budget (0 before training starts, 1 at the cap)."""
    elapsed, remaining = timer.time_elapsed(), timer.time_remaining()
    return elapsed / (elapsed + remaining) if elapsed + remaining > 0 else 1.0


def answer_logits(logits: torch.Tensor, targets: torch.Tensor, vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(logits of the answer positions (batch, n, vocab), targets (batch, n)) for (batch, n) or (batch,) targets."""
    targets = targets.reshape(targets.shape[0], -1)
    return logits[:, -targets.shape[1]:, :vocab_size], targets


def no_weight_decay(name: str, param: nn.Parameter) -> bool:
    """Biases, norms, embeddings, Mamba's A_log/D (marked ``_no_weight_decay``) and the ablation's B/C."""
    return param.dim() < 2 or getattr(param, "_no_weight_decay", False) or "embedding" in name or name.endswith(
        (".B", ".C")
    )


class ValidationSummary(pl.Callback):
    """One plain line per validation (step, loss, accuracies), readable in logs with the progress bar off."""

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        keys = [k for k in ("val/loss", "val/acc", "val/seq_acc") if k in metrics]
        shown = " ".join(f"{k} {float(metrics[k]):.4f}" for k in keys)
        pl_module.print(f"[{pl_module.hparams.arch} {pl_module.hparams.task}] step {trainer.global_step}: {shown}")


class SyntheticLM(pl.LightningModule):
    """Next-token model trained on the answer positions of a synthetic task.

    Args:
        arch: "mamba" (S6), "s4" (Mamba with selection removed) or "transformer".
        task: which task the answers come from (linked from the data module by the CLI).
        vocab_size: task vocabulary, special tokens included (linked from the data module by the CLI).
        d_model, n_layer: width and depth of every architecture.
        d_state, d_conv, expand: Mamba/S4 mixer sizes.
        n_head: Transformer attention heads.
        lr, weight_decay, betas: AdamW (no decay on biases, norms, embeddings, A_log, D, S4 B/C).
        warmup_steps: linear warm-up, then cosine decay to ``min_lr_ratio * lr``.
        lr_schedule: where the cosine ends. "steps": at the trainer's last step (``max_steps``). "time": at the end
            of the trainer's ``max_time``, by the fraction of it elapsed, for runs that a wall-clock cap ends: the
            learning rate anneals before the cap whatever the device's speed (the step it ends at is not fixed).
        decay_start: with lr_schedule "time", the share of max_time spent at the peak before the cosine starts
            (0: cosine over the whole budget; 0.8: constant for 80% of it, annealed over the last 20%).
        state_passing: (mamba only) each training batch starts from the final recurrent state (SSM and conv) of
            the previous batch instead of from zeros, with no gradient through it (the "state passing" of Buitrago
            Ruiz & Gu, 2025, "Understanding and Improving Length Generalization in Recurrent Models"). The model
            still trains on ``seq_len``-long windows but sees states like those deep into a long sequence, the ones
            it meets when evaluated far past its training length. Validation starts from zeros. The carried state is
            not saved in checkpoints: after a resume the first batch starts from zeros.
    """

    def __init__(
        self,
        arch: str = "mamba",
        task: str = "selective_copying",
        vocab_size: int = 16,
        d_model: int = 64,
        n_layer: int = 2,
        d_state: int = 16,
        d_conv: int = 4,
        expand: int = 2,
        n_head: int = 4,
        lr: float = 1e-3,
        weight_decay: float = 0.1,
        betas: tuple[float, float] = (0.9, 0.98),
        warmup_steps: int = 100,
        min_lr_ratio: float = 0.1,
        lr_schedule: str = "steps",
        decay_start: float = 0.0,
        state_passing: bool = False,
    ):
        super().__init__()
        if arch not in ARCHITECTURES:
            raise ValueError(f"unknown arch {arch!r}; expected one of {ARCHITECTURES}")
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")
        if lr_schedule not in LR_SCHEDULES:
            raise ValueError(f"unknown lr_schedule {lr_schedule!r}; expected one of {LR_SCHEDULES}")
        if not 0.0 <= decay_start < 1.0:
            raise ValueError(f"decay_start must be in [0, 1), got {decay_start}")
        if state_passing and arch != "mamba":
            raise ValueError(f"state_passing needs arch 'mamba' (a recurrent state to pass), got {arch!r}")
        self.save_hyperparameters()
        self.arch, self.task, self.vocab_size = arch, task, vocab_size
        self.model = build_model(arch, vocab_size, d_model, n_layer, d_state, d_conv, expand, n_head)

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        """Logits (batch, L, vocab_size)."""
        return self.model(input_ids)[..., : self.vocab_size]

    def _carried_state(self, batch_size: int) -> InferenceCache | None:
        """With state_passing: the recurrent state the last training batch ended in (fresh zeros at first)."""
        if not self.hparams.get("state_passing", False):
            return None
        cache = getattr(self, "_carry", None)
        if cache is None or cache.states[0][1].shape[0] != batch_size:
            cache = self._carry = self.model.allocate_inference_cache(batch_size)
        return cache

    def _shared_step(self, batch, stage: str) -> torch.Tensor:
        inputs, targets = batch
        cache = self._carried_state(inputs.shape[0]) if stage == "train" else None
        logits = self.model(inputs) if cache is None else self.model(inputs, inference_cache=cache)
        logits, targets = answer_logits(logits, targets, self.vocab_size)
        loss = F.cross_entropy(logits.float().reshape(-1, self.vocab_size), targets.reshape(-1))
        correct = logits.argmax(-1) == targets
        on_step = stage == "train"
        self.log(f"{stage}/loss", loss, prog_bar=True, on_step=on_step, on_epoch=not on_step)
        self.log(f"{stage}/acc", correct.float().mean(), prog_bar=True, on_step=on_step, on_epoch=not on_step)
        if on_step:  # the epoch mean too, under its own name: an accuracy-gated curriculum reads it
            self.log("train/epoch_acc", correct.float().mean(), on_step=False, on_epoch=True)
            self.log("train/input_len", float(inputs.shape[1]), on_step=True, on_epoch=False)
        if targets.shape[1] > 1:
            self.log(f"{stage}/seq_acc", correct.all(1).float().mean(), on_step=on_step, on_epoch=not on_step)
        return loss

    def training_step(self, batch, batch_idx):
        return self._shared_step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._shared_step(batch, "val")

    def configure_callbacks(self):
        return [ValidationSummary()]

    def configure_optimizers(self):
        hp = self.hparams
        decay, no_decay = [], []
        for name, param in self.model.named_parameters():
            (no_decay if no_weight_decay(name, param) else decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": hp.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=hp.lr, betas=tuple(hp.betas),
        )
        if hp.get("lr_schedule", "steps") == "time":
            timer = _training_timer(self.trainer)
            scheduler = torch.optim.lr_scheduler.LambdaLR(
                optimizer, lambda step: time_cosine_factor(step, timer_fraction(timer), hp.warmup_steps,
                                                           hp.min_lr_ratio, hp.get("decay_start", 0.0)))
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
        total = max(int(self.trainer.estimated_stepping_batches), 1) if self.trainer is not None else 1
        scheduler = warmup_cosine(optimizer, hp.warmup_steps, total, hp.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
