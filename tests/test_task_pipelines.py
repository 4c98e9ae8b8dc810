"""Each non-default task's DVC pipeline (pipelines/<task>/dvc.yaml) on its smoke settings, in a throw-away
repo: one command runs every stage, a second runs nothing, runs land in the task's MLflow experiment."""

from __future__ import annotations

import json
from pathlib import Path

import mlflow
import pytest

from dvc_repo import commit, project_copy, run

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def reproduce(project_root: Path, work: Path, task: str, **env_extra: str) -> tuple[dict, str]:
    """Sync the task's params to its smoke experiment, commit, and `dvc repro` its pipeline once."""
    env = project_copy(project_root, work, mlflow_store=True, **env_extra)
    run(["rnnlab", "sync-params", "--task", task, f"experiment=smoke_{task}"], work, env)
    commit(work, env, f"{task} smoke settings")
    return env, run(["dvc", "repro", f"pipelines/{task}/dvc.yaml"], work, env)


def task_runs(work: Path, experiment: str) -> dict[str, mlflow.entities.Run]:
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no MLflow experiment {experiment!r}"
    return {run_.info.run_id: run_ for run_ in client.search_runs([found.experiment_id])}


def test_forecast_pipeline_runs_every_stage_once(tmp_path, project_root):
    work = tmp_path / "project"
    env, out = reproduce(project_root, work, "forecast")
    cells = ("rnn", "lstm", "gru", "bilstm")
    stages = ["download", "prepare", *(f"{s}@{c}" for s in ("train", "evaluate") for c in cells), "compare"]
    for stage in stages:
        assert f"Running stage 'pipelines/forecast/dvc.yaml:{stage}'" in out, stage
    reports = work / "reports" / "elecdemand"
    runs = task_runs(work, "elecdemand")
    for cell in cells:
        trained = json.loads((reports / "train" / f"{cell}.json").read_text())
        assert trained["epochs"] == 2 and trained["val_loss_best"] > 0
        metrics = json.loads((reports / "eval" / cell / "metrics.json").read_text())
        assert metrics["horizon"] == 12 and metrics["windows"] > 0
        for name in ("mae", "rmse", "mape", "naive_mae", "seasonal_naive_mae"):
            assert metrics[name] > 0, name
        assert metrics["mae_vs_naive"] == pytest.approx(metrics["mae"] / metrics["naive_mae"])
        assert (reports / "eval" / cell / "plots" / "forecast.png").read_bytes()[:4] == b"\x89PNG"
        run_ = runs[trained["run_id"]]
        assert run_.info.status == "FINISHED" and run_.data.params["task/name"] == "forecast"
        assert run_.data.metrics["test/mae"] == pytest.approx(metrics["mae"])  # logged by evaluate@
        assert run_.outputs.model_outputs and run_.inputs.dataset_inputs  # its model and its data
    # every cell is scored on the same test windows, so the baselines agree across cells
    naive = {json.loads((reports / "eval" / c / "metrics.json").read_text())["naive_mae"] for c in cells}
    assert len(naive) == 1
    compare = (reports / "compare.md").read_text()
    assert all(f" {cell} |" in compare for cell in cells) and "seasonal_naive_mae" in compare
    assert (reports / "compare" / "test_mae.png").is_file()
    assert not (work / "reports" / "imdb").exists(), "the forecast pipeline wrote into the IMDB reports"
    assert "Running stage" not in run(["dvc", "repro", "pipelines/forecast/dvc.yaml"], work, env)
    shown = run(["dvc", "plots", "show", "pipelines/forecast/dvc.yaml", "-o", "dvc_plots"], work, env)
    page = (work / "dvc_plots" / "index.html").read_text()
    assert "failed" not in shown and "forecast.png" in page and "Validation loss by epoch" in page
    for cell in cells:  # the pipeline's own views: history and best val/loss + test loss per cell
        assert set(json.loads((reports / "metrics" / f"{cell}.json").read_text())[cell]) == {"val", "test"}
        assert "val/loss" in (reports / "history" / f"{cell}.csv").read_text().splitlines()[0]
    # declared nowhere as metrics: an IMDB-only `dvc metrics show` stays free of forecast rows
    assert "reports/elecdemand" not in run(["dvc", "metrics", "show"], work, env)


def test_charlm_pipeline_runs_every_stage_once_and_generates(tmp_path, project_root):
    mirror = SHARED_DATA / "tinyshakespeare" / "input.txt"
    if not mirror.is_file():
        pytest.skip(f"offline data not found at {mirror}")
    work = tmp_path / "project"
    env, out = reproduce(project_root, work, "charlm", RNNLAB_TINYSHAKESPEARE_SOURCE=str(mirror))
    cells = ("rnn", "lstm", "gru")  # no bilstm: refused for a language model
    stages = ["download", "prepare", *(f"{s}@{c}" for s in ("train", "evaluate") for c in cells), "compare"]
    for stage in stages:
        assert f"Running stage 'pipelines/charlm/dvc.yaml:{stage}'" in out, stage
    assert "bilstm" not in out
    reports = work / "reports" / "tinyshakespeare"
    runs = task_runs(work, "tinyshakespeare")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    for cell in cells:
        trained = json.loads((reports / "train" / f"{cell}.json").read_text())
        metrics = json.loads((reports / "eval" / cell / "metrics.json").read_text())
        # the evaluation re-measures the best checkpoint's validation loss over the same chunks
        assert metrics["nats_per_char"] == pytest.approx(trained["val_loss_best"], rel=1e-4)
        assert metrics["bits_per_char"] == pytest.approx(metrics["nats_per_char"] / 0.6931471805599453)
        samples = (reports / "eval" / cell / "samples.txt").read_text()
        assert samples.count("ROMEO:") == 3  # one sample per temperature
        run_ = runs[trained["run_id"]]
        logged = {a.path for a in client.list_artifacts(run_.info.run_id, "samples")}
        assert logged == {"samples/epoch_00.txt", "samples/epoch_01.txt"}
        logged_metrics = run_.data.metrics
        assert logged_metrics["val/bpc"] == pytest.approx(logged_metrics["val/loss"] / 0.6931471805599453)
        assert logged_metrics["val/bpc_best"] == pytest.approx(metrics["bits_per_char"])  # from evaluate@
        assert run_.outputs.model_outputs  # the best checkpoint is the run's model
    assert "val_bpc" in (reports / "compare.md").read_text()
    assert "Running stage" not in run(["dvc", "repro", "pipelines/charlm/dvc.yaml"], work, env)
    generate = ["rnnlab", "generate", "--prompt", "ROMEO:", "--temperature", "0.8", "--length", "40"]
    text = run(generate, work, env)
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) >= len("ROMEO:") + 40
    refused = run(
        ["python", "pipelines/train.py", "task=charlm", "model=bilstm", "experiment=smoke_charlm"],
        work,
        env,
        expect_rc=2,
    )
    assert "model.bidirectional=true is not allowed; allowed: false (a language model generates" in refused


def test_translate_pipeline_runs_every_stage_once_and_translates(tmp_path, project_root):
    mirror = SHARED_DATA / "fra-eng" / "fra-eng.zip"
    if not mirror.is_file():
        pytest.skip(f"offline data not found at {mirror}")
    work = tmp_path / "project"
    env, out = reproduce(project_root, work, "translate", RNNLAB_FRAENG_SOURCE=str(mirror))
    models = ("rnn", "lstm", "gru", "bilstm", "gru_noattn")
    stages = ["download", "prepare", *(f"{s}@{m}" for s in ("train", "evaluate") for m in models), "compare"]
    for stage in stages:
        assert f"Running stage 'pipelines/translate/dvc.yaml:{stage}'" in out, stage
    reports = work / "reports" / "fraeng"
    prepared = json.loads((reports / "data" / "prepare.json").read_text())
    runs = task_runs(work, "fraeng")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    for model in models:
        trained = json.loads((reports / "train" / f"{model}.json").read_text())
        folder = reports / "eval" / model
        metrics = json.loads((folder / "metrics.json").read_text())
        assert metrics["signature"]["bleu"].startswith("nrefs:1|case:lc|eff:no|tok:13a")  # lower-cased data
        assert all(0 <= metrics[key] <= 100 for key in ("bleu", "chrf", "val_bleu", "val_chrf"))
        assert sum(b["n"] for b in metrics["length_buckets"].values()) == metrics["n"]
        assert list(metrics["length_buckets"]) == ["<=5", "6-8", "9-12", ">12"]
        rows = (folder / "translations.tsv").read_text(encoding="utf-8").splitlines()
        assert rows[0] == "source\treference\ttranslation" and len(rows) == metrics["n"] + 1
        assert metrics["n"] == prepared["pairs"]["test"]
        heatmaps = sorted(path.name for path in (folder / "plots").glob("attention_*.png"))
        assert heatmaps == ([] if model == "gru_noattn" else ["attention_0.png", "attention_1.png"])
        assert (folder / "plots" / "bleu_by_length.png").read_bytes()[:4] == b"\x89PNG"
        run_ = runs[trained["run_id"]]
        assert run_.info.status == "FINISHED" and run_.data.params["task/name"] == "translate"
        assert run_.data.tags["model"] == model
        assert run_.data.metrics["test/bleu"] == pytest.approx(metrics["bleu"])  # logged by evaluate@
        assert run_.data.metrics["val/ppl"] > 1 and "test/loss" in run_.data.metrics
        logged = {a.path for a in client.list_artifacts(run_.info.run_id, "samples")}
        assert logged == {"samples/epoch_00.txt", "samples/epoch_01.txt"}  # validation pairs translated
        sample = client.download_artifacts(run_.info.run_id, "samples/epoch_01.txt", str(tmp_path))
        assert "  reference:   " in Path(sample).read_text(encoding="utf-8")
    compare = (reports / "compare.md").read_text()
    assert all(f" {model} |" in compare for model in models) and "bleu_len >12" in compare
    assert {p.name for p in (reports / "compare").glob("*.png")} == {"test_bleu.png", "bleu_by_length.png"}
    assert "Running stage" not in run(["dvc", "repro", "pipelines/translate/dvc.yaml"], work, env)
    shown = run(["dvc", "plots", "show", "pipelines/translate/dvc.yaml", "-o", "dvc_plots"], work, env)
    page = (work / "dvc_plots" / "index.html").read_text()
    assert "failed" not in shown and "Validation loss by epoch" in page
    assert "bleu_by_length.png" in page and "attention_0.png" in page
    said = run(["rnnlab", "translate", "The cat sleeps on the chair.", "Go home."], work, env)
    assert len(said.strip().splitlines()) == 2  # one translation per sentence (the smoke model is poor)
    blank = run(["rnnlab", "translate", "Go home.", " "], work, env, expect_rc=2)
    assert "rnnlab: error: sentence 2 (' ') has no words to translate" in blank
    no_beam = run(["rnnlab", "translate", "--beam-size", "0", "Go home."], work, env, expect_rc=2)
    assert "rnnlab: error: beam_size=0 must be a positive integer" in no_beam
    refused = run(
        ["python", "pipelines/train.py", "experiment=smoke_translate", "task.decoder.bidirectional=true"],
        work,
        env,
        expect_rc=2,
    )
    assert "task.decoder.bidirectional=true is not allowed; allowed: false (the decoder writes" in refused
