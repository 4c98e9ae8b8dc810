"""DVC stage `register`: log the best model of `compare.models` (by `val_acc_best`, rnnlab.ranking's rule) as
an MLflow pyfunc on raw text, register it as `<task>-sentiment` (or `registry.model_name`) and point the alias
`champion` at the new version, with a description and tags (model, cell, data digest, val accuracy).

    python pipelines/register.py
    rnnlab serve --model models:/imdb-sentiment@champion   # then serve it (README: serve)
The pyfunc goes to the winning training run (artifact path `model`), at the step of its best checkpoint's
epoch, so the version shows that epoch's metrics; `reports/register.json` records the choice and the local
files `rnnlab predict` uses by default.
"""

from collections.abc import Iterable
from pathlib import Path

from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from rnnlab import ranking
from rnnlab.config import project_root, resolve_path
from rnnlab.errors import RnnlabError
from rnnlab.io import read_json, write_json
from rnnlab.serving import ARTIFACT_FILES, log_text_model
from rnnlab.stage import entry_point, summary
from rnnlab.tracking import tracking_uri

ALIAS = "champion"


def best_report(folder: Path, models: Iterable[str] | None = None, key: str = "val_acc_best") -> dict:
    """The training report (`reports/train/<model>.json`) with the highest `key` (ties: rnnlab.ranking), among
    those of `models` (None: every report in `folder`; a report of a cell no longer compared is ignored)."""
    paths = sorted(folder.glob("*.json"))
    reports = [read_json(path) for path in paths if models is None or path.stem in set(models)]
    for report in reports:
        missing = [k for k in ("model", "run_id", key) if k not in report]
        if missing:
            raise RnnlabError(f"a training report in {folder} lacks {', '.join(missing)}: {report}")
    try:
        winner = ranking.best({report["model"]: report[key] for report in reports}, higher_is_better=True)
    except RnnlabError:
        raise RnnlabError(f"no training report with a {key} in {folder}: run `dvc repro` first") from None
    return next(report for report in reports if report["model"] == winner)


def describe_version(client: MlflowClient, name: str, version: int, best: dict) -> None:
    """The version's description and tags: model (e.g. bilstm), cell (its recurrent unit, e.g. lstm), data
    digest, validation accuracy, the training run."""
    run = client.get_run(best["run_id"])
    tags = {
        "model": best["model"],
        "cell": run.data.tags.get("cell", best["model"]),
        "data_digest": run.data.tags.get("data_hash", "unknown"),
        "val_acc": f"{best['val_acc_best']:.4f}",
        "training_run": best["run_id"],
    }
    for key, value in tags.items():
        client.set_model_version_tag(name, str(version), key, value)
    test = f", test accuracy {best['test/acc']:.4f}" if "test/acc" in best else ""
    text = (
        f"{best['model']} ({tags['cell']}), best of the compared cells by validation accuracy: "
        f"{best['val_acc_best']:.4f}{test}; data {tags['data_digest']}; training run {best['run_id']}."
    )
    client.update_model_version(name, str(version), description=text)


def model_step(client: MlflowClient, run_id: str) -> int:
    """The step of the run's best checkpoint (its epoch): the latest step a model of the run was logged at."""
    outputs = client.get_run(run_id).outputs
    return max((output.step for output in outputs.model_outputs), default=0) if outputs else 0


def shown(path: Path, root: Path) -> str:
    """`path` relative to the project root when inside it (portable), else absolute."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@entry_point
def main(cfg: DictConfig) -> None:
    root = project_root()
    task = cfg.data.name
    name = OmegaConf.select(cfg, "registry.model_name", default=None) or f"{task}-sentiment"
    reports = resolve_path(cfg.paths.reports_dir)
    best = best_report(reports / "train", cfg.compare.models)
    files = {
        "model": resolve_path(cfg.paths.models_dir) / best["model"] / "export" / ARTIFACT_FILES["model"],
        "vocab": resolve_path(cfg.paths.prepared_dir) / ARTIFACT_FILES["vocab"],
        "meta": resolve_path(cfg.paths.encoded_dir) / ARTIFACT_FILES["meta"],
    }
    uri = tracking_uri(cfg.logger.tracking_uri, root)
    client = MlflowClient(uri)
    text_column = OmegaConf.select(cfg, "data.source.text_column", default=None) or "text"
    info = log_text_model(
        best["run_id"],
        files["model"].parent,
        files["vocab"],
        files["meta"],
        uri,
        name,
        text_column=text_column,
        step=model_step(client, best["run_id"]),
    )
    version = int(info.registered_model_version)
    client.set_registered_model_alias(name, ALIAS, version)
    describe_version(client, name, version, best)
    write_json(
        reports / "register.json",
        {
            "model": best["model"],
            "run_id": best["run_id"],
            "registered_model": name,
            "version": version,
            "alias": ALIAS,
            "val_acc_best": best["val_acc_best"],
            "task": task,
            "model_uri": f"models:/{name}@{ALIAS}",
            "text_column": text_column,
            "files": {key: shown(path, root) for key, path in files.items()},
        },
    )
    summary(
        "register",
        model=best["model"],
        registered=f"{name}@{ALIAS}",
        version=version,
        val_acc_best=round(best["val_acc_best"], 4),
    )


if __name__ == "__main__":
    main()
