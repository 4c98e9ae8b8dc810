"""Exact resume: a training process SIGKILLed mid-epoch, during validation and between epochs, each time
resumed with `ckpt_path=last`, ends with the weights (bitwise) and MLflow metrics of the uninterrupted run;
for each task (the forecast windows' epoch order, the language model's state carried across batches), for
OneCycleLR, which steps after every batch, and for virtual adversarial training's random draws."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import mlflow
import pytest
import torch

from rnnlab.callbacks import FitClock
from rnnlab.resume import MID_EPOCH_WARNING
from rnnlab.tasks.charlm.corpus import prepare_corpus
from synthetic import (
    TEXT,
    clean_env,
    periodic_series,
    run_folders,
    run_train,
    stage_overrides,
    tiny_overrides,
)
from test_config import compose_cfg

COMMON = ["train.checkpoint_every_n_steps=4", "train.threads=1", "train.early_stopping_patience=0"]
IMDB = ["model=gru", "model.embedding_dropout=0.2", "model.head_dropout=0.3"]  # dropout draws on the RNG


class Case(NamedTuple):
    settings: list[str]
    points: tuple[str, ...]  # where the run is killed, one point after the other, each resumed
    resumed_step: int  # global step of the checkpoint the first kill leaves
    cell: str
    monitor: str


# last.ckpt every 4 steps and at epoch ends. Imdb: 25 steps per epoch (200 rows, batch 8). The other cases are
# killed in epoch 1, two steps after a step checkpoint: the resumed run continues mid-epoch, after an epoch
# change (charlm's head dropout is the task's 0.1).
CASES = {
    # mid-epoch 0, two steps after the step-4 checkpoint; during epoch 1's validation; after its checkpoint
    "imdb": Case(
        [*IMDB, "trainer.max_epochs=3"], ("step:6", "validation:1", "epoch_start:2"), 4, "gru", "val/acc"
    ),
    "imdb-onecycle": Case(
        [*IMDB, "trainer.max_epochs=2", "optim.scheduler=onecycle"], ("step:30",), 28, "gru", "val/acc"
    ),
    # virtual adversarial training draws a random direction per training step
    "imdb-vat": Case(
        [*IMDB, "trainer.max_epochs=2", "train.adversarial=vat"], ("step:6",), 4, "gru", "val/acc"
    ),
    # 98 training windows: 13 steps per epoch
    "forecast": Case(
        [
            "experiment=smoke_forecast",
            "model=gru",
            "model.head_dropout=0.3",
            "data.window.lookback=24",
            "data.window.horizon=6",
            "data.window.stride=4",
            "data.seasonal_period=24",
        ],
        ("step:18",),
        16,
        "gru",
        "val/loss",
    ),
    # 8 streams of 600 characters, chunks of 16: 38 steps per epoch; lstm: an (h, c) state carried over
    "charlm": Case(
        [
            "experiment=smoke_charlm",
            "model=lstm",
            "data.loader.chunk_len=16",
            "task.samples.prompt=pigs",
            "task.samples.length=20",
        ],
        ("step:46",),
        44,
        "lstm",
        "val/loss",
    ),
}
# wall-clock figures (and system/*): never equal
TIMING = {"train/epoch_s", "train/seq_per_s", "train_seconds"}


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
    try:
        _, stderr = process.communicate(timeout=120)
    except subprocess.TimeoutExpired:  # show where it hangs: every thread's stack (tests/pause_train.py)
        process.send_signal(signal.SIGUSR1)
        time.sleep(2)
        process.kill()
        raise AssertionError(
            f"still running 120 s after {sig!r} at {point}:\n{process.communicate()[1]}"
        ) from None
    assert process.returncode != 0
    return stderr


def metric_points(client: mlflow.MlflowClient, run_id: str) -> dict[str, list[tuple[int, float]]]:
    keys = client.get_run(run_id).data.metrics
    return {
        key: sorted((p.step, p.value) for p in client.get_metric_history(run_id, key))
        for key in keys
        if key not in TIMING and not key.startswith("system/")
    }


def checkpoint(folder: Path, name: str = "last.ckpt") -> dict:
    return torch.load(folder / "checkpoints" / name, map_location="cpu", weights_only=False)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, data) -> dict[str, tuple[Path, Path]]:
    """Per task, the (encoded, prepared) folders `tiny_overrides` points the run at."""
    root = tmp_path_factory.mktemp("prepared")
    periodic_series().save(root / "forecast")
    prepare_corpus(TEXT, val_fraction=0.1).save(root / "charlm")
    return {"imdb": data, "forecast": (data[0], root / "forecast"), "charlm": (data[0], root / "charlm")}


def tracking_store(work: Path, experiment: str) -> str:
    """A new MLflow store in `work` holding the experiment the runs log to: its URI."""
    work.mkdir(parents=True)
    uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).create_experiment(experiment, (work / "mlartifacts").as_uri())
    return uri


class Trained(NamedTuple):
    folder: Path  # the run folder
    client: mlflow.MlflowClient  # its MLflow store


@pytest.fixture(scope="module", params=list(CASES))
def runs(request, tmp_path_factory, project_root, prepared):
    """The uninterrupted run, and the same run killed at each point and resumed each time, each in an MLflow
    store of its own; the case, the MLflow experiment (the data set's name), the global step of the
    checkpoint the first kill left, and the fitting seconds counted in the checkpoint the last process
    resumed from."""
    case, task = CASES[request.param], request.param.split("-")[0]
    work = tmp_path_factory.mktemp(request.param)
    experiment = compose_cfg(project_root, [f"task={task}"]).logger.experiment_name  # the data set's name
    uris = {name: tracking_store(work / name, experiment) for name in ("whole", "killed")}
    args = {
        name: [*tiny_overrides(work / name, *prepared[task], uri), *case.settings, *COMMON]
        for name, uri in uris.items()
    }
    started = time.perf_counter()
    with open(work / "whole.log", "w") as log:  # the uninterrupted run trains meanwhile
        whole = subprocess.Popen(
            [sys.executable, "pipelines/train.py", *args["whole"]],
            cwd=project_root,
            env=clean_env(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        marker, steps, resume = work / "paused", [], [*args["killed"], "ckpt_path=last"]
        try:
            for point in case.points:
                stderr = paused(project_root, point, resume if steps else args["killed"], marker)
                assert not steps or MID_EPOCH_WARNING[:40] not in stderr  # the data's position is restored
                (last,) = (work / "killed" / "runs" / case.cell).glob("*/checkpoints/last.ckpt")
                saved = checkpoint(last.parents[1])
                steps.append(saved["global_step"])
            counted = FitClock.since(saved).before["seconds"]  # the killed processes, to their checkpoints
            run_train(project_root, resume)
        except BaseException:
            whole.kill()
            raise
        assert whole.wait(timeout=600) == 0, (work / "whole.log").read_text()
    print(
        f"{request.param}: uninterrupted run, alongside {len(case.points)} killed and 1 finishing run: "
        f"{time.perf_counter() - started:.1f} s"
    )
    trained = [
        Trained(*run_folders(work / name, case.cell), mlflow.MlflowClient(tracking_uri=uris[name]))
        for name in ("whole", "killed")
    ]
    return *trained, case, experiment, steps[0], counted


def test_killed_and_resumed_run_ends_with_the_same_weights(runs):
    whole, killed, case, _, resumed_step, _ = runs
    assert resumed_step == case.resumed_step  # killed where the case says
    expected, got = checkpoint(whole.folder)["state_dict"], checkpoint(killed.folder)["state_dict"]
    assert expected.keys() == got.keys()
    largest = max((expected[k] - got[k]).abs().max().item() for k in expected)
    print(f"max |delta weight| after the kills: {largest}")
    assert all(torch.equal(expected[k], got[k]) for k in expected), largest
    best = [checkpoint(run.folder, "best.ckpt")["state_dict"] for run in (whole, killed)]
    assert all(torch.equal(best[0][k], best[1][k]) for k in best[0])


def test_killed_and_resumed_run_logs_the_same_metrics_once(runs):
    *trained, case, experiment, _, counted = runs
    reports = [json.loads((run.folder / "report.json").read_text()) for run in trained]
    assert reports[1]["train_seconds"] > counted > 0  # the killed processes' time counts too
    pairs = zip(trained, reports, strict=True)
    expected, got = (metric_points(run.client, report["run_id"]) for run, report in pairs)
    assert expected.keys() == got.keys() and case.monitor in expected and "train/loss" in expected
    # Every point, as many times as the uninterrupted run logged it: nothing the killed processes had logged
    # after their last checkpoint (the validation under way, the next epoch's learning rate) comes twice.
    differ = {key: (expected[key], got[key]) for key in expected if expected[key] != got[key]}
    assert not differ
    assert len(expected[case.monitor]) == reports[0]["epochs"] > 1
    skip = {"run_id", "train_seconds", "train_seq_per_s"}
    assert {k: v for k, v in reports[0].items() if k not in skip} == {
        k: v for k, v in reports[1].items() if k not in skip
    }
    killed = trained[1].client
    assert killed.get_run(reports[1]["run_id"]).info.status == "FINISHED"
    vat = "train.adversarial=vat" in case.settings  # its unlabelled batches draw from the 40 synthetic texts
    assert killed.get_run(reports[1]["run_id"]).data.params.get("vat/unlabelled_rows") == (
        "40" if vat else None
    )
    # The whole story is one MLflow run, however often the training was killed.
    assert len(killed.search_runs([killed.get_experiment_by_name(experiment).experiment_id])) == 1


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
