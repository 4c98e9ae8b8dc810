"""Compare the trained models of a task: `<reports_dir>/compare.{md,csv}`, PNG plots, and an MLflow run that
holds the table, the plots and links to the compared runs.

    python pipelines/compare.py                      # after train@ and evaluate@ of every model
    python pipelines/compare.py compare.models=[lstm,gru]
    python pipelines/compare.py task=forecast
The columns, the ranking and the plots come from the task (rnnlab.tasks.<kind>.COMPARE, compare_plots).
"""

from pathlib import Path

import mlflow
import pandas as pd
from omegaconf import DictConfig

from rnnlab import tracking
from rnnlab.comparison import best_model, comparison_table, read_reports, to_markdown, verdict
from rnnlab.config import project_root, resolve_path
from rnnlab.io import atomic_dir, atomic_file
from rnnlab.stage import entry_point, summary
from rnnlab.tasks import Comparison, task_module


@entry_point
def main(cfg: DictConfig) -> None:
    root = project_root()
    task = task_module(cfg)
    reports_dir = resolve_path(cfg.paths.reports_dir)
    table = comparison_table(read_reports(list(cfg.compare.models), reports_dir), task.COMPARE)
    with atomic_file(reports_dir / "compare.csv") as handle:
        table.to_csv(handle)
    with atomic_file(reports_dir / "compare.md", encoding="utf-8") as handle:
        handle.write(task.COMPARE_HEADER + "\n\n" + to_markdown(table, task.COMPARE))
    with atomic_dir(reports_dir / "compare") as folder:
        task.compare_plots(table, folder)
    best = best_model(table, task.COMPARE)
    log_comparison(cfg, root, reports_dir, table, best, task.COMPARE)
    ranked = {task.COMPARE.rank_by: round(table.at[best, task.COMPARE.rank_by], 4)}
    summary("compare", models=",".join(table.index), best=best, **ranked)


def log_comparison(
    cfg: DictConfig, root: Path, reports_dir: Path, table: pd.DataFrame, best: str, spec: Comparison
) -> None:
    """An MLflow run `<task>-compare-<id>`: the table (`log_table`: no per-model metrics in the charts), the
    plots, the compared runs (tag and links) and a description naming the winner and its margin."""
    task = cfg.logger.experiment_name
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = tracking.ensure_experiment(task, uri, root)
    runs = table["run_id"].dropna().to_dict()
    links = ", ".join(f"[{m}](#/experiments/{experiment}/runs/{run_id})" for m, run_id in runs.items())
    run = client.create_run(
        experiment,
        run_name=tracking.run_name(task, "compare"),
        tags={
            "comparison": "true",
            "best_model": best,
            "compared_runs": ",".join(f"{model}:{run_id}" for model, run_id in runs.items()),
            "git_commit": tracking.git_commit(root),
            "mlflow.note.content": f"{verdict(table, best, spec)}. Runs: {links}",
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
