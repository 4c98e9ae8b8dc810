"""The MLflow side of one training run: its Lightning logger (on the epoch clock), params of exactly the
trained config, datasets, system metrics and the one-line description."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only
from omegaconf import DictConfig, OmegaConf

from rnnlab.tracking import PARENT_RUN_ENV, datasets, ensure_experiment, run_name, source_tags
from rnnlab.tracking.logged_model import log_checkpoint_model

# Sections of the config that other stages read: a training run does not log them as its params (a run
# that starts from the pretrain stage's output names that run instead: Built.links).
OTHER_STAGES = ("models", "compare", "registry", "pretrain")
DESCRIPTION_TAG = "mlflow.note.content"  # the run page's Description


class EpochMLFlowLogger(MLFlowLogger):
    """Lightning's MLflow logger with the epoch as step: a value belongs to the epoch in progress (its
    number, counting from 1), 0 is before training. After `pin(step)`, values go to that step (the final
    metrics describe the best checkpoint, so they sit at its epoch). Lightning's extra `epoch` metric is
    dropped: it is the step."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.trainer: L.Trainer | None = None
        self.pinned: int | None = None

    def follow(self, trainer: L.Trainer) -> None:
        self.trainer = trainer

    def pin(self, step: int) -> None:
        self.pinned = step

    def epoch(self) -> int | None:
        """Epochs started so far: the number of the epoch in progress, or of the last one after it ends."""
        if self.pinned is not None:
            return self.pinned
        return None if self.trainer is None else self.trainer.fit_loop.epoch_progress.current.ready

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        epoch = self.epoch()
        values = {key: value for key, value in metrics.items() if key != "epoch"}
        if values:
            super().log_metrics(values, step if epoch is None else epoch)


def make_logger(
    *, task: str, model: str, uri: str, root: Path, tags: dict[str, Any], run_id: str | None = None
) -> EpochMLFlowLogger:
    """A Lightning MLflow logger for one training run; a sweep's jobs become children of its parent run.

    `run_id` continues an existing run (resuming from a checkpoint). Only rank 0 touches MLflow.
    """
    if rank_zero_only.rank == 0:
        ensure_experiment(task, uri, root)
    tags = {**tags, **source_tags(), "host": socket.gethostname()}
    if os.environ.get(PARENT_RUN_ENV):
        tags["mlflow.parentRunId"] = os.environ[PARENT_RUN_ENV]
    return EpochMLFlowLogger(
        experiment_name=task,
        run_name=run_name(task, model),
        tracking_uri=uri,
        tags=tags,
        run_id=run_id,
        log_model=False,
    )


def run_params(cfg: DictConfig, model_cfg: dict[str, Any], source: str | None) -> dict[str, Any]:
    """The resolved config a run trained with: the trained cell as `model` (under DVC the `models.<key>`
    section), without the sections of other stages (`models`, `compare`, `registry`, `pretrain`), and with
    `data.source.uri` as the source actually read (a local mirror, when one was used)."""
    params = OmegaConf.to_container(cfg, resolve=True)
    for key in OTHER_STAGES:
        params.pop(key, None)
    params["model"] = model_cfg
    data_source = params.get("data", {}).get("source")
    if source is not None and isinstance(data_source, dict) and "uri" in data_source:
        data_source["uri"] = source
    return params


def log_params(logger: MLFlowLogger, params: dict[str, Any], resumed: bool) -> None:
    """Log `params` flattened with `/` (as Lightning does). On a resumed run MLflow refuses to change a
    logged value: keys already there keep it, and a changed value is recorded as tag `resumed/<key>`."""
    if rank_zero_only.rank != 0:
        return
    flat = {key: str(value)[:250] for key, value in _flatten_dict(_convert_params(params)).items()}
    if resumed:
        logged = logger.experiment.get_run(logger.run_id).data.params
        for key in [key for key in flat if key in logged]:
            value = flat.pop(key)
            if value != logged[key]:
                logger.experiment.set_tag(logger.run_id, f"resumed/{key}", value)
    logger.log_hyperparams(flat)


def record_setup(
    logger: MLFlowLogger,
    cfg: DictConfig,
    model_cfg: dict[str, Any],
    facts: dict[str, Any],
    data: L.LightningDataModule,
    digest: str,
    resumed: bool,
) -> None:
    """Params (`run_params` and `facts`) and the train/val/test datasets of a run; rank 0 only."""
    if rank_zero_only.rank != 0:
        return
    source = datasets.source_read(cfg)
    log_params(logger, {**run_params(cfg, model_cfg, source), **facts}, resumed)
    profiles = datasets.split_profiles(data)
    datasets.log_datasets(logger.experiment, logger.run_id, str(cfg.data.name), digest, source, profiles)


def log_run_model(
    logger: EpochMLFlowLogger,
    name: str,
    module: L.LightningModule,
    data: L.LightningDataModule,
    checkpoint: Path,
    description: str,
) -> None:
    """The best checkpoint as the run's MLflow model `name` (at the pinned step: the checkpoint's epoch),
    and the run's description."""
    batch = next(iter(data.val_dataloader()))
    log_checkpoint_model(logger.run_id, name, checkpoint, module, batch, logger.pinned or 0)
    logger.experiment.set_tag(logger.run_id, DESCRIPTION_TAG, description)


@contextmanager
def system_metrics(run_id: str, uri: str, enabled: bool, interval_s: float) -> Iterator[None]:
    """MLflow's system metrics (`system/*`: CPU, memory, disk, network; GPU with nvidia-ml-py) sampled every
    `interval_s` seconds while the block runs; rank 0 only. Their step counts samples, not epochs."""
    if not enabled or rank_zero_only.rank != 0:
        yield
        return
    from mlflow.system_metrics.system_metrics_monitor import SystemMetricsMonitor

    monitor = SystemMetricsMonitor(
        run_id, sampling_interval=interval_s, resume_logging=True, tracking_uri=uri
    )
    monitor.start()
    try:
        yield
    finally:
        monitor.finish()


def checkpoint_facts(path: Path, monitor: str) -> tuple[int, float]:
    """(step, score) of a best checkpoint: its epoch on the run's clock (0-based `epoch` + 1) and the value
    of `monitor` it was kept for, read from its ModelCheckpoint state (under `ddp_spawn` the main process's
    callback has the path but not the score)."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    states = checkpoint.get("callbacks", {}).values()
    scores = [state.get("best_model_score") for state in states if state.get("monitor") == monitor]
    score = float(scores[0]) if scores and scores[0] is not None else float("nan")
    return int(checkpoint["epoch"]) + 1, score


def describe(model_cfg: dict[str, Any], monitor: str, best: float, step: int, report: dict) -> str:
    """The run's one-line description: cell, its shape, the best monitored value and the test scores."""
    shape = f"{model_cfg.get('num_layers', 1)}x{model_cfg.get('hidden_size')}"
    cell = ("bi" if model_cfg.get("bidirectional") else "") + str(model_cfg.get("cell", "")).upper()
    tests = ", ".join(f"{key} {value:.4f}" for key, value in report.items() if key.startswith("test/"))
    text = f"{model_cfg['name']} ({cell} {shape}): best {monitor} {best:.4f} at epoch {step} of "
    return text + f"{report['epochs']}" + (f"; {tests}" if tests else "")


def device_name(root_device: torch.device) -> str:
    """`cpu`, or the GPU's model name (the `device` tag of a run)."""
    if root_device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(root_device)}"
    return root_device.type
