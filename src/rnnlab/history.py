"""A training run's numbers as files, read back from its MLflow run (the one source of truth): in the run
folder `history.csv` (one row per epoch) and `metrics.json` (the best checkpoint's validation and test value
of the monitored quantity, under the cell's name: `{"gru": {"val": 0.87, "test": 0.86}}`); the
`train@<model>` stage publishes them as `<reports_dir>/history/<model>.csv` (its DVC plots) and
`<reports_dir>/metrics/<model>.json` (its DVC metrics)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from mlflow import MlflowClient

from rnnlab.io import atomic_file, write_json

PER_EPOCH = ("train/", "val/")  # with `lr`: the metrics logged once per epoch, with the epoch as step


def write_run_views(client: MlflowClient, run_id: str, run_dir: Path, monitor: str, cell: str) -> None:
    """Write the run's per-epoch history and its summary (`<monitor>_best` and the test value of the
    monitored quantity, e.g. `val/acc_best` and `test/acc`, as `val` and `test` under `cell`) into `run_dir`.

    The cell's name as the top key makes every DVC metric name unique across the cells' files, so
    `dvc exp show` needs no file prefix (`gru.test`, not `reports/metrics/gru.json:test/acc`) and the four
    cells' columns fit a 120-column terminal (README, "DVC views")."""
    with atomic_file(run_dir / "history.csv", encoding="utf-8", newline="") as handle:
        epoch_history(client, run_id).to_csv(handle, index=False)
    latest = client.get_run(run_id).data.metrics
    keys = {"val": f"{monitor}_best", "test": f"test/{monitor.split('/', 1)[-1]}"}
    summary = {key: latest[name] for key, name in keys.items() if name in latest}
    write_json(run_dir / "metrics.json", {cell: summary})


def epoch_history(client: MlflowClient, run_id: str) -> pd.DataFrame:
    """Columns `epoch` (from 1) and every per-epoch metric of the run (`train/*`, `val/*` but not the
    `*_best` summaries, `lr`); the last value logged at each epoch."""
    names = [
        name
        for name in client.get_run(run_id).data.metrics
        if (name.startswith(PER_EPOCH) and not name.endswith("_best")) or name == "lr"
    ]
    rows = [
        (name, metric.step, metric.timestamp, metric.value)
        for name in names
        for metric in client.get_metric_history(run_id, name)
    ]
    values = pd.DataFrame(rows, columns=["name", "epoch", "timestamp", "value"])
    values = values[values["epoch"] >= 1].sort_values("timestamp", kind="stable")
    table = values.pivot_table(index="epoch", columns="name", values="value", aggfunc="last")
    return table.reindex(columns=sorted(table.columns)).reset_index().rename_axis(columns=None)
