"""LightningModule for sequence classification: encoder + linear head, torchmetrics, AdamW + scheduler."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torchmetrics
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import RecurrentTaskModule, check_optim
from rnnlab.models.choices import ADVERSARIAL_MODES
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder
from rnnlab.tasks.classification.adversarial import LOSS_NAMES, NormalisedEmbedding, adversarial_loss, joined


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
    """Classifies padded token-id batches (`ids`, `lengths`, `labels`) with one `RecurrentEncoder`.

    `adversarial` at | vat (rnnlab.tasks.classification.adversarial) normalises the embeddings with the
    training frequencies `word_counts` (one per id; not a hyperparameter: the checkpoint keeps them as a
    buffer) and adds the adversarial term to the training loss; none trains as without it. With vat the
    training batches are `{"labelled": batch, "unlabelled": batch}`
    (rnnlab.tasks.classification.sequence_data, `unlabelled`) and the term is one KL divergence, averaged over
    the rows of both batches joined into one (Miyato et al.'s code); the loss and metrics count the labelled
    rows only.
    """

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
        adversarial: str = "none",
        adversarial_epsilon: float = 1.0,
        adversarial_xi: float = 0.1,
        word_counts: Sequence[int] | None = None,
    ) -> None:
        super().__init__()
        check_optim(scheduler, mode)
        if adversarial not in ADVERSARIAL_MODES:
            allowed = ", ".join(ADVERSARIAL_MODES)
            raise ConfigError(f"train.adversarial={adversarial!r} is not allowed; choose one of: {allowed}")
        # the run logs the whole config instead (train.py)
        self.save_hyperparameters(ignore=["word_counts"], logger=False)
        self.encoder = RecurrentEncoder(vocab_size, EncoderConfig(**encoder))
        if adversarial != "none":
            self.encoder.embedding = NormalisedEmbedding(self.encoder.embedding, word_counts)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.encoder.output_size, num_classes))
        self.loss = nn.CrossEntropyLoss()
        self.train_metrics = classification_metrics(num_classes, "train/")
        self.val_metrics = classification_metrics(num_classes, "val/")
        self.test_metrics = classification_metrics(num_classes, "test/")

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        return self.classify(self.encoder.embed(ids), lengths)

    def classify(self, embedded: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Logits from embedded token ids [B, T, E]."""
        pooled, _ = self.encoder.encode_embedded(embedded, lengths)
        return self.head(pooled)

    def _scores(self, logits: torch.Tensor) -> torch.Tensor:
        probs = logits.softmax(-1)
        return probs[:, self.hparams.positive_index] if self.hparams.num_classes == 2 else probs

    def _targets(self, labels: torch.Tensor) -> torch.Tensor:
        """Binary metrics score `positive_index` as class 1; multiclass labels stay as they are."""
        return (labels == self.hparams.positive_index).long() if self.hparams.num_classes == 2 else labels

    def _step(self, batch: dict[str, torch.Tensor], stage: str, metrics: torchmetrics.MetricCollection):
        return self._scored(self(batch["ids"], batch["lengths"]), batch, stage, metrics)

    def _scored(
        self,
        logits: torch.Tensor,
        batch: dict[str, torch.Tensor],
        stage: str,
        metrics: torchmetrics.MetricCollection,
    ) -> torch.Tensor:
        """The loss of `logits`, logged with the metrics."""
        loss = self.loss(logits, batch["labels"])
        size = len(batch["labels"])
        metrics.update(self._scores(logits.detach()), self._targets(batch["labels"]))
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=size,
            sync_dist=True,  # averaged over the ranks under DDP (a no-op in one process)
        )
        self.log_dict(metrics, on_step=False, on_epoch=True, prog_bar=stage != "train", batch_size=size)
        return loss

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        mode = self.hparams.adversarial
        if mode == "none":
            return self._step(batch, "train", self.train_metrics)
        if mode == "vat" and "unlabelled" not in batch:
            raise ValueError(
                "vat trains on SequenceDataModule(unlabelled=True)'s labelled + unlabelled batches"
            )
        unlabelled = batch["unlabelled"] if mode == "vat" else None
        batch = batch["labelled"] if mode == "vat" else batch
        embedded = self.encoder.embed(batch["ids"])
        if not embedded.requires_grad:  # frozen embeddings: the perturbation still needs ∂L/∂embedded
            embedded.requires_grad_()
        logits = self.classify(embedded, batch["lengths"])
        loss = self._scored(logits, batch, "train", self.train_metrics)
        inputs = embedded, batch["lengths"], logits
        if unlabelled is not None:
            more = self.encoder.embed(unlabelled["ids"])
            with torch.no_grad():  # the KL divergence's constant side
                more_logits = self.classify(more, unlabelled["lengths"])
            inputs = joined(*inputs, (more, unlabelled["lengths"], more_logits))
        extra = adversarial_loss(
            mode,
            self.classify,
            inputs[0],
            inputs[1],
            batch["labels"],
            inputs[2],
            loss,
            self.hparams.adversarial_epsilon,
            self.hparams.adversarial_xi,
        )
        self.log(
            LOSS_NAMES[mode], extra, on_step=False, on_epoch=True, batch_size=len(inputs[1]), sync_dist=True
        )
        return loss + extra

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val", self.val_metrics)

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "test", self.test_metrics)
