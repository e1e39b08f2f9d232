"""Test-only Lightning callback: records, per rank and epoch, which training samples (window ids) the rank consumed.

Used by ``tests/apps/test_ddp.py`` through ``--trainer.callbacks+=`` on the real ``mamba-dna pretrain fit`` and
``mamba-audio fit`` commands. At the start of each training epoch it reads the ids the rank's sampler will hand out;
for every batch it rebuilds the samples of the next ``batch_size`` ids (dataset + the loader's collate function) and
checks that they equal the batch the model got, so the recorded ids are what the rank trained on, not just what a
sampler promised. It also saves the weights at the start of training (to check that ``--ckpt_path`` restored them)
and at the end of each epoch (to check that DDP kept the ranks in step). Every file name carries world size and
rank, so ranks never write the same file.
"""

from __future__ import annotations

import json
from pathlib import Path

import lightning.pytorch as pl
import torch


def _inputs(batch) -> torch.Tensor:
    """The model input of a batch: DNA batches are dicts, audio batches (inputs, targets) pairs."""
    return batch["input_ids"] if isinstance(batch, dict) else batch[0]


class WindowRecorder(pl.Callback):
    def __init__(self, out_dir: str):
        self.out_dir = Path(out_dir)
        self.planned: list[int] = []
        self.seen: list[int] = []
        self.mismatched_batches: list[int] = []

    def _name(self, trainer: pl.Trainer, what: str) -> Path:
        self.out_dir.mkdir(parents=True, exist_ok=True)
        return self.out_dir / f"{what}_world{trainer.world_size}_rank{trainer.global_rank}"

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        torch.save(pl_module.state_dict(), self._name(trainer, "start_weights").with_suffix(".pt"))

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loader = trainer.train_dataloader
        self.loader = loader
        self.planned = [int(i) for i in loader.sampler]
        self.seen, self.mismatched_batches = [], []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx: int) -> None:
        size = self.loader.batch_size
        ids = self.planned[batch_idx * size:(batch_idx + 1) * size]
        expected = self.loader.collate_fn([self.loader.dataset[i] for i in ids])
        if not torch.equal(_inputs(expected), _inputs(batch).cpu()):
            self.mismatched_batches.append(batch_idx)
        self.seen.extend(ids)

    def on_train_epoch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch
        record = {"rank": trainer.global_rank, "world_size": trainer.world_size, "epoch": epoch,
                  "global_step": trainer.global_step, "window_ids": self.seen,
                  "mismatched_batches": self.mismatched_batches}
        self._name(trainer, f"windows_epoch{epoch}").with_suffix(".json").write_text(json.dumps(record))
        torch.save(pl_module.state_dict(), self._name(trainer, f"end_weights_epoch{epoch}").with_suffix(".pt"))
