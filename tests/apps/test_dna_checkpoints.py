"""mamba-dna's checkpoint callbacks: last.ckpt is the latest state even when the monitored metric got worse
(Lightning 2.6's save_last=True would leave it at the best step), and best-*.ckpt is the best one."""

import lightning.pytorch as pl
import torch

from apps.dna import _checkpoint_callbacks


class WorseningModel(pl.LightningModule):
    """Logs val/loss = epoch + 1, so the best epoch is the first and every later one is worse."""

    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w - batch.float().mean()) ** 2

    def validation_step(self, batch, batch_idx):
        self.log("val/loss", float(self.current_epoch + 1))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader(torch.arange(4), batch_size=2)  # 2 steps per epoch

    def val_dataloader(self):
        return torch.utils.data.DataLoader(torch.arange(2), batch_size=2)


def test_last_checkpoint_is_latest_and_best_is_best(tmp_path):
    trainer = pl.Trainer(accelerator="cpu", max_epochs=3, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path,
                         callbacks=_checkpoint_callbacks("val/loss", "min"))
    trainer.fit(WorseningModel())
    folder = tmp_path / "checkpoints"
    assert sorted(p.name for p in folder.iterdir()) == ["best-0-2.ckpt", "last.ckpt"]
    last = torch.load(folder / "last.ckpt", map_location="cpu", weights_only=True)
    assert (last["epoch"], last["global_step"]) == (2, 6)
    best = torch.load(folder / "best-0-2.ckpt", map_location="cpu", weights_only=True)
    assert best["global_step"] == 2
