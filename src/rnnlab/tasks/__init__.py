"""The tasks behind one set of stage scripts. `task.kind` (conf/task/*.yaml) picks a package here; each
implements the `Task` contract below (tests/test_task_contract.py checks every one): it names its config rules
and validation metrics, fetches and prepares its data, builds its datamodule and LightningModule, adds its
callbacks, evaluates a checkpoint, shapes the comparison, and exports and registers its best model (or says
what it offers instead). A new task is a new package: nothing here or in the stage scripts lists the tasks.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from omegaconf import DictConfig

from rnnlab.config import section
from rnnlab.errors import ConfigError
from rnnlab.rules import Rule

if TYPE_CHECKING:
    import lightning as L

KINDS = tuple(sorted(info.name for info in pkgutil.iter_modules(__path__) if info.ispkg))


@dataclass
class Built:
    """A fresh model, the facts logged as run params, metrics known before training, and the runs it starts
    from: `links` (logged as params and tags, kept in the training report) and `note` (ends the run's
    description)."""

    model: L.LightningModule
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    links: dict[str, str] = field(default_factory=dict)
    note: str = ""


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
    by_length: str | None = None  # the test score each evaluation reports per length bucket (a column each)


@dataclass(frozen=True)
class Registered:
    """A model version registered by `Task.register`, and what the register report adds about it (the files
    served, how to call the model)."""

    version: int
    report: dict[str, Any] = field(default_factory=dict)


class Task(Protocol):
    """What the stage scripts use of a task module (a module implements it with module-level names; the
    methods' `self` stands for the module)."""

    HAS_TEST: bool  # whether training ends with `trainer.test` (and the comparison has test columns)
    COMPARE: Comparison  # the compare stage's columns and ranking
    COMPARE_HEADER: str  # the first line of compare.md: what the columns mean
    MONITORS: dict[str, str]  # the validation metrics its LightningModule logs -> the task.mode each needs
    SOURCE_KINDS: tuple[str, ...]  # the data.source.kind values it reads
    RULES: dict[str, Rule]  # rules for the config keys only this task has (rnnlab.validation applies them)
    DEPLOYS: bool  # False: export, registry_name and register raise `not_deployed`, reading nothing

    def relations(self, cfg: dict[str, Any], key: str, trained: dict[str, Any]) -> Iterable[str]:
        """Messages (rnnlab.rules.refused) for values of the resolved config `cfg` allowed alone but not
        together; `trained` is the cell the stage works on, found at `key` (`models.<name>` or `model`)."""

    def download(self, cfg: DictConfig) -> dict[str, Any]:
        """Fetch and verify the data set into `paths.raw_dir`; the summary line's facts."""

    def prepare(self, cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
        """Split, tokenize, build the vocabulary or scaler into `paths.prepared_dir`: (statistics, facts)."""

    def data_dir(self, cfg: DictConfig) -> Path:
        """The stage output a run trains on (fingerprinted in MLflow)."""

    def datamodule(self, cfg: DictConfig) -> L.LightningDataModule: ...

    def build_model(self, cfg: DictConfig, model_cfg: dict[str, Any], data: Any) -> Built: ...

    def callbacks(self, cfg: DictConfig, model_cfg: dict[str, Any], data: Any, diagnostics_dir: Path) -> list:
        """Task-specific Lightning callbacks (diagnostics, samples)."""

    def artifacts(self, cfg: DictConfig) -> list[Path]:
        """Files logged with every training run (vocabulary, scaler)."""

    def load_model(self, checkpoint: Path) -> L.LightningModule: ...

    def evaluate(self, cfg: DictConfig, name: str, model: Any, data: Any, folder: Path) -> Evaluated:
        """Score the best checkpoint on the test (or validation) data; write metrics.json and plots/ into
        `folder`."""

    def compare_plots(self, table: Any, folder: Path) -> None:
        """The comparison's PNGs from its table (one row per model)."""

    def export(self, cfg: DictConfig, name: str, folder: Path) -> dict[str, Any]:
        """Write the deployable files of model `name` (its best checkpoint) into the empty `folder`; the
        summary line's facts."""

    def registry_name(self, cfg: DictConfig) -> str:
        """The registered model's name: `registry.model_name`, else the task's default."""

    def register(self, cfg: DictConfig, best: dict[str, Any], uri: str, registry_name: str) -> Registered:
        """Log the served model of `best` (the winning training report, ranked by `COMPARE.rank_by`) to its
        run in the store at `uri`; register it as a new version of `registry_name`, described and tagged."""


def contract_gaps(module: ModuleType) -> list[str]:
    """What `module` lacks of the `Task` contract: missing names, and functions whose parameters differ."""
    import inspect

    gaps = [f"no {name}" for name in Task.__annotations__ if not hasattr(module, name)]
    # Importing submodule <pkg>.<name> rebinds the package's attribute <name>: a lazily imported submodule
    # named like a contract member replaces the member from then on.
    folders = [Path(folder) for folder in getattr(module, "__path__", [])]
    gaps += [
        f"submodule {name}.py: importing it replaces the contract's {name}; rename it"
        for name in [*Task.__annotations__, *(name for name in vars(Task) if not name.startswith("_"))]
        if any(
            (folder / f"{name}.py").is_file() or (folder / name / "__init__.py").is_file()
            for folder in folders
        )
    ]
    for name, member in vars(Task).items():
        if not inspect.isfunction(member) or name.startswith("_"):
            continue
        wanted = list(inspect.signature(member).parameters)[1:]  # without self
        if not callable(getattr(module, name, None)):
            gaps.append(f"no function {name}({', '.join(wanted)})")
        elif (got := list(inspect.signature(getattr(module, name)).parameters)) != wanted:
            gaps.append(f"{name}({', '.join(got)}) instead of {name}({', '.join(wanted)})")
    return gaps


def task_module(cfg: DictConfig) -> Task:
    """The package of `cfg.task.kind`."""
    return task_of(cfg.task.kind)


def task_of(kind: str) -> Task:
    """The package of task kind `kind`."""
    if kind not in KINDS:
        raise ConfigError(f"task.kind={kind!r} is not allowed; choose one of: {', '.join(KINDS)}")
    return importlib.import_module(f"rnnlab.tasks.{kind}")


def not_deployed(kind: str, instead: str) -> ConfigError:
    """The refusal of a task that does not export or register its models; `instead`: what it offers."""
    return ConfigError(f"task.kind={kind} does not export or register its models; instead: {instead}")


def refused_deployment(kind: str, instead: str) -> tuple[Callable, Callable, Callable]:
    """`export`, `registry_name` and `register` for a task that does not deploy (`DEPLOYS = False`): each
    raises `not_deployed(kind, instead)` before reading anything."""

    def export(cfg: DictConfig, name: str, folder: Path) -> dict[str, Any]:
        raise not_deployed(kind, instead)

    def registry_name(cfg: DictConfig) -> str:
        raise not_deployed(kind, instead)

    def register(cfg: DictConfig, best: dict[str, Any], uri: str, registry_name: str) -> Registered:
        raise not_deployed(kind, instead)

    return export, registry_name, register


def optim_args(cfg: DictConfig) -> dict[str, Any]:
    """The LightningModule's optimiser arguments: `optim` plus the task's monitored metric and its mode."""
    return {**section(cfg, "optim"), "monitor": cfg.task.monitor, "mode": cfg.task.mode}
