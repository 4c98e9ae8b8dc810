"""rnnlab.optuna_storage: which `hydra.sweeper.storage` URLs are refused and why, and Optuna's tables made
once when workers open a fresh storage at the same instant (SQLite; PostgreSQL from tests/team.py)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import optuna
import pytest

from postgres import postgres_bin
from rnnlab.errors import ConfigError
from rnnlab.optuna_storage import prepare, storage_url

pytest_plugins = ["team"]

# A worker as the sweeper starts one: prepare the storage, then create or load the study.
WORKER = """
import sys, time
import optuna
from rnnlab.optuna_storage import prepare
url, start = sys.argv[1], float(sys.argv[2])
time.sleep(max(0.0, start - time.time()))
prepare(url)
optuna.create_study(study_name="search", storage=url, direction="maximize", load_if_exists=True)
"""


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("postgresql+psycopg2://bob:hunter2@db:5432/optuna", "holds a password"),
        ("postgresql://bob@db:5432/optuna", "write postgresql+psycopg2://"),
        ("postgresql+psycopg2://bob@db:5432", "must be postgresql+psycopg2://USER@HOST:PORT/DB"),
        ("mysql://bob@db/optuna", "must be postgresql+psycopg2://USER@HOST:PORT/DB"),
        ("sqlite://", "or sqlite:///FILE"),
        ("not a url", "must be"),
    ],
)
def test_storage_urls_that_are_refused(value, message):
    with pytest.raises(ConfigError, match="hydra.sweeper.storage") as refused:
        storage_url(value)
    assert message in str(refused.value) and "hunter2" not in str(refused.value)


def test_unreachable_storage_is_one_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot open .*missing"):
        prepare(f"sqlite:///{tmp_path / 'missing' / 'optuna.db'}")


def start_at_once(url: str, env: dict[str, str], workers: int) -> list[subprocess.Popen]:
    start = time.time() + 2  # once every worker has imported Optuna and SQLAlchemy (~0.3 s)
    return [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, str(start)], env=env, stderr=subprocess.PIPE, text=True
        )
        for _ in range(workers)
    ]


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_workers_opening_a_fresh_storage_at_once_all_succeed(dialect, request, tmp_path):
    """Three rounds of three workers, each round on a fresh storage. Without the lock (measured, six rounds
    each), a worker failed in four of six rounds on SQLite and four of six on PostgreSQL."""
    env = dict(os.environ)
    storages = []  # (the workers' URL, the URL this test reads the study with)
    if dialect == "sqlite":
        storages = [(f"sqlite:///{tmp_path / f'optuna{i}.db'}",) * 2 for i in range(3)]
    else:
        if postgres_bin() is None:
            pytest.skip("PostgreSQL not installed (apt-get install postgresql)")
        server = request.getfixturevalue("postgres")
        env["PGPASSWORD"] = server.password
        for i in range(3):
            server.create_database(f"optuna_race{i}")
            urls = (server.uri(f"optuna_race{i}", with_password=False), server.uri(f"optuna_race{i}"))
            storages.append(tuple(url.replace("postgresql:", "postgresql+psycopg2:") for url in urls))
    for url, readable in storages:
        workers = start_at_once(url, env, workers=3)
        failures = [worker.stderr.read() for worker in workers if worker.wait(timeout=120) != 0]
        assert not failures, failures[0]
        assert optuna.get_all_study_names(readable) == ["search"]
