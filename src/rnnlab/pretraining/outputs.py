"""What the pretraining stages write and how a training run finds it (`model.init_from`); no gensim or torch
here. word2vec (stage `pretrain`) writes `<paths.pretrain_dir>/word2vec/` (DVC-cached) and the report
`<paths.reports_dir>/pretrain/word2vec.json`; the language model of a cell (stage `pretrain_lm@<cell>`)
`<paths.pretrain_dir>/lm/<cell>/` and `<paths.reports_dir>/pretrain/lm/<cell>.json`. A report names its
MLflow run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rnnlab.config import resolve_path
from rnnlab.errors import ConfigError, MissingInputError
from rnnlab.io import read_json

NONE = "none"
WORD2VEC, LM = "word2vec", "lm"
# model.init_from: a fresh model, the pretrain stage's word vectors, or the cell's pretrained language model
INIT_FROM = (NONE, WORD2VEC, LM)
VECTORS, REVIEW_IDS = "vectors.txt", "review_ids.txt"  # word2vec text format; the corpus's ids, in order
LM_CHECKPOINT = "lm.ckpt"  # the language model's best checkpoint (by val/loss)
FILES = {WORD2VEC: VECTORS, LM: LM_CHECKPOINT}  # the file a classifier starts from
COPIED = {WORD2VEC: "embeddings", LM: "embedding and first recurrent layer"}  # what it takes from it
LINK_KEY = "pretrain_run_id"  # the param and tag of a classifier run that names the run it starts from


@dataclass(frozen=True)
class Outputs:
    folder: Path  # the method's files (word2vec: VECTORS, REVIEW_IDS; lm: LM_CHECKPOINT)
    report: Path  # its report: corpus, time, settings, MLflow run


def outputs(cfg: DictConfig, method: str, cell: str | None = None) -> Outputs:
    """word2vec's outputs; with `cell`, those of the cell's language model (`method` lm)."""
    folder, reports = resolve_path(cfg.paths.pretrain_dir) / method, resolve_path(cfg.paths.reports_dir)
    if cell is None:
        return Outputs(folder, reports / "pretrain" / f"{method}.json")
    return Outputs(folder / cell, reports / "pretrain" / method / f"{cell}.json")


@dataclass(frozen=True)
class PretrainedInit:
    """The pretraining result a cell starts from (word vectors or a language model's checkpoint), and the
    MLflow run that produced it."""

    method: str
    path: Path
    run_id: str
    experiment_id: str

    def links(self) -> dict[str, str]:
        """The classifier run's param and tag naming the pretraining run."""
        return {LINK_KEY: self.run_id}

    def note(self) -> str:
        """The end of the classifier run's description: a link to the pretraining run."""
        url = f"#/experiments/{self.experiment_id}/runs/{self.run_id}"
        return f"; {COPIED[self.method]} from [{self.method} run {self.run_id[:8]}]({url})"


def pretrained_init(cfg: DictConfig, model_cfg: dict[str, Any]) -> PretrainedInit | None:
    """What `model_cfg`'s `init_from` names (None for `none`), checked to exist (and word vectors, to fit its
    embedding; a language model is checked against the classifier when copied)."""
    method = model_cfg.get("init_from", NONE)
    if method == NONE:
        return None
    cell = model_cfg["name"] if method == LM else None
    found = outputs(cfg, method, cell)
    source = found.folder / FILES[method]
    for path in (source, found.report):
        if not path.is_file():
            raise MissingInputError(
                f"{path} is missing: model.init_from={method} starts from {how_to_make(method, cell)}"
            )
    report = read_json(found.report)
    if method == LM:
        return PretrainedInit(method, source, report["run_id"], report["experiment_id"])
    dim = model_cfg["embedding_dim"]
    if report["vector_size"] != dim:
        raise ConfigError(
            f"{source} holds {report['vector_size']}-dimensional vectors but model.embedding_dim={dim}: set "
            f"model.embedding_dim={report['vector_size']}, or rerun the pretrain stage with "
            f"pretrain.{method}.vector_size={dim}"
        )
    return PretrainedInit(method, source, report["run_id"], report["experiment_id"])


def how_to_make(method: str, cell: str | None) -> str:
    """What writes `method`'s output, and the command that runs it."""
    if method == WORD2VEC:
        return (
            "the pretrain stage's vectors; run `dvc repro pretrain` (or `python pipelines/pretrain.py` with "
            "the same overrides), or train from random weights with model.init_from=none"
        )
    return (
        f"the {cell} cell's language model, which stage pretrain_lm@{cell} trains when "
        f"models.{cell}.init_from=lm: run `dvc exp run -S models.{cell}.init_from=lm` (or `python "
        f"pipelines/pretrain_lm.py model={cell} model.init_from=lm` with the same overrides)"
    )
