"""Shared behaviour of the pipeline entry points: the config checked before any work, friendly errors and a
one-line summary."""

from __future__ import annotations

import functools
import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from rnnlab.errors import MissingInputError, RnnlabError

CONFIG_PATH, CONFIG_NAME = "../conf", "config"  # conf/ beside pipelines/
# The data folders (paths.<key>) and the DVC stage that writes each: named when a later stage lacks them.
PRODUCERS = (("raw_dir", "download"), ("prepared_dir", "prepare"), ("encoded_dir", "encode"))
HYDRA_INFO_FLAGS = ("help", "hydra_help", "cfg", "info", "shell_completion", "experimental_rerun")


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an `RnnlabError` into one clear line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RnnlabError as error:
            print(f"rnnlab: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def entry_point(
    fn: Callable[[DictConfig], Any] | None = None, *, trainer: bool | Callable[[DictConfig], bool] = False
) -> Any:
    """`hydra.main` for a pipeline stage, with every config value validated (rnnlab.validation) before Hydra
    creates its run folder and log file, and again at the start of each job of a multirun. A bad value, like
    any RnnlabError, ends the stage with one `rnnlab: error:` line and exit status 2.

    `@entry_point(trainer=True)` declares a stage that builds a Lightning trainer: only there are the keys
    checked against Lightning's registries (trainer.accelerator, strategy, precision), so that the other
    stages never import Lightning. A stage that builds one only for some configs passes a predicate on the
    composed config instead (pretrain_lm: only for a cell with init_from lm)."""
    if fn is None:
        return functools.partial(entry_point, trainer=trainer)
    import hydra  # here, not at the top: `rnnlab predict` imports this module and needs no Hydra

    from rnnlab.validation import validate

    @report_errors
    @functools.wraps(fn)
    def job(cfg: DictConfig) -> Any:
        validate(cfg, lightning=builds_trainer(trainer, cfg))
        try:
            return fn(cfg)
        except FileNotFoundError as error:
            raise missing_input(cfg, error) from None

    run = hydra.main(config_path=CONFIG_PATH, config_name=CONFIG_NAME, version_base="1.3")(job)
    script_dir = Path(inspect.getfile(fn)).resolve().parent

    @functools.wraps(fn)
    def main() -> Any:
        report_errors(check_before_run)(script_dir, lightning=trainer)
        return run()

    return main


def builds_trainer(trainer: bool | Callable[[DictConfig], bool], cfg: DictConfig) -> bool:
    """Whether the stage builds a Lightning trainer for `cfg` (`entry_point`'s `trainer`)."""
    return trainer if isinstance(trainer, bool) else trainer(cfg)


def missing_input(cfg: DictConfig, error: FileNotFoundError) -> MissingInputError:
    """The error for a missing input file: which data set lacks it and the command that makes it."""
    from rnnlab.config import resolve_path

    path = Path(error.filename or "")
    pipeline = "dvc.yaml" if cfg.task.name == "imdb" else f"pipelines/{cfg.task.name}/dvc.yaml"
    for key, stage in PRODUCERS:
        if path.is_relative_to(resolve_path(cfg.paths[key])):
            target = stage if pipeline == "dvc.yaml" else f"{pipeline}:{stage}"
            return MissingInputError(
                f"{path} is missing: data set {cfg.data.name!r} has not been through the {stage} stage; "
                f"run `dvc repro {target}` (or `python pipelines/{stage}.py` with the same overrides)"
            )
    return MissingInputError(f"{path} is missing ({error.strerror})")


def check_before_run(
    script_dir: Path, argv: list[str] | None = None, lightning: bool | Callable[[DictConfig], bool] = True
) -> None:
    """Compose the config this command line asks Hydra for and validate it, before Hydra writes anything.

    Hydra's information requests (--help, --cfg, ...) and command lines it cannot compose as one run are
    left to Hydra, which reports them in its own words (and `entry_point` validates each job it runs). In a
    multirun the overrides common to every job are checked here; `lightning`: as `validate` has it, or
    `entry_point`'s predicate.
    """
    from hydra import compose, initialize_config_dir
    from hydra._internal.utils import get_args_parser  # hydra.main's own command-line parser
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from rnnlab.validation import validate

    args = get_args_parser().parse_args(sys.argv[1:] if argv is None else argv)
    if any(getattr(args, flag) for flag in HYDRA_INFO_FLAGS):
        return
    config_dir = Path(args.config_dir) if args.config_dir else script_dir / (args.config_path or CONFIG_PATH)
    try:
        overrides = list(args.overrides)
        if args.multirun:
            parsed = OverridesParser.create().parse_overrides(overrides)
            overrides = [override.input_line for override in parsed if not override.is_sweep_override()]
        with initialize_config_dir(str(config_dir.resolve()), version_base="1.3"):
            cfg = compose(args.config_name or CONFIG_NAME, overrides)
    except Exception:  # noqa: BLE001 - Hydra composes it again and reports what is wrong
        return
    validate(cfg, builds_trainer(lightning, cfg))


def summary(stage: str, **facts: Any) -> None:
    """Print the stage's one-line summary, e.g. `[prepare] vocab=30000 train=22500`."""
    print(f"[{stage}] " + " ".join(f"{key}={value}" for key, value in facts.items()), flush=True)
