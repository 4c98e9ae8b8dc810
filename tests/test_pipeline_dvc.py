"""`dvc repro` of the data stages in a throw-away git repository, on the mini IMDB archive; the smoke
pipeline (conftest's `smoke_pipeline`), its DVC views and the notebooks that read its runs."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dvc_repo import commit, project_copy, run
from rnnlab.data.download import sha256_file

CELLS = ("rnn", "lstm", "gru", "bilstm")


@pytest.fixture(scope="module")
def repo(tmp_path_factory, project_root, mini_archive) -> tuple[Path, dict]:
    """A git+DVC copy of the project whose data stages have been reproduced once."""
    work = tmp_path_factory.mktemp("project")
    env = project_copy(
        project_root, work, RNNLAB_IMDB_SOURCE=str(mini_archive), RNNLAB_IMDB_SHA256=sha256_file(mini_archive)
    )
    out = run(["dvc", "repro", "encode"], work, env)
    for stage in ("download", "prepare", "encode"):
        assert f"Running stage '{stage}'" in out
    return work, env


def stats_vocab_size(work: Path) -> int:
    return json.loads((work / "reports/imdb/data/prepare.json").read_text())["vocab_size"]


def test_outputs_of_the_data_stages(repo):
    work, _ = repo
    assert sorted(p.name for p in (work / "data/raw/imdb").iterdir()) == [
        "source.json",
        "test.parquet",
        "train.parquet",
        "unsup.parquet",
    ]
    vocab = json.loads((work / "data/prepared/imdb/vocab.json").read_text())
    assert vocab["specials"] == ["<pad>", "<oov>"] and len(vocab["tokens"]) + 2 == stats_vocab_size(work)
    meta = json.loads((work / "data/encoded/imdb/meta.json").read_text())
    assert meta["max_len"] == 400 and meta["num_classes"] == 2
    ids = np.load(work / "data/encoded/imdb/train/ids.npy", mmap_mode="r")
    assert ids.dtype == np.int32 and ids.shape == (900, 400)
    assert len(np.load(work / "data/encoded/imdb/val/labels.npy")) == 100
    assert len(np.load(work / "data/encoded/imdb/test/labels.npy")) == 1000
    stats = json.loads((work / "reports/imdb/data/prepare.json").read_text())
    assert stats["vocab_size"] == meta["vocab_size"] and 0 < stats["splits"]["test"]["oov_rate"] < 0.2
    assert set(stats["splits"]["train"]["token_length"]) >= {"p50", "p90", "p95", "p99"}
    assert stats["unsup"]["reviews"] == 200  # tokenized with the training split's vocabulary, for pretraining
    assert not list(work.glob("data/**/.*.tmp")), "temporary folders left behind"


def test_second_repro_runs_nothing(repo):
    work, env = repo
    out = run(["dvc", "repro", "encode"], work, env)
    assert "Running stage" not in out


def test_changing_max_len_reruns_only_encode(repo):
    """`dvc exp run -S` recomposes conf/ into params.yaml; only `encode` depends on max_len."""
    work, env = repo
    commit(work, env, "lock")
    out = run(["dvc", "exp", "run", "encode", "-S", "data.encode.max_len=32"], work, env)
    assert "Running stage 'encode'" in out
    assert "Running stage 'prepare'" not in out and "Running stage 'download'" not in out
    assert np.load(work / "data/encoded/imdb/train/ids.npy").shape == (900, 32)
    assert "max_len: 32" in (work / "params.yaml").read_text()


def test_smoke_experiment_runs_the_whole_pipeline(smoke_pipeline):
    """`dvc exp run dvc.yaml -S experiment=smoke`: every stage on tiny settings, no word about the other
    pipelines' outputs; then `dvc repro` has nothing to do."""
    import mlflow

    work, env, out = smoke_pipeline
    stages = ["prepare", "encode", *(f"{s}@{c}" for s in ("train", "evaluate", "export") for c in CELLS)]
    for stage in (
        *stages,
        "pretrain",
        *(f"pretrain_lm@{c}" for c in CELLS),
        "baseline",
        "register",
        "compare",
    ):
        assert f"Running stage '{stage}'" in out, stage
    for other in ("forecast", "elecdemand", "charlm", "tinyshakespeare"):
        assert other not in out, other
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb").experiment_id
    runs = {r.info.run_id: r for r in client.search_runs([experiment])}
    for cell in CELLS:
        report = json.loads((work / f"reports/imdb/train/{cell}.json").read_text())
        assert report["epochs"] == 2 and 0.0 <= report["test/acc"] <= 1.0
        run_ = runs[report["run_id"]]
        assert run_.info.status == "FINISHED" and run_.data.metrics["test/acc"] == report["test/acc"]
        assert 0 < run_.data.metrics["test/precision"] <= 1  # added by evaluate@
        metrics = json.loads((work / f"reports/imdb/eval/{cell}/metrics.json").read_text())
        # eval.length_buckets: null cuts at the train quartiles: four buckets of about equal size
        sizes = [bucket["n"] for bucket in metrics["length_buckets"].values()]
        assert len(sizes) == 4 and sum(sizes) == 1000 and min(sizes) > 150, metrics["length_buckets"]
        for name in ("roc", "pr", "confusion", "length_buckets"):
            assert (work / f"reports/imdb/eval/{cell}/plots/{name}.png").read_bytes()[:4] == b"\x89PNG"
        diagnostics = work / f"reports/imdb/diagnostics/{cell}"
        for name in ("gradient_flow", "recurrent_weights", "clipping", "clipping_histogram"):
            assert (diagnostics / f"{name}.csv").is_file(), name
        assert run_.data.metrics["gradflow/ratio_d32"] > 0 and "train/clip_fraction" in run_.data.metrics
        export = work / f"models/imdb/{cell}/export"
        assert {"model.onnx", "model.pt", "export.json"} <= {p.name for p in export.iterdir()}
        assert max(json.loads((export / "export.json").read_text())["max_abs_diff"].values()) <= 1e-5
    compare = (work / "reports/imdb/compare.md").read_text()
    assert all(f" {cell} |" in compare for cell in (*CELLS, "tfidf_lr (baseline)"))
    # The baseline is scored on the cells' length buckets: same edges, same test texts in each
    baseline = json.loads((work / "reports/imdb/baseline/metrics.json").read_text())["length_buckets"]
    for cell in CELLS:
        buckets = json.loads((work / f"reports/imdb/eval/{cell}/metrics.json").read_text())["length_buckets"]
        assert {name: b["n"] for name, b in baseline.items()} == {name: b["n"] for name, b in buckets.items()}
    registered = json.loads((work / "reports/imdb/register.json").read_text())
    trained = {c: json.loads((work / f"reports/imdb/train/{c}.json").read_text()) for c in CELLS}
    best = max(sorted(CELLS), key=lambda c: trained[c]["val_acc_best"])  # ties: first by name
    assert registered["model"] == best and registered["alias"] == "champion"
    version = client.get_model_version_by_alias("imdb-sentiment", "champion")
    assert version.run_id == trained[best]["run_id"]
    assert "Running stage" not in run(["dvc", "repro"], work, env)


HIDDEN = {"rnn": "16", "lstm": "16", "gru": "24", "bilstm": "16"}


def test_pipeline_runs_in_mlflow_are_what_they_trained(smoke_pipeline, mini_archive, tmp_path):
    """Read back what the smoke pipeline logged: each run's own cell, epoch steps, datasets, system metrics,
    a model each, descriptions; the registered version; the comparison run."""
    import mlflow

    work, _, _ = smoke_pipeline
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("imdb").experiment_id
    runs = client.search_runs([experiment], "tags.`rnnlab.source` = 'dvc' and tags.model != ''")
    by_cell = {run_.data.tags["model"]: run_ for run_ in runs}
    assert len(runs) == 4 and set(by_cell) == set(CELLS)
    logged = client.search_logged_models([experiment])
    models = {m.source_run_id: m for m in logged if m.name.startswith("imdb-")}
    # the default: every cell starts from the word vectors this pipeline's pretrain stage learnt, linked
    pretrain_run = json.loads((work / "reports/imdb/pretrain/word2vec.json").read_text())["run_id"]
    for cell, run_ in by_cell.items():
        params, tags, run_id = run_.data.params, run_.data.tags, run_.info.run_id
        assert tags["rnnlab.stage"] == f"train@{cell}"
        assert params["model/init_from"] == "word2vec" and params["pretrain_run_id"] == pretrain_run, cell
        assert run_.data.metrics["embeddings/pretrained_coverage"] == 1.0, cell
        assert params["model/cell"] == cell.removeprefix("bi") and params["model/name"] == cell
        assert params["model/bidirectional"] == str(cell == "bilstm")
        assert params["model/hidden_size"] == HIDDEN[cell]
        assert params["model_key"] == cell and not any(k.startswith(("models/", "registry/")) for k in params)
        assert params["data/source/uri"] == str(mini_archive)  # the mirror read, not the Stanford URL
        for key in ("val/acc", "train/loss", "lr", "train/grad_norm", "train/clip_fraction"):
            assert sorted(p.step for p in client.get_metric_history(run_id, key)) == [1, 2], (cell, key)
        assert not {"epoch", "lr-AdamW"} & set(run_.data.metrics)
        assert not any(key.startswith("eval/") for key in run_.data.metrics)
        datasets = {d.dataset.name: d.dataset for d in run_.inputs.dataset_inputs}
        assert {name: json.loads(d.profile)["rows"] for name, d in datasets.items()} == {
            "imdb-train": 900,
            "imdb-val": 100,
            "imdb-test": 1000,
        }
        assert all(json.loads(d.source)["uri"] == str(mini_archive) for d in datasets.values())
        assert {d.digest for d in datasets.values()} == {tags["data_hash"]}
        assert any(key.startswith("system/cpu") for key in run_.data.metrics), cell
        assert models[run_id].name == f"imdb-{cell}"  # every row has its model
        description = tags["mlflow.note.content"]
        assert description.startswith(f"{cell} (") and "test/acc" in description
    registered = json.loads((work / "reports/imdb/register.json").read_text())
    version = client.get_model_version("imdb-sentiment", str(registered["version"]))
    assert version.tags["cell"] == by_cell[registered["model"]].data.tags["cell"]
    assert version.tags["model"] == registered["model"]  # the model; bilstm is an lstm cell
    assert version.tags["data_digest"] == by_cell[registered["model"]].data.tags["data_hash"]
    assert float(version.tags["val_acc"]) == pytest.approx(registered["val_acc_best"], abs=1e-4)
    assert registered["model"] in version.description
    model_id = version.source.removeprefix("models:/")  # the version page shows this logged model
    linked = client.get_logged_model(model_id).metrics
    steps = {m.step for m in linked}
    trained_model = models[registered["run_id"]]
    assert steps == {client.get_run(registered["run_id"]).outputs.model_outputs[0].step} and 0 not in steps
    assert {m.key: m.value for m in linked}["val/acc_best"] == pytest.approx(registered["val_acc_best"])
    assert trained_model.model_id != model_id
    (compare,) = client.search_runs([experiment], "tags.comparison = 'true'")
    assert compare.data.metrics == {} and compare.data.tags["best_model"] in CELLS
    assert f"{compare.data.tags['best_model']} wins on val_acc" in compare.data.tags["mlflow.note.content"]
    assert all(by_cell[c].info.run_id in compare.data.tags["compared_runs"] for c in CELLS)
    baseline = json.loads((work / "reports/imdb/baseline/train.json").read_text())["run_id"]
    assert client.get_run(baseline).data.tags["model"] == "tfidf_lr"  # the baseline's own run, linked
    assert f"tfidf_lr:{baseline}" in compare.data.tags["compared_runs"]
    assert "baseline tfidf_lr" in compare.data.tags["mlflow.note.content"]
    local = client.download_artifacts(compare.info.run_id, "comparison.json", str(tmp_path))
    table = json.loads(Path(local).read_text())
    models = [row[table["columns"].index("model")] for row in table["data"]]
    assert sorted(models) == sorted([*CELLS, "tfidf_lr"])


def test_sweeps_and_one_off_runs_leave_the_pipeline_untouched(smoke_pipeline):
    """After the smoke pipeline, the README's sweep and a one-off run of a cell keep their checkpoints and
    reports in their own run folders: `dvc status` stays clean and the stage's outputs are unchanged."""
    work, env, _ = smoke_pipeline
    published = (work / "models/imdb/gru/checkpoints/best.ckpt").read_bytes()
    train = [sys.executable, "pipelines/train.py", "experiment=smoke", "trainer.max_epochs=1"]
    run([*train[:2], "-m", "model=rnn,gru", *train[2:]], work, env)
    run([*train, "model=gru"], work, env)
    # The IMDB pipeline's stages (the forecast and charlm pipelines never ran here).
    assert "up to date" in run(["dvc", "status", "dvc.yaml"], work, env)
    assert (work / "models/imdb/gru/checkpoints/best.ckpt").read_bytes() == published
    checkpoints = work / "models/imdb/gru/checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["best.ckpt", "last.ckpt"]
    folders = sorted((work / "runs/imdb/gru").iterdir())  # the sweep's gru job and the one-off run, apart
    assert len(folders) == 2 and all((f / "checkpoints/best.ckpt").is_file() for f in folders)
    assert all(json.loads((f / "report.json").read_text())["epochs"] == 1 for f in folders)


def test_dvc_views_are_readable(smoke_pipeline):
    """`dvc metrics show`: one row per cell with its val/test accuracy, read back from its MLflow run, without
    rows or warnings from the unrun pipelines; `dvc exp show` of the eight numbers fits 120 columns; the
    per-epoch history of each cell is the MLflow run's; `dvc plots show dvc.yaml` inlines Vega (no CDN) and
    draws the curves."""
    import mlflow

    work, env, _ = smoke_pipeline
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    table = run(["dvc", "metrics", "show"], work, env)
    lines = table.strip().splitlines()
    assert lines[0].split() == ["Path", *(f"{c}.{s}" for c in sorted(CELLS) for s in ("test", "val"))], table
    assert [line.split()[0] for line in lines[1:]] == [f"reports/imdb/metrics/{c}.json" for c in CELLS], table
    assert "failed" not in table and all(len(line.split()) == 9 for line in lines[1:]), table
    shown = run(
        ["dvc", "exp", "show", "--no-pager", "--drop", ".*", "--keep", r"Experiment|.*\.(val|test)$"],
        work,
        {**env, "COLUMNS": "120"},
    )
    assert max(map(len, shown.splitlines())) <= 120 and "…" not in shown, shown
    for cell in CELLS:
        report = json.loads((work / f"reports/imdb/train/{cell}.json").read_text())
        logged = client.get_run(report["run_id"]).data.metrics
        summary = json.loads((work / f"reports/imdb/metrics/{cell}.json").read_text())
        assert summary == {cell: {"val": logged["val/acc_best"], "test": logged["test/acc"]}}
        assert summary[cell]["test"] == pytest.approx(report["test/acc"])
        assert f" {round(summary[cell]['test'], 5)} " in shown.splitlines()[3]  # workspace row, DVC-rounded
        history = pd.read_csv(work / f"reports/imdb/history/{cell}.csv")
        assert list(history["epoch"]) == list(range(1, report["epochs"] + 1))  # the epoch is the step
        val_acc = [m.value for m in client.get_metric_history(report["run_id"], "val/acc")]
        assert list(history["val/acc"]) == pytest.approx(val_acc)
        assert {"train/loss", "val/loss", "lr"} <= set(history.columns)
    shown = run(["dvc", "plots", "show", "dvc.yaml", "-o", "dvc_plots"], work, env)
    assert "failed" not in shown
    page = (work / "dvc_plots" / "index.html").read_text()
    assert "Validation accuracy by epoch" in page and "accuracy_by_length.png" in page
    assert "cdn.jsdelivr.net" not in page and "vegaEmbed" in page


def execute_notebook(path: Path, cwd: Path) -> list[dict]:
    """Run a notebook top to bottom in `cwd` (so it cannot rot); return all its cells' outputs."""
    import nbformat
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    notebook = nbformat.read(path, as_version=4)
    # the kernel's sockets are files in a folder of its own, not TCP ports: a port jupyter_client found free
    # can be bound by another process before the kernel binds it ("Address already in use", seen in CI)
    with tempfile.TemporaryDirectory(prefix="kernel-") as sockets:
        kernel = KernelManager(kernel_name="python3", transport="ipc", ip=str(Path(sockets) / "ipc"))
        resources = {"metadata": {"path": str(cwd)}}
        NotebookClient(notebook, km=kernel, timeout=300, resources=resources).execute()
    return [output for cell in notebook.cells for output in cell.get("outputs", [])]


def printed(outputs: list[dict]) -> str:
    return "".join(output.get("text", "") for output in outputs)


def test_compare_runs_notebook_executes(smoke_pipeline, project_root, monkeypatch):
    """After the smoke pipeline: the notebook reads the four runs back from MLflow."""
    work, _, _ = smoke_pipeline
    # the project's own store (an in-process MLflow call of an earlier module may have exported another)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    outputs = execute_notebook(project_root / "notebooks" / "compare_runs.ipynb", work)
    assert "pipeline training runs in 'imdb'; latest of each: rnn, lstm, gru, bilstm" in printed(outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 2  # the per-epoch curves and the accuracy-by-length bars


def test_invalid_value_is_named_with_the_allowed_values(repo):
    work, env = repo
    done = subprocess.run(
        [sys.executable, "pipelines/encode.py", "data.encode.padding=middle"],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 2
    assert "data.encode.padding" in done.stderr and "pre" in done.stderr and "post" in done.stderr


def test_vanishing_gradients_notebook_executes(smoke_pipeline, project_root):
    """After the smoke pipeline: gradient flow, spectral radius, clipping and accuracy by length per cell."""
    work, _, _ = smoke_pipeline
    outputs = execute_notebook(project_root / "notebooks" / "vanishing_gradients.ipynb", work)
    assert "missing" not in printed(outputs), printed(outputs)
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4  # gradient flow, spectral radius, clipping, accuracy by length


def test_data_overview_notebook_executes(smoke_pipeline, project_root):
    work, _, _ = smoke_pipeline
    outputs = execute_notebook(project_root / "notebooks" / "data_overview.ipynb", work)
    assert "vocabulary:" in printed(outputs) and "most frequent:" in printed(outputs)
