"""Team mode end to end: the smoke pipeline logs to the team server (`tests/team.py`) as a trainer; a
read-only user reads runs and the registry, predicts with the champion and serves it with `mlflow models
serve`; the pipeline's outputs go through a DVC directory remote to a fresh clone, where nothing retrains.
One pipeline run for the whole module."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import mlflow
import pytest
import requests
import yaml

from dvc_repo import commit, project_copy, run, stop_group
from postgres import free_port
from rnnlab.data.download import sha256_file
from team import (
    ADMIN,
    MODEL,
    NEEDS_POSTGRES,
    READER,
    REVIEWS,
    TRAINER,
    all_secrets,
    as_user,
    assert_no_secret,
    bin_path,
    rnnlab,
)

pytest_plugins = ["team"]
pytestmark = NEEDS_POSTGRES


@pytest.fixture(scope="module")
def pipeline(team_server, tmp_path_factory, project_root, mini_archive):
    """The smoke pipeline (`dvc exp run -S experiment=smoke`) in a git+DVC copy, logging to the server as the
    trainer (credentials from the environment only); the results committed."""
    url, _ = team_server
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


def composed(work: Path) -> dict:
    """The params DVC composed for the run (paths and experiment name as this checkout's conf/ sets them)."""
    return yaml.safe_load((work / "params.yaml").read_text())


def test_pipeline_logs_runs_artifacts_and_registry_to_the_server(team_server, pipeline):
    url, folder = team_server
    work, _ = pipeline
    params = composed(work)
    reports = work / params["paths"]["reports_dir"]
    client = mlflow.MlflowClient(url)
    with as_user(READER):
        experiment = client.get_experiment_by_name(params["logger"]["experiment_name"])
        runs = {r.info.run_id: r for r in client.search_runs([experiment.experiment_id])}
        for cell in ("rnn", "lstm", "gru", "bilstm"):
            report = json.loads((reports / "train" / f"{cell}.json").read_text())
            logged = runs[report["run_id"]]
            assert logged.info.status == "FINISHED" and logged.data.params["model/hidden_size"] == "16"
            assert logged.data.metrics["test/acc"] == pytest.approx(report["test/acc"], abs=1e-6)
            assert logged.info.artifact_uri.startswith("mlflow-artifacts:/"), logged.info.artifact_uri
            assert client.list_artifacts(report["run_id"]), f"no artifacts for {cell}"
            stored = folder / "artifacts" / experiment.experiment_id / report["run_id"] / "artifacts"
            assert any(stored.rglob("*")), f"{stored} is empty: artifacts were not proxied by the server"
        registered = json.loads((reports / "register.json").read_text())
        version = client.get_model_version_by_alias(MODEL, "champion")
        assert (
            version.run_id
            == json.loads((reports / "train" / f"{registered['model']}.json").read_text())["run_id"]
        )
    assert not (work / "mlflow.db").exists() and not (work / "mlartifacts").exists()


def test_no_secret_in_any_run(team_server, pipeline, postgres, tmp_path):
    """Params, tags and artifacts of every run on the server (read back through the API) hold no password."""
    url, _ = team_server
    client = mlflow.MlflowClient(url)
    with as_user(ADMIN):
        runs = client.search_runs([e.experiment_id for e in client.search_experiments()])
        assert len(runs) >= 5
        assert_no_secret(client, runs, all_secrets(postgres), tmp_path)
        for version in client.search_model_versions(f"name='{MODEL}'"):
            assert not any(secret in " ".join(version.tags.values()) for secret in all_secrets(postgres))


def test_read_only_user_cannot_write(team_server, pipeline):
    from mlflow.exceptions import MlflowException

    url, _ = team_server
    client = mlflow.MlflowClient(url)
    with as_user(READER):
        experiment = client.get_experiment_by_name(composed(pipeline[0])["logger"]["experiment_name"])
        experiment = experiment.experiment_id
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


def test_predict_with_the_champion_from_the_server(team_server, pipeline, tmp_path):
    url, _ = team_server
    _, env = pipeline
    reader = {**env, "MLFLOW_TRACKING_USERNAME": READER[0], "MLFLOW_TRACKING_PASSWORD": READER[1]}
    done = rnnlab("predict", "--model", f"models:/{MODEL}@champion", *REVIEWS, env=reader, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(re.findall(r"^(pos|neg) [01]\.\d{4}  ", done.stdout, re.MULTILINE)) == 2, done.stdout
    anonymous = {k: v for k, v in reader.items() if k != "MLFLOW_TRACKING_PASSWORD"}
    done = rnnlab("predict", "--model", f"models:/{MODEL}@champion", REVIEWS[0], env=anonymous, cwd=tmp_path)
    assert done.returncode != 0


def test_mlflow_models_serve_pulls_the_champion_from_the_server(team_server, pipeline, tmp_path):
    """Plain `mlflow models serve -m models:/<name>@champion` as the reader (credentials from the environment)
    downloads the model from the server and answers POST /invocations as `rnnlab predict` does."""
    url, _ = team_server
    _, env = pipeline
    reader = {**env, "MLFLOW_TRACKING_USERNAME": READER[0], "MLFLOW_TRACKING_PASSWORD": READER[1]}
    model, port = f"models:/{MODEL}@champion", free_port()
    command = ["models", "serve", "-m", model, "--env-manager", "local", "-h", "127.0.0.1", "-p", str(port)]
    log_path = tmp_path / "serve.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            [bin_path("mlflow"), *command], env=reader, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,  # the scoring server runs in a child process: stop the whole group
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not pings(f"http://127.0.0.1:{port}/ping"):
            assert process.poll() is None, f"mlflow models serve exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no /ping answer after 180 s:\n{log_path.read_text()}"
            time.sleep(0.5)
        answer = requests.post(f"http://127.0.0.1:{port}/invocations", json={"inputs": REVIEWS}, timeout=60)
    finally:
        stop_group(process, timeout=30)
    assert answer.status_code == 200, answer.text
    served = [(row["label"], f"{row['probability']:.4f}") for row in answer.json()["predictions"]]
    done = rnnlab("predict", "--model", model, *REVIEWS, env=reader, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert served == [tuple(line.split()[:2]) for line in done.stdout.splitlines()], (served, done.stdout)


def pings(url: str) -> bool:
    try:
        return requests.get(url, timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


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
