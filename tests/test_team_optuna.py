"""Team mode: one Optuna search run by two workers started at once, its study in the team's PostgreSQL
(`hydra.sweeper.storage`, the password in $PGPASSWORD) and its trials on the team server (tests/team.py), as
the trainer, on tiny synthetic data."""

from __future__ import annotations

import subprocess
import sys

import mlflow
import optuna
import pytest
import yaml

from synthetic import tiny_overrides
from team import NEEDS_POSTGRES, TRAINER, all_secrets, as_user, assert_no_secret, user_env

pytest_plugins = ["team"]
pytestmark = NEEDS_POSTGRES
STUDY, EXPERIMENT = "team-search", "team-optuna"
SEARCHED = ("optim.weight_decay", "model.pooling", "model.embedding_dropout", "model.head_dropout")


def psycopg2(uri: str) -> str:
    return uri.replace("postgresql:", "postgresql+psycopg2:", 1)


def test_two_workers_started_at_once_share_one_study(team_server, postgres, project_root, data, tmp_path):
    url, _ = team_server
    postgres.create_database("optuna")
    storage = psycopg2(postgres.uri("optuna", with_password=False))
    env = user_env(TRAINER, url, OMP_NUM_THREADS="1", PGPASSWORD=postgres.password)
    workers = []
    for worker in (1, 2):  # each its own sampler seed, else both draw the same first trials
        work = tmp_path / f"worker{worker}"
        tiny = [o for o in tiny_overrides(work, *data, url) if not o.startswith("logger.tracking_uri=")]
        search = [f"hydra.sweeper.storage={storage}", f"hydra.sweeper.study_name={STUDY}"]
        search += ["hydra.sweeper.n_trials=2", f"hydra.sweeper.sampler.seed={worker}"]
        command = [sys.executable, "pipelines/train.py", "hparams_search=optuna", *search, *tiny]
        command += ["model=gru", "trainer.max_epochs=1", f"logger.experiment_name={EXPERIMENT}"]
        workers.append(
            subprocess.Popen(
                command,
                cwd=project_root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = [process.communicate(timeout=600)[0] for process in workers]
    for process, output in zip(workers, outputs, strict=True):
        assert process.returncode == 0, output

    readable = psycopg2(postgres.uri("optuna"))  # this process has no $PGPASSWORD
    assert optuna.get_all_study_names(readable) == [STUDY]
    trials = optuna.load_study(study_name=STUDY, storage=readable).trials
    assert sorted(trial.number for trial in trials) == [0, 1, 2, 3]  # four trials, no number twice
    assert {trial.state for trial in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len({tuple(trial.params[key] for key in SEARCHED) for trial in trials}) == 4
    # each worker writes the study's best when it ends: the last to end has seen every worker's trials
    results = [
        yaml.safe_load((tmp_path / f"worker{w}" / "multirun" / "optimization_results.yaml").read_text())
        for w in (1, 2)
    ]
    assert max(result["best_value"] for result in results) == max(trial.value for trial in trials)

    client = mlflow.MlflowClient(url)
    with as_user(TRAINER):
        runs = client.search_runs([client.get_experiment_by_name(EXPERIMENT).experiment_id])
    parents = [run for run in runs if run.data.tags.get("sweep") == "parent"]
    children = [run for run in runs if run not in parents]
    assert len(parents) == 2 and {run.data.tags["optuna_study"] for run in parents} == {STUDY}
    assert max(run.info.start_time for run in parents) < min(run.info.end_time for run in parents)  # at once
    for parent in parents:
        assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/children"] == 2
    assert sorted(run.data.tags["mlflow.parentRunId"] for run in children) == sorted(
        2 * [run.info.run_id for run in parents]
    )
    for trial in trials:  # each trial is the run that trained its parameters and scored its value
        (run,) = [
            run
            for run in children
            if float(run.data.params["optim/weight_decay"]) == trial.params["optim.weight_decay"]
        ]
        assert (
            run.info.status == "FINISHED"
            and run.data.params["model/pooling"] == trial.params["model.pooling"]
        )
        assert run.data.metrics["val/acc_best"] == pytest.approx(trial.value)
    secrets = all_secrets(postgres)
    for path in (p for p in tmp_path.rglob("*") if p.is_file()):  # sweep folders: configs, logs
        assert not any(secret.encode() in path.read_bytes() for secret in secrets), path
    assert not any(secret in output for secret in secrets for output in outputs)
    with as_user(TRAINER):
        assert_no_secret(client, runs, secrets, tmp_path / "downloaded")
