"""Compare the trained models: `reports/compare.{md,csv}`, PNG plots, and an MLflow run holding them.

    python pipelines/compare.py                      # after train@ and evaluate@ of every model
    python pipelines/compare.py compare.models=[lstm,gru]
"""

from pathlib import Path

import hydra
import mlflow
import pandas as pd
from omegaconf import DictConfig

from rnnlab import plots, tracking
from rnnlab.comparison import comparison_table, length_buckets, read_reports, to_markdown
from rnnlab.config import project_root, resolve_path
from rnnlab.io import atomic_dir, atomic_file
from rnnlab.stage import report_errors, summary

HEADER = "Accuracy, F1 and AUROC in %; `acc_len` columns: test accuracy by review length in tokens.\n\n"


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
    root = project_root()
    reports_dir = resolve_path(cfg.paths.reports_dir)
    table = comparison_table(read_reports(list(cfg.compare.models), reports_dir))
    with atomic_file(reports_dir / "compare.csv") as handle:
        table.to_csv(handle)
    with atomic_file(reports_dir / "compare.md", encoding="utf-8") as handle:
        handle.write(HEADER + to_markdown(table))
    with atomic_dir(reports_dir / "compare") as folder:
        plots.accuracy_vs_params(table, folder / "accuracy_vs_params.png")
        plots.accuracy_by_length(length_buckets(table), folder / "accuracy_by_length.png")
    best = table["val_acc"].idxmax()
    log_comparison(cfg, root, reports_dir, table, best)
    summary("compare", models=",".join(table.index), best=best, test_acc=round(table.at[best, "test_acc"], 4))


def log_comparison(cfg: DictConfig, root: Path, reports_dir: Path, table: pd.DataFrame, best: str) -> None:
    """An MLflow run `<task>-compare-<id>` with the table, the plots and each model's headline numbers."""
    task = cfg.logger.experiment_name
    uri = tracking.tracking_uri(cfg.logger.tracking_uri, root)
    client = mlflow.MlflowClient(tracking_uri=uri)
    run = client.create_run(
        tracking.ensure_experiment(task, uri, root),
        run_name=tracking.run_name(task, "compare"),
        tags={"comparison": "true", "best_model": best, "git_commit": tracking.git_commit(root)},
    )
    for model, row in table.iterrows():
        for column in ("val_acc", "test_acc", "test_f1", "test_auroc", "params", "train_seq_per_s"):
            client.log_metric(run.info.run_id, f"{model}/{column}", float(row[column]))
    for name in ("compare.md", "compare.csv"):
        client.log_artifact(run.info.run_id, str(reports_dir / name))
    client.log_artifacts(run.info.run_id, str(reports_dir / "compare"), "plots")
    client.set_terminated(run.info.run_id)


if __name__ == "__main__":
    main()
