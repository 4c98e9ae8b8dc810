"""Hydra callback: one MLflow parent run per multirun sweep, with every job's run as its child.

Enabled in conf/config.yaml (`hydra.callbacks`). The parent is created before the first job starts
(which also creates the experiment once, before jobs could race on an SQLite store); jobs find its id in
`$RNNLAB_MLFLOW_PARENT_RUN_ID` (see `run_logger.make_logger`). When the sweep ends, the parent records
the number of children and the best child by the task's monitored metric (`<task.monitor>_best`, e.g.
`val/acc_best`, highest or lowest as `task.mode` says; ties: rnnlab.ranking) as `sweep/best_<metric>`,
and prints the parent's name and id (`compare.sweep=<id>` compares the children by model over seeds).
An Optuna search with a shared study (`hydra.sweeper.storage`) tags its parent with the study's name.
"""

from __future__ import annotations

import atexit
import math
import os
from typing import Any

from hydra.core.utils import JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlab.config import project_root

STUDY_TAG = "optuna_study"  # on the parent run of a search whose study lives in hydra.sweeper.storage

# Every stage loads this callback (conf/config.yaml), so MLflow (~1 s to import) is imported only when
# a multirun starts.


class MlflowSweepParent(Callback):
    """Open the sweep's parent run on multirun start; close it (FINISHED or FAILED) when the sweep ends."""

    def __init__(self) -> None:
        self.client: Any = None  # an mlflow.MlflowClient once the sweep starts
        self.parent_id: str | None = None
        self.monitor, self.mode = "val/acc", "max"  # the task's, read on multirun start

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        import mlflow

        from rnnlab import tracking

        root = project_root()
        uri = tracking.tracking_uri(OmegaConf.select(config, "logger.tracking_uri"), root)
        task = str(OmegaConf.select(config, "logger.experiment_name"))
        self.monitor = str(OmegaConf.select(config, "task.monitor", default=self.monitor))
        self.mode = str(OmegaConf.select(config, "task.mode", default=self.mode))
        experiment_id = tracking.ensure_experiment(task, uri, root)
        self.client = mlflow.MlflowClient(tracking_uri=uri)
        overrides = list(OmegaConf.select(config, "hydra.overrides.task") or [])
        tags = {
            "sweep": "parent",
            tracking.SOURCE_TAG: "sweep",
            "sweep_dir": str(OmegaConf.select(config, "hydra.sweep.dir")),
            "git_commit": tracking.git_commit(root),
        }
        if OmegaConf.select(config, "hydra.sweeper.storage") is not None:
            # Each worker of a shared Optuna search opens a parent run: the study's name ties them together.
            tags[STUDY_TAG] = str(OmegaConf.select(config, "hydra.sweeper.study_name"))
        run = self.client.create_run(experiment_id, run_name=tracking.run_name(task, "sweep"), tags=tags)
        self.parent_id = run.info.run_id
        self.client.log_param(self.parent_id, "sweep/overrides", " ".join(overrides)[:6000])
        os.environ[tracking.PARENT_RUN_ENV] = self.parent_id
        # A job that exits the process (an rnnlab error ends with SystemExit) skips on_multirun_end.
        atexit.register(self._close, "FAILED")

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        if self.parent_id is not None and job_return.status == JobStatus.FAILED:
            self._close("FAILED")

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        if self.parent_id is None or self.client is None:
            return
        parent = self.client.get_run(self.parent_id).info
        children = self.client.search_runs(
            [parent.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{self.parent_id}'",
        )
        self.client.log_metric(self.parent_id, "sweep/children", len(children))
        metric = f"{self.monitor}_best"
        scores = {run.info.run_name: run.data.metrics.get(metric, math.nan) for run in children}
        if any(math.isfinite(score) for score in scores.values()):
            from rnnlab import ranking

            winner = ranking.best(scores, higher_is_better=self.mode == "max", what=metric)
            best = next(run for run in children if run.info.run_name == winner)
            name = "sweep/best_" + self.monitor.replace("/", "_")
            self.client.log_metric(self.parent_id, name, best.data.metrics[metric])
            self.client.set_tag(self.parent_id, "best_child_run", best.info.run_name)
        from rnnlab.stage import summary

        # the id `python pipelines/compare.py compare.sweep=<id>` takes
        summary("sweep", parent=parent.run_name, id=self.parent_id, children=len(children))
        self._close("FINISHED")

    def _close(self, status: str) -> None:
        if self.parent_id is None or self.client is None:
            return
        self.client.set_terminated(self.parent_id, status)
        from rnnlab.tracking import PARENT_RUN_ENV  # loaded by on_multirun_start already

        os.environ.pop(PARENT_RUN_ENV, None)
        self.parent_id = None
