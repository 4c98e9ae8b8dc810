"""Training: Lightning smoke runs of every cell; `pipelines/train.py` end to end with MLflow (tiny, CPU)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from rnnlab import tracking
from rnnlab.data.datamodule import SequenceDataModule
from rnnlab.data.store import EncodedSplit
from rnnlab.data.vocab import Vocabulary
from rnnlab.io import write_json
from rnnlab.models.classifier import SequenceClassifier

VOCAB_SIZE = 30  # ids 0 (<pad>) and 1 (<oov>), then w2 ... w29
SIGNAL = 5  # label 1 exactly when token 5 occurs
MAX_LEN = 20
SPLIT_ROWS = {"train": 200, "val": 60, "test": 60}


def write_vocab(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tokens = [f"w{i}" for i in range(2, VOCAB_SIZE)]
    Vocabulary(tokens, list(range(1000, 1000 - len(tokens), -1))).save(folder / "vocab.json")


def synthetic_split(rows: int, rng: np.random.Generator) -> EncodedSplit:
    """Balanced, learnable rows: random tokens (never the signal) plus, for label 1, the signal somewhere."""
    labels = np.arange(rows) % 2
    rng.shuffle(labels)
    lengths = rng.integers(2, MAX_LEN + 1, size=rows)
    ids = np.zeros((rows, MAX_LEN), np.int32)
    choices = np.array([t for t in range(2, VOCAB_SIZE) if t != SIGNAL])
    for i, (length, label) in enumerate(zip(lengths, labels, strict=True)):
        ids[i, :length] = rng.choice(choices, size=length)
        if label:
            ids[i, rng.integers(length)] = SIGNAL
    return EncodedSplit(ids, lengths, lengths, labels)


def write_encoded(folder: Path, seed: int = 0) -> None:
    """An encode-stage output (post-padded, as in tests/test_datamodule.py) with ~200/60/60 rows."""
    rng = np.random.default_rng(seed)
    for split, rows in SPLIT_ROWS.items():
        synthetic_split(rows, rng).save(folder / split)
    meta = {"vocab_size": VOCAB_SIZE, "num_classes": 2, "padding": "post", "max_len": MAX_LEN}
    write_json(folder / "meta.json", meta)


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    """(encoded dir, prepared dir holding vocab.json)."""
    root = tmp_path_factory.mktemp("data")
    write_encoded(root / "encoded")
    write_vocab(root / "prepared")
    return root / "encoded", root / "prepared"


def test_synthetic_data_is_what_the_tests_assume(data):
    encoded, _ = data
    split = EncodedSplit.load(encoded / "train")
    rows = list(zip(split.ids, split.lengths, strict=True))
    has_signal = np.array([SIGNAL in row[:n] for row, n in rows])
    assert np.array_equal(has_signal, split.labels.astype(bool)) and split.labels.mean() == 0.5
    assert split.ids.shape == (200, MAX_LEN) and split.ids.max() < VOCAB_SIZE
    assert all((row[n:] == 0).all() and (row[:n] > 1).all() for row, n in rows)


SMOKE = [
    ("rnn", False, "last", "plateau"),
    ("lstm", False, "max", "onecycle"),
    ("gru", False, "mean", "none"),
    ("lstm", True, "attention", "plateau"),
]


@pytest.mark.parametrize(("cell", "bidirectional", "pooling", "scheduler"), SMOKE)
def test_fast_dev_run_of_every_cell(data, cell, bidirectional, pooling, scheduler):
    encoded, _ = data
    L.seed_everything(0)
    dm = SequenceDataModule(encoded, batch_size=8)
    encoder = {"cell": cell, "bidirectional": bidirectional, "num_layers": 2, "hidden_size": 8,
               "embedding_dim": 8, "pooling": pooling, "dropout": 0.1}
    model = SequenceClassifier(dm.vocab_size, dm.num_classes, encoder, scheduler=scheduler)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = L.Trainer(fast_dev_run=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert trainer.state.finished and trainer.global_step == 2
    metrics = trainer.callback_metrics
    for key in ("train/loss", "train/grad_norm", "val/loss", "val/acc", "val/auroc"):
        assert torch.isfinite(metrics[key]), key
    assert 0 <= metrics["val/acc"] <= 1 and metrics["train/grad_norm"] > 0
    unchanged = [name for name, p in model.named_parameters() if torch.equal(before[name], p)]
    assert not unchanged  # two optimizer steps touched every parameter
    assert torch.equal(model.encoder.embedding.weight[0], torch.zeros(8))  # the padding row stays zero
    test = trainer.test(model, datamodule=dm, verbose=False)[0]
    assert {"test/loss", "test/acc", "test/f1", "test/auroc"} <= set(test)


# ------------------------------------------------------------------------------------------------------------
# pipelines/train.py, twice with the same seed

# GRU: 3H(d+H+2) with d = H = 8, plus a 30 x 8 embedding and an 8 -> 2 head.
GRU_PARAMS = 3 * 8 * (8 + 8 + 2) + VOCAB_SIZE * 8 + (8 * 2 + 2)


def train_run(project_root: Path, work: Path, encoded: Path, prepared: Path, uri: str) -> dict:
    overrides = [
        f"paths.encoded_dir={encoded}",
        f"paths.prepared_dir={prepared}",
        f"paths.models_dir={work / 'models'}",
        f"paths.reports_dir={work / 'reports'}",
        f"logger.tracking_uri={uri}",
        f"hydra.run.dir={work / 'hydra'}",
        "trainer.max_epochs=2",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "model=gru",
        "model.hidden_size=8",
        "model.embedding_dim=8",
        "data.loader.batch_size=8",
        "optim.lr=0.03",  # learns the synthetic task within two epochs
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RNNLAB_"))}
    done = subprocess.run([sys.executable, "pipelines/train.py", *overrides], cwd=project_root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"train.py failed:\n{done.stdout}\n{done.stderr}"
    return json.loads((work / "reports" / "train" / "gru.json").read_text())


@pytest.fixture(scope="module")
def trained(tmp_path_factory, project_root, data) -> tuple[list[dict], str, Path]:
    """Two runs of the train stage on the same data and seed, into one MLflow store."""
    import mlflow

    encoded, prepared = data
    work = tmp_path_factory.mktemp("train")
    uri = f"sqlite:///{work / 'mlflow.db'}"
    # Created up front so that artifacts land in the temporary folder, not in the project's mlartifacts/.
    artifacts = (work / "mlartifacts").as_uri()
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", artifact_location=artifacts)
    reports = [train_run(project_root, work / f"run{i}", encoded, prepared, uri) for i in (1, 2)]
    return reports, uri, work


def test_same_seed_gives_identical_metrics(trained):
    (first, second), _, _ = trained
    for key in ("val_acc_best", "test/acc", "test/loss", "test/f1", "test/auroc", "params", "epochs"):
        assert first[key] == second[key], key
    assert first["run_id"] != second["run_id"]
    assert first["model"] == "gru" and first["epochs"] == 2 and first["params"] == GRU_PARAMS
    # Learned, not guessed: the label is "token 5 occurs", chance is 0.5.
    assert first["val_acc_best"] >= 0.75 and first["test/acc"] >= 0.75 and first["test/loss"] < 0.6
    assert all(np.isfinite(r["train_seq_per_s"]) and r["train_seq_per_s"] > 0 for r in (first, second))


def test_train_writes_checkpoints_and_summary(trained):
    _, _, work = trained
    for run in ("run1", "run2"):
        folder = work / run / "models" / "gru"
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        assert f"Total params: {GRU_PARAMS:,}" in (folder / "summary.txt").read_text()


def test_runs_are_tracked_in_mlflow(trained, project_root, data):
    import mlflow

    reports, uri, work = trained
    encoded, _ = data
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name("imdb")
    assert experiment is not None
    runs = {run.info.run_id: run for run in client.search_runs([experiment.experiment_id])}
    assert set(runs) == {report["run_id"] for report in reports}
    histories = []
    for run_id, run in runs.items():
        assert re.fullmatch(r"imdb-gru-[0-9a-f]{6}", run.info.run_name), run.info.run_name
        assert run.info.status == "FINISHED"

        # The composed config, flattened with "/", and the LightningModule's own hyperparameters.
        params = run.data.params
        expected = {
            "model/hidden_size": "8", "model/embedding_dim": "8", "model/cell": "gru", "model/name": "gru",
            "trainer/max_epochs": "2", "seed": "42", "optim/lr": "0.03", "data/loader/batch_size": "8",
            "paths/encoded_dir": str(encoded), "encoder/hidden_size": "8", "vocab_size": str(VOCAB_SIZE),
        }
        assert {key: params.get(key) for key in expected} == expected

        tags = run.data.tags
        # HEAD of the checkout (not compared with the current HEAD: a commit may land while tests run).
        assert re.fullmatch(r"[0-9a-f]{40}|unknown", tags["git_commit"]), tags["git_commit"]
        if (project_root / ".git").exists():
            assert tags["git_commit"] != "unknown"
        assert tags["data_hash"] == tracking.data_fingerprint(encoded)
        assert tags["host"] == socket.gethostname()
        assert tags["model"] == "gru" and tags["cell"] == "gru"

        history = {}
        for key in ("train/loss", "val/acc", "train/seq_per_s", "train/grad_norm"):
            points = sorted(client.get_metric_history(run_id, key), key=lambda p: p.step)
            assert len(points) == 2, key  # once per epoch
            assert all(np.isfinite(p.value) for p in points), key
            history[key] = [p.value for p in points]
        assert history["train/loss"][1] < history["train/loss"][0]
        assert max(history["val/acc"]) == pytest.approx(reports[0]["val_acc_best"])
        assert run.data.metrics["test/acc"] == pytest.approx(reports[0]["test/acc"])
        histories.append(history)

        artifacts = {a.path: a.is_dir for a in client.list_artifacts(run_id)}
        assert artifacts == {"config.yaml": False, "model_summary.txt": False, "vocab.json": False,
                             "checkpoints": True}
        assert [a.path for a in client.list_artifacts(run_id, "checkpoints")] == ["checkpoints/best.ckpt"]
        local = Path(client.download_artifacts(run_id, "", str(work / "downloads" / run_id)))
        assert "hidden_size: 8" in (local / "config.yaml").read_text()
        assert f"Total params: {GRU_PARAMS:,}" in (local / "model_summary.txt").read_text()
        assert Vocabulary.load(local / "vocab.json") == Vocabulary.load(data[1] / "vocab.json")
    assert experiment.artifact_location == (work / "mlartifacts").as_uri()
    # Same seed, same curves (throughput aside).
    for key in ("train/loss", "val/acc", "train/grad_norm"):
        assert histories[0][key] == histories[1][key], key
