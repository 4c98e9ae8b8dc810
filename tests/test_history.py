"""rnnlab.history: a run's per-epoch history and summary, read back from its MLflow run."""

from __future__ import annotations

import json

import mlflow
import pandas as pd
import pytest
from mlflow.entities import Metric

from rnnlab.history import write_run_views


def test_history_has_one_row_per_epoch_and_the_summary_the_monitored_values(tmp_path):
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    run_id = client.create_run(client.create_experiment("x")).info.run_id
    logged = [
        ("lr", 0.002, 0),
        ("lr", 0.002, 1),
        ("val/acc", 0.6, 1),
        ("train/loss", 0.7, 1),
        ("val/acc", 0.7, 2),
        ("val/acc", 0.75, 2),
        ("train/loss", 0.5, 2),
        ("lr", 0.001, 2),
        ("val/acc_best", 0.75, 2),
        ("test/acc", 0.72, 2),
        ("test/f1", 0.7, 2),
        ("system/cpu", 9.0, 1),
    ]  # step 0: before training; a second value at one epoch replaces the first
    client.log_batch(run_id, [Metric(k, v, 1_000 + i, s) for i, (k, v, s) in enumerate(logged)])
    write_run_views(client, run_id, tmp_path / "run", "val/acc", "gru")
    history = pd.read_csv(tmp_path / "run/history.csv")
    assert list(history.columns) == ["epoch", "lr", "train/loss", "val/acc"]
    assert history.to_dict("list") == {
        "epoch": [1, 2],
        "lr": [0.002, 0.001],
        "train/loss": [0.7, 0.5],
        "val/acc": [0.6, 0.75],
    }
    summary = json.loads((tmp_path / "run/metrics.json").read_text())
    assert summary == {"gru": {"val": pytest.approx(0.75), "test": pytest.approx(0.72)}}
