"""The pretrain stage on the mini archive: which reviews reach word2vec (checked by ids), determinism, the
vectors in every cell's embedding with `model.init_from=word2vec`, the MLflow link, and the refusals."""

from __future__ import annotations

import importlib.util
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from unittest import mock

import mlflow
import numpy as np
import pyarrow as pa
import pytest
import torch
import yaml
from hydra import compose, initialize_config_dir

from mlflow_store import fresh_store
from rnnlab.config import section
from rnnlab.data.store import read_split_table, write_split_table
from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import ConfigError, MissingInputError
from rnnlab.io import read_json, write_json
from rnnlab.pretraining import corpus as corpus_module
from rnnlab.pretraining.corpus import read_corpus
from rnnlab.pretraining.outputs import pretrained_init
from rnnlab.pretraining.word2vec import train_word2vec, write_vectors, written_tokens
from rnnlab.stage import report_errors
from rnnlab.tasks import classification
from rnnlab.tasks.classification.acquisition import download
from rnnlab.tasks.classification.preparation import prepare
from rnnlab.validation import validate
from synthetic import run_train

ROOT = Path(__file__).resolve().parents[1]
CELLS = ("rnn", "lstm", "gru", "bilstm")


def composed(overrides: list[str]):
    with initialize_config_dir(str(ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


def stage(name: str):
    """pipelines/<name>.py's stage function, to call in-process with a composed config."""
    spec = importlib.util.spec_from_file_location(f"{name}_stage", ROOT / "pipelines" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return report_errors(module.main.__wrapped__)


def work_overrides(work: Path) -> list[str]:
    return [f"paths.{key}_dir={work / key}" for key in ("data", "models", "reports", "runs")]


def encoded_project(work: Path, mini_archive: Path, *extra: str) -> list[str]:
    """download, prepare and encode the mini archive into `work` with the smoke settings, an MLflow store
    there with the `imdb` experiment; returns the overrides (`extra` appended)."""
    uri = fresh_store(work / "mlflow.db")
    mlflow.MlflowClient(tracking_uri=uri).create_experiment("imdb", (work / "mlartifacts").as_uri())
    overrides = [
        "experiment=smoke",
        *work_overrides(work),
        f"data.source.uri={mini_archive}",
        "data.source.sha256=null",
        f"logger.tracking_uri={uri}",
        *extra,
    ]
    cfg = composed(overrides)
    download(cfg)
    prepare(cfg)
    stage("encode")(cfg)
    return overrides


@pytest.fixture(scope="module")
def work(tmp_path_factory, mini_archive) -> tuple[Path, list[str]]:
    """download, prepare, encode and pretrain (tagged as DVC runs it) on the mini archive with the smoke
    settings: (folder, the overrides)."""
    work = tmp_path_factory.mktemp("pretrain")
    overrides = encoded_project(work, mini_archive)
    cfg = composed(overrides)
    with mock.patch.dict(os.environ, {"DVC_STAGE": "pretrain"}):
        stage("pretrain")(cfg)
    return work, overrides


def written_vectors(work: Path) -> dict[str, np.ndarray]:
    lines = (work / "models/pretrain/word2vec/vectors.txt").read_text(encoding="utf-8").splitlines()
    assert lines[0].split() == [str(len(lines) - 1), "16"]
    return {word: np.array(values, np.float32) for word, *values in (line.split(" ") for line in lines[1:])}


def test_only_training_and_unlabelled_reviews_reach_pretraining(work):
    work, _ = work
    raw, prepared = work / "data/raw/imdb", work / "data/prepared/imdb"
    reached = (work / "models/pretrain/word2vec/review_ids.txt").read_text(encoding="utf-8").splitlines()
    train = read_split_table(prepared, "train")["review_id"].to_pylist()
    unsup = read_split_table(raw, "unsup")["review_id"].to_pylist()
    val = read_split_table(prepared, "val")["review_id"].to_pylist()
    test = read_split_table(raw, "test")["review_id"].to_pylist()
    assert reached == train + unsup and (len(train), len(unsup), len(val), len(test)) == (900, 200, 100, 1000)
    assert set(read_split_table(raw, "train")["review_id"].to_pylist()) == set(train) | set(val)
    assert not set(reached) & (set(val) | set(test))
    assert all(review_id.startswith(("train/", "unsup/")) for review_id in reached)
    report = read_json(work / "reports/pretrain/word2vec.json")
    assert report["corpus"]["texts"] == {"train": 900, "unsup": 200, "total": 1100}
    opened = []

    def spy(folder: Path, name: str, columns: list[str] | None = None) -> pa.Table:
        opened.append(name)
        return read_split_table(folder, name, columns)

    with mock.patch.object(corpus_module, "read_split_table", spy):
        corpus = read_corpus(prepared)
    assert opened == ["train", "unsup"] and corpus.review_ids == reached  # val and test are never opened
    texts = [read_split_table(prepared, name)["ids"].to_pylist() for name in ("train", "unsup")]
    assert corpus.ids.tolist() == [i for table in texts for ids in table for i in ids]
    assert report["corpus"]["tokens"] == len(corpus.ids)


def test_pretrain_corpus_train_learns_from_the_labelled_training_reviews_alone(work, tmp_path):
    """`pretrain.corpus=[train]` (pretraining without the unlabelled reviews), into folders of its own: its
    ids, report and MLflow run name the training split only, and the pipeline's vectors are untouched."""
    work, overrides = work
    pipeline_vectors = (work / "models/pretrain/word2vec/vectors.txt").read_bytes()
    own = [f"paths.models_dir={tmp_path / 'models'}", f"paths.reports_dir={tmp_path / 'reports'}"]
    stage("pretrain")(composed([*overrides, "pretrain.corpus=[train]", *own]))
    reached = (tmp_path / "models/pretrain/word2vec/review_ids.txt").read_text(encoding="utf-8").splitlines()
    assert reached == read_split_table(work / "data/prepared/imdb", "train")["review_id"].to_pylist()
    report = read_json(tmp_path / "reports/pretrain/word2vec.json")
    assert report["corpus"]["texts"] == {"train": 900, "total": 900}
    run = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}").get_run(report["run_id"])
    assert run.data.params["pretrain/corpus"] == "train" and "pretrain/texts_unsup" not in run.data.metrics
    assert "(train 900; no validation or test text)" in run.data.tags["mlflow.note.content"]
    assert (work / "models/pretrain/word2vec/vectors.txt").read_bytes() == pipeline_vectors


@pytest.mark.parametrize("sources", [("val",), ("train", "test"), ()])
def test_read_corpus_refuses_any_table_but_train_and_unsup(work, sources):
    with pytest.raises(ValueError, match="pretraining reads a non-empty selection of"):
        read_corpus(work[0] / "data/prepared/imdb", sources)


def test_the_stage_depends_on_the_training_and_unlabelled_tables_only():
    deps = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]["pretrain"]["deps"]
    data = sorted(dep for dep in deps if dep.startswith("${paths.prepared_dir}"))
    assert data == [
        f"${{paths.prepared_dir}}/{name}" for name in ("train.parquet", "unsup.parquet", "vocab.json")
    ]


SAME_VECTORS = """
import json, sys
from pathlib import Path
from rnnlab.data.vocab import Vocabulary
from rnnlab.pretraining.corpus import read_corpus
from rnnlab.pretraining.word2vec import train_word2vec, write_vectors, written_tokens
prepared = Path(sys.argv[1])
tokens = Vocabulary.load(prepared / "vocab.json").tokens
vectors = train_word2vec(read_corpus(prepared), tokens, json.loads(sys.argv[2]), 42, False)
write_vectors(vectors, written_tokens(vectors), sys.stdout)
"""


def test_same_seed_same_vectors(work):
    """One worker thread and the seed: the stage's vectors again, byte for byte, in this process and in
    another one with another hash seed; another seed gives others."""
    work, overrides = work
    prepared = work / "data/prepared/imdb"
    corpus, tokens = read_corpus(prepared), Vocabulary.load(prepared / "vocab.json").tokens
    settings = section(composed(overrides), "pretrain.word2vec")
    stage_file = (work / "models/pretrain/word2vec/vectors.txt").read_text(encoding="utf-8")
    again, other = (train_word2vec(corpus, tokens, settings, seed, False) for seed in (42, 43))
    written = io.StringIO()
    write_vectors(again, written_tokens(again), written)
    assert written.getvalue() == stage_file
    assert again.index_to_key == other.index_to_key and not np.allclose(again.vectors, other.vectors)
    env = {**os.environ, "PYTHONHASHSEED": "7", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SAME_VECTORS, str(prepared), json.dumps(settings)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    assert done.stdout == stage_file


def test_word2vec_init_puts_the_vectors_in_every_cells_embedding(work):
    work, overrides = work
    cfg = composed(overrides)
    data = classification.datamodule(cfg)
    vocab = Vocabulary.load(work / "data/prepared/imdb/vocab.json")
    vectors = written_vectors(work)
    run_id = read_json(work / "reports/pretrain/word2vec.json")["run_id"]
    known = [token for token in vocab.tokens[2:] if token in vectors]
    assert len(known) == len(vocab) - 2  # every vocabulary token has a vector (min_count 1)
    for cell in CELLS:
        model_cfg = {**section(cfg, f"models.{cell}"), "init_from": "word2vec"}
        built = classification.build_model(cfg, model_cfg, data)
        weight = built.model.encoder.embedding.weight.detach()
        rows = weight[[vocab.token_to_id(token) for token in known]]
        assert torch.equal(rows, torch.from_numpy(np.stack([vectors[token] for token in known]))), cell
        assert not weight[0].any() and built.metrics == {"embeddings/pretrained_coverage": 1.0}
        assert built.links == {"pretrain_run_id": run_id} and run_id in built.note
        fresh = classification.build_model(cfg, {**section(cfg, f"models.{cell}"), "init_from": "none"}, data)
        assert not torch.equal(fresh.model.encoder.embedding.weight[2:], weight[2:]) and not fresh.links


def test_the_classifier_run_links_to_the_pretraining_run(work, project_root):
    work, overrides = work
    run_train(
        project_root,
        [
            *overrides,
            f"hydra.run.dir={work / 'hydra'}",
            "model=gru",
            "model.init_from=word2vec",
            "trainer.max_epochs=1",
            "trainer.limit_train_batches=2",
            "trainer.limit_val_batches=1",
            "trainer.accelerator=cpu",
            "logger.system_metrics=false",
        ],
    )
    client = mlflow.MlflowClient(tracking_uri=f"sqlite:///{work / 'mlflow.db'}")
    pretrain = read_json(work / "reports/pretrain/word2vec.json")
    source = client.get_run(pretrain["run_id"])
    assert source.info.status == "FINISHED" and source.info.run_name.startswith("imdb-word2vec-")
    assert source.data.tags["rnnlab.source"] == "dvc" and source.data.tags["rnnlab.stage"] == "pretrain"
    assert source.data.tags["pretrain"] == "word2vec" and "model" not in source.data.tags  # not a cell's run
    assert source.data.params["pretrain/word2vec/vector_size"] == "16"
    assert (
        source.data.metrics["pretrain/texts_unsup"] == 200
        and source.data.metrics["pretrain/vocab_coverage"] == 1
    )
    artifacts = {a.path for a in client.list_artifacts(source.info.run_id, "word2vec")}
    assert artifacts == {"word2vec/vectors.txt", "word2vec/review_ids.txt"}
    (report,) = (work / "runs/gru").glob("*/report.json")
    trained = client.get_run(read_json(report)["run_id"])
    assert read_json(report)["pretrain_run_id"] == pretrain["run_id"]
    assert (
        trained.data.params["pretrain_run_id"] == trained.data.tags["pretrain_run_id"] == pretrain["run_id"]
    )
    assert (
        trained.data.params["model/init_from"] == "word2vec"
        and "pretrain/word2vec/epochs" not in trained.data.params
    )
    link = f"#/experiments/{pretrain['experiment_id']}/runs/{pretrain['run_id']}"
    assert link in trained.data.tags["mlflow.note.content"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (
            ["model.init_from=bert"],
            "model.init_from='bert' is not allowed; allowed: one of none, word2vec, lm",
        ),
        (
            ["models.gru.init_from=glove"],
            "models.gru.init_from='glove' is not allowed; allowed: one of none, word2vec, lm",
        ),
        (
            ["task=charlm", "model.init_from=word2vec"],
            "allowed: none (pretrained weights: the imdb task only)",
        ),
        (
            ["pretrain.corpus=[train,test]"],
            "pretrain.corpus=['train', 'test'] is not allowed; allowed: a non-empty list without repeats, "
            "each one of train, unsup",
        ),
        (["pretrain.corpus=[]"], "pretrain.corpus=[] is not allowed"),
        (["pretrain.corpus=[train,train]"], "without repeats"),
        (["pretrain.word2vec.sg=2"], "pretrain.word2vec.sg=2 is not allowed; allowed: one of 0, 1"),
        (["pretrain.word2vec.epochs=0"], "pretrain.word2vec.epochs=0 is not allowed"),
        (
            ["model.init_from=word2vec", "model.embedding_dim=64"],
            "model.embedding_dim=64 is not allowed; allowed: 128 (pretrain.word2vec.vector_size; "
            "model.init_from=word2vec)",
        ),
        (
            ["+model_key=gru", "models.gru.init_from=word2vec", "models.gru.pretrained_embeddings=/v.txt"],
            "models.gru.pretrained_embeddings='/v.txt' is not allowed; allowed: null",
        ),
    ],
)
def test_bad_init_from_settings_are_refused(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        validate(composed(overrides))


def test_word2vec_init_without_the_stage_or_with_other_dimensions_is_refused(tmp_path):
    cfg = composed(work_overrides(tmp_path))
    model_cfg = {**section(cfg, "model"), "init_from": "word2vec"}
    with pytest.raises(MissingInputError, match=r"word2vec/vectors.txt is missing: .*`dvc repro pretrain`"):
        pretrained_init(cfg, model_cfg)
    (tmp_path / "models/pretrain/word2vec").mkdir(parents=True)
    (tmp_path / "models/pretrain/word2vec/vectors.txt").write_text("1 16\nfilm" + " 0.5" * 16 + "\n")
    write_json(
        tmp_path / "reports/pretrain/word2vec.json", {"vector_size": 16, "run_id": "r", "experiment_id": "1"}
    )
    with pytest.raises(ConfigError, match="holds 16-dimensional vectors but model.embedding_dim=128"):
        pretrained_init(cfg, model_cfg)
    assert pretrained_init(cfg, {**model_cfg, "embedding_dim": 16}).run_id == "r"


def test_a_source_without_unlabelled_texts_pretrains_on_the_training_split(tmp_path):
    """A table source (or an IMDB copy without train/unsup/) has no raw `unsup` table: prepare writes an empty
    one and pretraining reads the training split alone."""
    raw = tmp_path / "data/raw/imdb"
    raw.mkdir(parents=True)
    for split in ("train", "test"):
        texts = [f"{split} text {i} good" if i % 2 else f"{split} text {i} bad" for i in range(20)]
        table = {
            "text": texts,
            "label": [i % 2 for i in range(20)],
            "review_id": [f"{split}/{i}" for i in range(20)],
        }
        write_split_table(raw, split, pa.table(table))
    write_json(raw / "source.json", {"label_names": ["neg", "pos"]})
    metrics, facts = prepare(composed(work_overrides(tmp_path)))
    assert facts["unsup"] == 0 and metrics["unsup"]["reviews"] == 0
    corpus = read_corpus(tmp_path / "data/prepared/imdb")
    assert corpus.texts == {"train": 18, "unsup": 0} and all(
        i.startswith("train/") for i in corpus.review_ids
    )
