"""One table across the trained models: size, cost and quality side by side (the `compare` stage).

The columns come from the task (`rnnlab.tasks.<kind>.COMPARE`); classification also gets test accuracy per
review-length bucket.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnnlab import ranking
from rnnlab.errors import LayoutError
from rnnlab.io import read_json
from rnnlab.tasks import Comparison

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


def comparison_table(reports: dict[str, dict[str, dict]], spec: Comparison) -> pd.DataFrame:
    """One row per model: the task's columns, then test accuracy per review-length bucket when the
    evaluation has them (`acc_len <=100`, ...)."""
    rows = []
    for model, report in reports.items():
        row = {"model": model, "run_id": report["train"].get("run_id")}
        row.update({column: report[source].get(key) for column, (source, key) in spec.columns.items()})
        for bucket, facts in report["eval"].get("length_buckets", {}).items():
            row[f"{BUCKET_PREFIX}{bucket}"] = facts["acc"]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def length_buckets(table: pd.DataFrame) -> pd.DataFrame:
    """Accuracy per length bucket (columns) for each model (rows), buckets in table order."""
    columns = [c for c in table.columns if c.startswith(BUCKET_PREFIX)]
    return table[columns].rename(columns=lambda c: c[len(BUCKET_PREFIX) :])


def best_model(table: pd.DataFrame, spec: Comparison) -> str:
    """The model ranked first by the task's validation column (rnnlab.ranking: ties go to the first name)."""
    return ranking.best(table[spec.rank_by].to_dict(), spec.higher_is_better, spec.rank_by)


def verdict(table: pd.DataFrame, best: str, spec: Comparison) -> str:
    """One line naming the winner and its margin over the runner-up, e.g. `gru wins on val_acc: 81.00%,
    +2.00 points ahead of lstm (79.00%)`."""
    column = table[spec.rank_by].astype(float)
    percent = spec.rank_by in spec.percent
    shown = (lambda v: f"{100 * v:.2f}%") if percent else (lambda v: f"{v:.4f}")
    text = f"{best} wins on {spec.rank_by}: {shown(column[best])}"
    others = column.drop(best).dropna()
    if others.empty:
        return text
    runner_up = ranking.best(others.to_dict(), spec.higher_is_better)
    margin = abs(column[best] - column[runner_up])
    gap = f"{100 * margin:.2f} points" if percent else f"{margin:.4f}"
    return text + f", {gap} ahead of {runner_up} ({shown(column[runner_up])})"


def to_markdown(table: pd.DataFrame, spec: Comparison) -> str:
    """The table for `compare.md`: percentages where the task says so, rounded figures elsewhere."""
    shown = table.drop(columns=["run_id"]).copy()
    for column in shown.columns:
        if column in spec.percent or column.startswith(BUCKET_PREFIX):
            shown[column] = (100 * shown[column]).map("{:.2f}".format)
        elif column == "params":
            shown[column] = shown[column].map("{:,}".format)
        elif column in ("epochs", "train_seq_per_s"):
            shown[column] = shown[column].map("{:.0f}".format)
        elif column == "train_seconds":
            shown[column] = shown[column].map("{:.1f}".format)
        else:
            shown[column] = shown[column].map("{:.4f}".format)
    return shown.to_markdown(disable_numparse=True, stralign="right") + "\n"
