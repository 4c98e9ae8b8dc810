"""Throw-away git+DVC copies of the project, for the tests that run whole pipelines."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from mlflow_store import fresh_store

COPIED = (
    "conf",
    "pipelines",
    "src",
    "dvc.yaml",
    "params.yaml",
    ".dvc/config",
    ".dvc/plots",
    ".dvcignore",
    ".gitignore",
)
GIT_USER = ["-c", "user.name=ci", "-c", "user.email=ci@localhost"]


def run(cmd: list[str], cwd: Path, env: dict, expect_rc: int = 0) -> str:
    """Run `cmd` in `cwd`; its stdout and stderr, after checking the exit status."""
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    shown = f"{' '.join(cmd)} exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    assert done.returncode == expect_rc, shown
    return done.stdout + done.stderr


def project_copy(project_root: Path, work: Path, mlflow_store: bool = False, **env_extra: str) -> dict:
    """Copy the project's code and config into `work`, make it a git repo with one commit; return the env
    (this Python's bin on PATH, no MLFLOW_* settings: runs go to <work>/mlflow.db, with `mlflow_store` an
    empty store put there first, see mlflow_store.py)."""
    for name in COPIED:
        source, target = project_root / name, work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, **env_extra, "PATH": path}
    env = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    run(["git", "init", "-q"], work, env)
    commit(work, env, "init")
    if mlflow_store:
        fresh_store(work / "mlflow.db")  # ignored by git (.gitignore), as the one a stage creates
    return env


def commit(work: Path, env: dict, message: str) -> None:
    run(["git", *GIT_USER, "add", "-A"], work, env)
    run(["git", *GIT_USER, "commit", "-qm", message], work, env)


def stop_group(process: subprocess.Popen, timeout: float) -> None:
    """Stop a process started with `start_new_session=True` and its children: SIGTERM, then SIGKILL."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
