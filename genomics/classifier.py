"""Sequence classifier: a (pretrained) Mamba DNA backbone, masked mean pooling and a linear head.

Pooled features are standardised (a BatchNorm without affine parameters, ``pooled_norm``, see ``genomics.pooling``)
before the head: without it the head learns very slowly on long windows. Their statistics are re-estimated with the
current weights on ``calibration_windows`` fixed training windows before every validation during ``fit`` (the
running averages lag behind a backbone being fine-tuned), so validation and saved checkpoints use fresh statistics.
The backbone comes from a pretraining checkpoint (``pretrained``: Lightning .ckpt or save_pretrained folder) or is
built from the size arguments (training from scratch; ``bidirectional=True`` then gives a BiMamba backbone).
Class names come from the data module at ``setup`` and are stored in the checkpoint, so ``predict`` needs only the
checkpoint. ``predict`` writes ``windows.tsv`` (one row per tiled window) and ``records.tsv`` (record probability =
mean of its window probabilities) into ``predict_output``, refusing to overwrite existing results.
"""

from __future__ import annotations

import csv
from contextlib import nullcontext
from pathlib import Path

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader

from genomics.backbone import dna_mamba_config, load_pretrained
from genomics.epoch_metrics import EpochMetricsMixin
from genomics.pooling import PooledBatchNorm
from mamba_core.models import MambaLMHeadModel
from mamba_core.utils import parameter_groups, warmup_cosine


class DNAClassifier(EpochMetricsMixin, pl.LightningModule):
    def __init__(self, pretrained: str | None = None, class_names: list[str] | None = None, d_model: int = 128,
                 n_layer: int = 6, d_state: int = 16, d_conv: int = 4, expand: int = 2, bidirectional: bool = False,
                 pooling: str = "mean", lr: float = 1e-3, backbone_lr: float | None = None,
                 weight_decay: float = 0.01, warmup_steps: int = 50, min_lr_ratio: float = 0.1,
                 freeze_backbone: bool = False, gradient_checkpointing: bool = False, head_dropout: float = 0.0,
                 pooled_norm: bool = True, calibration_windows: int = 64, predict_output: str = "predictions"):
        super().__init__()
        self.save_hyperparameters()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', got {pooling!r}")
        if pretrained:
            lm = load_pretrained(pretrained)
            if bidirectional and not lm.config.bidirectional:
                raise ValueError(f"{pretrained} is a causal (unidirectional) model; bidirectional=True needs a "
                                 "bidirectional pretraining run or training from scratch (pretrained: null)")
        else:
            lm = MambaLMHeadModel(dna_mamba_config(d_model, n_layer, d_state, d_conv, expand, bidirectional))
        lm.set_gradient_checkpointing(gradient_checkpointing)
        self.backbone_config = lm.config
        self.backbone = lm.backbone
        if freeze_backbone:
            self.backbone.requires_grad_(False)
        self.dropout = torch.nn.Dropout(head_dropout)
        d_model = self.backbone_config.d_model
        self.pooled_norm = PooledBatchNorm(d_model) if pooled_norm else torch.nn.Identity()
        self.class_names: list[str] = list(class_names) if class_names else []
        self.head: torch.nn.Linear | None = None
        if self.class_names:
            self._build_head()
        self._init_epoch_metrics()
        self._predictions: list[tuple[torch.Tensor, torch.Tensor]] = []

    def _build_head(self) -> None:
        if len(self.class_names) < 2:
            raise ValueError(f"need at least 2 classes, got {self.class_names}")
        self.head = torch.nn.Linear(self.backbone_config.d_model, len(self.class_names), device=self.device)

    def setup(self, stage: str) -> None:
        if self.head is not None:
            return
        datamodule = getattr(self.trainer, "datamodule", None)
        if stage != "predict" and datamodule is not None and hasattr(datamodule, "prepare_classes"):
            self.class_names = list(datamodule.prepare_classes())
            self._build_head()
        elif stage != "predict":
            raise ValueError("class_names unknown: give model.class_names or a classification data module")

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        stored = checkpoint.get("class_names")
        if stored is None:
            raise ValueError("checkpoint has no class_names: not a `mamba-dna classify` checkpoint")
        if self.head is None:
            self.class_names = list(stored)
            self._build_head()
        elif list(stored) != self.class_names:
            raise ValueError(f"checkpoint classes {stored} differ from the data's classes {self.class_names}")

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        checkpoint["class_names"] = self.class_names
        checkpoint["mamba_config"] = self.backbone_config.to_dict()

    def pooled_features(self, input_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Pooled backbone features (batch, d_model), fp32, before normalisation; ``mask`` marks real tokens."""
        hidden = self.backbone(input_ids)
        if mask is None:
            mask = torch.ones(input_ids.shape, dtype=torch.bool, device=input_ids.device)
        if self.hparams.pooling == "mean":
            weights = mask.to(hidden.dtype).unsqueeze(-1)
            pooled = (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
        else:
            last = mask.long().sum(1).clamp(min=1) - 1
            pooled = hidden[torch.arange(hidden.shape[0], device=hidden.device), last]
        return pooled.float()

    def forward(self, input_ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Class logits (batch, n_classes) for token ids (batch, L); ``mask`` marks real (non-padding) tokens."""
        if self.head is None:
            raise RuntimeError("classifier head not built yet: class names unknown")
        return self.head(self.dropout(self.pooled_norm(self.pooled_features(input_ids, mask))))

    def calibrate_pooled_norm(self, dataset, batch_size: int) -> None:
        """Set ``pooled_norm``'s statistics to those of the pooled features of ``dataset`` (windows with
        ``input_ids`` and ``mask``) under the current weights, computed in evaluation mode and in the trainer's
        precision, exactly as validation will compute them. Every rank sees the same windows, so no reduction."""
        was_training = self.training
        self.eval()
        context = self.trainer.precision_plugin.forward_context() if self._trainer is not None else nullcontext()
        features = []
        with torch.no_grad(), context:
            for batch in DataLoader(dataset, batch_size=batch_size):
                features.append(self.pooled_features(batch["input_ids"].to(self.device),
                                                     batch["mask"].to(self.device)))
        self.pooled_norm.set_statistics(torch.cat(features))
        self.train(was_training)

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        datamodule = getattr(self.trainer, "datamodule", None)
        if (self.hparams.calibration_windows and isinstance(self.pooled_norm, PooledBatchNorm)
                and self.trainer.state.fn == TrainerFn.FITTING and hasattr(datamodule, "calibration_dataset")):
            self.calibrate_pooled_norm(datamodule.calibration_dataset(self.hparams.calibration_windows),
                                       datamodule.hparams.batch_size)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        logits = self(batch["input_ids"], batch["mask"])
        loss = F.cross_entropy(logits, batch["label"])
        acc = (logits.argmax(-1) == batch["label"]).float().mean()
        size = float(len(batch["label"]))
        self.metrics[f"{stage}_loss"].update(loss.detach(), size)
        self.metrics[f"{stage}_acc"].update(acc, size)
        if stage == "train":
            self.log("train/loss", loss, prog_bar=True)
        return loss


    def on_fit_start(self) -> None:
        if self.logger is not None:
            self.logger.log_metrics({"n_params": float(sum(p.numel() for p in self.parameters()))}, step=0)

    def configure_optimizers(self):
        hp = self.hparams
        groups = parameter_groups(self.head, hp.weight_decay)
        if not hp.freeze_backbone:
            backbone_groups = parameter_groups(self.backbone, hp.weight_decay)
            for group in backbone_groups:
                group["lr"] = hp.backbone_lr or hp.lr
            groups += backbone_groups
        optimizer = torch.optim.AdamW([g for g in groups if g["params"]], lr=hp.lr)
        scheduler = warmup_cosine(optimizer, hp.warmup_steps, int(self.trainer.estimated_stepping_batches),
                                  hp.min_lr_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # prediction -----------------------------------------------------------------------------------------------
    def _output_paths(self) -> tuple[Path, Path]:
        folder = Path(self.hparams.predict_output)
        return folder / "records.tsv", folder / "windows.tsv"

    def on_predict_start(self) -> None:
        if self.head is None:
            raise ValueError("predict needs a trained classifier: pass --ckpt_path <classify checkpoint>")
        existing = [str(p) for p in self._output_paths() if p.exists()]
        if existing:
            raise FileExistsError(f"refusing to overwrite {existing}; set model.predict_output to a new folder")
        self._predictions = []

    def predict_step(self, batch, batch_idx):
        probs = torch.softmax(self(batch["input_ids"], batch["mask"]), dim=-1)
        self._predictions.append((batch["tile"].cpu(), batch["n_count"].cpu(), probs.float().cpu()))
        return probs

    def on_predict_end(self) -> None:
        if self.trainer.world_size > 1:  # every rank predicted its share of the windows; rank 0 writes them all
            parts = [None] * self.trainer.world_size
            torch.distributed.all_gather_object(parts, self._predictions)
            self._predictions = [p for part in parts for p in part]
        if not self.trainer.is_global_zero:
            return
        dataset = self.trainer.datamodule.predict_dataset
        reader = dataset.reader
        records_path, windows_path = self._output_paths()
        records_path.parent.mkdir(parents=True, exist_ok=True)
        n = len(self.class_names)
        window_probs, window_n = {}, {}
        for tiles, n_counts, probs in self._predictions:
            for tile, n_count, p in zip(tiles.tolist(), n_counts.tolist(), probs, strict=True):
                window_probs[tile], window_n[tile] = p, n_count
        columns = [f"p_{name}" for name in self.class_names]
        per_record: dict[str, list[torch.Tensor]] = {name: [] for name in reader.names}
        all_n: dict[str, bool] = {name: True for name in reader.names}
        with open(windows_path, "w", newline="") as out:
            writer = csv.writer(out, delimiter="\t", lineterminator="\n")
            writer.writerow(["record", "start", "end", "n_fraction", "predicted", *columns])
            for tile, (_, name, start, end) in enumerate(dataset.tiles):
                p = window_probs[tile]
                per_record[name].append(p)
                n_frac = window_n[tile] / max(1, end - start)
                all_n[name] &= n_frac == 1.0
                writer.writerow([name, start, end, f"{n_frac:.4f}", self.class_names[int(p.argmax())],
                                 *(f"{x:.6f}" for x in p.tolist())])
        with open(records_path, "w", newline="") as out:
            writer = csv.writer(out, delimiter="\t", lineterminator="\n")
            writer.writerow(["record", "length", "n_windows", "status", "predicted", *columns])
            for name in reader.names:
                length, probs = reader.length(name), per_record[name]
                if not probs:
                    writer.writerow([name, length, 0, "empty", "NA", *(["NA"] * n)])
                    continue
                mean = torch.stack(probs).mean(0)
                status = "all_N" if all_n[name] else "shorter_than_window" if length < dataset.length else "ok"
                writer.writerow([name, length, len(probs), status, self.class_names[int(mean.argmax())],
                                 *(f"{x:.6f}" for x in mean.tolist())])
