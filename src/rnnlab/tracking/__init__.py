"""MLflow: where runs go, how they are named, and the facts a run is tagged with (no Lightning or torch here:
`rnnlab predict` and the sweep callback import it). The Lightning logger of a training run: run_logger.py;
datasets: tracking.datasets; a run's model: tracking.logged_model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import uuid
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException

PARENT_RUN_ENV = "RNNLAB_MLFLOW_PARENT_RUN_ID"
SOURCE_TAG, STAGE_TAG = "rnnlab.source", "rnnlab.stage"  # who started a run: dvc (+ its stage), sweep, run


def tracking_uri(configured: str | None, root: Path) -> str:
    """`logger.tracking_uri`, else `$MLFLOW_TRACKING_URI`, else an SQLite file at the project root."""
    return configured or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{root / 'mlflow.db'}"


def ensure_experiment(name: str, uri: str, root: Path) -> str:
    """The id of experiment `name`, created when missing: with a local store its artifacts go under
    `<root>/mlartifacts`; a tracking server keeps them where it is configured to (proxied artifacts)."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    local = not uri.startswith(("http://", "https://"))
    try:
        return client.create_experiment(
            name, artifact_location=(root / "mlartifacts" / name).as_uri() if local else None
        )
    except MlflowException:
        # Two processes (the workers of one search) may both miss it and create it: the second one fails.
        found = client.get_experiment_by_name(name)
        if found is None:
            raise
        return found.experiment_id


def run_name(task: str, model: str) -> str:
    return f"{task}-{model}-{uuid.uuid4().hex[:6]}"


def source_tags() -> dict[str, str]:
    """`rnnlab.source`: `dvc` inside a DVC stage (which DVC names in `$DVC_STAGE`, tagged `rnnlab.stage`, e.g.
    `train@gru`), `sweep` in a Hydra multirun, else `run`. The pipeline's own runs are found by these."""
    stage = os.environ.get("DVC_STAGE")
    if stage:
        return {SOURCE_TAG: "dvc", STAGE_TAG: stage}
    return {SOURCE_TAG: "sweep" if os.environ.get(PARENT_RUN_ENV) else "run"}


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
