"""Lightning callbacks rnnlab adds to the stock ones (module level: `ddp_spawn` pickles them)."""

from __future__ import annotations

import time
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.loggers import MLFlowLogger

RUN_ID_KEY = "mlflow_run_id"


class EpochThroughput(L.Callback):
    """Log `train/epoch_s` and `train/seq_per_s` (training sequences per second) at each epoch end.

    Lightning's ThroughputMonitor reports a sliding per-step window under its own names; the comparison
    tables want one number per epoch, so this measures the epoch as a whole. A batch of batches (virtual
    adversarial training's labelled + unlabelled) counts the rows of its first.
    """

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = self.last_batch_end = time.perf_counter()
        self.sequences = 0

    on_train_start = on_train_epoch_start  # a run resumed mid-epoch starts counting where it resumes

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:  # noqa: ANN001
        while isinstance(batch, dict) and isinstance(first := next(iter(batch.values())), dict):
            batch = first
        self.sequences += len(next(iter(batch.values())))  # rows of the batch (a dict of row-aligned tensors)
        self.last_batch_end = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """`epoch_s` is the whole epoch (validation included); `seq_per_s` counts training batches only."""
        training_s = max(self.last_batch_end - self.start, 1e-9)
        pl_module.log("train/epoch_s", time.perf_counter() - self.start, sync_dist=True)  # ranks: mean
        pl_module.log("train/seq_per_s", self.sequences * trainer.world_size / training_s, sync_dist=True)


class FitClock(L.Callback):
    """Wall and CPU seconds of fitting, summed over the processes of a resumed run: every checkpoint holds
    the totals at its saving, and a process resumed from it counts on from them. Time spent after the last
    checkpoint of a killed process is not counted: the resumed run trains those steps again, and counts
    them then. The stages read their totals from a clock of their own (`since`): under `ddp_spawn` the
    trainer's callbacks run in other processes."""

    def __init__(self) -> None:
        self.before = {"seconds": 0.0, "cpu_seconds": 0.0}
        self.started = (time.perf_counter(), time.process_time())

    @classmethod
    def since(cls, checkpoint: dict | None) -> FitClock:
        """A clock started now that counts on from a loaded checkpoint's totals (none: from zero; a
        checkpoint written before `FitClock` existed holds none either)."""
        clock = cls()
        if checkpoint is not None:
            clock.load_state_dict(checkpoint.get("callbacks", {}).get(cls.__qualname__, {}))
        return clock

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.started = (time.perf_counter(), time.process_time())

    def state_dict(self) -> dict[str, float]:
        """The totals so far: the seconds before this process's start, and its own since."""
        wall, cpu = self.started
        return {
            "seconds": self.before["seconds"] + time.perf_counter() - wall,
            "cpu_seconds": self.before["cpu_seconds"] + time.process_time() - cpu,
        }

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.before = {key: float(state_dict.get(key, 0.0)) for key in self.before}


class EmbeddingFreeze(L.Callback):
    """Keep pretrained embeddings frozen for the first `epochs` epochs, then train them.

    Lightning's BaseFinetuning adds parameter groups on unfreeze; here the embeddings stay in the optimizer
    and simply get no gradient while frozen (AdamW skips parameters without one), which is all we need.
    """

    def __init__(self, epochs: int) -> None:
        self.epochs = epochs

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        pl_module.encoder.embedding.weight.requires_grad_(trainer.current_epoch >= self.epochs)

    on_train_start = on_train_epoch_start  # a run resumed mid-epoch skips the epoch's start


class RunIdInCheckpoint(L.Callback):
    """Store the MLflow run id in every checkpoint, so that resuming from it continues the same run."""

    def on_save_checkpoint(
        self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]
    ) -> None:
        if isinstance(trainer.logger, MLFlowLogger):
            checkpoint[RUN_ID_KEY] = trainer.logger.run_id


class EpochProgressBar(TQDMProgressBar):
    """Lightning's progress bar, which also sets up the epoch a run resumed mid-way (Lightning does not call
    `on_train_epoch_start` for it): "Epoch 1: 160/352" instead of "Training: 160/?"."""

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if trainer.fit_loop.restarted_mid_epoch:
            self.on_train_epoch_start(trainer)
