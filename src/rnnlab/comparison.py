"""One table across the trained models: size, cost and quality side by side (the `compare` stage)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnnlab.errors import LayoutError
from rnnlab.io import read_json

COLUMNS = {  # table column -> (source, key) in reports/train/<m>.json or reports/eval/<m>/metrics.json
    "params": ("train", "params"),
    "epochs": ("train", "epochs"),
    "train_seconds": ("train", "train_seconds"),
    "train_seq_per_s": ("train", "train_seq_per_s"),
    "val_acc": ("train", "val_acc_best"),
    "test_acc": ("eval", "acc"),
    "test_f1": ("eval", "f1"),
    "test_auroc": ("eval", "auroc"),
    "test_loss": ("eval", "loss"),
}
BUCKET_PREFIX = "acc_len "


def read_reports(models: list[str], reports_dir: Path) -> dict[str, dict[str, dict]]:
    """`{model: {"train": ..., "eval": ...}}` from the train and evaluate stages' reports."""
    found: dict[str, dict[str, dict]] = {}
    for model in models:
        paths = {
            "train": reports_dir / "train" / f"{model}.json",
            "eval": reports_dir / "eval" / model / "metrics.json",
        }
        missing = [str(path) for path in paths.values() if not path.is_file()]
        if missing:
            raise LayoutError(
                f"no report for model {model!r} ({', '.join(missing)}): "
                f"run `dvc repro evaluate@{model}` first"
            )
        found[model] = {source: read_json(path) for source, path in paths.items()}
    return found


def comparison_table(reports: dict[str, dict[str, dict]]) -> pd.DataFrame:
    """One row per model: the COLUMNS, then test accuracy per review-length bucket (`acc_len <=100`, ...)."""
    rows = []
    for model, report in reports.items():
        row = {"model": model, "run_id": report["train"].get("run_id")}
        row.update({column: report[source][key] for column, (source, key) in COLUMNS.items()})
        for bucket, facts in report["eval"].get("length_buckets", {}).items():
            row[f"{BUCKET_PREFIX}{bucket}"] = facts["acc"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def length_buckets(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per length bucket (columns) for each model (rows), buckets in table order."""
    columns = [c for c in table.columns if c.startswith(BUCKET_PREFIX)]
    return table[columns].rename(columns=lambda c: c[len(BUCKET_PREFIX) :])


def to_markdown(table: pd.DataFrame) -> str:
    """The table for `reports/compare.md`: percentages for accuracies, rounded figures elsewhere."""
    shown = table.drop(columns=["run_id"]).copy()
    for column in shown.columns:
        if column.startswith(("val_acc", "test_acc", "test_f1", "test_auroc", BUCKET_PREFIX)):
            shown[column] = (100 * shown[column]).map("{:.2f}".format)
    shown["params"] = shown["params"].map("{:,}".format)
    shown["train_seq_per_s"] = shown["train_seq_per_s"].map("{:.0f}".format)
    shown["test_loss"] = shown["test_loss"].map("{:.4f}".format)
    return shown.to_markdown(disable_numparse=True, stralign="right") + "\n"
