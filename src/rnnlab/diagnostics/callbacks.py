"""Lightning callbacks that record the diagnostics of a training run (module level: `ddp_spawn` pickles them).

Each writes its CSV tables and PNG figures into `out_dir` (rank 0 only, atomically, rewritten at every
measurement so they are complete at any time), logs them as artifacts under `diagnostics/` of the run when the
logger is an `MLFlowLogger`, and logs summary metrics. Measurements are labelled `init` (at fit start) or with
the 0-based epoch they end; metrics are logged through the loggers with step = epochs trained (0 at `init`).

Their rows are kept in the callback state, so a run resumed from a checkpoint continues its tables. An epoch's
end is handled at the validation that closes it (where ModelCheckpoint saves, so the checkpoint already holds
the epoch's rows), or at `on_train_epoch_end` when no validation ran; the weights are the same at both.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import lightning as L
import pandas as pd
import torch
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.trainer.states import TrainerFn
from lightning.pytorch.utilities import rank_zero_info

from rnnlab.diagnostics import clipping, plots
from rnnlab.diagnostics.choices import LAST
from rnnlab.diagnostics.gradient_flow import (
    DEFAULT_DISTANCE,
    DEFAULT_STEPS,
    EncodedBatchSource,
    FixedBatch,
    gradient_flow,
)
from rnnlab.diagnostics.plots import INIT, epochs_trained
from rnnlab.diagnostics.recurrent_weights import encoder_spectra
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_file

Drawer = Callable[[IO[bytes]], Any]  # writes one PNG figure into an open binary file
ARTIFACT_DIR = "diagnostics"


def closes_training_epoch(trainer: L.Trainer) -> bool:
    """Whether the validation now ending is the one that follows the last training batch of an epoch."""
    if trainer.state.fn != TrainerFn.FITTING or trainer.sanity_checking:
        return False
    progress = trainer.fit_loop.epoch_loop.batch_progress
    return progress.is_last_batch or progress.current.ready == trainer.num_training_batches


class DiagnosticMonitor(L.Callback, ABC):
    """Shared by the monitors: rows kept as plain lists (checkpoint state), file writes, metric logging,
    and `epoch_end` (idempotent) called once the epoch's last optimizer step is done."""

    columns: list[str]

    def __init__(self, out_dir: str | Path) -> None:
        self.out_dir = Path(out_dir)
        self.rows: list[list[Any]] = []

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=self.columns)

    def measured(self, label: str | int) -> bool:
        return any(row[0] == label for row in self.rows)

    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = [list(row) for row in state_dict["rows"]]

    def publish(
        self, trainer: L.Trainer, tables: dict[str, pd.DataFrame], figures: dict[str, Drawer]
    ) -> None:
        """Write `tables` (CSV) and `figures` (PNG drawers) into `out_dir`; log them to the MLflow run."""
        if not trainer.is_global_zero:
            return
        for name, table in tables.items():
            with atomic_file(self.out_dir / name, "w", newline="", encoding="utf-8") as handle:
                table.to_csv(handle, index=False)
        for name, draw in figures.items():
            with atomic_file(self.out_dir / name, "wb") as handle:
                draw(handle)
        for logger in trainer.loggers:
            if isinstance(logger, MLFlowLogger):
                for name in (*tables, *figures):
                    logger.experiment.log_artifact(logger.run_id, str(self.out_dir / name), ARTIFACT_DIR)

    @abstractmethod
    def epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record the epoch that is ending (`trainer.current_epoch`), unless it already is."""

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if closes_training_epoch(trainer):
            self.epoch_end(trainer, pl_module)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_end(trainer, pl_module)

    @staticmethod
    def log_metrics(trainer: L.Trainer, metrics: dict[str, float], step: int) -> None:
        finite = {key: value for key, value in metrics.items() if math.isfinite(value)}
        if trainer.is_global_zero and finite:
            for logger in trainer.loggers:
                logger.log_metrics(finite, step=step)


def check_epochs(epochs: int | str | Iterable[int | str]) -> tuple[set[int], bool]:
    """(0-based epoch indices, whether `last` is asked for) of a GradientFlowMonitor `epochs` argument."""
    values = [epochs] if isinstance(epochs, int | str) else list(epochs)
    indices = {e for e in values if isinstance(e, int) and not isinstance(e, bool) and e >= 0}
    wrong = [e for e in values if e != LAST and e not in indices]
    if wrong:
        raise ConfigError(
            f"gradient flow epochs={epochs!r}: {wrong!r} not allowed; give 0-based epoch "
            f"indices (integers >= 0) and/or {LAST!r}"
        )
    return indices, LAST in values


class GradientFlowMonitor(DiagnosticMonitor):
    """||dL/dh_t|| by distance (rnnlab.diagnostics.gradient_flow) at fit start and after chosen epochs.

    `batch_source`: an encode-stage folder (its `val` split) or an `EncodedBatchSource`; `epochs`: 0-based
    epoch indices and/or "last" (the final epoch, however training stops: measured at train end).
    Writes gradient_flow.csv (epoch, module, distance, grad_norm) and gradient_flow.png; logs
    `gradflow/ratio_d<distance>` and `gradflow/log10_ratio_d<distance>` (distance as used: the requested
    one, or the largest the batch allows).
    """

    columns = ["epoch", "module", "distance", "grad_norm"]

    def __init__(
        self,
        batch_source: str | Path | EncodedBatchSource,
        epochs: int | str | Iterable[int | str] = (LAST,),
        steps: int = DEFAULT_STEPS,
        distance: int = DEFAULT_DISTANCE,
        *,
        out_dir: str | Path,
    ) -> None:
        super().__init__(out_dir)
        if isinstance(batch_source, str | Path):
            batch_source = EncodedBatchSource(batch_source)
        if not isinstance(batch_source, EncodedBatchSource):
            raise ConfigError(
                f"gradient flow batch_source={batch_source!r}: give an encoded-data folder "
                "or an EncodedBatchSource"
            )
        for key, value in (("steps", steps), ("distance", distance)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"gradient flow {key}={value!r} must be a positive integer")
        self.batch_source = batch_source
        self.epochs, self.at_last = check_epochs(epochs)
        self.steps = steps
        self.distance = distance
        self.batch: FixedBatch | None = None
        self.last_epoch_end: tuple[int, int] | None = None  # (epoch, global step) of the latest epoch end

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule, label: str | int) -> None:
        if not trainer.is_global_zero or self.measured(label):
            return
        if self.batch is None:
            self.batch = self.batch_source.batch(self.steps)
            if self.batch.note:
                rank_zero_info(f"GradientFlowMonitor: {self.batch.note}")  # short data: expected
        flow = gradient_flow(pl_module, self.batch.ids, self.batch.lengths, self.batch.labels)
        self.rows += flow.rows(label)
        used, ratio = flow.ratio(self.distance)
        log10 = math.log10(ratio) if ratio > 0 else float("-inf")
        metrics = {f"gradflow/ratio_d{used}": ratio, f"gradflow/log10_ratio_d{used}": log10}
        self.log_metrics(trainer, metrics, epochs_trained(label))
        table = self.table()
        self.publish(
            trainer,
            {"gradient_flow.csv": table},
            {"gradient_flow.png": lambda out: plots.gradient_flow(table, out)},
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.measure(trainer, pl_module, INIT)  # skipped when resuming: the restored rows hold `init`

    def epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch  # still the index of the epoch that is ending
        self.last_epoch_end = (epoch, trainer.global_step)
        if epoch in self.epochs:
            self.measure(trainer, pl_module, epoch)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """`last`: the model as training left it; an epoch cut short (max_steps) is labelled as its index."""
        if not self.at_last:
            return
        ended = self.last_epoch_end
        label = ended[0] if ended and ended[1] == trainer.global_step else trainer.current_epoch
        self.measure(trainer, pl_module, label)


class RecurrentWeightMonitor(DiagnosticMonitor):
    """Spectral radius and largest singular value of each gate's W_hh, at fit start and every epoch end.

    Logs `weights/<module>/<gate>/spectral_radius` and `.../sigma_max`; writes recurrent_weights.csv
    (epoch, module, gate, spectral_radius, sigma_max) and recurrent_weights.png.
    """

    columns = ["epoch", "module", "gate", "spectral_radius", "sigma_max"]

    def measure(self, trainer: L.Trainer, pl_module: L.LightningModule, label: str | int) -> None:
        if not trainer.is_global_zero or self.measured(label):
            return
        encoder = getattr(pl_module, "encoder", None)
        if encoder is None:
            raise ConfigError(
                f"RecurrentWeightMonitor needs a model with an `encoder`; {type(pl_module).__name__} has none"
            )
        spectra = encoder_spectra(encoder)
        self.rows += [[label, s.module, s.gate, s.spectral_radius, s.sigma_max] for s in spectra]
        metrics = {}
        for s in spectra:
            metrics[f"weights/{s.module}/{s.gate}/spectral_radius"] = s.spectral_radius
            metrics[f"weights/{s.module}/{s.gate}/sigma_max"] = s.sigma_max
        self.log_metrics(trainer, metrics, epochs_trained(label))
        table = self.table()
        self.publish(
            trainer,
            {"recurrent_weights.csv": table},
            {"recurrent_weights.png": lambda out: plots.recurrent_weights(table, out)},
        )

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.measure(trainer, pl_module, INIT)

    def epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.measure(trainer, pl_module, trainer.current_epoch)


class ClippingMonitor(DiagnosticMonitor):
    """Pre-clip total gradient norm of every optimizer step; per epoch the fraction of steps that clipping
    changed (threshold and algorithm read from the trainer; no clipping -> 0) and the norm quantiles.

    Logs `train/clip_fraction` and `train/grad_norm_p50|p90|p99|max` per epoch; writes clipping.csv (one row
    per epoch), clipping_histogram.csv (epoch, bin_low, bin_high, count) and clipping_histogram.png.
    """

    columns = clipping.SUMMARY_COLUMNS

    def __init__(self, out_dir: str | Path) -> None:
        super().__init__(out_dir)
        self.norms: dict[int, list[float]] = {}  # pre-clip norms of every finished epoch
        self.steps: list[tuple[torch.Tensor, torch.Tensor]] = []

    def state_dict(self) -> dict[str, Any]:
        """With the steps of the epoch under way, for a checkpoint saved mid-epoch."""
        return {"rows": self.rows, "norms": self.norms, "steps": list(self.steps)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.norms = {int(epoch): list(norms) for epoch, norms in state_dict["norms"].items()}
        self.steps = [tuple(step) for step in state_dict.get("steps", [])]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.steps = []

    def on_before_optimizer_step(
        self, trainer: L.Trainer, pl_module: L.LightningModule, optimizer: torch.optim.Optimizer
    ) -> None:
        """Runs before Lightning clips (see rnnlab.diagnostics.clipping); kept on device until epoch end.
        Rank 0 only: after the backward pass every rank holds the same (all-reduced) gradients."""
        if trainer.is_global_zero:
            self.steps.append(clipping.step_statistics(clipping.optimizer_grads(optimizer)))

    def epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.steps:
            return
        epoch, clip_val = trainer.current_epoch, trainer.gradient_clip_val
        algorithm = getattr(trainer.gradient_clip_algorithm, "value", None) or "norm"  # Lightning's default
        summary, norms = clipping.epoch_summary(epoch, self.steps, clip_val, algorithm)
        self.steps = []
        metrics = {f"train/{key}": summary[key] for key in clipping.METRICS}
        self.log_metrics(trainer, metrics, epochs_trained(epoch))
        self.rows.append([summary[column] for column in self.columns])
        self.norms[epoch] = norms.tolist()
        histogram = clipping.histogram_table(self.norms)
        self.publish(
            trainer,
            {"clipping.csv": self.table(), "clipping_histogram.csv": histogram},
            {"clipping_histogram.png": lambda out: plots.clipping_histogram(histogram, clip_val, out)},
        )
