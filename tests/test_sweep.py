"""Hydra multirun sweeps of pipelines/train.py: one MLflow parent run, one child per job; DDP; Optuna."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest
import yaml

from synthetic import run_folders, run_train, tiny_overrides


def sweep(tmp_path: Path, project_root: Path, data: tuple[Path, Path], *args: str):
    """Run a multirun into `tmp_path`; return the MLflow client, the runs of experiment `imdb` and the
    finished process (its output)."""
    encoded, prepared = data
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    # Created up front so that artifacts land in tmp_path, not in the project's mlartifacts/.
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", (tmp_path / "mlartifacts").as_uri())
    done = run_train(project_root, ["-m", *tiny_overrides(tmp_path, encoded, prepared, uri), *args])
    client = mlflow.MlflowClient(tracking_uri=uri)
    return client, client.search_runs([client.get_experiment_by_name("imdb").experiment_id]), done


def split_parent(runs: list) -> tuple:
    parents = [run for run in runs if run.data.tags.get("sweep") == "parent"]
    assert len(parents) == 1, [run.info.run_name for run in runs]
    children = [run for run in runs if run is not parents[0]]
    assert all(run.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id for run in children)
    return parents[0], children


def test_multirun_of_the_four_cells_is_one_parent_and_four_children(tmp_path, project_root, data):
    client, runs, _ = sweep(tmp_path, project_root, data, "model=rnn,lstm,gru,bilstm", "trainer.max_epochs=1")
    parent, children = split_parent(runs)
    assert parent.info.status == "FINISHED" and parent.data.metrics["sweep/children"] == 4
    assert "model=rnn,lstm,gru,bilstm" in parent.data.params["sweep/overrides"].split()
    assert sorted(run.data.params["model/name"] for run in children) == ["bilstm", "gru", "lstm", "rnn"]
    assert {run.data.tags["rnnlab.source"] for run in [parent, *children]} == {"sweep"}  # not the pipeline's
    best = max(children, key=lambda run: run.data.metrics["val/acc_best"])
    assert parent.data.tags["best_child_run"] == best.info.run_name
    assert parent.data.metrics["sweep/best_val_acc"] == best.data.metrics["val/acc_best"]
    for run in children:
        assert run.info.status == "FINISHED"
        assert run.info.run_name.startswith(f"imdb-{run.data.params['model/name']}-")
        assert run.data.params["model/hidden_size"] == "8" and run.data.params["trainer/max_epochs"] == "1"
        for key in ("train/loss", "val/loss", "val/acc", "train/seq_per_s", "train/grad_norm", "test/acc"):
            assert key in run.data.metrics, (run.info.run_name, key)
        (folder,) = run_folders(tmp_path, run.data.params["model/name"])  # each job in a folder of its own
        assert json.loads((folder / "report.json").read_text())["run_id"] == run.info.run_id
    assert not (tmp_path / "models").exists() and not (tmp_path / "reports").exists()  # no DVC outputs


def test_multirun_with_ddp_spawn_on_two_cpu_processes(tmp_path, project_root, data):
    """Two data-parallel processes per job: each training still makes exactly one MLflow run."""
    client, runs, done = sweep(
        tmp_path, project_root, data, "model=rnn,gru", "trainer=ddp_spawn_cpu", "trainer.max_epochs=2"
    )
    parent, children = split_parent(runs)
    assert len(children) == 2 and parent.info.status == "FINISHED"
    for run in children:
        assert run.info.status == "FINISHED" and run.data.tags["world_size"] == "2"
        # the main process reads the best score from the checkpoint (its callback only got the path back)
        assert 0 <= run.data.metrics["val/acc_best"] <= 1
        points = client.get_metric_history(run.info.run_id, "val/acc")
        assert len(points) == 2  # one value per epoch: only rank 0 logs
        name = run.data.params["model/name"]
        (folder,) = run_folders(tmp_path, name)
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        assert json.loads((folder / "report.json").read_text())["epochs"] == 2
    # every epoch-level value is reduced over the ranks: Lightning has nothing to warn about
    assert "sync_dist" not in done.stdout + done.stderr


def test_optuna_search_maximises_val_acc(tmp_path, project_root, data):
    client, runs, _ = sweep(
        tmp_path,
        project_root,
        data,
        "hparams_search=optuna",
        "hydra.sweeper.n_trials=2",
        "hydra.sweeper.sampler.n_startup_trials=2",
        "trainer.max_epochs=1",
        "model=gru",
    )
    parent, children = split_parent(runs)
    assert len(children) == 2 and parent.info.status == "FINISHED"
    results = yaml.safe_load((tmp_path / "multirun" / "optimization_results.yaml").read_text())
    best = max(children, key=lambda run: run.data.metrics["val/acc_best"])
    assert results["best_value"] == pytest.approx(best.data.metrics["val/acc_best"])
    # The search's choices reached the runs (the command line's optim.lr and sizes stay fixed).
    assert float(best.data.params["optim/weight_decay"]) == pytest.approx(
        results["best_params"]["optim.weight_decay"]
    )
    decays = {run.data.params["optim/weight_decay"] for run in children}
    assert len(decays) == 2 and all(1e-4 <= float(decay) <= 0.1 for decay in decays)
    assert {run.data.params["optim/lr"] for run in children} == {"0.03"}


def test_sweep_parent_picks_the_lowest_loss_for_a_minimised_metric(tmp_path):
    """forecast/charlm monitor val/loss (mode min): the parent's best child is the one with the lowest."""
    from rnnlab.hydra_callbacks import MlflowSweepParent

    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}")
    experiment = client.create_experiment("forecast", (tmp_path / "mlartifacts").as_uri())
    parent = client.create_run(experiment, run_name="forecast-sweep").info.run_id
    for name, loss in (("a", 0.3), ("b", 0.1), ("c", 0.2)):
        child = client.create_run(experiment, run_name=name, tags={"mlflow.parentRunId": parent}).info.run_id
        client.log_metric(child, "val/loss_best", loss)
    callback = MlflowSweepParent()
    callback.client, callback.parent_id = client, parent
    callback.monitor, callback.mode = "val/loss", "min"
    callback.on_multirun_end(config=None)
    finished = client.get_run(parent)
    assert finished.data.tags["best_child_run"] == "b" and finished.data.metrics["sweep/best_val_loss"] == 0.1
    assert finished.data.metrics["sweep/children"] == 3 and finished.info.status == "FINISHED"
