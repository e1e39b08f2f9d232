"""Next-nucleotide pretraining: a LightningModule around ``mamba_core.models.MambaLMHeadModel``.

Reports cross-entropy loss (nats per base), perplexity and next-base accuracy over the targets that count (padding
and, by the data module's choice, N are excluded). Long windows: ``gradient_checkpointing`` recomputes each block in
the backward pass; bf16 and gradient accumulation come from the Trainer (``precision``, ``accumulate_grad_batches``).
"""

from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from genomics.backbone import dna_mamba_config
from genomics.epoch_metrics import EpochMetricsMixin
from genomics.tokenizer import IGNORE_INDEX, VOCAB_SIZE
from mamba_core.models import MambaLMHeadModel
from mamba_core.utils import parameter_groups, warmup_cosine


class DNALanguageModel(EpochMetricsMixin, pl.LightningModule):
    def __init__(self, d_model: int = 128, n_layer: int = 6, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 lr: float = 6e-4, weight_decay: float = 0.1, betas: tuple[float, float] = (0.9, 0.95),
                 warmup_steps: int = 100, min_lr_ratio: float = 0.1, gradient_checkpointing: bool = False):
        super().__init__()
        self.save_hyperparameters()
        self.model = MambaLMHeadModel(dna_mamba_config(d_model, n_layer, d_state, d_conv, expand))
        if gradient_checkpointing:
            self.model.set_gradient_checkpointing(True)
        self._init_epoch_metrics()

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self.model(input_ids)[..., :VOCAB_SIZE]

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"]).float()
        labels = batch["labels"]
        counted = labels != IGNORE_INDEX
        count = counted.sum()
        loss = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=IGNORE_INDEX, reduction="sum")
        loss = loss / count.clamp(min=1)
        correct = ((logits.argmax(-1) == labels) & counted).sum()
        weight = count.clamp(min=1).float()
        self.metrics[f"{stage}_loss"].update(loss.detach(), weight)
        self.metrics[f"{stage}_acc"].update(correct.float() / weight, weight)
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True)
            self.log("train/tokens", count.float(), reduce_fx="sum")
        return loss

    def _extra_epoch_metrics(self, loss):
        return {"ppl": torch.exp(loss)}

    def configure_optimizers(self):
        hp = self.hparams
        optimizer = torch.optim.AdamW(parameter_groups(self.model, hp.weight_decay), lr=hp.lr, betas=tuple(hp.betas))
        scheduler = warmup_cosine(optimizer, hp.warmup_steps, int(self.trainer.estimated_stepping_batches),
                                  hp.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["mamba_config"] = self.model.config.to_dict()
