"""Team mode, the server alone: `rnnlab server start` refuses bad input in one line, basic auth refuses no or
wrong credentials, an experiment a run creates keeps its artifacts on the server, and local runs are copied
to it with mlflow-export-import."""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import requests

from dvc_repo import run
from team import ADMIN, NEEDS_POSTGRES, READER, TRAINER, as_user, rnnlab

pytest_plugins = ["team"]
pytestmark = NEEDS_POSTGRES


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


def test_no_or_wrong_credentials_are_refused(team_server):
    url, _ = team_server
    search = f"{url}/api/2.0/mlflow/experiments/search?max_results=10"
    assert requests.get(search, timeout=30).status_code == 401
    assert requests.get(search, auth=(READER[0], "wrong-password"), timeout=30).status_code == 401
    assert requests.get(search, auth=READER, timeout=30).status_code == 200


def test_an_experiment_a_run_creates_keeps_artifacts_on_the_server(team_server, tmp_path):
    import mlflow

    from rnnlab.tracking import ensure_experiment

    url, _ = team_server
    with as_user(TRAINER):
        experiment = ensure_experiment("made-by-a-run", url, tmp_path)
        location = mlflow.MlflowClient(url).get_experiment(experiment).artifact_location
    assert location.startswith("mlflow-artifacts:/"), location


def test_local_runs_copied_to_the_server(team_server, tmp_path):
    """mlflow-export-import's two commands copy an experiment of a local SQLite store to the server."""
    import mlflow

    url, _ = team_server
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
