"""The training progress bar of a run resumed mid-epoch names that epoch and knows its length."""

from __future__ import annotations

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from rnnlab.callbacks import EpochProgressBar


class Tiny(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch: list[torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=0.1)


class SaveMidEpoch(L.Callback):
    """Saves `path` after the third batch of the first epoch, as rnnlab's step checkpoints do."""

    def __init__(self, path) -> None:  # noqa: ANN001
        self.path = path

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        if trainer.current_epoch == 0 and batch_idx == 2:
            trainer.save_checkpoint(self.path)


class Recording(EpochProgressBar):
    """Remembers the bar's description and total at each training batch."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, float | None, int]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
        self.seen.append((self.train_progress_bar.desc, self.train_progress_bar.total, batch_idx))


def fit(tmp_path, callbacks: list[L.Callback], ckpt_path: str | None = None) -> None:
    loader = DataLoader(TensorDataset(torch.randn(16, 2)), batch_size=2)  # 8 batches an epoch
    trainer = L.Trainer(
        default_root_dir=tmp_path,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=callbacks,
        max_epochs=2,
    )
    trainer.fit(Tiny(), train_dataloaders=loader, ckpt_path=ckpt_path)


def test_a_run_resumed_mid_epoch_shows_its_epoch_and_length(tmp_path):
    fit(tmp_path, [EpochProgressBar(), SaveMidEpoch(tmp_path / "mid.ckpt")])
    resumed = Recording()
    fit(tmp_path, [resumed], str(tmp_path / "mid.ckpt"))
    assert resumed.seen[0] == ("Epoch 0: ", 8, 3)  # the resumed epoch: "Epoch 0: 4/8", not "Training: 4/?"
    assert resumed.seen[-1] == ("Epoch 1: ", 8, 7)
