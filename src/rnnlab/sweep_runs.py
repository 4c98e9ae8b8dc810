"""A Hydra sweep's training runs read back from MLflow, for `compare.sweep=<parent run id>`.

The children of the parent run (tag `mlflow.parentRunId`, set by rnnlab.hydra_callbacks) are read with the
figures of the compare stage's reports under the same keys: `train` holds `params` (the run's param
`param_count`), `epochs` (the last epoch of the monitored metric) and every metric with `/` read as `_`
(`val/acc_best` as `val_acc_best`, `train/seq_per_s` as `train_seq_per_s`); `eval` holds the metrics a
test logged, `test/<key>` as `<key>` (training's test of the best checkpoint: `acc`, `f1`, ...; an
evaluation logs the same names). A sweep still running or ended FAILED, a child that did not finish and
children of another task are refused, each run named.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from mlflow import MlflowClient
from mlflow.entities import Run
from mlflow.exceptions import MlflowException

from rnnlab.errors import ConfigError, MissingInputError

TASK_PARAMS = ("task/kind", "task/monitor", "task/mode")  # one value across a sweep's children
REQUIRED = ("model/name", "seed", "task/name", *TASK_PARAMS)  # params every child has


@dataclass(frozen=True)
class Child:
    """One finished job of the sweep: its run, cell, seed and figures (`train`, `eval`: the reports' keys)."""

    name: str
    run_id: str
    model: str
    seed: int
    params: dict[str, str]
    train: dict[str, float] = field(repr=False)
    eval: dict[str, float] = field(repr=False)


@dataclass(frozen=True)
class Sweep:
    """A sweep's parent run, the task's monitored metric and mode its jobs trained with, its children in
    the order they started."""

    parent: Run
    monitor: str
    mode: str
    children: list[Child]

    @property
    def name(self) -> str:
        return self.parent.info.run_name


def read_sweep(client: MlflowClient, parent_id: str, kind: str) -> Sweep:
    """The sweep of parent run `parent_id`; its children must be FINISHED runs of task kind `kind`."""
    parent = _parent(client, parent_id)
    runs = sorted(_children(client, parent), key=lambda run: run.info.start_time)
    if parent.info.status == "RUNNING":
        raise MissingInputError(
            f"sweep {parent.info.run_name} is still RUNNING ({len(runs)} child runs so far): compare it once "
            "it has ended (if its process was killed, run the sweep again)"
        )
    if not runs:
        raise MissingInputError(f"sweep {parent.info.run_name} ({parent_id}) has no child runs")
    unfinished = [f"{run.info.run_name} ({run.info.status})" for run in runs if run.info.status != "FINISHED"]
    if unfinished:
        raise MissingInputError(
            f"sweep {parent.info.run_name} has children that did not finish: {', '.join(unfinished)}; "
            "rerun their jobs in a new sweep (`python pipelines/train.py -m ...`) and compare that one"
        )
    if parent.info.status != "FINISHED":
        raise MissingInputError(
            f"sweep {parent.info.run_name} ended {parent.info.status} (a job failed before its run "
            "started?): run the sweep again"
        )
    task = _shared(runs, parent.info.run_name)
    if task["task/kind"] != kind:
        raise ConfigError(
            f"sweep {parent.info.run_name} trained task {runs[0].data.params['task/name']} (kind "
            f"{task['task/kind']}), not a {kind} task: compare it with its task, e.g. `python "
            f"pipelines/compare.py task={runs[0].data.params['task/name']} compare.sweep={parent_id}`"
        )
    monitor = task["task/monitor"]
    return Sweep(parent, monitor, task["task/mode"], [_child(client, run, monitor) for run in runs])


def _parent(client: MlflowClient, parent_id: str) -> Run:
    try:
        parent = client.get_run(parent_id)
    except MlflowException as error:
        raise ConfigError(
            f"compare.sweep={parent_id} is not a run in the tracking store {client.tracking_uri}: give the "
            "id of a sweep's parent run (`<task>-sweep-<id>` in the MLflow UI) and the store it logged to "
            "(logger.tracking_uri)"
        ) from error
    if parent.data.tags.get("sweep") != "parent":
        raise ConfigError(
            f"compare.sweep={parent_id} names run {parent.info.run_name}, which is not a sweep's parent run "
            "(tag sweep=parent): give the parent run of a `python pipelines/train.py -m ...` sweep"
        )
    return parent


def _children(client: MlflowClient, parent: Run) -> list[Run]:
    runs: list[Run] = []
    token = None
    while True:
        page = client.search_runs(
            [parent.info.experiment_id],
            filter_string=f"tags.mlflow.parentRunId = '{parent.info.run_id}'",
            page_token=token,
        )
        runs += page
        token = page.token
        if not token:
            return runs


def _shared(runs: list[Run], sweep: str) -> dict[str, str]:
    """The task params every child shares (one task, one monitored metric); every child names its cell
    and seed."""
    lacking = [
        f"{run.info.run_name} ({', '.join(key for key in REQUIRED if key not in run.data.params)})"
        for run in runs
        if not set(REQUIRED) <= set(run.data.params)
    ]
    if lacking:
        raise MissingInputError(f"children of sweep {sweep} lack params: {'; '.join(lacking)}")
    values = {key: sorted({run.data.params[key] for run in runs}) for key in TASK_PARAMS}
    mixed = "; ".join(f"{key}: {', '.join(found)}" for key, found in values.items() if len(found) > 1)
    if mixed:
        raise ConfigError(f"the children of sweep {sweep} differ in their task ({mixed}): compare one task")
    return {key: found[0] for key, found in values.items()}


def _child(client: MlflowClient, run: Run, monitor: str) -> Child:
    params, metrics = run.data.params, run.data.metrics
    history = client.get_metric_history(run.info.run_id, monitor)
    train: dict[str, Any] = {name.replace("/", "_"): value for name, value in metrics.items()}
    if "param_count" in params:
        train["params"] = int(params["param_count"])
    if history:
        train["epochs"] = max(point.step for point in history)
    tested = {
        name.removeprefix("test/"): value for name, value in metrics.items() if name.startswith("test/")
    }
    return Child(
        run.info.run_name, run.info.run_id, params["model/name"], int(params["seed"]), params, train, tested
    )
