"""MLflow: where runs go, how they are named, and what each run records besides Lightning's metrics."""

from __future__ import annotations

import hashlib
import os
import socket
import subprocess
import uuid
from pathlib import Path
from typing import Any

import mlflow
import torch
from lightning.fabric.utilities.logger import _convert_params, _flatten_dict
from lightning.pytorch.loggers import MLFlowLogger
from lightning.pytorch.utilities import rank_zero_only

PARENT_RUN_ENV = "RNNLAB_MLFLOW_PARENT_RUN_ID"


def tracking_uri(configured: str | None, root: Path) -> str:
    """`logger.tracking_uri`, else `$MLFLOW_TRACKING_URI`, else an SQLite file at the project root."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def ensure_experiment(name: str, uri: str, root: Path) -> str:
    """The id of experiment `name`, created (artifacts under `<root>/mlartifacts`) when missing."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    return client.create_experiment(name, artifact_location=(root / "mlartifacts" / name).as_uri())


def run_name(task: str, model: str) -> str:
    return f"{task}-{model}-{uuid.uuid4().hex[:6]}"


def git_commit(root: Path) -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
    except OSError:
        return "unknown"
    return out.stdout.strip() or "unknown"


def data_fingerprint(folder: Path) -> str:
    """sha256 over the encoded data's files (names and bytes), shortened: which data a run saw."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()[:16]


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
