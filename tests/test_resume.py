"""Exact resume: a training process SIGKILLed mid-epoch, during validation and between epochs, each time
resumed with `ckpt_path=last`, ends with the weights (bitwise) and MLflow metrics of the uninterrupted run."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import pytest
import torch

from synthetic import clean_env, run_folders, run_train, stage_overrides, tiny_overrides

# 25 steps per epoch (200 rows, batch 8); last.ckpt every 4 steps and at epoch ends; dropout uses the RNG.
SETTINGS = [
    "model=gru",
    "trainer.max_epochs=3",
    "train.checkpoint_every_n_steps=4",
    "train.threads=1",
    "train.early_stopping_patience=0",
    "model.embedding_dropout=0.2",
    "model.head_dropout=0.3",
]
TIMING = {"train/epoch_s", "train/seq_per_s"}  # wall-clock figures: never equal


def paused(project_root: Path, point: str, args: list[str], marker: Path, sig: int = signal.SIGKILL) -> str:
    """Start tests/pause_train.py, wait until it reaches `point`, send `sig`; its stderr."""
    marker.unlink(missing_ok=True)
    process = subprocess.Popen(
        [sys.executable, "tests/pause_train.py", point, str(marker), *args],
        cwd=project_root,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 300
    while not marker.exists():
        assert process.poll() is None, f"ended before {point}:\n{process.communicate()[1]}"
        assert time.monotonic() < deadline, f"never reached {point}"
        time.sleep(0.1)
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode != 0
    return stderr


def metric_points(client: mlflow.MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((p.step, p.value) for p in client.get_metric_history(run_id, key))
        for key in keys
        if key not in TIMING
    }


def weights(folder: Path, name: str = "last.ckpt") -> dict[str, torch.Tensor]:
    return torch.load(folder / "checkpoints" / name, map_location="cpu", weights_only=False)["state_dict"]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, project_root, data):
    """The uninterrupted run, and the same run killed three times and resumed each time; one MLflow store."""
    encoded, prepared = data
    work = tmp_path_factory.mktemp("resume")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", (work / "mlartifacts").as_uri())
    started = time.perf_counter()
    run_train(project_root, [*tiny_overrides(work / "whole", encoded, prepared, uri), *SETTINGS])
    args = [*tiny_overrides(work / "killed", encoded, prepared, uri), *SETTINGS]
    marker = work / "paused"
    paused(project_root, "step:6", args, marker)  # mid-epoch 0, two steps after the step-4 checkpoint
    for point in ("validation:1", "epoch_start:2"):  # during epoch 1's validation; after epoch 1's checkpoint
        paused(project_root, point, [*args, "ckpt_path=last"], marker)
    run_train(project_root, [*args, "ckpt_path=last"])
    print(f"uninterrupted run + 3 killed and 1 finishing run: {time.perf_counter() - started:.1f} s")
    (whole,), (killed,) = run_folders(work / "whole", "gru"), run_folders(work / "killed", "gru")
    return mlflow.MlflowClient(tracking_uri=uri), whole, killed


def test_killed_and_resumed_run_ends_with_the_same_weights(runs):
    _, whole, killed = runs
    expected, got = weights(whole), weights(killed)
    assert expected.keys() == got.keys()
    largest = max((expected[k] - got[k]).abs().max().item() for k in expected)
    print(f"max |delta weight| after three kills: {largest}")
    assert all(torch.equal(expected[k], got[k]) for k in expected), largest
    best = [weights(folder, "best.ckpt") for folder in (whole, killed)]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])


def test_killed_and_resumed_run_logs_the_same_metrics_once(runs):
    client, whole, killed = runs
    reports = [json.loads((folder / "report.json").read_text()) for folder in (whole, killed)]
    expected, got = (metric_points(client, report["run_id"]) for report in reports)
    assert expected.keys() == got.keys() and "val/acc" in expected and "train/loss" in expected
    # Every point, as many times as the uninterrupted run logged it: nothing the killed processes had logged
    # after their last checkpoint (the validation under way, the next epoch's learning rate) comes twice.
    differ = {key: (expected[key], got[key]) for key in expected if expected[key] != got[key]}
    assert not differ
    assert len(expected["val/acc"]) == 3
    skip = {"run_id", "train_seconds", "train_seq_per_s"}
    assert {k: v for k, v in reports[0].items() if k not in skip} == {
        k: v for k, v in reports[1].items() if k not in skip
    }
    assert client.get_run(reports[1]["run_id"]).info.status == "FINISHED"
    # The whole story is one MLflow run per training, however often it was killed.
    assert len(client.search_runs([client.get_experiment_by_name("imdb").experiment_id])) == 2


def test_interrupted_stage_leaves_no_outputs_and_resumes_from_its_scratch(tmp_path, project_root, data):
    """train@gru as DVC runs it (`+model_key=gru`): Ctrl-C, then kill -9 of the resumed run, leave none of
    the stage's declared outputs; `ckpt_path=last` resumes the scratch folder; the finished run publishes."""
    encoded, prepared = data
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", (tmp_path / "mlartifacts").as_uri())
    args = [
        *tiny_overrides(tmp_path, encoded, prepared, uri),
        *stage_overrides("gru"),
        "trainer.max_epochs=1",
        "train.checkpoint_every_n_steps=4",
        "train.threads=1",
    ]
    outputs = [
        tmp_path / "models" / "gru" / "checkpoints",
        tmp_path / "models" / "gru" / "summary.txt",
        tmp_path / "reports" / "train" / "gru.json",
        tmp_path / "reports" / "diagnostics" / "gru",
    ]
    scratch = tmp_path / "runs" / "gru" / "dvc-stage"
    marker = tmp_path / "paused"
    stderr = paused(project_root, "step:6", args, marker, signal.SIGINT)
    assert "Detected KeyboardInterrupt" in stderr
    assert not [path for path in outputs if path.exists()]
    assert torch.load(scratch / "checkpoints" / "last.ckpt", weights_only=False)["global_step"] == 4
    paused(project_root, "validation:0", [*args, "ckpt_path=last"], marker)
    assert not [path for path in outputs if path.exists()]
    assert (scratch / "diagnostics" / "recurrent_weights.csv").is_file()  # written, but not published
    run_train(project_root, [*args, "ckpt_path=last"])
    assert all(path.exists() for path in outputs) and not scratch.exists()
    assert sorted(p.name for p in outputs[0].iterdir()) == ["best.ckpt", "last.ckpt"]
    assert json.loads(outputs[2].read_text())["epochs"] == 1
    assert not list((tmp_path / "runs" / "gru").iterdir())  # no one-off run folder either
