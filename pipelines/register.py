"""DVC stage `register`: the best model of `compare.models` (by the task's `COMPARE.rank_by`, rnnlab.ranking's
rule) logged to its training run in the form its task serves (`Task.register`; classification: an MLflow
pyfunc on raw text), registered as `Task.registry_name` (classification: `<data.name>-sentiment`, or
`registry.model_name`) with the alias `champion` pointed at the new version.

    python pipelines/register.py
    rnnlab serve --model models:/imdb-sentiment@champion   # then serve it (README: serve)
`reports/register.json` records the choice and what the task adds (classification: the local files `rnnlab
predict` uses by default). A task that does not deploy its models refuses, naming what it offers instead.
"""

from collections.abc import Iterable
from pathlib import Path

from mlflow import MlflowClient
from omegaconf import DictConfig

from rnnlab import ranking
from rnnlab.config import project_root, resolve_path
from rnnlab.errors import RnnlabError
from rnnlab.io import read_json, write_json
from rnnlab.stage import entry_point, summary
from rnnlab.tasks import Comparison, task_module
from rnnlab.tracking import tracking_uri

ALIAS = "champion"


def rank_key(spec: Comparison) -> str:
    """The training-report key of the column that ranks the models (e.g. val_acc_best)."""
    return spec.columns[spec.rank_by][1]


def best_report(folder: Path, spec: Comparison, models: Iterable[str] | None = None) -> dict:
    """The training report (`reports/train/<model>.json`) best by `spec.rank_by` (a training-report column;
    ties: rnnlab.ranking), among those of `models` (None: every report in `folder`; a report of a cell no
    longer compared is ignored)."""
    key = rank_key(spec)
    paths = sorted(folder.glob("*.json"))
    reports = [read_json(path) for path in paths if models is None or path.stem in set(models)]
    for report in reports:
        missing = [k for k in ("model", "run_id", key) if k not in report]
        if missing:
            raise RnnlabError(f"a training report in {folder} lacks {', '.join(missing)}: {report}")
    scores = {report["model"]: report[key] for report in reports}
    try:
        winner = ranking.best(scores, higher_is_better=spec.higher_is_better)
    except RnnlabError:
        raise RnnlabError(f"no training report with a {key} in {folder}: run `dvc repro` first") from None
    return next(report for report in reports if report["model"] == winner)


@entry_point
def main(cfg: DictConfig) -> None:
    task = task_module(cfg)
    name = task.registry_name(cfg)  # a task that does not deploy refuses here
    reports = resolve_path(cfg.paths.reports_dir)
    best = best_report(reports / "train", task.COMPARE, cfg.compare.models)
    key = rank_key(task.COMPARE)
    uri = tracking_uri(cfg.logger.tracking_uri, project_root())
    registered = task.register(cfg, best, uri, name)
    MlflowClient(uri).set_registered_model_alias(name, ALIAS, registered.version)
    write_json(
        reports / "register.json",
        {
            "model": best["model"],
            "run_id": best["run_id"],
            "registered_model": name,
            "version": registered.version,
            "alias": ALIAS,
            key: best[key],
            "task": cfg.data.name,
            "model_uri": f"models:/{name}@{ALIAS}",
            **registered.report,
        },
    )
    summary(
        "register",
        model=best["model"],
        registered=f"{name}@{ALIAS}",
        version=registered.version,
        **{key: round(best[key], 4)},
    )


if __name__ == "__main__":
    main()
