"""The pretrain_lm@<cell> stage on the mini archive: which reviews the language model reads (no test review,
the validation split for monitoring only), its checkpoint in the classifier with `model.init_from=lm`, the
MLflow link, the cells that do not use it, resume, and the refusals."""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from unittest import mock

import mlflow
import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml
from test_pretrain import ROOT, composed, encoded_project, stage

from rnnlab.config import section
from rnnlab.data.store import read_split_table
from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import ConfigError, MissingInputError
from rnnlab.io import read_json
from rnnlab.pretraining import corpus as corpus_module
from rnnlab.pretraining import lm_data as lm_data_module
from rnnlab.pretraining.outputs import pretrained_init
from rnnlab.pretraining.transfer import load_language_model
from rnnlab.pretraining.word_lm import WordLanguageModel
from rnnlab.tasks import classification
from rnnlab.validation import validate
from synthetic import run_train

CELL = "gru"


def run_stage(overrides: list[str], cell: str, *extra: str) -> list[str]:
    """pretrain_lm@<cell> in-process, as DVC runs it: the prepared tables it opened, in order."""
    opened = []

    def spy(folder: Path, name: str, columns: list[str] | None = None) -> pa.Table:
        opened.append(name)
        return read_split_table(folder, name, columns)

    with (
        mock.patch.dict(os.environ, {"DVC_STAGE": f"pretrain_lm@{cell}"}),
        mock.patch.object(corpus_module, "read_split_table", spy),
        mock.patch.object(lm_data_module, "read_split_table", spy),
    ):
        stage("pretrain_lm")(composed([*overrides, f"+model_key={cell}", *extra]))
    return opened


@pytest.fixture(scope="module")
def work(tmp_path_factory, mini_archive) -> tuple[Path, list[str], list[str]]:
    """download, prepare, encode, then pretrain_lm@gru with `models.gru.init_from=lm` on the smoke settings:
    (folder, the overrides, the tables the stage opened)."""
    work = tmp_path_factory.mktemp("pretrain_lm")
    overrides = encoded_project(work, mini_archive, f"models.{CELL}.init_from=lm")
    return work, overrides, run_stage(overrides, CELL)


def test_the_language_model_learns_from_train_and_unlabelled_reviews_and_never_reads_test(work):
    work, overrides, opened = work
    assert opened == ["train", "unsup", "val"]  # test.parquet is never opened
    prepared = work / "data/prepared/imdb"
    vocab_size = len(Vocabulary.load(prepared / "vocab.json"))
    data = lm_data_module.read_language_model_data(prepared, vocab_size, 42)
    tables = {name: read_split_table(prepared, name)["ids"].to_pylist() for name in ("train", "unsup", "val")}

    def reviews(stream: np.ndarray) -> Counter:
        ends = np.flatnonzero(stream == vocab_size)
        return Counter(tuple(piece) for piece in np.split(stream.tolist(), ends + 1)[:-1])

    learnt = Counter(tuple(ids) + (vocab_size,) for ids in tables["train"] + tables["unsup"])
    assert reviews(data.train) == learnt  # every training and unlabelled review once, no other
    assert data.val.tolist() == [i for ids in tables["val"] for i in (*ids, vocab_size)]
    report = read_json(work / f"reports/pretrain/lm/{CELL}.json")
    assert report["texts"] == {"train": 900, "unsup": 200, "val": 100} and report["trained"]
    assert report["train_tokens"] == len(data.train) and report["val_tokens"] == len(data.val)
    stages = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
    deps = [dep for dep in stages["pretrain_lm"]["do"]["deps"] if dep.startswith("${paths.prepared_dir}")]
    assert sorted(deps) == [
        f"${{paths.prepared_dir}}/{name}"
        for name in ("train.parquet", "unsup.parquet", "val.parquet", "vocab.json")
    ]


def test_init_from_lm_copies_the_language_models_embedding_and_first_layer(work):
    work, overrides, _ = work
    cfg = composed(overrides)
    data = classification.datamodule(cfg)
    lm = load_language_model(work / f"models/pretrain/lm/{CELL}/lm.ckpt")
    built = classification.build_model(cfg, section(cfg, f"models.{CELL}"), data)
    vocab_size = built.model.hparams.vocab_size
    encoder = built.model.encoder
    assert torch.equal(encoder.embedding.weight, lm.embedding.weight[:vocab_size])
    source = lm.encoder.layers[0].forward_rnn
    for name, param in encoder.layers[0].forward_rnn.named_parameters():
        assert torch.equal(param, source.get_parameter(name)), name
    run_id = read_json(work / f"reports/pretrain/lm/{CELL}.json")["run_id"]
    assert built.links == {"pretrain_run_id": run_id} and "embedding and first recurrent layer" in built.note


def test_the_classifier_run_links_to_the_language_model_run(work, project_root):
    work, overrides, _ = work
    run_train(
        project_root,
        [
            *overrides,
            f"hydra.run.dir={work / 'hydra'}",
            f"model={CELL}",
            "model.init_from=lm",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.accelerator=cpu",
            "logger.system_metrics=false",
        ],
    )
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    pretrained = read_json(work / f"reports/pretrain/lm/{CELL}.json")
    source = client.get_run(pretrained["run_id"])
    assert source.info.status == "FINISHED" and source.info.run_name.startswith(f"imdb-lm-{CELL}-")
    tags = source.data.tags
    assert tags["rnnlab.source"] == "dvc" and tags["rnnlab.stage"] == f"pretrain_lm@{CELL}"
    assert tags["pretrain"] == "lm" and "model" not in tags  # not a cell's run
    assert (
        source.data.params["pretrain/lm/chunk_len"] == "16"
        and source.data.params["pretrain/corpus"] == "train,unsup"
        and source.data.params["model/cell"] == CELL
    )
    for key in ("train/loss", "val/loss"):
        assert [m.step for m in client.get_metric_history(source.info.run_id, key)] == [1], key
    assert source.data.metrics["pretrain/unsup"] == 200 and "no test text" in tags["mlflow.note.content"]
    (report,) = (work / f"runs/{CELL}").glob("*/report.json")
    trained = client.get_run(read_json(report)["run_id"])
    assert read_json(report)["pretrain_run_id"] == pretrained["run_id"]
    assert (
        trained.data.params["pretrain_run_id"] == trained.data.tags["pretrain_run_id"] == source.info.run_id
    )
    assert trained.data.params["model/init_from"] == "lm"
    link = f"#/experiments/{pretrained['experiment_id']}/runs/{pretrained['run_id']}"
    assert link in trained.data.tags["mlflow.note.content"]


def test_a_cell_not_starting_from_the_language_model_trains_none(work):
    """Its stage writes the same folder (one note) and report every time: train@<cell> does not rerun."""
    work, overrides, _ = work
    reports = []
    for epochs in (1, 2):
        assert run_stage(overrides, "lstm", f"pretrain.lm.epochs={epochs}") == []
        assert [p.name for p in (work / "models/pretrain/lm/lstm").iterdir()] == ["not_trained.txt"]
        reports.append((work / "reports/pretrain/lm/lstm.json").read_bytes())
    assert reports[0] == reports[1] and read_json(work / "reports/pretrain/lm/lstm.json")["trained"] is False
    cfg = composed(overrides)
    with pytest.raises(
        MissingInputError, match=r"lm/lstm/lm.ckpt is missing: .*pretrain_lm@lstm .*init_from=lm"
    ):
        pretrained_init(cfg, {**section(cfg, "models.lstm"), "init_from": "lm"})


def test_an_interrupted_stage_resumes_in_its_mlflow_run(work):
    work, overrides, _ = work
    cell, steps = "rnn", ["models.rnn.init_from=lm", "pretrain.lm.checkpoint_every_n_steps=2"]
    real = WordLanguageModel.training_step

    def crash(self, batch, batch_idx):
        if batch_idx == 3:
            raise RuntimeError("killed mid-epoch")
        return real(self, batch, batch_idx)

    with (
        mock.patch.object(WordLanguageModel, "training_step", crash),
        pytest.raises(RuntimeError, match="killed"),
    ):
        run_stage(overrides, cell, *steps)
    assert not (work / f"reports/pretrain/lm/{cell}.json").exists()
    last = work / f"runs/pretrain-lm/{cell}/checkpoints/last.ckpt"
    interrupted = torch.load(last, map_location="cpu", weights_only=False)
    assert interrupted["global_step"] == 2
    run_stage(overrides, cell, *steps, "ckpt_path=last")
    report = read_json(work / f"reports/pretrain/lm/{cell}.json")
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    run = client.get_run(report["run_id"])
    assert run.info.status == "FINISHED" and run.data.tags["rnnlab.stage"] == f"pretrain_lm@{cell}"
    assert [m.step for m in client.get_metric_history(report["run_id"], "train/loss")] == [1]
    assert len(client.search_runs([run.info.experiment_id], f"tags.rnnlab.stage = 'pretrain_lm@{cell}'")) == 1
    assert not last.parent.parent.exists()  # the scratch folder goes once the outputs are written


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["+model_key=gru", "models.gru.init_from=lm", "models.gru.pretrained_embeddings=/v.txt"],
            "models.gru.pretrained_embeddings='/v.txt' is not allowed; allowed: null",
        ),
        (["pretrain.lm.cutoffs=[0]"], "pretrain.lm.cutoffs=[0] is not allowed"),
        (["pretrain.lm.scheduler=cosine"], "pretrain.lm.scheduler='cosine' is not allowed"),
        (["task=charlm", "model.init_from=lm"], "allowed: none (pretrained weights: the imdb task only)"),
    ],
)
def test_bad_language_model_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(composed(overrides))
