"""LightningModule for sequence classification: encoder + linear head, torchmetrics, AdamW + scheduler."""

from __future__ import annotations

from typing import Any

import torch
import torchmetrics
from torch import nn

from rnnlab.models.base import RecurrentTaskModule, check_optim
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder


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


class SequenceClassifier(RecurrentTaskModule):
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
        monitor: str = "val/acc",
        mode: str = "max",
        positive_index: int = 1,
    ) -> None:
        super().__init__()
        check_optim(scheduler, mode)
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
        return probs[:, self.hparams.positive_index] if self.hparams.num_classes == 2 else probs

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Binary metrics score `positive_index` as class 1; multiclass labels stay as they are."""
        return (labels == self.hparams.positive_index).long() if self.hparams.num_classes == 2 else labels

    def _step(self, batch: dict[str, torch.Tensor], stage: str, metrics: torchmetrics.MetricCollection):
        logits = self(batch["ids"], batch["lengths"])
        loss = self.loss(logits, batch["labels"])
        size = len(batch["labels"])
        metrics.update(self._scores(logits.detach()), self._targets(batch["labels"]))
        self.log(
            f"{stage}/loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size,
            sync_dist=True,  # averaged over the ranks under DDP (a no-op in one process)
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=size)
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train", self.train_metrics)

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test", self.test_metrics)
