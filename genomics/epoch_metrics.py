"""Per-stage steps and epoch-level loss/accuracy for the DNA LightningModules (pretraining and classification).

Both modules route train/val/test batches to one ``_step(batch, stage)``, average loss and accuracy over an epoch
with torchmetrics ``MeanMetric`` (weighted, and reduced over DDP ranks by ``compute()``), reset them when an epoch
starts and log them when it ends. This mixin holds that plumbing once; a module calls :meth:`_init_epoch_metrics`
in ``__init__``, defines ``_step`` and feeds ``self.metrics`` there.
"""

from __future__ import annotations

import torch
from torchmetrics import MeanMetric

STAGES = ("train", "val", "test")


class EpochMetricsMixin:
    """Per-stage ``{stage}_loss`` / ``{stage}_acc`` metrics with the Lightning epoch hooks that reset and log them."""

    def _init_epoch_metrics(self) -> None:
        self.metrics = torch.nn.ModuleDict({f"{stage}_{name}": MeanMetric() for stage in STAGES
                                            for name in ("loss", "acc")})

    def training_step(self, batch, batch_idx):
        return self._step(batch, "train")

    def validation_step(self, batch, batch_idx):
        self._step(batch, "val")

    def test_step(self, batch, batch_idx):
        self._step(batch, "test")

    def _extra_epoch_metrics(self, loss: torch.Tensor) -> dict[str, torch.Tensor]:
        """More values derived from the epoch's mean loss (e.g. perplexity), logged as ``{stage}/{name}``."""
        return {}

    def _log_epoch(self, stage: str) -> None:
        loss = self.metrics[f"{stage}_loss"].compute()
        acc = self.metrics[f"{stage}_acc"].compute()
        # compute() already reduced over ranks; sync_dist only averages identical values (and silences a warning)
        self.log(f"{stage}/loss" if stage != "train" else "train/epoch_loss", loss, prog_bar=stage == "val",
                 sync_dist=True)
        for name, value in self._extra_epoch_metrics(loss).items():
            self.log(f"{stage}/{name}", value, sync_dist=True)
        self.log(f"{stage}/acc", acc, prog_bar=stage == "val", sync_dist=True)
        self._reset(stage)

    def _reset(self, stage: str) -> None:
        # states are re-created under the current grad mode: a standalone validate() runs in inference mode, and
        # its inference tensors could not be updated in place by the validation inside a later fit()
        self.metrics[f"{stage}_loss"].reset()
        self.metrics[f"{stage}_acc"].reset()

    def on_train_epoch_start(self):
        self._reset("train")

    def on_validation_epoch_start(self):
        self._reset("val")

    def on_test_epoch_start(self):
        self._reset("test")

    def on_train_epoch_end(self):
        self._log_epoch("train")

    def on_validation_epoch_end(self):
        self._log_epoch("val")

    def on_test_epoch_end(self):
        self._log_epoch("test")
