"""DVC stage `baseline`: TF-IDF word 1-2-grams + logistic regression on the same split and tokens as the
recurrent models, C chosen on validation (rnnlab.tasks.classification.baseline); a row of the comparison,
with an MLflow run.

    python pipelines/baseline.py
    python pipelines/baseline.py baseline.C=[1,4] baseline.ngram_max=3
Writes `<reports_dir>/baseline/{train.json,metrics.json}` (the same shapes as a model's training report and
evaluation metrics).
"""

from __future__ import annotations

import time

import numpy as np
from mlflow import MlflowClient
from mlflow.entities import Metric, Param
from omegaconf import DictConfig

from rnnlab import tracking
from rnnlab.comparison import BASELINE
from rnnlab.config import project_root, resolve_path, section
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.stage import entry_point, summary
from rnnlab.tasks.classification import baseline, length_bucket_edges, positive_index
from rnnlab.tasks.classification.preparation import labelled_splits, positive_label, tokenized


@entry_point
def main(cfg: DictConfig) -> None:
    settings = baseline.BaselineSettings(**{**section(cfg, "baseline"), "C": tuple(cfg.baseline.C)})
    label_names = read_json(resolve_path(cfg.paths.raw_dir) / "source.json")["label_names"]
    chosen = positive_label(cfg.data.get("positive_label"), label_names)
    positive = positive_index({"label_names": label_names, "positive_label": chosen})
    tables = labelled_splits(cfg)
    tokens = tokenized(cfg, tables)
    labels = {split: table.column("label").to_numpy() for split, table in tables.items()}
    train_counts = np.diff(tokens["train"].offsets.to_numpy())
    result = baseline.fit_and_score(
        tokens,
        labels,
        cfg.data.tokenizer.level,
        settings,
        length_bucket_edges(cfg, train_counts),
        positive,
        cfg.seed,
    )
    train_report, metrics = baseline.reports(result)
    metrics["positive_label"] = chosen  # as in a model's evaluation metrics
    train_report["run_id"] = log_run(cfg, train_report, metrics)
    with atomic_dir(resolve_path(cfg.paths.reports_dir) / "baseline") as folder:
        write_json(folder / "train.json", train_report)
        write_json(folder / "metrics.json", metrics)
    summary(
        "baseline",
        model=BASELINE,
        C=result.chosen_C,
        features=result.features,
        val_acc=f"{train_report['val_acc_best']:.4f}",
        test_acc=f"{metrics['acc']:.4f}",
    )


def log_run(cfg: DictConfig, train_report: dict, metrics: dict) -> str:
    """An MLflow run of its own for the baseline: settings, validation accuracy per C, test scores."""
    root = project_root()
    experiment = cfg.logger.experiment_name
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    client = MlflowClient(tracking_uri=uri)
    run = client.create_run(
        tracking.ensure_experiment(experiment, uri, root),
        run_name=tracking.run_name(experiment, BASELINE),
        tags={"model": BASELINE, "cell": BASELINE, "git_commit": tracking.git_commit(root)},
    )
    now = int(time.time() * 1000)
    params = {
        **{f"baseline/{k}": v for k, v in section(cfg, "baseline").items()},
        "baseline/chosen_C": train_report["C"],
        "baseline/features": train_report["features"],
        "param_count": train_report["params"],
    }
    scores = {f"test/{k}": v for k, v in metrics.items() if isinstance(v, float)}
    client.log_batch(
        run.info.run_id,
        metrics=[
            Metric("val/acc_best", train_report["val_acc_best"], now, 0),
            *(Metric(k, v, now, 0) for k, v in scores.items()),
        ],
        params=[Param(k, str(v)) for k, v in params.items()],
    )
    client.set_terminated(run.info.run_id)
    return run.info.run_id


if __name__ == "__main__":
    main()
