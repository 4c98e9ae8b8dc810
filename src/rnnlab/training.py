"""Build the Lightning Trainer for a run from the composed config: callbacks, logger, checkpoint folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar

from rnnlab.callbacks import EmbeddingFreeze, EpochThroughput

MONITOR = "val/acc"


def build_callbacks(checkpoint_dir: Path, early_stopping_patience: int, freeze_embedding_epochs: int) -> list:
    """Best and last checkpoints (no `=` or `/` in names), early stop, LR monitor, throughput, progress."""
    callbacks: list[L.Callback] = [
        ModelCheckpoint(
            dirpath=checkpoint_dir,
            filename="best",
            monitor=MONITOR,
            mode="max",
            save_last=True,
            auto_insert_metric_name=False,
        ),
        LearningRateMonitor(logging_interval="epoch"),
        EpochThroughput(),
        TQDMProgressBar(refresh_rate=20),
    ]
    if early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor=MONITOR, mode="max", patience=early_stopping_patience))
    if freeze_embedding_epochs > 0:
        callbacks.append(EmbeddingFreeze(freeze_embedding_epochs))
    return callbacks


def build_trainer(trainer_cfg: dict[str, Any], callbacks: list, logger: Any) -> L.Trainer:
    """`trainer_cfg` holds Lightning Trainer arguments (conf/trainer/*.yaml) verbatim."""
    if not trainer_cfg.get("enable_progress_bar", True):
        # Lightning refuses a progress-bar callback together with enable_progress_bar=False.
        callbacks = [c for c in callbacks if not isinstance(c, TQDMProgressBar)]
    return L.Trainer(**trainer_cfg, callbacks=callbacks, logger=logger)
