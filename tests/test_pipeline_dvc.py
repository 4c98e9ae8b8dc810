"""`dvc repro` of the data stages in a throw-away git repository, on the mini IMDB archive."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from rnnlab.data.download import sha256_file

COPIED = ("conf", "pipelines", "src", "dvc.yaml", "params.yaml", ".dvc/config", ".dvcignore", ".gitignore")


def run(cmd: list[str], cwd: Path, env: dict) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory, project_root, mini_archive) -> tuple[Path, dict]:
    """A git+DVC copy of the project whose data stages have been reproduced once."""
    work = tmp_path_factory.mktemp("project")
    for name in COPIED:
        source, target = project_root / name, work / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            shutil.copy2(source, target)
    env = {
        **os.environ,
        "RNNLAB_IMDB_SOURCE": str(mini_archive),
        "RNNLAB_IMDB_SHA256": sha256_file(mini_archive),
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    run(["git", "init", "-q"], work, env)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "add", "-A"], work, env)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "init"], work, env)
    out = run(["dvc", "repro", "encode"], work, env)
    for stage in ("download", "prepare", "encode"):
        assert f"Running stage '{stage}'" in out
    return work, env


def stats_vocab_size(work: Path) -> int:
    return json.loads((work / "reports/data/prepare.json").read_text())["vocab_size"]


def test_outputs_of_the_data_stages(repo):
    work, _ = repo
    assert sorted(p.name for p in (work / "data/raw/imdb").iterdir()) == [
        "source.json",
        "test.parquet",
        "train.parquet",
    ]
    vocab = json.loads((work / "data/prepared/imdb/vocab.json").read_text())
    assert vocab["specials"] == ["<pad>", "<oov>"] and len(vocab["tokens"]) + 2 == stats_vocab_size(work)
    meta = json.loads((work / "data/encoded/imdb/meta.json").read_text())
    assert meta["max_len"] == 256 and meta["num_classes"] == 2
    ids = np.load(work / "data/encoded/imdb/train/ids.npy", mmap_mode="r")
    assert ids.dtype == np.int32 and ids.shape == (900, 256)
    assert len(np.load(work / "data/encoded/imdb/val/labels.npy")) == 100
    assert len(np.load(work / "data/encoded/imdb/test/labels.npy")) == 1000
    stats = json.loads((work / "reports/data/prepare.json").read_text())
    assert stats["vocab_size"] == meta["vocab_size"] and 0 < stats["splits"]["test"]["oov_rate"] < 0.2
    assert set(stats["splits"]["train"]["token_length"]) >= {"p50", "p90", "p95", "p99"}
    assert not list(work.glob("data/**/.*.tmp")), "temporary folders left behind"


def test_second_repro_runs_nothing(repo):
    work, env = repo
    out = run(["dvc", "repro", "encode"], work, env)
    assert "Running stage" not in out


def test_changing_max_len_reruns_only_encode(repo):
    """`dvc exp run -S` recomposes conf/ into params.yaml; only `encode` depends on max_len."""
    work, env = repo
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "add", "-A"], work, env)
    run(["git", "-c", "user.name=ci", "-c", "user.email=ci@localhost", "commit", "-qm", "lock"], work, env)
    out = run(["dvc", "exp", "run", "encode", "-S", "data.encode.max_len=32"], work, env)
    assert "Running stage 'encode'" in out
    assert "Running stage 'prepare'" not in out and "Running stage 'download'" not in out
    assert np.load(work / "data/encoded/imdb/train/ids.npy").shape == (900, 32)
    assert "max_len: 32" in (work / "params.yaml").read_text()


def test_invalid_value_is_named_with_the_allowed_values(repo):
    work, env = repo
    done = subprocess.run(
        [sys.executable, "pipelines/encode.py", "data.encode.padding=middle"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "data.encode.padding" in done.stderr and "pre" in done.stderr and "post" in done.stderr


def test_data_overview_notebook_executes(repo, project_root):
    """The notebook runs top to bottom on the reproduced data, so it cannot rot."""
    import nbformat
    from nbclient import NotebookClient

    work, _ = repo
    notebook = nbformat.read(project_root / "notebooks" / "data_overview.ipynb", as_version=4)
    NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(work)}}
    ).execute()
    outputs = "".join(o.get("text", "") for cell in notebook.cells for o in cell.get("outputs", []))
    assert "vocabulary:" in outputs and "most frequent:" in outputs
