"""Compare the trained models of a task: `<reports_dir>/compare.{md,csv}`, PNG plots, and an MLflow run.

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
from rnnlab.comparison import best_model, comparison_table, read_reports, to_markdown
from rnnlab.config import project_root, resolve_path
from rnnlab.io import atomic_dir, atomic_file
from rnnlab.stage import entry_point, summary
from rnnlab.tasks import task_module


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
    log_comparison(cfg, root, reports_dir, table, best, task.COMPARE.columns)
    ranked = {task.COMPARE.rank_by: round(table.at[best, task.COMPARE.rank_by], 4)}
    summary("compare", models=",".join(table.index), best=best, **ranked)


def log_comparison(
    cfg: DictConfig, root: Path, reports_dir: Path, table: pd.DataFrame, best: str, columns: dict
) -> None:
    """An MLflow run `<task>-compare-<id>` with the table, the plots and each model's headline numbers."""
    task = cfg.logger.experiment_name
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(
        tracking.ensure_experiment(task, uri, root),
        run_name=tracking.run_name(task, "compare"),
        tags={"comparison": "true", "best_model": best, "git_commit": tracking.git_commit(root)},
    )
    for model, row in table[list(columns)].iterrows():  # the task's columns (bucket names are no metric keys)
        for column, value in row.items():
            client.log_metric(run.info.run_id, f"{model}/{column}", float(value))
    for name in ("compare.md", "compare.csv"):
        client.log_artifact(run.info.run_id, str(reports_dir / name))
    client.log_artifacts(run.info.run_id, str(reports_dir / "compare"), "plots")
    client.set_terminated(run.info.run_id)


if __name__ == "__main__":
    main()
