"""The Lightning MLflow logger of one training run: sweep parent, resume, params, device tag."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import torch
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

from rnnlab.tracking import PARENT_RUN_ENV, ensure_experiment, run_name


def make_logger(
    *, task: str, model: str, uri: str, root: Path, tags: dict[str, Any], run_id: str | None = None
) -> MLFlowLogger:
    """A Lightning MLflow logger for one training run; a sweep's jobs become children of its parent run.

    `run_id` continues an existing run (resuming from a checkpoint). Only rank 0 touches MLflow.
    """
    if rank_zero_only.rank == 0:
        ensure_experiment(task, uri, root)
    tags = {**tags, "host": socket.gethostname()}
    if os.environ.get(PARENT_RUN_ENV):
        tags["mlflow.parentRunId"] = os.environ[PARENT_RUN_ENV]
    return MLFlowLogger(
        experiment_name=task,
        run_name=run_name(task, model),
        tracking_uri=uri,
        tags=tags,
        run_id=run_id,
        log_model=False,
    )


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


def device_name(root_device: torch.device) -> str:
    """`cpu`, or the GPU's model name (the `device` tag of a run)."""
    if root_device.type == "cuda":
        return f"cuda:{torch.cuda.get_device_name(root_device)}"
    return root_device.type
