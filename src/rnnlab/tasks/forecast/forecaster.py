"""LightningModule for multi-step forecasting: the recurrent encoder over a lookback window + a linear head
that predicts the next `horizon` (scaled) target values at once."""

from __future__ import annotations

from typing import Any

import torch
import torchmetrics
from torch import nn

from rnnlab.models.base import RecurrentTaskModule, check_optim
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder


class SequenceForecaster(RecurrentTaskModule):
    """Windows (`inputs` [B, lookback, F], `lengths`, `targets` [B, horizon]) -> forecasts [B, horizon].

    Trained on mean squared error in scaled units; `<stage>/mae_scaled` is logged beside it. Metrics in the
    series' own units, against the baselines, come from the evaluate stage (rnnlab.tasks.forecast).
    """

    def __init__(
        self,
        num_features: int,
        horizon: int,
        encoder: dict[str, Any],
        lr: float = 2e-3,
        weight_decay: float = 1e-2,
        scheduler: str = "plateau",
        head_dropout: float = 0.0,
        monitor: str = "val/loss",
        mode: str = "min",
    ) -> None:
        super().__init__()
        check_optim(scheduler, mode)
        self.save_hyperparameters(logger=False)
        self.encoder = RecurrentEncoder(None, EncoderConfig(**encoder), input_size=num_features)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.encoder.output_size, horizon))
        self.loss = nn.MSELoss()
        self.train_mae = torchmetrics.MeanAbsoluteError()
        self.val_mae = torchmetrics.MeanAbsoluteError()
        self.test_mae = torchmetrics.MeanAbsoluteError()

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.encoder(inputs, lengths)
        return self.head(pooled)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        predicted = self(batch["inputs"], batch["lengths"])
        loss = self.loss(predicted, batch["targets"])
        size = len(batch["targets"])
        mae = getattr(self, f"{stage}_mae")
        mae.update(predicted.detach(), batch["targets"])
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,  # averaged over the ranks under DDP (a no-op in one process)
        )
        self.log(f"{stage}/mae_scaled", mae, on_step=False, on_epoch=True, batch_size=size, sync_dist=True)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test")
