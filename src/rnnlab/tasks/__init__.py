"""The tasks behind one set of stage scripts. `task.kind` (conf/task/*.yaml) picks a module here; each
module builds its datamodule and LightningModule, adds its callbacks, evaluates a checkpoint and shapes the
comparison:

    data_dir(cfg) -> Path                        the stage output a run trains on (fingerprinted in MLflow)
    datamodule(cfg) -> LightningDataModule
    build_model(cfg, model_cfg, data) -> Built
    callbacks(cfg, model_cfg, data, diagnostics_dir) -> list   task-specific Lightning callbacks
    artifacts(cfg) -> list[Path]                 files logged with every training run (vocabulary, scaler)
    load_model(checkpoint) -> LightningModule
    evaluate(cfg, name, model, data, folder) -> Evaluated     writes metrics.json and plots/ into `folder`
    COMPARE: Comparison                          the compare stage's columns and ranking
    HAS_TEST: bool                               whether training ends with `trainer.test`
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import lightning as L
from omegaconf import DictConfig

from rnnlab.config import section
from rnnlab.errors import ConfigError

KINDS = ("classification", "forecast", "charlm")


@dataclass
class Built:
    """A fresh model, the facts logged as run params, and metrics known before training."""

    model: L.LightningModule
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class Evaluated:
    """What an evaluation produced: the DVC metrics, the run's MLflow metrics, the summary line's facts."""

    metrics: dict[str, Any]
    mlflow: dict[str, float]
    summary: dict[str, Any]


@dataclass(frozen=True)
class Comparison:
    """Table columns -> (report, key) in reports/train/<m>.json ("train") or eval/<m>/metrics.json ("eval"),
    the column that ranks the models (validation only) and whether higher is better."""

    columns: dict[str, tuple[str, str]]
    rank_by: str
    higher_is_better: bool
    percent: tuple[str, ...] = ()  # columns shown as percentages in compare.md
    test_column: str | None = None  # the test score stated beside rank_by when a baseline is compared


def task_module(cfg: DictConfig) -> ModuleType:
    """The module of `cfg.task.kind`."""
    kind = cfg.task.kind
    if kind not in KINDS:
        raise ConfigError(f"task.kind={kind!r} is not allowed; choose one of: {', '.join(KINDS)}")
    return importlib.import_module(f"rnnlab.tasks.{kind}")


def optim_args(cfg: DictConfig) -> dict[str, Any]:
    """The LightningModule's optimiser arguments: `optim` plus the task's monitored metric and its mode."""
    return {**section(cfg, "optim"), "monitor": cfg.task.monitor, "mode": cfg.task.mode}
