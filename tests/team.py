"""Team mode test plumbing, loaded as a pytest plugin by tests/test_team_*.py (`pytest_plugins = ["team"]`):
one PostgreSQL cluster and one `rnnlab server start` on it per test session (127.0.0.1, basic auth, proxied
artifacts), its users, and the checks every team test shares."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from postgres import free_port, postgres_bin, running_postgres

NEEDS_POSTGRES = pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL not installed (apt-get install postgresql)"
)
ADMIN = ("admin", "admin-" + os.urandom(8).hex())
TRAINER = ("alice", "alice-" + os.urandom(8).hex())
READER = ("reader", "reader-" + os.urandom(8).hex())
MODEL = "imdb-sentiment"
REVIEWS = ["A wonderful, moving film with a great cast.", "Dull, predictable and far too long."]
CREDENTIALS = ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")


def bin_path(name: str) -> str:
    """A console script of this Python's environment (rnnlab, mlflow, torchrun, ...)."""
    return str(Path(sys.executable).parent / name)


def rnnlab(*args: str, env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [bin_path("rnnlab"), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )


def user_env(user: tuple[str, str], url: str, **extra: str) -> dict[str, str]:
    """This environment without MLflow/rnnlab settings, tracking to `url` as `user`, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RNNLAB_"))}
    return {**env, "MLFLOW_TRACKING_URI": url, **dict(zip(CREDENTIALS, user, strict=True)), **extra}


@contextmanager
def as_user(user: tuple[str, str]):
    """MLflow's client reads its credentials from the environment at each request."""
    saved = {k: os.environ.get(k) for k in CREDENTIALS}
    os.environ.update(zip(CREDENTIALS, user, strict=True))
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="session")
def postgres():
    with running_postgres(postgres_bin()) as server:
        yield server


@pytest.fixture(scope="session")
def team_server(postgres, tmp_path_factory):
    """(url, folder): `rnnlab server start` on a new PostgreSQL database (its password in $PGPASSWORD),
    artifacts in <folder>/artifacts; admin-made users: a trainer and a reader; the experiment `imdb` and
    registered model made by the admin, the trainer granted EDIT on both."""
    import mlflow
    from mlflow.server import get_app_client

    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    postgres.create_database("mlflow")
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "PGPASSWORD": postgres.password}
    log = open(folder / "server.log", "w")  # noqa: SIM115 (the server writes to it until the end)
    db = ["--db", postgres.uri("mlflow", with_password=False), "--artifacts", str(folder / "artifacts")]
    process = subprocess.Popen(
        [bin_path("rnnlab"), "server", "start", *db, "--port", str(port), "--workers", "1"],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 240
    while f"rnnlab server: MLflow at {url}" not in (folder / "server.log").read_text():
        assert process.poll() is None and time.monotonic() < deadline, (folder / "server.log").read_text()
        time.sleep(0.5)
    try:
        with as_user(ADMIN):
            auth = get_app_client("basic-auth", tracking_uri=url)
            for name, password in (TRAINER, READER):
                auth.create_user(name, password)
            client = mlflow.MlflowClient(url)
            experiment = client.create_experiment("imdb")
            client.create_registered_model(MODEL)
            auth.grant_user_permission(TRAINER[0], "experiment", experiment, "EDIT")
            auth.grant_user_permission(TRAINER[0], "registered_model", MODEL, "EDIT")
        yield url, folder
    finally:
        process.send_signal(signal.SIGTERM)  # stops the whole server, workers included
        process.wait(timeout=60)
        log.close()
        with pytest.raises(requests.ConnectionError):
            requests.get(f"{url}/health", timeout=10)


def assert_no_secret(client, runs: list, secrets: list[str], folder: Path) -> None:
    """No secret in the params, tags or artifact files (downloaded into `folder`) of `runs`."""
    for logged in runs:
        values = " ".join([*logged.data.params.values(), *logged.data.tags.values()])
        assert not any(secret in values for secret in secrets), logged.info.run_id
        local = Path(client.download_artifacts(logged.info.run_id, "", str(folder / logged.info.run_id)))
        for path in (p for p in local.rglob("*") if p.is_file()):
            data = path.read_bytes()
            assert not any(secret.encode() in data for secret in secrets), path


def all_secrets(postgres) -> list[str]:
    return [ADMIN[1], TRAINER[1], READER[1], postgres.password]
