"""Evaluate a trained classifier (`model=<rnn|lstm|gru|bilstm>`) on the test split; log it to its MLflow run.

    python pipelines/evaluate.py model=gru
    python pipelines/evaluate.py model=gru eval.length_buckets=[50,100,200,400]
DVC runs it as `evaluate@<model>` (+model_key=<model>) on params.yaml, after `train@<model>`. It writes
`<reports_dir>/eval/<model>/metrics.json` and `plots/` (roc, pr, confusion, length_buckets: CSV + PNG).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import hydra
import torch
from mlflow import MlflowClient
from mlflow.entities import Metric
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig, OmegaConf

from rnnlab import plots, tracking
from rnnlab.config import model_config, project_root, resolve_path, section
from rnnlab.data.datamodule import SequenceDataModule
from rnnlab.errors import ConfigError, LayoutError
from rnnlab.evaluation import (
    DEFAULT_LENGTH_BUCKETS,
    Evaluation,
    check_bucket_edges,
    evaluate,
    metrics_report,
    mlflow_metrics,
    plot_tables,
    predict,
)
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.models.classifier import SequenceClassifier
from rnnlab.stage import report_errors, summary


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
    name = model_config(cfg)["name"]
    reports_dir = resolve_path(cfg.paths.reports_dir)
    encoded_dir = resolve_path(cfg.paths.encoded_dir)
    checkpoint = resolve_path(cfg.paths.models_dir) / name / "checkpoints" / "best.ckpt"
    required(checkpoint, f"train@{name}")
    train_report = required(reports_dir / "train" / f"{name}.json", f"train@{name}")
    required(encoded_dir / "meta.json", "encode")
    client = MlflowClient(tracking_uri=tracking.tracking_uri(cfg.logger.tracking_uri, project_root()))
    run_id = training_run(client, train_report, name)
    edges = check_bucket_edges(OmegaConf.select(cfg, "eval.length_buckets", default=DEFAULT_LENGTH_BUCKETS))

    data = SequenceDataModule(encoded_dir, seed=cfg.seed, **section(cfg, "data.loader"))
    model = SequenceClassifier.load_from_checkpoint(checkpoint, map_location="cpu")
    check_compatible(model, data.meta, checkpoint, name)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    result = evaluate(predict(model, data.test_dataloader(), device), edges)
    label_names = data.meta.get("label_names") or [str(i) for i in range(data.num_classes)]

    with atomic_dir(reports_dir / "eval" / name) as folder:
        write_report(result, label_names, folder, name)
        now = int(time.time() * 1000)
        client.log_batch(run_id, metrics=[Metric(k, v, now, 0) for k, v in mlflow_metrics(result).items()])
        client.log_artifacts(run_id, str(folder), "eval")
    scores = result.scores
    summary(
        "evaluate", model=name, acc=f"{scores['acc']:.4f}", f1=f"{scores['f1']:.4f}",
        auroc=f"{scores['auroc']:.4f}",
        **{f"len{b.name}": "n/a" if b.acc is None else f"{b.acc:.4f}" for b in result.buckets},
    )


def required(path: Path, stage: str) -> Path:
    """`path`, an output of DVC stage `stage`; a clear error when it is missing."""
    if not path.is_file():
        raise LayoutError(f"{path} is missing: run `dvc repro {stage}` first")
    return path


def training_run(client: MlflowClient, train_report: Path, name: str) -> str:
    """The id of the MLflow run that trained the model; it must exist in the store the evaluation logs to."""
    run_id = read_json(train_report).get("run_id")
    if not run_id:
        raise LayoutError(f"{train_report} has no run_id: run `dvc repro -f train@{name}`")
    try:
        client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(
            f"MLflow run {run_id} (from {train_report}) is not in the tracking store {client.tracking_uri}: "
            f"set logger.tracking_uri to the store that train@{name} logged to"
        ) from error
    return run_id


def check_compatible(model: SequenceClassifier, meta: dict[str, Any], checkpoint: Path, name: str) -> None:
    """The checkpoint's vocabulary size and classes must match the encoded data's meta.json."""
    trained = {"vocab_size": model.hparams.vocab_size, "num_classes": model.hparams.num_classes}
    encoded = {key: meta.get(key) for key in trained}
    if trained != encoded:
        raise LayoutError(
            f"{checkpoint} was trained with {trained}, but the encoded data has {encoded}: "
            f"run `dvc repro train@{name}` on this data"
        )


def write_report(result: Evaluation, label_names: list[str], folder: Path, name: str) -> None:
    """metrics.json and plots/ (CSV data for DVC's templates, and the same plots as PNG images)."""
    write_json(folder / "metrics.json", metrics_report(result))
    figures = folder / "plots"
    figures.mkdir()
    for table, frame in plot_tables(result, label_names).items():
        frame.to_csv(figures / f"{table}.csv", index=False)
    plots.roc_curve(*result.roc, figures / "roc.png", f"ROC (test), {name}", result.scores["auroc"])
    plots.precision_recall_curve(*result.pr, figures / "pr.png", f"Precision-recall (test), {name}")
    plots.confusion_matrix(
        result.confusion.numpy(), label_names, figures / "confusion.png", f"Confusion matrix (test), {name}"
    )
    plots.bucket_accuracy(
        [b.name for b in result.buckets], [b.acc for b in result.buckets], [b.n for b in result.buckets],
        figures / "length_buckets.png", f"Test accuracy by review length, {name}",
    )


if __name__ == "__main__":
    main()
