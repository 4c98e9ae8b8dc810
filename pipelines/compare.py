"""Compare the trained models of a task: `<reports_dir>/compare.{md,csv}`, PNG plots, and an MLflow run that
holds the table, the plots and links to the compared runs.

    python pipelines/compare.py                      # after train@, evaluate@ of every model and baseline
    python pipelines/compare.py compare.models=[lstm,gru]
    python pipelines/compare.py task=forecast
    python pipelines/compare.py compare.sweep=<parent run id>   # a sweep by model: mean ± std over seeds
The columns, the ranking and the plots come from the task (rnnlab.tasks.<kind>.COMPARE, compare_plots). A
config with a `baseline` section (classification: conf/task/imdb.yaml) adds the `baseline` stage's row,
`tfidf_lr`: compared and plotted, never the winner; the description says whether it beats the winner.
`compare.sweep` compares the children of a sweep's MLflow parent run instead (rnnlab.seed_comparison):
`<runs_dir>/sweeps/<parent run name>/compare.{md,csv}` and an MLflow run, no plots, no baseline.
"""

from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig

from rnnlab import seed_comparison, tracking
from rnnlab.comparison import (
    BASELINE,
    BASELINE_NOTE,
    baseline_beats,
    baseline_verdict,
    best_model,
    comparison_table,
    read_reports,
    to_markdown,
    verdict,
)
from rnnlab.config import project_root, resolve_path
from rnnlab.io import atomic_dir, atomic_file
from rnnlab.seed_comparison import SeedComparison
from rnnlab.stage import entry_point, summary
from rnnlab.sweep_runs import Sweep, read_sweep
from rnnlab.tasks import Comparison, task_module


@entry_point
def main(cfg: DictConfig) -> None:
    root = project_root()
    task = task_module(cfg)
    if cfg.compare.sweep is not None:
        return compare_sweep(cfg, root, task.COMPARE)
    reports_dir = resolve_path(cfg.paths.reports_dir)
    reports = read_reports(list(cfg.compare.models), reports_dir, baseline="baseline" in cfg)
    table = comparison_table(reports, task.COMPARE)
    best = best_model(table, task.COMPARE)
    said = (verdict(table, best, task.COMPARE), baseline_verdict(table, best, task.COMPARE))
    lines = [f"{line}." for line in said if line]
    header = task.COMPARE_HEADER + (f" {BASELINE_NOTE}" if BASELINE in table.index else "")
    with atomic_file(reports_dir / "compare.csv") as handle:
        table.to_csv(handle)
    with atomic_file(reports_dir / "compare.md", encoding="utf-8") as handle:
        handle.write(header + "\n\n" + to_markdown(table, task.COMPARE) + "\n" + "\n".join(lines) + "\n")
    with atomic_dir(reports_dir / "compare") as folder:
        task.compare_plots(table, folder)
    log_comparison(cfg, root, reports_dir, table, best, task.COMPARE, " ".join(lines))
    facts = {task.COMPARE.rank_by: round(table.at[best, task.COMPARE.rank_by], 4)}
    if BASELINE in table.index:
        facts["baseline_beats_best"] = str(baseline_beats(table, best, task.COMPARE)).lower()
    summary("compare", models=",".join(table.index), best=best, **facts)


def compare_sweep(cfg: DictConfig, root: Path, spec: Comparison) -> None:
    """The children of sweep `compare.sweep` by model: mean ± std over their seeds, ranked by the mean of
    the monitored metric."""
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    sweep = read_sweep(client, str(cfg.compare.sweep), cfg.task.kind)
    result = seed_comparison.compare(sweep, spec)
    folder = resolve_path(cfg.paths.runs_dir) / "sweeps" / sweep.name
    with atomic_file(folder / "compare.csv") as handle:
        result.table.to_csv(handle)
    with atomic_file(folder / "compare.md", encoding="utf-8") as handle:
        handle.write(result.markdown)
    log_sweep_comparison(client, sweep, folder, result, root)
    runs = result.table[f"{result.rank_by}_n"]
    summary(
        "compare",
        sweep=sweep.name,
        models=",".join(f"{model}x{int(n)}" for model, n in runs.items()),
        best=result.best,
        **{f"{result.rank_by}_mean": round(result.table.at[result.best, f"{result.rank_by}_mean"], 4)},
        out=folder / "compare.md",
    )


def log_sweep_comparison(
    client: mlflow.MlflowClient, sweep: Sweep, folder: Path, result: SeedComparison, root: Path
) -> None:
    """An MLflow run `<task>-compare-<id>` beside the sweep's: the table, compare.md and .csv, the tags
    `compared_sweep` (the parent's id) and `best_model`, a description linking the parent run."""
    experiment = sweep.parent.info.experiment_id
    task = sweep.children[0].params["task/name"]
    link = f"[{sweep.name}](#/experiments/{experiment}/runs/{sweep.parent.info.run_id})"
    run = client.create_run(
        experiment,
        run_name=tracking.run_name(task, "compare"),
        tags={
            "comparison": "true",
            "best_model": result.best,
            "compared_sweep": sweep.parent.info.run_id,
            "git_commit": tracking.git_commit(root),
            "mlflow.note.content": f"{result.verdict} Sweep: {link}",
            **tracking.source_tags(),
        },
    )
    run_id = run.info.run_id
    client.log_param(run_id, "compare/models", ",".join(result.table.index))
    client.log_param(run_id, "compare/rank_by", f"mean {result.rank_by}")
    client.log_table(run_id, result.table.reset_index(), "comparison.json")
    for name in ("compare.md", "compare.csv"):
        client.log_artifact(run_id, str(folder / name))
    client.set_terminated(run_id)


def log_comparison(
    cfg: DictConfig,
    root: Path,
    reports_dir: Path,
    table: pd.DataFrame,
    best: str,
    spec: Comparison,
    description: str,
) -> None:
    """An MLflow run `<task>-compare-<id>`: the table (`log_table`: no per-model metrics in the charts), the
    plots, the compared runs, the baseline's among them (tag and links), and `description`, which names the
    winner, its margin and how the baseline fares."""
    task = cfg.logger.experiment_name
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = tracking.ensure_experiment(task, uri, root)
    runs = table["run_id"].dropna().to_dict()
    links = ", ".join(f"[{m}](#/experiments/{experiment}/runs/{run_id})" for m, run_id in runs.items())
    tags = {"baseline": BASELINE, "baseline_beats_best": str(baseline_beats(table, best, spec)).lower()}
    run = client.create_run(
        experiment,
        run_name=tracking.run_name(task, "compare"),
        tags={
            "comparison": "true",
            "best_model": best,
            **(tags if BASELINE in table.index else {}),
            "compared_runs": ",".join(f"{model}:{run_id}" for model, run_id in runs.items()),
            "git_commit": tracking.git_commit(root),
            "mlflow.note.content": f"{description} Runs: {links}",
            **tracking.source_tags(),
        },
    )
    run_id = run.info.run_id
    client.log_param(run_id, "compare/models", ",".join(table.index))
    client.log_param(run_id, "compare/rank_by", spec.rank_by)
    client.log_table(run_id, table.reset_index(), "comparison.json")
    for name in ("compare.md", "compare.csv"):
        client.log_artifact(run_id, str(reports_dir / name))
    client.log_artifacts(run_id, str(reports_dir / "compare"), "plots")
    client.set_terminated(run_id)


if __name__ == "__main__":
    main()
