"""Training: Lightning smoke runs of every cell; `pipelines/train.py` end to end with MLflow (tiny, CPU)."""

from __future__ import annotations

import json
import re
import shutil
import socket
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from rnnlab import tracking
from rnnlab.data.store import EncodedSplit
from rnnlab.data.vocab import Vocabulary
from rnnlab.tasks.classification.classifier import SequenceClassifier
from rnnlab.tasks.classification.sequence_data import SequenceDataModule
from synthetic import MAX_LEN, SIGNAL, VOCAB_SIZE, run_folders, run_train, tiny_overrides


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
    encoder = {
        "cell": cell,
        "bidirectional": bidirectional,
        "num_layers": 2,
        "hidden_size": 8,
        "embedding_dim": 8,
        "pooling": pooling,
        "dropout": 0.1,
    }
    model = SequenceClassifier(dm.vocab_size, dm.num_classes, encoder, scheduler=scheduler)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    trainer = L.Trainer(
        fast_dev_run=2,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
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


def train_run(project_root: Path, work: Path, encoded: Path, prepared: Path, uri: str, *extra: str) -> dict:
    args = [
        *tiny_overrides(work, encoded, prepared, uri),
        "model=gru",
        "trainer.max_epochs=2",
        "logger.system_metrics_s=1",
        *extra,
    ]
    run_train(project_root, args)
    return json.loads((run_folders(work, "gru")[-1] / "report.json").read_text())


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
        (folder,) = run_folders(work / run, "gru")  # a one-off run keeps everything in its own folder
        assert sorted(p.name for p in folder.iterdir()) == [
            "checkpoints",
            "diagnostics",
            "history.csv",
            "metrics.json",
            "report.json",
            "summary.txt",
        ]
        assert sorted(p.name for p in (folder / "checkpoints").iterdir()) == ["best.ckpt", "last.ckpt"]
        assert f"Total params: {GRU_PARAMS:,}" in (folder / "summary.txt").read_text()
        assert not (work / run / "models").exists() and not (work / run / "reports").exists()


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
            "model/hidden_size": "8",
            "model/embedding_dim": "8",
            "model/cell": "gru",
            "model/name": "gru",
            "trainer/max_epochs": "2",
            "seed": "42",
            "optim/lr": "0.03",
            "data/loader/batch_size": "8",
            "paths/encoded_dir": str(encoded),
            "ckpt_path": "None",
            "vocab_size": str(VOCAB_SIZE),
            "num_classes": "2",
            "param_count": str(GRU_PARAMS),
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
        assert tags["device"] == "cpu" and tags["world_size"] == "1"
        assert "mlflow.parentRunId" not in tags  # a single run, not a sweep's child

        assert tags["rnnlab.source"] == "run" and "mlflow.note.content" in tags
        assert tags["mlflow.note.content"].startswith("gru (GRU 1x8): best val/acc ")
        assert not any(key.startswith(("models/", "registry/", "compare/")) for key in params)

        # One clock: the epoch number is the step (0: before training, e.g. the initial weight spectra).
        history = {}
        per_epoch = ["train/loss", "val/acc", "train/seq_per_s", "train/grad_norm", "lr"]
        per_epoch += ["train/clip_fraction", "train/grad_norm_p50"]  # diagnostics
        for key in per_epoch:
            points = sorted(client.get_metric_history(run_id, key), key=lambda p: p.step)
            assert [p.step for p in points] == [1, 2], key  # once per epoch
            assert all(np.isfinite(p.value) for p in points), key
            history[key] = [p.value for p in points]
        spectra = client.get_metric_history(run_id, "weights/layer0.forward/z/spectral_radius")
        assert sorted(p.step for p in spectra) == [0, 1, 2]
        assert not {"epoch", "lr-AdamW"} & set(run.data.metrics)
        assert any(key.startswith("system/cpu") for key in run.data.metrics)  # system metrics are on

        datasets = {d.dataset.name: d for d in run.inputs.dataset_inputs}
        assert set(datasets) == {"imdb-train", "imdb-val", "imdb-test"}
        profile = json.loads(datasets["imdb-train"].dataset.profile)
        assert profile == {"rows": 200, "class_counts": {"0": 100, "1": 100}}
        assert {d.dataset.digest for d in datasets.values()} == {tags["data_hash"]}
        assert [t.value for t in datasets["imdb-val"].tags] == ["val"]

        # The best checkpoint is the run's model, at its epoch's step, with that epoch's metrics.
        (output,) = run.outputs.model_outputs
        model = client.get_logged_model(output.model_id)
        assert model.name == "imdb-gru" and model.source_run_id == run_id
        best_epoch = 1 + int(np.argmax(history["val/acc"]))
        assert output.step == best_epoch
        linked = {m.key: m.value for m in model.metrics if m.step == output.step}
        assert linked["val/acc"] == pytest.approx(reports[0]["val_acc_best"]) and "test/acc" in linked
        assert history["train/loss"][1] < history["train/loss"][0]
        assert max(history["val/acc"]) == pytest.approx(reports[0]["val_acc_best"])
        assert run.data.metrics["test/acc"] == pytest.approx(reports[0]["test/acc"])
        assert run.data.metrics["val/acc_best"] == pytest.approx(reports[0]["val_acc_best"])
        (report,) = [report for report in reports if report["run_id"] == run_id]
        assert run.data.metrics["train_seconds"] == report["train_seconds"] > 0
        histories.append(history)

        artifacts = {a.path: a.is_dir for a in client.list_artifacts(run_id)}
        assert artifacts == {
            "config.yaml": False,
            "model_summary.txt": False,
            "vocab.json": False,
            "diagnostics": True,
        }
        diagnostics = {a.path.split("/")[-1] for a in client.list_artifacts(run_id, "diagnostics")}
        assert {"gradient_flow.csv", "recurrent_weights.csv", "clipping.csv"} <= diagnostics
        local = Path(client.download_artifacts(run_id, "", str(work / "downloads" / run_id)))
        assert "hidden_size: 8" in (local / "config.yaml").read_text()
        assert f"Total params: {GRU_PARAMS:,}" in (local / "model_summary.txt").read_text()
        assert Vocabulary.load(local / "vocab.json") == Vocabulary.load(data[1] / "vocab.json")
    assert experiment.artifact_location == (work / "mlartifacts").as_uri()
    # The logged model predicts with the checkpoint at any sequence length (every axis is free).
    loaded = mlflow.pyfunc.load_model(client.get_logged_model(model.model_id).artifact_location)
    ids = np.array([[5, 7, 9, 11, 0, 0, 0], [8, 8, 8, 8, 8, 8, 8]], dtype=np.int64)
    logits = loaded.predict({"ids": ids, "lengths": np.array([4, 7], dtype=np.int64)})
    margin = logits[:, 1] - logits[:, 0]  # token 5 (the signal) scores more positive than none
    assert logits.shape == (2, 2) and margin[0] > margin[1] and logits[0].argmax() == 1
    # A model logged when the classifier lived in rnnlab.models.classifier still loads and predicts the same.
    logged = mlflow.artifacts.download_artifacts(artifact_uri=model.artifact_location)
    before = shutil.copytree(logged, work / "logged_before")
    spec = yaml.safe_load((before / "MLmodel").read_text())
    spec["flavors"]["python_function"]["config"]["module"] = "rnnlab.models.classifier.SequenceClassifier"
    (before / "MLmodel").write_text(yaml.safe_dump(spec))
    again = mlflow.pyfunc.load_model(str(before)).predict({"ids": ids, "lengths": np.array([4, 7])})
    assert np.array_equal(again, logits)
    # Same seed, same curves (throughput aside).
    for key in ("train/loss", "val/acc", "train/grad_norm"):
        assert histories[0][key] == histories[1][key], key


def test_resume_from_last_continues_the_same_run(tmp_path, project_root, data):
    """Two epochs, then `ckpt_path=last` with max_epochs=3: one more epoch, in the same MLflow run."""
    import mlflow

    encoded, prepared = data
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", (tmp_path / "mlartifacts").as_uri())
    first = train_run(project_root, tmp_path, encoded, prepared, uri)
    resumed = train_run(
        project_root, tmp_path, encoded, prepared, uri, "ckpt_path=last", "trainer.max_epochs=3"
    )
    assert resumed["run_id"] == first["run_id"] and resumed["epochs"] == 3
    client = mlflow.MlflowClient(tracking_uri=uri)
    runs = client.search_runs([client.get_experiment_by_name("imdb").experiment_id])
    assert [run.info.run_id for run in runs] == [first["run_id"]]
    run = runs[0]
    assert run.info.status == "FINISHED"
    # Params are immutable in MLflow: the first values stay, what changed is recorded as tags.
    assert run.data.params["trainer/max_epochs"] == "2" and run.data.params["ckpt_path"] == "None"
    assert run.data.tags["resumed/trainer/max_epochs"] == "3" and run.data.tags["resumed/ckpt_path"] == "last"
    epochs = sorted(client.get_metric_history(first["run_id"], "val/acc"), key=lambda p: p.step)
    assert len(epochs) == 3 and epochs[0].step < epochs[1].step < epochs[2].step


def test_resume_without_a_checkpoint_is_a_clear_error(tmp_path, project_root, data):
    encoded, prepared = data
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    args = [*tiny_overrides(tmp_path, encoded, prepared, uri), "ckpt_path=last"]
    done = run_train(project_root, args, expect_rc=2)
    assert "ckpt_path='last': no checkpoint at" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("model.cell=transformer", "model.cell='transformer' is not allowed; allowed: one of rnn, lstm, gru"),
        ("model.pooling=sum", "model.pooling='sum' is not allowed"),
        ("optim.scheduler=cosine", "optim.scheduler='cosine' is not allowed"),
    ],
)
def test_invalid_model_config_is_a_clear_error(tmp_path, project_root, data, override, message):
    encoded, prepared = data
    args = [*tiny_overrides(tmp_path, encoded, prepared, f"sqlite:///{tmp_path / 'mlflow.db'}"), override]
    done = run_train(project_root, args, expect_rc=2)
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "models").exists() and not (tmp_path / "mlflow.db").exists()


class WorseningModel(L.LightningModule):
    """Logs a val/acc that only gets worse, so the best checkpoint is epoch 0 and the latest is not."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        return (self.weight * batch["labels"]).sum()

    def validation_step(self, batch, batch_idx):
        self.log("val/acc", 1.0 / (1 + self.current_epoch))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return torch.utils.data.DataLoader([{"labels": torch.ones(1)}] * 4, batch_size=2)

    val_dataloader = train_dataloader


def test_last_checkpoint_is_the_latest_epoch_and_best_the_best(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from rnnlab.diagnostics.callbacks import RecurrentWeightMonitor
    from rnnlab.training import build_callbacks, build_trainer, epochs_completed

    settings = {"max_epochs": 3, "accelerator": "cpu", "enable_progress_bar": False}
    logger = CSVLogger(tmp_path / "logs")
    callbacks = build_callbacks(tmp_path / "checkpoints", "val/acc", "max", 0, tmp_path / "diagnostics")
    callbacks = [c for c in callbacks if not isinstance(c, RecurrentWeightMonitor)]  # the toy has no encoder
    trainer = build_trainer(settings, callbacks, logger)
    trainer.fit(WorseningModel())
    folder = tmp_path / "checkpoints"
    epoch_of = {n: torch.load(folder / f"{n}.ckpt", weights_only=False)["epoch"] for n in ("best", "last")}
    assert epoch_of == {"best": 0, "last": 2}
    assert epochs_completed(folder) == 3
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt"]
    assert trainer.checkpoint_callback.best_model_path == str(folder / "best.ckpt")
