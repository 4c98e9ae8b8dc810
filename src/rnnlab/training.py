"""Build the Lightning Trainer for a run from the composed config: callbacks, logger, checkpoints; the CPU
settings of a training process (threads, the allocator)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, LearningRateMonitor, ModelCheckpoint, TQDMProgressBar

from rnnlab import allocator
from rnnlab.callbacks import RUN_ID_KEY, EpochProgressBar, EpochThroughput, FitClock, RunIdInCheckpoint
from rnnlab.diagnostics.callbacks import ClippingMonitor, RecurrentWeightMonitor
from rnnlab.errors import ConfigError
from rnnlab.resume import ExactResume, StepCheckpoint


def configure_cpu(threads: int | None, retain_freed_memory: bool) -> int:
    """Use `threads` torch threads (`train.threads`; None: `$OMP_NUM_THREADS` when set, else the cores this
    process may run on) and, with `retain_freed_memory` (`train.retain_freed_memory`), keep freed memory
    mapped for the next step (`rnnlab.allocator`). Returns the thread count."""
    if threads is None:
        given = os.environ.get("OMP_NUM_THREADS", "")
        threads = int(given) if given.isdigit() and int(given) > 0 else len(os.sched_getaffinity(0))
    if not isinstance(threads, int) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"train.threads={threads!r} must be a positive integer or null (all cores)")
    torch.set_num_threads(threads)
    if retain_freed_memory:
        allocator.retain_freed_memory()
    return threads


def build_callbacks(
    checkpoint_dir: Path,
    monitor: str,
    mode: str,
    early_stopping_patience: int,
    diagnostics_dir: Path,
    checkpoint_every_n_steps: int = 0,
) -> list:
    """Best (by `monitor`, `mode` min|max) and last checkpoints (no `=` or `/` in names; `last.ckpt` also
    every `checkpoint_every_n_steps` steps, 0: epoch ends only) with what exact resume needs, early stop,
    LR monitor, throughput, the fit time summed over resumes, progress bar, and the task-independent
    diagnostics (recurrent weight spectra, gradient clipping) written to `diagnostics_dir`."""
    if not isinstance(checkpoint_every_n_steps, int) or checkpoint_every_n_steps < 0:
        raise ConfigError(
            f"train.checkpoint_every_n_steps={checkpoint_every_n_steps!r} must be an integer >= 0"
        )
    callbacks: list[L.Callback] = [
        ModelCheckpoint(  # the trainer's `checkpoint_callback`: best.ckpt by the task's monitored metric
            dirpath=checkpoint_dir,
            filename="best",
            monitor=monitor,
            mode=mode,
            auto_insert_metric_name=False,
        ),
        # last.ckpt after every epoch, for resuming. (Lightning's `save_last=True` only writes it when a
        # better checkpoint is saved, so it would hold the best epoch, not the latest.)
        ModelCheckpoint(dirpath=checkpoint_dir, filename="last", monitor=None, enable_version_counter=False),
        ExactResume(),
        LearningRateMonitor(logging_interval="epoch"),
        EpochThroughput(),
        FitClock(),
        RunIdInCheckpoint(),
        EpochProgressBar(refresh_rate=20),
        RecurrentWeightMonitor(diagnostics_dir),
        ClippingMonitor(diagnostics_dir),
    ]
    if checkpoint_every_n_steps:
        callbacks.append(StepCheckpoint(checkpoint_dir, checkpoint_every_n_steps))
    if early_stopping_patience > 0:
        callbacks.append(EarlyStopping(monitor=monitor, mode=mode, patience=early_stopping_patience))
    return callbacks


def build_trainer(trainer_cfg: dict[str, Any], callbacks: list, logger: Any) -> L.Trainer:
    """`trainer_cfg` holds Lightning Trainer arguments (conf/trainer/*.yaml) verbatim."""
    if not trainer_cfg.get("enable_progress_bar", True):
        # Lightning refuses a progress-bar callback together with enable_progress_bar=False.
        callbacks = [c for c in callbacks if not isinstance(c, TQDMProgressBar)]
    return L.Trainer(**trainer_cfg, callbacks=callbacks, logger=logger)


def read_checkpoint(path: Path | None) -> dict | None:
    """A checkpoint's contents on the CPU (None without a path): a resumed run reads it once for its run id
    and fit clock, and Lightning once more to restore the state."""
    return None if path is None else torch.load(path, map_location="cpu", weights_only=False)


def checkpoint_run_id(checkpoint: dict | None) -> str | None:
    """The MLflow run a loaded checkpoint was written by (None without one, or for one from elsewhere)."""
    return None if checkpoint is None else checkpoint.get(RUN_ID_KEY)


def epochs_completed(checkpoint_dir: Path) -> int:
    """Epochs trained so far, read from `last.ckpt` (under `ddp_spawn` the main process has no loop state)."""
    return int(torch.load(checkpoint_dir / "last.ckpt", map_location="cpu", weights_only=False)["epoch"]) + 1
