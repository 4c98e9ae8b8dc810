"""One table across the trained models: size, cost and quality side by side (the `compare` stage).

The columns come from the task (`rnnlab.tasks.<kind>.COMPARE`), with a test score per source-length bucket
when the task names one (`Comparison.by_length`: accuracy for classification, BLEU for translation), and a
row for the classical baseline (`BASELINE`, the `baseline` stage) when the config has a `baseline` section.
The baseline is compared, never crowned: the winner (`best_model`, the model `register` serves) is a recurrent
model, and `baseline_verdict` says plainly whether the baseline beats it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from rnnlab import ranking
from rnnlab.errors import ConfigError, LayoutError
from rnnlab.io import read_json
from rnnlab.tasks import Comparison

# the classical baseline's row (rnnlab.tasks.classification.baseline; DVC stage `baseline`, classification)
BASELINE = "tfidf_lr"
BASELINE_NOTE = (  # compare.md's word on that row
    f"{BASELINE} (baseline): TF-IDF word n-grams + logistic regression on the same split, scored on the same "
    "test texts and length buckets; its params are the regression's weights (one per n-gram feature and "
    "class) and biases. It is compared, not ranked: the winner is a recurrent model."
)


def read_reports(models: list[str], reports_dir: Path, baseline: bool = False) -> dict[str, dict[str, dict]]:
    """`{model: {"train": ..., "eval": ...}}` from the train and evaluate stages' reports, then (`baseline`)
    the baseline stage's `baseline/{train,metrics}.json` as the row `BASELINE`."""
    if baseline and BASELINE in models:
        raise ConfigError(f"compare.models holds {BASELINE!r}, the name of the baseline's row: rename it")
    found: dict[str, dict[str, dict]] = {}
    for model in models:
        paths = {
            "train": reports_dir / "train" / f"{model}.json",
            "eval": reports_dir / "eval" / model / "metrics.json",
        }
        found[model] = _read(model, paths, f"evaluate@{model}")
    if baseline:
        folder = reports_dir / "baseline"
        paths = {"train": folder / "train.json", "eval": folder / "metrics.json"}
        found[BASELINE] = _read(BASELINE, paths, "baseline")
    return found


def _read(model: str, paths: dict[str, Path], stage: str) -> dict[str, dict]:
    missing = [str(path) for path in paths.values() if not path.is_file()]
    if missing:
        raise LayoutError(
            f"no report for model {model!r} ({', '.join(missing)}): run `dvc repro {stage}` first"
        )
    return {source: read_json(path) for source, path in paths.items()}


def comparison_table(reports: dict[str, dict[str, dict]], spec: Comparison) -> pd.DataFrame:
    """One row per model: the task's columns, then its test score per length bucket when the evaluation has
    them (`acc_len <=100`, ...)."""
    _check_same_buckets(reports)
    rows = []
    for model, report in reports.items():
        row = {"model": model, "run_id": report["train"].get("run_id")}
        row.update({column: report[source].get(key) for column, (source, key) in spec.columns.items()})
        for bucket, facts in report["eval"].get("length_buckets", {}).items() if spec.by_length else ():
            row[bucket_column(spec, bucket)] = facts[spec.by_length]
        rows.append(row)
    return pd.DataFrame(rows).set_index("model")


def _check_same_buckets(reports: dict[str, dict[str, dict]]) -> None:
    """Every model scored by length must use the same buckets, or its row would not compare."""
    names = {
        model: list(report["eval"]["length_buckets"])
        for model, report in reports.items()
        if "length_buckets" in report["eval"]
    }
    if len({tuple(buckets) for buckets in names.values()}) > 1:
        found = "; ".join(f"{model}: {', '.join(buckets)}" for model, buckets in names.items())
        raise LayoutError(
            f"the models were scored on different length buckets ({found}): rerun their evaluate@ and "
            "baseline stages with one eval.length_buckets (`dvc repro`)"
        )


def bucket_column(spec: Comparison, bucket: str) -> str:
    """The table column of one length bucket's score, e.g. `acc_len <=100`."""
    return f"{spec.by_length}_len {bucket}"


def length_buckets(table: pd.DataFrame, spec: Comparison) -> pd.DataFrame:
    """The score per length bucket (columns) for each model (rows), buckets in table order."""
    prefix = bucket_column(spec, "")
    columns = [c for c in table.columns if spec.by_length and c.startswith(prefix)]
    return table[columns].rename(columns=lambda c: c[len(prefix) :])


def best_model(table: pd.DataFrame, spec: Comparison) -> str:
    """The recurrent model ranked first by the task's validation column (rnnlab.ranking: ties go to the
    first name). The baseline row never wins: the winner is the model `register` serves."""
    cells = table.drop(index=BASELINE, errors="ignore")
    return ranking.best(cells[spec.rank_by].to_dict(), spec.higher_is_better, spec.rank_by)


def verdict(table: pd.DataFrame, best: str, spec: Comparison) -> str:
    """One line naming the winner and its margin over the recurrent runner-up, e.g. `gru wins on val_acc:
    81.00%, 2.00 points ahead of lstm (79.00%)`."""
    column = table[spec.rank_by].astype(float)
    text = f"{best} wins on {spec.rank_by}: {stated(spec, spec.rank_by, column[best])}"
    others = column.drop(index=[best, BASELINE], errors="ignore").dropna()
    if others.empty:
        return text
    runner_up = ranking.best(others.to_dict(), spec.higher_is_better)
    gap = margin(spec, spec.rank_by, column[best] - column[runner_up])
    return text + f", {gap} ahead of {runner_up} ({stated(spec, spec.rank_by, column[runner_up])})"


def baseline_beats(table: pd.DataFrame, best: str, spec: Comparison, column: str | None = None) -> bool:
    """Whether the baseline row ranks above the winner `best` on `column` (default the ranking column),
    by rnnlab.ranking's rule; False without a baseline row."""
    if BASELINE not in table.index:
        return False
    scores = table.loc[[best, BASELINE], column or spec.rank_by].to_dict()
    return ranking.best(scores, spec.higher_is_better, column or spec.rank_by) == BASELINE


def baseline_verdict(table: pd.DataFrame, best: str, spec: Comparison) -> str:
    """One line on the baseline against the winner, on the ranking column then the task's test column, e.g.
    `The baseline tfidf_lr beats the best recurrent model, gru: val_acc 83.00% against 81.00% (tfidf_lr
    2.00 points ahead); test_acc ...`; "" without a baseline row."""
    if BASELINE not in table.index:
        return ""
    columns = [c for c in (spec.rank_by, spec.test_column) if c is not None]
    facts, won = [], []
    for column in columns:
        ahead = baseline_beats(table, best, spec, column)
        won += [column] if ahead else []
        mine, theirs = float(table.at[BASELINE, column]), float(table.at[best, column])
        standing = f"{margin(spec, column, mine - theirs)} {'ahead' if ahead else 'behind'}"
        facts.append(
            f"{column} {stated(spec, column, mine)} against {stated(spec, column, theirs)} "
            f"({BASELINE} {'level' if mine == theirs else standing})"
        )
    if spec.rank_by in won:
        lead = f"The baseline {BASELINE} beats the best recurrent model, {best}"
    elif won:
        lead = f"The baseline {BASELINE} beats the best recurrent model, {best}, on {', '.join(won)} only"
    else:
        lead = f"The best recurrent model, {best}, beats the baseline {BASELINE}"
    return f"{lead}: " + "; ".join(facts)


def stated(spec: Comparison, column: str, value: float) -> str:
    """A value as the verdicts state it: `81.00%` for a percentage column, else `0.3512`."""
    return f"{100 * value:.2f}%" if column in spec.percent else f"{value:.4f}"


def margin(spec: Comparison, column: str, difference: float) -> str:
    """The size of a difference: `2.00 points` for a percentage column, else `0.0120`."""
    size = abs(difference)
    return f"{100 * size:.2f} points" if column in spec.percent else f"{size:.4f}"


def to_markdown(table: pd.DataFrame, spec: Comparison) -> str:
    """The table for `compare.md`: percentages where the task says so, rounded figures elsewhere, `–` where a
    model has no value (the baseline has no epochs); the baseline's row reads `tfidf_lr (baseline)`."""
    shown = table.drop(columns=["run_id"]).astype(object)
    for column in shown.columns:
        shown[column] = [figure(spec, column, value) for value in shown[column]]
    shown = shown.rename(index={BASELINE: f"{BASELINE} (baseline)"})
    return shown.to_markdown(disable_numparse=True, stralign="right") + "\n"


def in_percent(spec: Comparison, column: str) -> bool:
    """Whether `column` is shown in %: a percentage column, or a length bucket's score (as the test score)."""
    in_bucket = spec.by_length is not None and column.startswith(bucket_column(spec, ""))
    return column in spec.percent or (in_bucket and spec.test_column in spec.percent)


def figure(spec: Comparison, column: str, value: object) -> str:
    """A value as compare.md shows it in `column` (`–` for none)."""
    if pd.isna(value):
        return "–"
    if in_percent(spec, column):
        return f"{100 * value:.2f}"
    if column == "params":
        return f"{int(value):,}"
    if column in ("epochs", "train_seq_per_s"):
        return f"{value:.0f}"
    return f"{value:.1f}" if column == "train_seconds" else f"{value:.4f}"
