"""Team mode end to end: `rnnlab server start` on PostgreSQL (127.0.0.1, run as an unprivileged user) with
basic auth and proxied artifacts; the smoke pipeline logs to it as a trainer; a read-only user reads runs and
the registry and predicts with the champion; the pipeline's outputs go through a DVC directory remote to a
fresh clone, where nothing retrains. One pipeline run for the whole module."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from dvc_repo import commit, project_copy, run
from postgres import free_port, postgres_bin, running_postgres
from rnnlab.data.download import sha256_file

pytestmark = pytest.mark.skipif(
    postgres_bin() is None, reason="PostgreSQL not installed (apt-get install postgresql)"
)

ADMIN = ("admin", "admin-" + os.urandom(8).hex())
TRAINER = ("alice", "alice-" + os.urandom(8).hex())
READER = ("reader", "reader-" + os.urandom(8).hex())
MODEL = "imdb-sentiment"
REVIEWS = ["A wonderful, moving film with a great cast.", "Dull, predictable and far too long."]


def rnnlab(*args: str, env: dict, cwd: Path | None = None) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "rnnlab"), *args]
    return subprocess.run(command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300)


@contextmanager
def as_user(user: tuple[str, str]):
    """MLflow's client reads its credentials from the environment at each request."""
    saved = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD")}
    os.environ["MLFLOW_TRACKING_USERNAME"], os.environ["MLFLOW_TRACKING_PASSWORD"] = user
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture(scope="module")
def postgres():
    with running_postgres(postgres_bin()) as server:
        yield server


@pytest.fixture(scope="module")
def server(postgres, tmp_path_factory):
    """`rnnlab server start` on a new PostgreSQL database (its password in $PGPASSWORD); admin-made users:
    a trainer and a reader; the experiment and registered model made by the admin, the trainer granted EDIT
    on both."""
    import mlflow
    from mlflow.server import get_app_client

    folder = tmp_path_factory.mktemp("server")
    port = free_port()
    postgres.create_database("mlflow")
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1], "PGPASSWORD": postgres.password}
    log = open(folder / "server.log", "w")  # noqa: SIM115 (the server writes to it until the end)
    command = ["--db", postgres.uri("mlflow", with_password=False), "--artifacts", str(folder / "artifacts")]
    process = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "rnnlab"),
            "server",
            "start",
            *command,
            "--port",
            str(port),
            "--workers",
            "1",
        ],
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


@pytest.fixture(scope="module")
def pipeline(server, tmp_path_factory, project_root, mini_archive):
    """The smoke pipeline (`dvc exp run -S experiment=smoke`) in a git+DVC copy, logging to the server as the
    trainer (credentials from the environment only); the results committed."""
    url, _ = server
    work = tmp_path_factory.mktemp("team-project")
    env = project_copy(
        project_root, work, RNNLAB_IMDB_SOURCE=str(mini_archive), RNNLAB_IMDB_SHA256=sha256_file(mini_archive)
    )
    env.update(
        MLFLOW_TRACKING_URI=url, MLFLOW_TRACKING_USERNAME=TRAINER[0], MLFLOW_TRACKING_PASSWORD=TRAINER[1]
    )
    done = subprocess.run(  # dvc_repo.run's 10 minutes are too few on a busy machine with the server on it
        ["dvc", "exp", "run", "-S", "experiment=smoke"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0 and "Running stage 'register'" in done.stdout, done.stdout + done.stderr
    commit(work, env, "smoke results")
    return work, env


def test_bad_input_is_one_clear_line(postgres, tmp_path):
    env = {**os.environ, "MLFLOW_AUTH_ADMIN_PASSWORD": ADMIN[1]}
    good_db, artifacts = postgres.uri("postgres"), str(tmp_path / "artifacts")
    wrong_password = good_db.replace(postgres.password, "not-the-password")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        cases = {
            "set MLFLOW_AUTH_ADMIN_PASSWORD": (["--db", good_db], {"MLFLOW_AUTH_ADMIN_PASSWORD": ""}),
            "--db must be postgresql://": (["--db", "mysql://u:p@host/db"], {}),
            "names no database": (["--db", good_db.rsplit("/", 1)[0]], {}),
            "--db: cannot connect to postgresql+psycopg2://rnnlab:***@": (["--db", wrong_password], {}),
            "cannot listen on 127.0.0.1": (["--db", good_db, "--port", str(taken.getsockname()[1])], {}),
            "--workers must be at least 1": (["--db", good_db, "--workers", "0"], {}),
        }
        for message, (args, extra) in cases.items():
            done = rnnlab("server", "start", *args, "--artifacts", artifacts, env={**env, **extra})
            assert done.returncode == 2 and done.stderr.startswith("rnnlab: error: "), (message, done.stderr)
            assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
            assert postgres.password not in done.stderr + done.stdout
    done = rnnlab("server", "start", "--db", good_db, "--artifacts", "http://host/x", env=env)
    assert done.returncode == 2 and "--artifacts must be a folder or a s3/" in done.stderr
    assert not Path(artifacts).exists(), "a refused start created the artifacts folder"


def test_no_or_wrong_credentials_are_refused(server):
    url, _ = server
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=10"
    assert requests.get(search, timeout=30).status_code == 401
    assert requests.get(search, auth=(READER[0], "wrong-password"), timeout=30).status_code == 401
    assert requests.get(search, auth=READER, timeout=30).status_code == 200


def test_pipeline_logs_runs_artifacts_and_registry_to_the_server(server, pipeline):
    import json

    import mlflow

    url, folder = server
    work, _ = pipeline
    client = mlflow.MlflowClient(url)
    with as_user(READER):
        experiment = client.get_experiment_by_name("imdb")
        runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
        for cell in ("rnn", "lstm", "gru", "bilstm"):
            report = json.loads((work / f"reports/imdb/train/{cell}.json").read_text())
            logged = runs[report["run_id"]]
            assert logged.info.status == "FINISHED" and logged.data.params["model/hidden_size"] == "16"
            assert logged.data.metrics["test/acc"] == pytest.approx(report["test/acc"], abs=1e-6)
            assert logged.info.artifact_uri.startswith("mlflow-artifacts:/"), logged.info.artifact_uri
            assert client.list_artifacts(report["run_id"]), f"no artifacts for {cell}"
            stored = folder / "artifacts" / experiment.experiment_id / report["run_id"] / "artifacts"
            assert any(stored.rglob("*")), f"{stored} is empty: artifacts were not proxied by the server"
        registered = json.loads((work / "reports/imdb/register.json").read_text())
        version = client.get_model_version_by_alias(MODEL, "champion")
        assert (
            version.run_id
            == json.loads((work / f"reports/imdb/train/{registered['model']}.json").read_text())["run_id"]
        )
    assert not (work / "mlflow.db").exists() and not (work / "mlartifacts").exists()


def test_no_secret_in_any_run(server, pipeline, postgres, tmp_path):
    """Params, tags and artifacts of every run (read back through the API) hold no password."""
    import mlflow

    url, _ = server
    secrets = [ADMIN[1], TRAINER[1], READER[1], postgres.password]
    client = mlflow.MlflowClient(url)
    with as_user(ADMIN):
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert len(runs) >= 5
        for logged in runs:
            values = " ".join([*logged.data.params.values(), *logged.data.tags.values()])
            assert not any(secret in values for secret in secrets), logged.info.run_id
            local = Path(
                client.download_artifacts(logged.info.run_id, "", str(tmp_path / logged.info.run_id))
            )
            for path in (p for p in local.rglob("*") if p.is_file()):
                data = path.read_bytes()
                assert not any(secret.encode() in data for secret in secrets), path
        for version in client.search_model_versions(f"name='{MODEL}'"):
            assert not any(secret in " ".join(version.tags.values()) for secret in secrets)


def test_read_only_user_cannot_write(server, pipeline):
    import mlflow
    from mlflow.exceptions import MlflowException

    url, _ = server
    client = mlflow.MlflowClient(url)
    with as_user(READER):
        experiment = client.get_experiment_by_name("imdb").experiment_id
        existing = client.search_runs([experiment], max_results=1)[0].info.run_id
        champion = client.get_model_version_by_alias(MODEL, "champion")
        writes = {
            "create a run": lambda: client.create_run(experiment),
            "tag a run": lambda: client.set_tag(existing, "by", "reader"),
            "log a metric": lambda: client.log_metric(existing, "val/acc", 1.0),
            "register a version": lambda: client.create_model_version(
                MODEL, champion.source, champion.run_id
            ),
            "move the alias": lambda: client.set_registered_model_alias(MODEL, "champion", "1"),
        }
        for what, write in writes.items():
            with pytest.raises(MlflowException) as refused:
                write()
            assert refused.value.error_code == "PERMISSION_DENIED", what
    with as_user(ADMIN):
        assert "by" not in client.get_run(existing).data.tags


def test_predict_with_the_champion_from_the_server(server, pipeline, tmp_path):
    url, _ = server
    _, env = pipeline
    reader = {**env, "MLFLOW_TRACKING_USERNAME": READER[0], "MLFLOW_TRACKING_PASSWORD": READER[1]}
    done = rnnlab("predict", "--model", f"models:/{MODEL}@champion", *REVIEWS, env=reader, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^(pos|neg) [01]\.\d{4}  ", done.stdout, re.MULTILINE)) == 2, done.stdout
    anonymous = {k: v for k, v in reader.items() if k != "MLFLOW_TRACKING_PASSWORD"}
    done = rnnlab("predict", "--model", f"models:/{MODEL}@champion", REVIEWS[0], env=anonymous, cwd=tmp_path)
    assert done.returncode != 0


def test_an_experiment_a_run_creates_keeps_artifacts_on_the_server(server, tmp_path):
    import mlflow

    from rnnlab.tracking import ensure_experiment

    url, _ = server
    with as_user(TRAINER):
        experiment = ensure_experiment("made-by-a-run", url, tmp_path)
        location = mlflow.MlflowClient(url).get_experiment(experiment).artifact_location
    assert location.startswith("mlflow-artifacts:/"), location


def test_local_runs_copied_to_the_server(server, tmp_path):
    """mlflow-export-import's two commands copy an experiment of a local SQLite store to the server."""
    import mlflow

    url, _ = server
    local = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = mlflow.MlflowClient(local)
    experiment = client.create_experiment("imdb", artifact_location=(tmp_path / "mlartifacts").as_uri())
    original = client.create_run(experiment, run_name="imdb-gru-local").info.run_id
    client.log_param(original, "model/hidden_size", "16")
    for step, value in enumerate((0.5, 0.6, 0.7)):
        client.log_metric(original, "val/acc", value, step=step)
    (tmp_path / "summary.txt").write_text("GRU summary\n")
    client.log_artifact(original, str(tmp_path / "summary.txt"))
    client.set_terminated(original)
    bin_dir = Path(sys.executable).parent
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    exported = tmp_path / "exported"
    for command, uri in (
        (["export-experiment", "--experiment", "imdb", "--output-dir", str(exported)], local),
        (["import-experiment", "--experiment-name", "imdb", "--input-dir", str(exported)], url),
    ):
        user = dict(zip(("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"), TRAINER, strict=True))
        run([str(bin_dir / command[0]), *command[1:]], tmp_path, {**env, "MLFLOW_TRACKING_URI": uri, **user})
    server_client = mlflow.MlflowClient(url)
    with as_user(READER):
        experiment = server_client.get_experiment_by_name("imdb").experiment_id
        (copied,) = server_client.search_runs([experiment], "attributes.run_name = 'imdb-gru-local'")
        assert copied.data.params["model/hidden_size"] == "16" and copied.info.status == "FINISHED"
        history = server_client.get_metric_history(copied.info.run_id, "val/acc")
        assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.6), (2, 0.7)]
        assert copied.info.artifact_uri.startswith("mlflow-artifacts:/")
        path = server_client.download_artifacts(copied.info.run_id, "summary.txt", str(tmp_path / "back"))
        assert Path(path).read_text() == "GRU summary\n"


def test_dvc_remote_round_trip(pipeline, tmp_path):
    """`dvc push` to a directory remote; a fresh clone `dvc pull`s, has nothing to reproduce, and predicts."""
    work, env = pipeline
    local = {k: v for k, v in env.items() if not k.startswith("MLFLOW_")}
    run(["dvc", "remote", "add", "-d", "team", str(tmp_path / "remote")], work, local)
    commit(work, local, "DVC remote")
    assert re.search(r"\d+ files? pushed", run(["dvc", "push"], work, local))
    clone = tmp_path / "clone"
    run(["git", "clone", "-q", str(work), str(clone)], tmp_path, local)
    assert not (clone / "models").exists()
    run(["dvc", "pull", "dvc.yaml"], clone, local)  # the imdb pipeline: the others never ran in this copy
    assert "Data and pipelines are up to date" in run(["dvc", "status", "dvc.yaml"], clone, local)
    assert "Running stage" not in run(["dvc", "repro"], clone, local)
    answers = [rnnlab("predict", *REVIEWS, env=local, cwd=folder) for folder in (work, clone)]
    assert answers[1].returncode == 0, answers[1].stderr
    assert answers[1].stdout == answers[0].stdout and len(answers[1].stdout.splitlines()) == 2
