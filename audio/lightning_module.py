"""LightningModule training the SaShiMi U-Net (:class:`audio.sashimi.SaShiMi`) by next-sample prediction.

Loss: cross-entropy over the 256 mu-law classes, padding targets (-100) ignored. Logged per split as
``<split>/nll`` (nats per sample) and ``<split>/bits_per_sample`` (= nll / ln 2), averaged over real samples.

Recipe of the Mamba paper's SC09 runs (its defaults here): AdamW with betas (0.9, 0.95) and weight decay 0.1 (none on
biases, norms and SSM parameters marked ``_no_weight_decay``), peak lr 2e-3, linear warmup then cosine decay, gradient
clipping and batch 16 set in the YAML (trainer.gradient_clip_val, data.batch_size), 200K steps. The cosine runs over
``schedule_steps`` (default: the trainer's total steps); warmup is capped at 10% of that for short runs.
"""

from __future__ import annotations

import math

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from audio.datasets import IGNORE_INDEX
from audio.mulaw import NUM_CLASSES
from audio.sashimi import SaShiMi, count_parameters
from mamba_core.utils import warmup_cosine


class AudioLM(pl.LightningModule):
    """Autoregressive waveform model; constructor arguments are the YAML ``model:`` section."""

    def __init__(self, d_model: int = 64, n_layers: int = 8, pool: list[int] = (4, 4), expand: int = 2,
                 block: str = "mamba", center_block: str | None = None, ff: int = 2, unet: bool = True,
                 norm: str = "layer", mamba_d_state: int = 16, mamba_d_conv: int = 4, mamba_expand: int = 2,
                 s4d_d_state: int = 64, attn_head_dim: int = 64, lr: float = 2e-3, weight_decay: float = 0.1,
                 betas: tuple[float, float] = (0.9, 0.95), warmup_steps: int = 1000,
                 schedule_steps: int | None = None, min_lr_ratio: float = 0.0):
        super().__init__()
        self.save_hyperparameters()
        self.model = SaShiMi(d_model=d_model, n_layers=n_layers, pool=list(pool), expand=expand, block=block,
                             center_block=center_block, ff=ff, unet=unet, norm=norm, mamba_d_state=mamba_d_state,
                             mamba_d_conv=mamba_d_conv, mamba_expand=mamba_expand, s4d_d_state=s4d_d_state,
                             attn_head_dim=attn_head_dim)
        self.train_steps_this_run = 0  # optimizer steps taken since construction (tells a resumed run apart)
        # Weight-decay groups are decided here, on the unwrapped model: FSDP (use_orig_params) later turns every
        # parameter into a 1-D shard view, so an ndim test in configure_optimizers would exempt every weight.
        for param in self.model.parameters():
            if param.ndim < 2:
                param._no_weight_decay = True

    @property
    def num_parameters(self) -> int:
        return count_parameters(self.model)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.model(tokens)

    def _nll(self, batch, split: str) -> torch.Tensor:
        inputs, targets = batch
        logits = self.model(inputs)
        loss = F.cross_entropy(logits.reshape(-1, NUM_CLASSES).float(), targets.reshape(-1),
                               ignore_index=IGNORE_INDEX)
        count = int((targets != IGNORE_INDEX).sum())
        on_step = split == "train"
        sync = not on_step  # DDP: validation/test values are the sample-weighted mean over all ranks
        self.log(f"{split}/nll", loss, batch_size=count, prog_bar=True, on_step=on_step, on_epoch=True,
                 sync_dist=sync)
        self.log(f"{split}/bits_per_sample", loss / math.log(2), batch_size=count, on_step=on_step, on_epoch=True,
                 sync_dist=sync)
        return loss

    def training_step(self, batch, batch_idx):
        self.train_steps_this_run += 1
        return self._nll(batch, "train")

    def validation_step(self, batch, batch_idx):
        return self._nll(batch, "val")

    def test_step(self, batch, batch_idx):
        return self._nll(batch, "test")

    def on_fit_start(self) -> None:
        self.print(f"SaShiMi ({self.hparams.block} blocks, centre {self.hparams.center_block or self.hparams.block}):"
                   f" {self.num_parameters / 1e6:.2f}M parameters")
        per_device = getattr(self.trainer.datamodule, "batch_size", None)
        if per_device:  # the LR is tuned for a global batch; keep it when adding devices (docs/scaling.md)
            devices, accumulate = self.trainer.world_size, self.trainer.accumulate_grad_batches
            self.print(f"global batch {devices * per_device * accumulate} clips per optimizer step = {devices} "
                       f"device(s) x batch {per_device} x {accumulate} accumulated; lr {self.hparams.lr}")

    def configure_optimizers(self):
        decay, no_decay = [], []
        for param in self.model.parameters():
            if not param.requires_grad:
                continue
            (no_decay if getattr(param, "_no_weight_decay", False) else decay).append(param)
        optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": self.hparams.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=self.hparams.lr, betas=tuple(self.hparams.betas))
        total = self.hparams.schedule_steps or int(self.trainer.estimated_stepping_batches)
        warmup = min(self.hparams.warmup_steps, max(1, total // 10))  # short runs: warm up for 10% of them
        scheduler = warmup_cosine(optimizer, warmup, total, self.hparams.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
