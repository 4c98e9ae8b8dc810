"""LightningModule for sequence classification: encoder + linear head, torchmetrics, AdamW + scheduler."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
import torchmetrics
from lightning.pytorch.utilities import grad_norm
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder

SCHEDULERS = ("plateau", "onecycle", "none")


def classification_metrics(num_classes: int, prefix: str) -> torchmetrics.MetricCollection:
    """Accuracy, macro F1 and AUROC for `num_classes` classes, named `<prefix>acc` etc."""
    task = "binary" if num_classes == 2 else "multiclass"
    args: dict[str, Any] = {"task": task} if task == "binary" else {"task": task, "num_classes": num_classes}
    return torchmetrics.MetricCollection(
        {
            "acc": torchmetrics.Accuracy(**args),
            "f1": torchmetrics.F1Score(**args, **({} if task == "binary" else {"average": "macro"})),
            "auroc": torchmetrics.AUROC(**args),
        },
        prefix=prefix,
    )


class SequenceClassifier(L.LightningModule):
    """Classifies padded token-id batches (`ids`, `lengths`, `labels`) with one `RecurrentEncoder`."""

    def __init__(
        self,
        vocab_size: int,
        num_classes: int,
        encoder: dict[str, Any],
        lr: float = 2e-3,
        weight_decay: float = 1e-2,
        scheduler: str = "plateau",
        head_dropout: float = 0.0,
    ) -> None:
        super().__init__()
        if scheduler not in SCHEDULERS:
            raise ConfigError(
                f"optim.scheduler={scheduler!r} is not allowed; choose one of: {', '.join(SCHEDULERS)}"
            )
        self.save_hyperparameters(logger=False)  # the run logs the whole config instead (train.py)
        self.encoder = RecurrentEncoder(vocab_size, EncoderConfig(**encoder))
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.encoder.output_size, num_classes))
        self.loss = nn.CrossEntropyLoss()
        self.train_metrics = classification_metrics(num_classes, "train/")
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.encoder(ids, lengths)
        return self.head(pooled)

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.softmax(-1)
        return probs[:, 1] if self.hparams.num_classes == 2 else probs

    def _step(self, batch: dict[str, torch.Tensor], stage: str, metrics: torchmetrics.MetricCollection):
        logits = self(batch["ids"], batch["lengths"])
        loss = self.loss(logits, batch["labels"])
        size = len(batch["labels"])
        metrics.update(self._scores(logits.detach()), batch["labels"])
        self.log(f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size)
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=size)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", self.train_metrics)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test", self.test_metrics)

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Log the total gradient 2-norm (before clipping) once per epoch on average."""
        norm = grad_norm(self, norm_type=2)["grad_2.0_norm_total"]
        self.log("train/grad_norm", norm, on_step=False, on_epoch=True)

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay
        )
        if self.hparams.scheduler == "none":
            return optimizer
        if self.hparams.scheduler == "onecycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=self.hparams.lr, total_steps=int(self.trainer.estimated_stepping_batches)
            )
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}
        schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode="max", factor=0.5, patience=1)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "monitor": "val/acc"}}
