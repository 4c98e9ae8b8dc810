"""DVC stage `register`: log the best model (by `val_acc_best`) as an MLflow pyfunc on raw text, register it
as `<task>-sentiment` (or `registry.model_name`) and point the alias `champion` at the new version.

    python pipelines/register.py
    mlflow models serve -m models:/imdb-sentiment@champion --env-manager local   # then serve it
The pyfunc goes to the winning training run (artifact path `model`); `reports/register.json` records the
choice and the local files `rnnlab predict` uses by default.
"""

import math
from pathlib import Path

from mlflow import MlflowClient
from omegaconf import DictConfig, OmegaConf

from rnnlab.config import project_root, resolve_path
from rnnlab.errors import RnnlabError
from rnnlab.io import read_json, write_json
from rnnlab.serving import ARTIFACT_FILES, log_text_model
from rnnlab.stage import entry_point, summary
from rnnlab.tracking import tracking_uri

ALIAS = "champion"


def best_report(folder: Path) -> dict:
    """The training report (`reports/train/<model>.json`) with the highest `val_acc_best`; ties: by name."""
    reports = [read_json(path) for path in sorted(folder.glob("*.json"))]
    for report in reports:
        missing = [key for key in ("model", "run_id", "val_acc_best") if key not in report]
        if missing:
            raise RnnlabError(f"a training report in {folder} lacks {', '.join(missing)}: {report}")
    scored = [report for report in reports if _is_number(report["val_acc_best"])]
    if not scored:
        raise RnnlabError(f"no training report with a val_acc_best in {folder}: run `dvc repro` first")
    return max(scored, key=lambda report: report["val_acc_best"])


def _is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and not math.isnan(value)


def shown(path: Path, root: Path) -> str:
    """`path` relative to the project root when inside it (portable), else absolute."""
    return str(path.relative_to(root)) if path.is_relative_to(root) else str(path)


@entry_point
def main(cfg: DictConfig) -> None:
    root = project_root()
    task = cfg.data.name
    name = OmegaConf.select(cfg, "registry.model_name", default=None) or f"{task}-sentiment"
    reports = resolve_path(cfg.paths.reports_dir)
    best = best_report(reports / "train")
    files = {
        "model": resolve_path(cfg.paths.models_dir) / best["model"] / "export" / ARTIFACT_FILES["model"],
        "vocab": resolve_path(cfg.paths.prepared_dir) / ARTIFACT_FILES["vocab"],
        "meta": resolve_path(cfg.paths.encoded_dir) / ARTIFACT_FILES["meta"],
    }
    uri = tracking_uri(cfg.logger.tracking_uri, root)
    info = log_text_model(best["run_id"], files["model"].parent, files["vocab"], files["meta"], uri, name)
    version = int(info.registered_model_version)
    MlflowClient(uri).set_registered_model_alias(name, ALIAS, version)
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
            "files": {key: shown(path, root) for key, path in files.items()},
        },
    )
    summary("register", model=best["model"], registered=f"{name}@{ALIAS}", version=version,
            val_acc_best=round(best["val_acc_best"], 4))


if __name__ == "__main__":
    main()
