"""What the `pretrain` stage writes and how a training run finds it (`model.init_from`); no gensim or torch
here. A method (word2vec) writes `<paths.pretrain_dir>/<method>/` (DVC-cached) and the report
`<paths.reports_dir>/pretrain/<method>.json`, which names its MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rnnlab.config import resolve_path
from rnnlab.errors import ConfigError, MissingInputError
from rnnlab.io import read_json

NONE = "none"
INIT_FROM = (NONE, "word2vec")  # model.init_from: a fresh embedding, or the pretrain stage's word vectors
VECTORS, REVIEW_IDS = "vectors.txt", "review_ids.txt"  # word2vec text format; the corpus's ids, in order
LINK_KEY = "pretrain_run_id"  # the param and tag of a classifier run that names the run it starts from


@dataclass(frozen=True)
class Outputs:
    folder: Path  # the method's files (VECTORS, REVIEW_IDS)
    report: Path  # its report: corpus, coverage, time, settings, MLflow run


def outputs(cfg: DictConfig, method: str) -> Outputs:
    return Outputs(
        resolve_path(cfg.paths.pretrain_dir) / method,
        resolve_path(cfg.paths.reports_dir) / "pretrain" / f"{method}.json",
    )


@dataclass(frozen=True)
class PretrainedInit:
    """The pretrain stage's result a cell starts from, and the MLflow run that produced it."""

    method: str
    vectors: Path
    run_id: str
    experiment_id: str

    def links(self) -> dict[str, str]:
        """The classifier run's param and tag naming the pretraining run."""
        return {LINK_KEY: self.run_id}

    def note(self) -> str:
        """The end of the classifier run's description: a link to the pretraining run."""
        url = f"#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return f"; embeddings from [{self.method} run {self.run_id[:8]}]({url})"


def pretrained_init(cfg: DictConfig, model_cfg: dict[str, Any]) -> PretrainedInit | None:
    """What `model_cfg`'s `init_from` names (None for `none`), checked to exist and to fit its embedding."""
    method = model_cfg.get("init_from", NONE)
    if method == NONE:
        return None
    found = outputs(cfg, method)
    vectors = found.folder / VECTORS
    for path in (vectors, found.report):
        if not path.is_file():
            raise MissingInputError(
                f"{path} is missing: model.init_from={method} starts from the pretrain stage's vectors; run "
                "`dvc repro pretrain` (or `python pipelines/pretrain.py` with the same overrides)"
            )
    report = read_json(found.report)
    dim = model_cfg["embedding_dim"]
    if report["vector_size"] != dim:
        raise ConfigError(
            f"{vectors} holds {report['vector_size']}-dimensional vectors but model.embedding_dim={dim}: set "
            f"model.embedding_dim={report['vector_size']}, or rerun the pretrain stage with "
            f"pretrain.{method}.vector_size={dim}"
        )
    return PretrainedInit(method, vectors, report["run_id"], report["experiment_id"])
