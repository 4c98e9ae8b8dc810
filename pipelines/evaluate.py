"""Evaluate a trained model (`model=<rnn|lstm|gru|bilstm>`) of the current task; log it to its MLflow run.

    python pipelines/evaluate.py model=gru
    python pipelines/evaluate.py model=gru eval.length_buckets=[50,100,200,400]
    python pipelines/evaluate.py task=forecast model=gru
    python pipelines/evaluate.py model=gru run_dir=runs/imdb/gru/<run>   # a one-off or sweep run
DVC runs it as `evaluate@<model>` (+model_key=<model>), after `train@<model>`. It writes
`<reports_dir>/eval/<model>/metrics.json` and `plots/`; what they hold depends on the task (rnnlab.tasks):
imdb: ROC, precision-recall, confusion and accuracy by length; forecast: MAE/RMSE/MAPE against the naive
baselines and a forecast-vs-actual plot; charlm: nats and bits per character and samples.
`run_dir=<folder>` evaluates the run trained in that folder (`<runs_dir>/<cell>/<run>/`, rnnlab.run_dirs)
instead of the pipeline's model: into `<folder>/eval/` and that run, never the pipeline's outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities import Metric, Run
from mlflow.exceptions import MlflowException
from omegaconf import DictConfig

from rnnlab import tracking
from rnnlab.config import model_config, project_root, resolve_path
from rnnlab.errors import ConfigError, LayoutError
from rnnlab.io import atomic_dir, read_json
from rnnlab.stage import entry_point, summary
from rnnlab.tasks import task_module


@entry_point
def main(cfg: DictConfig) -> None:
    task = task_module(cfg)
    name = model_config(cfg)["name"]
    checkpoint, train_report, out = run_files(cfg, name) if cfg.get("run_dir") else stage_files(cfg, name)
    if not task.data_dir(cfg).is_dir():
        raise LayoutError(f"{task.data_dir(cfg)} is missing: run the data stages of the pipeline first")
    client = MlflowClient(tracking_uri=tracking.tracking_uri(cfg.logger.tracking_uri, project_root()))
    run = training_run(client, train_report, name)

    data = task.datamodule(cfg)
    model = task.load_model(checkpoint)
    with atomic_dir(out) as folder:
        result = task.evaluate(cfg, name, model, data, folder)
        client.log_batch(run.info.run_id, metrics=new_metrics(run, result.mlflow))
        client.log_artifacts(run.info.run_id, str(folder), "eval")
    summary("evaluate", model=name, **result.summary)


def stage_files(cfg: DictConfig, name: str) -> tuple[Path, Path, Path]:
    """The pipeline model's best checkpoint and training report (train@<name>), and its evaluation folder."""
    reports_dir = resolve_path(cfg.paths.reports_dir)
    checkpoint = required(
        resolve_path(cfg.paths.models_dir) / name / "checkpoints" / "best.ckpt", f"train@{name}"
    )
    train_report = required(reports_dir / "train" / f"{name}.json", f"train@{name}")
    return checkpoint, train_report, reports_dir / "eval" / name


def run_files(cfg: DictConfig, name: str) -> tuple[Path, Path, Path]:
    """The best checkpoint and report of the run trained in folder `run_dir`, and `<run_dir>/eval/`; the
    folder must hold a finished run of cell `name`."""
    folder = resolve_path(cfg.run_dir)
    checkpoint, report = folder / "checkpoints" / "best.ckpt", folder / "report.json"
    if not (checkpoint.is_file() and report.is_file()):
        raise LayoutError(
            f"run_dir={cfg.run_dir}: {folder} holds no finished training run (checkpoints/best.ckpt and "
            f"report.json); give a run's folder, {resolve_path(cfg.paths.runs_dir)}/<cell>/<date>_<time>-<id>"
        )
    trained = read_json(report).get("model")
    if trained != name:
        raise ConfigError(
            f"run_dir={cfg.run_dir} trained model {trained}, not model={name}: pass model={trained}"
        )
    return checkpoint, report, folder / "eval"


def required(path: Path, stage: str) -> Path:
    """`path`, an output of DVC stage `stage`; a clear error when it is missing."""
    if not path.is_file():
        raise LayoutError(f"{path} is missing: run `dvc repro {stage}` first")
    return path


def new_metrics(run: Run, metrics: dict[str, float]) -> list[Metric]:
    """The evaluation's metrics the run lacks (training already logged `test/acc`, `test/f1`, ... of the same
    checkpoint: one name, one value), at the step of the best checkpoint's epoch: the latest step of a
    model of the run (a resumed run logs its best checkpoint again)."""
    outputs = run.outputs.model_outputs if run.outputs else []
    step = max((output.step for output in outputs), default=0)
    now = int(time.time() * 1000)
    return [Metric(k, v, now, step) for k, v in metrics.items() if k not in run.data.metrics]


def training_run(client: MlflowClient, train_report: Path, name: str) -> Run:
    """The MLflow run that trained the model; it must exist in the store the evaluation logs to."""
    run_id = read_json(train_report).get("run_id")
    if not run_id:
        raise LayoutError(f"{train_report} has no run_id: run `dvc repro -f train@{name}`")
    try:
        return client.get_run(run_id)
    except MlflowException as error:
        raise ConfigError(
            f"MLflow run {run_id} (from {train_report}) is not in the tracking store {client.tracking_uri}: "
            f"set logger.tracking_uri to the store that train@{name} logged to"
        ) from error


if __name__ == "__main__":
    main()
