"""Exact resume: what a checkpoint needs beyond Lightning's own state for a resumed run to end with the same
weights and metrics, bit for bit, as the uninterrupted run.

Lightning restores the weights, optimizer, schedulers, loop counters and callback states. It does not restore
the random number generators (dropout), nor — in a checkpoint saved mid-epoch — the epoch's running values
(`self.log(..., on_epoch=True)` accumulators and the module's torchmetrics), nor the position in the data:
every datamodule saves that (rnnlab.data.resumable.ResumableDataModule.state_dict), and the language model
the hidden state it carries into the next batch (rnnlab.models.truncated_bptt).
"""

from __future__ import annotations

import random
import warnings
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.loggers import MLFlowLogger
from torchmetrics import Metric

# Lightning's warning on a checkpoint saved mid-epoch when the DataLoader itself keeps no state. rnnlab's
# datamodules keep the position in the data themselves (above), so the "unreliable results" it announces
# do not happen here; `ExactResume` silences it when a checkpoint is loaded.
MID_EPOCH_WARNING = "You're resuming from a checkpoint that ended before the epoch ended"


def training_position(trainer: L.Trainer) -> tuple[int, int]:
    """(epoch, training batches done in it) of the next training batch, as a checkpoint saved now resumes it:
    an epoch whose batches are all done continues with the next epoch's first batch."""
    done = trainer.fit_loop.epoch_loop.batch_progress.current.processed
    if done >= trainer.num_training_batches:
        return trainer.current_epoch + 1, 0
    return trainer.current_epoch, done


def rng_states() -> dict[str, Any]:
    """The global generators of torch (CPU and CUDA), numpy and Python, as plain tensors and tuples."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    states = {
        "torch": torch.get_rng_state(),
        "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    return states


def set_rng_states(states: dict[str, Any]) -> None:
    torch.set_rng_state(states["torch"])
    kind, keys, pos, has_gauss, gauss = states["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    random.setstate(states["python"])
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])


def _metric_state(metric: Metric) -> dict[str, Any]:
    state = {
        name: value.clone() if isinstance(value, torch.Tensor) else [v.clone() for v in value]
        for name, value in metric.metric_state.items()
    }
    return {"state": state, "updates": metric._update_count}


def running_metrics(trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
    """The training epoch's accumulators so far: Lightning's logged values (with how they were logged) and the
    states of the torchmetrics objects they refer to (by module name)."""
    names = {id(module): name for name, module in pl_module.named_modules() if isinstance(module, Metric)}
    logged, metrics = {}, {}
    for key, result in trainer.fit_loop.epoch_loop._results.items():
        if result.has_reset:
            continue
        if not result.is_tensor:
            if id(result.value) in names:
                metrics[names[id(result.value)]] = _metric_state(result.value)
            continue
        meta = result.meta
        logged[key] = {
            "fx": meta.fx,
            "name": meta.name,
            "prog_bar": meta.prog_bar,
            "logger": meta.logger,
            "on_step": meta.on_step,
            "on_epoch": meta.on_epoch,
            "reduce_fx": meta.reduce_fx.__name__,
            "enable_graph": meta.enable_graph,
            "add_dataloader_idx": meta.add_dataloader_idx,
            "metric_attribute": meta.metric_attribute,
            "sync_dist": meta.sync.should,
            "rank_zero_only": meta.sync.rank_zero_only,
            "state": {name: value.clone() for name, value in result.metric_state.items()},
        }
    return {"logged": logged, "metrics": metrics}


def restore_running_metrics(trainer: L.Trainer, pl_module: L.LightningModule, saved: dict[str, Any]) -> None:
    """Put `running_metrics` back: each logged value is registered as `LightningModule.log` registers it (so
    the next `self.log` call accumulates onto it), then its accumulator is set to the saved one."""
    results = trainer.fit_loop.epoch_loop._results
    # The next batch is not the epoch's first: Lightning must not reset these values when it logs onto them.
    trainer._logger_connector._first_loop_iter = True
    for key, entry in saved["logged"].items():
        results.log(
            entry["fx"],
            entry["name"],
            torch.zeros((), device=pl_module.device),
            prog_bar=entry["prog_bar"],
            logger=entry["logger"],
            on_step=entry["on_step"],
            on_epoch=entry["on_epoch"],
            reduce_fx=getattr(torch, entry["reduce_fx"]),
            enable_graph=entry["enable_graph"],
            sync_dist=entry["sync_dist"],
            sync_dist_fn=trainer.strategy.reduce,
            add_dataloader_idx=entry["add_dataloader_idx"],
            batch_size=1,
            metric_attribute=entry["metric_attribute"],
            rank_zero_only=entry["rank_zero_only"],
        )
        for name, value in entry["state"].items():
            setattr(results[key], name, value.to(pl_module.device))
    modules = dict(pl_module.named_modules())
    for name, entry in saved["metrics"].items():
        metric = modules[name]
        for attr, value in entry["state"].items():
            moved = (
                value.to(pl_module.device)
                if isinstance(value, torch.Tensor)
                else [v.to(pl_module.device) for v in value]
            )
            setattr(metric, attr, moved)
        metric._update_count = entry["updates"]


class ExactResume(L.Callback):
    """Saves the generators and (mid-epoch) the running metrics in every checkpoint; restores them when a
    resumed fit starts training, after all that runs before the first batch (sanity check, data set-up)."""

    def __init__(self) -> None:
        self.trainer: L.Trainer | None = None
        self.pl_module: L.LightningModule | None = None
        self.loaded: dict[str, Any] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        self.trainer, self.pl_module = trainer, pl_module

    def state_dict(self) -> dict[str, Any]:
        if self.trainer is None:
            return {}
        state: dict[str, Any] = {"rng": rng_states()}
        if training_position(self.trainer)[1] > 0:
            state["running"] = running_metrics(self.trainer, self.pl_module)
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.loaded = state_dict or None
        warnings.filterwarnings("ignore", message=MID_EPOCH_WARNING)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.loaded is None:
            return
        state, self.loaded = self.loaded, None
        if "running" in state:
            restore_running_metrics(trainer, pl_module, state["running"])
        set_rng_states(state["rng"])


class StepCheckpoint(ModelCheckpoint):
    """`last.ckpt` every `every_n_train_steps` optimizer steps within an epoch (its end has a checkpoint of
    its own), for resuming mid-epoch. Not after an epoch's last batch: Lightning would resume such a
    checkpoint without the epoch's validation, and the end-of-epoch checkpoint follows it anyway."""

    def __init__(self, dirpath: str | Path, every_n_train_steps: int) -> None:
        super().__init__(
            dirpath=dirpath,
            filename="last",
            monitor=None,
            enable_version_counter=False,
            every_n_train_steps=every_n_train_steps,
        )

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any, **kwargs: Any) -> None:
        if training_position(trainer)[1] > 0:
            super().on_train_batch_end(trainer, *args, **kwargs)


class LogOnce:
    """`MLFlowLogger.log_metrics` that leaves out the points (key, step) the run already has.

    A resumed run recomputes, bit for bit, what the interrupted run logged after its last checkpoint (the
    validation that was under way, the learning rate at the next epoch's start); logging it again would put
    two points at one step.
    """

    def __init__(self, logger: MLFlowLogger) -> None:
        client, run_id = logger.experiment, logger.run_id
        keys = client.get_run(run_id).data.metrics
        self.logged = {(key, point.step) for key in keys for point in client.get_metric_history(run_id, key)}
        self.log_metrics = logger.log_metrics
        self.epoch = getattr(logger, "epoch", lambda: None)  # an epoch-stepped logger writes at the epoch

    def __call__(self, metrics: dict[str, float], step: int | None = None) -> None:
        epoch = self.epoch()
        written = step if epoch is None else epoch
        fresh = {key: value for key, value in metrics.items() if (key, written or 0) not in self.logged}
        if fresh:
            self.log_metrics(fresh, step)


def log_once(logger: MLFlowLogger) -> None:
    """Make a resumed run's logger skip the metric points its run already holds."""
    if isinstance(logger, MLFlowLogger) and logger.run_id is not None:
        logger.log_metrics = LogOnce(logger)
