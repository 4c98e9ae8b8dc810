"""Team mode training against the team server (`tests/team.py`), as the trainer, on tiny synthetic data with
the server and credentials from the environment only: a Hydra sweep (one parent run and its children), a
`ddp_spawn_cpu` run and a `torchrun` DDP run on two CPU processes (one MLflow run each, logged by rank 0),
and a sweep through hydra-submitit-launcher's local executor. Each test logs to an experiment of its own."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import mlflow

from postgres import free_port
from synthetic import run_folders, tiny_overrides
from team import (
    NEEDS_POSTGRES,
    READER,
    TRAINER,
    all_secrets,
    as_user,
    assert_no_secret,
    bin_path,
    user_env,
)

pytest_plugins = ["team"]
pytestmark = NEEDS_POSTGRES
EPOCH_METRICS = ("train/loss", "val/loss", "val/acc", "train/seq_per_s")


def train(command: list[str], root: Path, work: Path, data: tuple[Path, Path], url: str, *args: str) -> str:
    """`command pipelines/train.py` (in the project `root`) on the tiny settings into `work`, tracking to
    $MLFLOW_TRACKING_URI (`url`, not `logger.tracking_uri`) as the trainer; its output."""
    overrides = [o for o in tiny_overrides(work, *data, url) if not o.startswith("logger.tracking_uri=")]
    done = subprocess.run(
        [*command, "pipelines/train.py", *args, *overrides, "trainer.max_epochs=1"],  # -m first
        cwd=root,
        env=user_env(TRAINER, url, OMP_NUM_THREADS="1"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, f"exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def runs_of(url: str, experiment: str) -> list:
    """The runs of `experiment`, read by the read-only user."""
    client = mlflow.MlflowClient(url)
    with as_user(READER):
        return client.search_runs([client.get_experiment_by_name(experiment).experiment_id])


def check_trained(url: str, run, work: Path, epochs: int, world_size: int) -> None:
    """A finished training run on the server: its params, one point per epoch of each metric, its artifacts
    proxied by the server, and the run folder whose report names it."""
    assert run.info.status == "FINISHED" and run.data.tags["world_size"] == str(world_size)
    params = run.data.params
    assert params["model/hidden_size"] == "8" and params["trainer/max_epochs"] == str(epochs)
    assert run.info.artifact_uri.startswith("mlflow-artifacts:/"), run.info.artifact_uri
    client = mlflow.MlflowClient(url)
    with as_user(READER):
        for key in EPOCH_METRICS:
            assert len(client.get_metric_history(run.info.run_id, key)) == epochs, key
        assert 0 <= run.data.metrics["val/acc_best"] <= 1 and "test/acc" in run.data.metrics
        assert "config.yaml" in {a.path for a in client.list_artifacts(run.info.run_id)}
    (folder,) = run_folders(work, params["model/name"])
    assert json.loads((folder / "report.json").read_text())["run_id"] == run.info.run_id


def test_sweep_is_one_parent_run_with_its_children_on_the_server(
    team_server, postgres, project_root, data, tmp_path
):
    url, _ = team_server
    args = ["-m", "model=rnn,gru", "logger.experiment_name=team-sweep"]
    train([sys.executable], project_root, tmp_path, data, url, *args)
    runs = runs_of(url, "team-sweep")
    (parent,) = [run for run in runs if run.data.tags.get("sweep") == "parent"]
    children = [run for run in runs if run is not parent]
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/children"] == 2
    assert "model=rnn,gru" in parent.data.params["sweep/overrides"].split()
    assert sorted(run.data.params["model/name"] for run in children) == ["gru", "rnn"]
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["rnnlab.source"] == "sweep"
        check_trained(url, run, tmp_path, epochs=1, world_size=1)
    best = max(children, key=lambda run: run.data.metrics["val/acc_best"])
    assert parent.data.tags["best_child_run"] == best.info.run_name
    with as_user(TRAINER):
        assert_no_secret(mlflow.MlflowClient(url), runs, all_secrets(postgres), tmp_path / "downloaded")


def test_ddp_spawn_run_is_one_run_logged_by_rank_zero(team_server, postgres, project_root, data, tmp_path):
    url, _ = team_server
    args = ["model=gru", "trainer=ddp_spawn_cpu", "logger.experiment_name=team-ddp-spawn"]
    train([sys.executable], project_root, tmp_path, data, url, *args)
    (run,) = runs_of(url, "team-ddp-spawn")  # two processes, one run
    check_trained(url, run, tmp_path, epochs=1, world_size=2)
    with as_user(TRAINER):
        assert_no_secret(mlflow.MlflowClient(url), [run], all_secrets(postgres), tmp_path / "downloaded")


def test_torchrun_ddp_on_two_cpu_processes_is_one_run(team_server, postgres, project_root, data, tmp_path):
    """`torchrun --nnodes 1 --nproc-per-node 2` with `trainer=ddp` on the CPU (gloo): torchrun starts both
    ranks (Lightning does not relaunch them) and only rank 0 talks to the server."""
    url, _ = team_server
    torchrun = [bin_path("torchrun"), "--nnodes=1", "--nproc-per-node=2", f"--master-port={free_port()}"]
    cpu = ["trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true"]
    args = ["model=gru", "trainer=ddp", *cpu, "logger.experiment_name=team-torchrun"]
    output = train(torchrun, project_root, tmp_path, data, url, *args)
    assert "distributed_backend=gloo" in output
    members = sorted(re.findall(r"GLOBAL_RANK: (\d+), MEMBER: (\d+/\d+)", output))
    assert members == [("0", "1/2"), ("1", "2/2")], members  # two processes, none relaunched
    (run,) = runs_of(url, "team-torchrun")
    check_trained(url, run, tmp_path, epochs=1, world_size=2)
    with as_user(TRAINER):
        assert_no_secret(mlflow.MlflowClient(url), [run], all_secrets(postgres), tmp_path / "downloaded")


def test_sweep_through_submitits_local_executor(team_server, postgres, project_root, data, tmp_path):
    """hydra-submitit-launcher's `submitit_local`: each job in a process of its own that submitit started (the
    SLURM launcher's code path, with the local executor); still one parent run and its children."""
    url, _ = team_server
    args = ["-m", "hydra/launcher=submitit_local", "model=rnn,gru", "logger.experiment_name=team-submitit"]
    train([sys.executable], project_root, tmp_path, data, url, *args)
    runs = runs_of(url, "team-submitit")
    (parent,) = [run for run in runs if run.data.tags.get("sweep") == "parent"]
    children = [run for run in runs if run is not parent]
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/children"] == 2
    logs = {path: path.read_text() for path in (tmp_path / "multirun" / ".submitit").glob("*/*_0_log.*")}
    for run in children:
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        check_trained(url, run, tmp_path, epochs=1, world_size=1)
        (job,) = {path.parent for path, text in logs.items() if run.info.run_name in text}
        assert "Job completed successfully" in logs[job / f"{job.name}_0_log.out"]
    assert sorted(run.data.params["model/name"] for run in children) == ["gru", "rnn"]
    secrets = all_secrets(postgres)
    for path in (p for p in (tmp_path / "multirun").rglob("*") if p.is_file()):  # pickles, logs, configs
        assert not any(secret.encode() in path.read_bytes() for secret in secrets), path
    with as_user(TRAINER):
        assert_no_secret(mlflow.MlflowClient(url), runs, secrets, tmp_path / "downloaded")
