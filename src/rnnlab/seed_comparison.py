"""A sweep's runs compared by model, mean ± sample standard deviation over the seeds (`compare.sweep`).

One row per model of the sweep (rnnlab.sweep_runs): for each column of the task's comparison that a training
run records, its mean, its sample standard deviation (NaN with one seed) and n, the number of seeds; the
monitored metric (`val_acc`: `val/acc_best`) is always a column, and its mean ranks the models
(rnnlab.ranking). The scores by length (`acc_len <=100`, ...) join them once the runs were evaluated
(`python pipelines/evaluate.py model=<cell> run_dir=<run folder>`), every run alike. The runs averaged must
differ only in their seed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from rnnlab import ranking
from rnnlab.buckets import bucket_of_key, shortest_first
from rnnlab.comparison import bucket_column, figure, in_percent, margin, stated
from rnnlab.errors import ConfigError, MissingInputError
from rnnlab.sweep_runs import Sweep
from rnnlab.tasks import Comparison

STATS = {"mean": "mean", "std": "std", "count": "n"}  # pandas aggregation -> column suffix in compare.csv
MAY_DIFFER = ("seed",)  # the params the runs of one model may differ in


@dataclass(frozen=True)
class SeedComparison:
    """The sweep's table (`compare.csv`), its markdown with the header and verdict (`compare.md`), the
    ranking column, the winner and the verdict line."""

    table: pd.DataFrame
    markdown: str
    rank_by: str
    best: str
    verdict: str


def compare(sweep: Sweep, spec: Comparison) -> SeedComparison:
    """The children of `sweep` by model, mean ± std over their seeds, ranked by the mean of the monitored
    metric (highest or lowest as the sweep's `task.mode` says)."""
    rank_by, columns = rank_column(spec, sweep.monitor)
    columns.update(length_columns(sweep, spec))
    frame = runs_frame(sweep, columns, rank_by)
    shown = [column for column in columns if column in frame]
    table = seed_table(frame, shown)
    higher = sweep.mode == "max"
    best = ranking.best(table[f"{rank_by}_mean"].to_dict(), higher, f"mean {rank_by}")
    said = verdict(table, best, spec, rank_by, higher) + "."
    first = header(sweep, spec, shown, [column for column in columns if column not in frame])
    markdown = f"{first}\n\n{to_markdown(table, spec, shown)}\n{said}\n"
    return SeedComparison(table, markdown, rank_by, best, said)


def rank_column(spec: Comparison, monitor: str) -> tuple[str, dict[str, tuple[str, str]]]:
    """The column of the monitored metric's best value (`val_acc` for `val/acc`), and the comparison's
    columns with it (named like the train report's key, e.g. `val_loss_best`, when the task shows none)."""
    source = ("train", f"{monitor.replace('/', '_')}_best")
    found = [column for column, where in spec.columns.items() if where == source]
    return (found[0], dict(spec.columns)) if found else (source[1], {**spec.columns, source[1]: source})


def length_columns(sweep: Sweep, spec: Comparison) -> dict[str, tuple[str, str]]:
    """The columns of the scores by length that an evaluation logged to any child (`test/acc_len_le100`
    -> `acc_len <=100`), shortest bucket first."""
    if not spec.by_length:
        return {}
    prefix = f"{spec.by_length}_len_"
    keys = {key for child in sweep.children for key in child.eval if key.startswith(prefix)}
    names = {bucket_of_key(key.removeprefix(prefix)): key for key in keys}
    return {bucket_column(spec, name): ("eval", names[name]) for name in sorted(names, key=shortest_first)}


def runs_frame(sweep: Sweep, columns: dict[str, tuple[str, str]], rank_by: str) -> pd.DataFrame:
    """One row per child: model, seed, run name and id, then each column the children record (a column
    no child records is left out). Refused: runs of one model that differ in more than the seed, a child
    without the monitored metric (`rank_by`), a child lacking a column the others record."""
    _check_seed_only(sweep)
    rows = [
        {
            "model": child.model,
            "seed": child.seed,
            "run": child.name,
            "run_id": child.run_id,
            **{column: getattr(child, source).get(key) for column, (source, key) in columns.items()},
        }
        for child in sweep.children
    ]
    frame = pd.DataFrame(rows)
    unranked = frame.loc[frame[rank_by].isna(), "run"].tolist()
    if unranked:
        raise MissingInputError(
            f"runs of sweep {sweep.name} lack the monitored metric {sweep.monitor}_best: "
            + ", ".join(unranked)
        )
    frame = frame.dropna(axis="columns", how="all")
    recorded = [column for column in columns if column in frame]
    holes = frame[recorded].isna()
    if holes.to_numpy().any():
        lacking = [
            f"{frame.at[row, 'run']} ({', '.join(holes.columns[holes.loc[row]])})"
            for row in frame.index[holes.any(axis="columns")]
        ]
        raise MissingInputError(
            f"runs of sweep {sweep.name} lack what the others record: {'; '.join(lacking)} (scores by "
            "length: evaluate every run, `python pipelines/evaluate.py model=<cell> run_dir=<its folder>`)"
        )
    frame[recorded] = frame[recorded].astype(float)
    return frame


def _check_seed_only(sweep: Sweep) -> None:
    """The runs of each model must differ in the seed alone, and no seed may repeat."""
    for model in dict.fromkeys(child.model for child in sweep.children):
        runs = [child for child in sweep.children if child.model == model]
        keys = set().union(*(child.params for child in runs)) - set(MAY_DIFFER)
        differ = {
            key: sorted({child.params.get(key, "–") for child in runs})
            for key in sorted(keys)
            if len({child.params.get(key) for child in runs}) > 1
        }
        if differ:
            found = "; ".join(f"{key}: {', '.join(values)}" for key, values in differ.items())
            raise ConfigError(
                f"sweep {sweep.name}: the runs of {model} differ in more than the seed ({found}); "
                "compare.sweep averages over seeds, so sweep only model and seed "
                "(`python pipelines/train.py -m model=rnn,lstm,gru,bilstm seed=1,2,3`)"
            )
        seeds = [child.seed for child in runs]
        if len(set(seeds)) < len(seeds):
            twice = sorted({seed for seed in seeds if seeds.count(seed) > 1})
            raise ConfigError(
                f"sweep {sweep.name}: {model} ran seed {', '.join(map(str, twice))} more than once"
            )


def seed_table(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """One row per model (in the order the sweep ran them): `<column>_mean`, `<column>_std`, `<column>_n`
    for each of `columns`, then the seeds and run ids."""
    grouped = frame.groupby("model", sort=False)
    stats = grouped[columns].agg(list(STATS))
    stats.columns = [f"{column}_{STATS[stat]}" for column, stat in stats.columns]
    stats["seeds"] = grouped["seed"].agg(lambda seeds: ",".join(map(str, sorted(seeds))))
    stats["run_ids"] = grouped["run_id"].agg(",".join)
    return stats


def cell(spec: Comparison, column: str, mean: float, std: float, n: int) -> str:
    """`88.49 ± 0.31 (n=3)`; with one seed `88.49 (n=1)`."""
    spread = "" if math.isnan(std) else f" ± {_figure(spec, column, std)}"
    return f"{_figure(spec, column, mean)}{spread} (n={n})"


def _figure(spec: Comparison, column: str, value: float) -> str:
    return f"{value:.1f}" if column == "epochs" else figure(spec, column, value)  # a mean of epochs


def header(sweep: Sweep, spec: Comparison, columns: list[str], absent: list[str]) -> str:
    """The first line of the sweep's compare.md: what a cell is, the ranking, the units, what is left out."""
    percent = [column for column in columns if in_percent(spec, column)]
    return (
        f"Sweep {sweep.name} ({sweep.parent.info.run_id}): mean ± sample standard deviation over the seeds "
        f"(n: the runs averaged, one per seed), ranked by the mean of {sweep.monitor}_best."
        + (f" In %: {', '.join(percent)}." if percent else "")
        + (f" Not recorded by a training run: {', '.join(absent)}." if absent else "")
    )


def to_markdown(table: pd.DataFrame, spec: Comparison, columns: list[str]) -> str:
    """The table for the sweep's `compare.md`: a `mean ± std (n=k)` cell per column, then the seeds."""
    shown_table = pd.DataFrame(
        {
            column: [
                cell(spec, column, row[f"{column}_mean"], row[f"{column}_std"], int(row[f"{column}_n"]))
                for _, row in table.iterrows()
            ]
            for column in columns
        },
        index=table.index,
    )
    shown_table["seeds"] = table["seeds"]
    return shown_table.to_markdown(disable_numparse=True, stralign="right") + "\n"


def verdict(table: pd.DataFrame, best: str, spec: Comparison, rank_by: str, higher_is_better: bool) -> str:
    """The winner on the mean of `rank_by` and its margin over the runner-up, e.g. `lstm wins on the mean
    val_acc: 88.49% ± 0.31 (n=3), 0.40 points ahead of gru (88.09% ± 0.52, n=3); the gap is within one
    standard deviation (0.52)`."""
    mean, std, n = (table[f"{rank_by}_{suffix}"] for suffix in ("mean", "std", "n"))

    def said(model: str) -> str:
        spread = "" if math.isnan(std[model]) else f" ± {_figure(spec, rank_by, std[model])}"
        return f"{stated(spec, rank_by, mean[model])}{spread}, n={int(n[model])}"

    text = f"{best} wins on the mean {rank_by}: {said(best)}"
    others = mean.drop(index=best)
    if others.empty:
        return text
    runner_up = ranking.best(others.to_dict(), higher_is_better)
    text += (
        f", {margin(spec, rank_by, mean[best] - mean[runner_up])} ahead of {runner_up} ({said(runner_up)})"
    )
    widest = std[[best, runner_up]].max()
    if abs(mean[best] - mean[runner_up]) < widest:
        text += f"; the gap is within one standard deviation ({_figure(spec, rank_by, widest)})"
    return text
