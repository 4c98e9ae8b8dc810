"""Keep each pipeline's params.yaml equal to the composition of conf/ for its task.

The IMDB pipeline (dvc.yaml) reads params.yaml at the root: the file DVC's Hydra integration rewrites on
`dvc exp run -S key=value`. The other tasks' pipelines read pipelines/<task>/params.yaml, composed with
`task=<task>` (DVC composes only the root file, so `rnnlab sync-params` writes these).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from dvc.utils.hydra import compose_and_dump
from omegaconf import OmegaConf

from rnnlab.errors import ConfigError
from rnnlab.io import atomic_file
from rnnlab.validation import validate

DEFAULT_TASK = "imdb"


def tasks(root: Path) -> list[str]:
    """The task names (conf/task/*.yaml), the default first."""
    names = sorted(path.stem for path in (root / "conf" / "task").glob("*.yaml"))
    return sorted(names, key=lambda name: name != DEFAULT_TASK)


def params_path(root: Path, task: str) -> Path:
    """Where the pipeline of `task` reads its parameters."""
    return root / "params.yaml" if task == DEFAULT_TASK else root / "pipelines" / task / "params.yaml"


def compose_params(root: Path, overrides: list[str] | None = None) -> str:
    """The text DVC would write to params.yaml for `dvc exp run -S <overrides>`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str((root / "conf").resolve()), None, "config", str(root), overrides or [])
        return out.read_text(encoding="utf-8")


def sync_params(
    root: Path, task: str, overrides: list[str] | None = None, check: bool = False
) -> tuple[Path, bool]:
    """Rewrite the params file of `task` from conf/ (+ `overrides`); only compare when `check`.

    Returns the file and whether it was already in sync.
    """
    if task not in tasks(root):
        raise ConfigError(f"task {task!r} is not allowed; choose one of: {', '.join(tasks(root))}")
    target = params_path(root, task)
    composed = compose_params(root, [f"task={task}", *(overrides or [])])
    validate(OmegaConf.create(composed))
    in_sync = target.is_file() and target.read_text(encoding="utf-8") == composed
    if not in_sync and not check:
        with atomic_file(target, encoding="utf-8") as handle:
            handle.write(composed)
    return target, in_sync
