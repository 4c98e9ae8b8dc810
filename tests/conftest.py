"""Shared fixtures: the project root, the offline data copies beside it (../shared/data) and the smoke
pipeline's throw-away repo (run once per session, read by the pipeline, notebook and browser tests); how the
suite is split over pytest-xdist's workers (`-n 2` in pyproject.toml; `pytest -n 0` runs in one process)."""

from __future__ import annotations

import hashlib
import os

# One torch thread per process: two xdist workers (and the stage subprocesses they start, which inherit it)
# each training with two threads on two cores crawl. Set before anything below imports torch.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from dvc_repo import project_copy, run
from synthetic import write_encoded, write_vocab

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MINI_SHA256 = "5e5fd58d692cf7cfa6258283ac4c3c794a256c4f955a903d77168e3bb405c518"


# Test modules that share a session fixture costing minutes run on one xdist worker, which builds it once
# (any other module is a group of its own, so its module fixtures run once too).
SHARED_FIXTURE_MODULES = {
    "smoke_pipeline": ("test_bench_gradient_flow", "test_browser", "test_pipeline_dvc"),
    "team_server": ("test_team_optuna", "test_team_pipeline", "test_team_server", "test_team_training"),
    "serving_stages": ("test_serving", "test_serving_http"),
}
MODULE_GROUP = {module: modules[0] for modules in SHARED_FIXTURE_MODULES.values() for module in modules}


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """For `-n N` (xdist's default `--dist load`): load-by-scope scheduling, a scope being a module's group.
    (`--dist loadgroup` cannot do this under pytest 9: xdist 3.8 renames test ids through an attribute
    pytest no longer reads.) Another `--dist` keeps xdist's own scheduler."""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class ByModuleGroup(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = Path(nodeid.split("::", 1)[0]).stem
            return MODULE_GROUP.get(module, module)

    return ByModuleGroup(config, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Refuse a test that uses a shared costly fixture from a module outside its group: it would build the
    fixture a second time on another worker."""
    for item in items:
        for fixture, modules in SHARED_FIXTURE_MODULES.items():
            if fixture in item.fixturenames and item.module.__name__ not in modules:
                raise pytest.UsageError(
                    f"{item.nodeid} uses the session fixture {fixture}: add {item.module.__name__!r} to "
                    f"SHARED_FIXTURE_MODULES[{fixture!r}] in tests/conftest.py"
                )


@pytest.fixture(autouse=True)
def keep_mlflow_tracking_uri():
    """Lightning's MLFlowLogger calls mlflow.set_tracking_uri, which exports MLFLOW_TRACKING_URI into this
    process: undo it after each test, so later subprocesses and notebooks use their own stores."""
    before = os.environ.get("MLFLOW_TRACKING_URI")
    yield
    if before is None:
        os.environ.pop("MLFLOW_TRACKING_URI", None)
    else:
        os.environ["MLFLOW_TRACKING_URI"] = before


def pytest_addoption(parser):
    parser.addoption(
        "--screenshots",
        metavar="DIR",
        help="tests/test_browser.py saves its screenshots here (e.g. docs/) instead of pytest's tmp folder",
    )


@pytest.fixture(scope="session")
def project_root() -> Path:
    return ROOT


@pytest.fixture(scope="session")
def mini_archive() -> Path:
    """The 2,000-review IMDB archive (../shared/data/imdb/aclImdb_mini.tar.gz), checksum-checked."""
    path = SHARED_DATA / "imdb" / "aclImdb_mini.tar.gz"
    if not path.is_file():
        pytest.skip(f"offline data not found at {path}")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == MINI_SHA256
    return path


@pytest.fixture(scope="session")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """(encoded dir, prepared dir holding vocab.json)."""
    root = tmp_path_factory.mktemp("data")
    write_encoded(root / "encoded")
    write_vocab(root / "prepared")
    return root / "encoded", root / "prepared"


@pytest.fixture(scope="session")
def smoke_pipeline(tmp_path_factory, project_root, mini_archive) -> tuple[Path, dict, str]:
    """A git+DVC copy of the project after the README's `dvc exp run dvc.yaml -S experiment=smoke` on the
    mini archive: (repo, env, the command's output)."""
    from rnnlab.data.download import sha256_file

    work = tmp_path_factory.mktemp("smoke")
    env = project_copy(
        project_root,
        work,
        mlflow_store=True,
        RNNLAB_IMDB_SOURCE=str(mini_archive),
        RNNLAB_IMDB_SHA256=sha256_file(mini_archive),
    )
    # gru gets its own width, so that each run's model/hidden_size tells the cells apart
    command = ["dvc", "exp", "run", "dvc.yaml", "-S", "experiment=smoke", "-S", "models.gru.hidden_size=24"]
    return work, env, run(command, work, env)
