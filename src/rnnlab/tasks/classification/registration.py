"""The contract's `registry_name` and `register` for classification: the winning model logged as an MLflow
pyfunc on raw text (pyfunc), registered as `<data.name>-sentiment` (or `registry.model_name`) with a
description and tags (model, cell, data digest, val accuracy). `register` imports MLflow when called."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.config import project_root, resolve_path
from rnnlab.tasks import Registered

if TYPE_CHECKING:
    from mlflow import MlflowClient


def registry_name(cfg: DictConfig) -> str:
    return OmegaConf.select(cfg, "registry.model_name", default=None) or f"{cfg.data.name}-sentiment"


def register(cfg: DictConfig, best: dict[str, Any], uri: str, registry_name: str) -> Registered:
    """The pyfunc goes to the winning training run (artifact path `model`) at the step of its best
    checkpoint's epoch, so the version shows that epoch's metrics; the report names the local files
    `rnnlab predict` uses by default and the training table's text column."""
    from mlflow import MlflowClient

    from rnnlab.tasks.classification.pyfunc import ARTIFACT_FILES, log_text_model

    files = {
        "model": resolve_path(cfg.paths.models_dir) / best["model"] / "export" / ARTIFACT_FILES["model"],
        "vocab": resolve_path(cfg.paths.prepared_dir) / ARTIFACT_FILES["vocab"],
        "meta": resolve_path(cfg.paths.encoded_dir) / ARTIFACT_FILES["meta"],
    }
    client = MlflowClient(uri)
    text_column = OmegaConf.select(cfg, "data.source.text_column", default=None) or "text"
    info = log_text_model(
        best["run_id"],
        files["model"].parent,
        files["vocab"],
        files["meta"],
        uri,
        registry_name,
        text_column=text_column,
        step=model_step(client, best["run_id"]),
    )
    version = int(info.registered_model_version)
    describe_version(client, registry_name, version, best)
    root = project_root()
    return Registered(
        version,
        {"text_column": text_column, "files": {key: shown(path, root) for key, path in files.items()}},
    )


def describe_version(client: MlflowClient, name: str, version: int, best: dict) -> None:
    """The version's description and tags: model (e.g. bilstm), cell (its recurrent unit, e.g. lstm), data
    digest, validation accuracy, the training run."""
    run = client.get_run(best["run_id"])
    tags = {
        "model": best["model"],
        "cell": run.data.tags.get("cell", best["model"]),
        "data_digest": run.data.tags.get("data_hash", "unknown"),
        "val_acc": f"{best['val_acc_best']:.4f}",
        "training_run": best["run_id"],
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    test = f", test accuracy {best['test/acc']:.4f}" if "test/acc" in best else ""
    text = (
        f"{best['model']} ({tags['cell']}), best of the compared cells by validation accuracy: "
        f"{best['val_acc_best']:.4f}{test}; data {tags['data_digest']}; training run {best['run_id']}."
    )
    client.update_model_version(name, str(version), description=text)


def model_step(client: MlflowClient, run_id: str) -> int:
    """The step of the run's best checkpoint (its epoch): the latest step a model of the run was logged at."""
    outputs = client.get_run(run_id).outputs
    return max((output.step for output in outputs.model_outputs), default=0) if outputs else 0


def shown(path: Path, root: Path) -> str:
    """`path` relative to the project root when inside it (portable), else absolute."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
