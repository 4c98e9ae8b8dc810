"""Where a training run writes, and which checkpoint `ckpt_path=last` resumes.

- The DVC stage (`+model_key=<cell>`) trains in a scratch folder, `<paths.runs_dir>/<cell>/dvc-stage/`, and
  moves its checkpoints, diagnostics, model summary and report into the stage's declared outputs only once it
  has finished. A stage that fails or is interrupted leaves none of them; its scratch folder is what
  `ckpt_path=last` resumes.
- Any other run (`python pipelines/train.py model=gru`, each job of a `-m` sweep) writes into a folder of its
  own, `<paths.runs_dir>/<cell>/<date>_<time>-<random>/`, and never into DVC-tracked outputs.
  `ckpt_path=last` resumes the cell's run whose `last.ckpt` was written most recently, in its folder.

Every run folder holds `checkpoints/{best,last}.ckpt`, `diagnostics/`, `summary.txt`, `history.csv`,
`metrics.json` and `report.json`.
The scratch folder must be on the same file system as the outputs (they are moved by renaming).
"""

from __future__ import annotations

import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from omegaconf import DictConfig

from rnnlab.config import resolve_path
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_dir

STAGE = "dvc-stage"


@dataclass(frozen=True)
class RunDirs:
    """A run's folder, the checkpoint it resumes, and (DVC stage) the declared output each file becomes."""

    work: Path
    resume: Path | None = None
    outputs: dict[str, Path] = field(default_factory=dict)

    @property
    def checkpoints(self) -> Path:
        return self.work / "checkpoints"

    @property
    def diagnostics(self) -> Path:
        return self.work / "diagnostics"


def stage_outputs(cfg: DictConfig, cell: str) -> dict[str, Path]:
    """The train@<cell> stage's declared outputs (dvc.yaml), keyed by their name in the run folder; the report
    comes last, so that it is the last to appear."""
    models, reports = resolve_path(cfg.paths.models_dir) / cell, resolve_path(cfg.paths.reports_dir)
    return {
        "checkpoints": models / "checkpoints",
        "diagnostics": reports / "diagnostics" / cell,
        "summary.txt": models / "summary.txt",
        "history.csv": reports / "history" / f"{cell}.csv",
        "metrics.json": reports / "metrics" / f"{cell}.json",
        "report.json": reports / "train" / f"{cell}.json",
    }


def run_dirs(cfg: DictConfig, cell: str) -> RunDirs:
    """The folders of a run of `cell`, resolving `cfg.ckpt_path` (None, `last` or a .ckpt path)."""
    cell_dir = resolve_path(cfg.paths.runs_dir) / cell
    if cfg.get("model_key") is not None:
        scratch = cell_dir / STAGE
        dirs = RunDirs(
            scratch,
            resume_checkpoint(cfg.ckpt_path, scratch / "checkpoints" / "last.ckpt"),
            stage_outputs(cfg, cell),
        )
        # As `dvc repro` does: the outputs are the finished run's, or absent.
        for target in dirs.outputs.values():
            shutil.rmtree(target) if target.is_dir() else target.unlink(missing_ok=True)
        if dirs.resume is None:
            shutil.rmtree(dirs.work, ignore_errors=True)
        return dirs
    resume = resume_checkpoint(cfg.ckpt_path, latest_checkpoint(cell_dir))
    if resume is not None and resume.parent.name == "checkpoints" and resume.parents[2] == cell_dir.resolve():
        return RunDirs(resume.parents[1], resume)  # continue in the resumed run's folder
    name = f"{time.strftime('%Y-%m-%d_%H-%M-%S')}-{uuid.uuid4().hex[:6]}"
    return RunDirs(cell_dir / name, resume)


def latest_checkpoint(cell_dir: Path) -> Path:
    """The most recently written `last.ckpt` of the cell's one-off runs (a pattern when there is none)."""
    found = [path for path in cell_dir.glob("*/checkpoints/last.ckpt") if path.parents[1].name != STAGE]
    if not found:
        return cell_dir / "*" / "checkpoints" / "last.ckpt"
    return max(found, key=lambda path: path.stat().st_mtime)


def resume_checkpoint(ckpt_path: str | None, last: Path) -> Path | None:
    """The checkpoint to resume from: `ckpt_path=last` is `last`, a path is itself; None starts afresh."""
    if ckpt_path is None:
        return None
    path = last if ckpt_path == "last" else Path(ckpt_path).expanduser()
    if not path.is_file():
        raise ConfigError(f"ckpt_path={ckpt_path!r}: no checkpoint at {path}")
    return path.resolve()


def publish(dirs: RunDirs) -> None:
    """DVC stage: move the finished run's files into the declared outputs (each by one rename) and remove the
    scratch folder. Other runs keep their folder as it is."""
    if not dirs.outputs:
        return
    for name, target in dirs.outputs.items():
        source = dirs.work / name
        if source.is_dir():
            with atomic_dir(target) as empty:
                os.replace(source, empty)
        elif source.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(source, target)
    shutil.rmtree(dirs.work)
