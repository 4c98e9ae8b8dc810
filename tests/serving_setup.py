"""Shared set-up of the serving tests (test_serving.py, test_serving_http.py): a tiny trained classifier and
its data stages, its ONNX export, and a register stage run on fake training reports (one MLflow store,
registered once per session)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from rnnlab.io import write_json
from rnnlab.tasks.classification.classifier import SequenceClassifier
from rnnlab.tasks.classification.onnx_export import export_onnx
from rnnlab.tasks.classification.pyfunc import OnnxSentimentModel
from synthetic import clean_env

MAX_LEN = 8
POSITIVE = [
    "A great film, I loved it!",
    "Wonderful acting<br /><br />and a lovely score.",
    "Great story; great cast. 10/10",
    "I didn't expect to love it, but I did.",
    "Café scenes were LOVELY and the ending great.",
    "Loved every minute: wonderful!",
]
NEGATIVE = [
    "A terrible film, I hated it!",
    "Boring plot<br />and awful acting.",
    "Awful story; terrible cast. 1/10",
    "I didn't like it, and I won't watch it again.",
    "Two hours I'll never get back... boring.",
    "Hated every minute: awful!",
]
# Unseen words, HTML, upper case, punctuation runs, Unicode, an empty and a blank review, and reviews
# longer than MAX_LEN tokens (truncating "pre" keeps their end).
REVIEWS = [
    "This film was a masterpiece",
    "GREAT <i>acting</i>, awful plot!!!",
    "",
    "   ",
    "an unseen word: zyzzyva",
    "I didn't expect a boring, terrible, awful, dull, long, slow film",
    "Café au lait? Lovely.",
    "ünïcode façade 2024 great, great, GREAT and great again",
]
TEXTS = [text for text in REVIEWS if text.strip()]  # what a prediction may be asked for
CHAMPION = "imdb-sentiment"
SERVE_LIMITS = {"max_texts": 300, "max_bytes": 2_000_000}  # small enough to test, over one 256-text chunk


def run_script(project_root: Path, args: list[str], env: dict | None = None, expect_rc: int = 0):
    done = subprocess.run(
        [sys.executable, *args],
        cwd=project_root,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == expect_rc, f"{args[0]} exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="session")
def serving_stages(tmp_path_factory, project_root) -> Path:
    """The real prepare and encode stages on a handful of raw reviews (max_len 8, post-padding)."""
    work = tmp_path_factory.mktemp("stages")
    raw = work / "raw"
    raw.mkdir()
    train = POSITIVE + NEGATIVE
    for split, texts in (("train", train), ("test", REVIEWS)):
        labels = [int(i >= len(POSITIVE)) for i in range(len(train))] if split == "train" else [0, 1] * 4
        ids = [f"{split}/{i}" for i in range(len(texts))]  # as download writes them
        table = pa.table({"text": texts, "label": pa.array(labels, pa.int64()), "review_id": ids})
        pq.write_table(table, raw / f"{split}.parquet")
    write_json(raw / "source.json", {"label_names": ["neg", "pos"]})
    common = [
        f"paths.reports_dir={work / 'reports'}",
        f"hydra.run.dir={work / 'hydra'}",
        f"paths.prepared_dir={work / 'prepared'}",
    ]
    run_script(
        project_root,
        [
            "pipelines/prepare.py",
            *common,
            f"paths.raw_dir={raw}",
            "data.vocab.min_freq=1",
            "data.split.val_fraction=0.34",
        ],
    )
    run_script(
        project_root,
        [
            "pipelines/encode.py",
            *common,
            f"paths.encoded_dir={work / 'encoded'}",
            f"data.encode.max_len={MAX_LEN}",
        ],
    )
    return work


@pytest.fixture(scope="session")
def tiny_model(serving_stages) -> SequenceClassifier:
    """A random tiny GRU over the stages' vocabulary (random weights still make every text count)."""
    vocab_size = json.loads((serving_stages / "encoded" / "meta.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    return SequenceClassifier(vocab_size, 2, {"cell": "gru", "hidden_size": 8, "embedding_dim": 8}).eval()


@pytest.fixture(scope="session")
def files(serving_stages, tiny_model) -> dict[str, Path]:
    """The tiny model exported by rnnlab.tasks.classification.onnx_export, with the stages' vocabulary and
    meta.json."""
    (serving_stages / "export").mkdir()
    export_onnx(tiny_model, serving_stages / "export" / "model.onnx")
    return {
        "model": serving_stages / "export" / "model.onnx",
        "vocab": serving_stages / "prepared" / "vocab.json",
        "meta": serving_stages / "encoded" / "meta.json",
    }


@pytest.fixture(scope="session")
def onnx_model(files) -> OnnxSentimentModel:
    return OnnxSentimentModel.from_files(files["model"], files["vocab"], files["meta"])


@pytest.fixture(scope="session")
def registered(tmp_path_factory, project_root, files) -> dict:
    """Fake training reports and runs for four models; the register stage picks lstm (best val_acc)."""
    root = tmp_path_factory.mktemp("project")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("imdb", artifact_location=(root / "mlartifacts").as_uri())
    scores = {"rnn": 0.61, "lstm": 0.83, "gru": 0.79, "bilstm": float("nan")}
    runs = {}
    for name, score in scores.items():
        runs[name] = client.create_run(experiment, run_name=f"imdb-{name}").info.run_id
        client.set_terminated(runs[name])
        write_json(
            root / "reports" / "train" / f"{name}.json",
            {"model": name, "run_id": runs[name], "val_acc_best": score},
        )
    (root / "params.yaml").write_text("paths: {reports_dir: reports}\n")  # where `rnnlab predict` looks
    (root / "models" / "lstm" / "export").mkdir(parents=True)  # only the winner needs an export
    shutil.copy(files["model"], root / "models" / "lstm" / "export" / "model.onnx")
    done = run_script(
        project_root,
        [
            "pipelines/register.py",
            f"paths.reports_dir={root / 'reports'}",
            f"paths.models_dir={root / 'models'}",
            f"paths.prepared_dir={files['vocab'].parent}",
            f"paths.encoded_dir={files['meta'].parent}",
            f"logger.tracking_uri={uri}",
            f"hydra.run.dir={root / 'hydra'}",
        ],
        env=clean_env(RNNLAB_ROOT=str(root)),
    )
    return {"root": root, "uri": uri, "runs": runs, "stdout": done.stdout}


def champion_dir(uri: str) -> Path:
    """The champion's model folder in the store (read directly: in-process MLflow resolves models:/ URIs
    through its process-wide tracking URI only, which these tests leave alone)."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    model_id = client.get_model_version_by_alias(CHAMPION, "champion").source.removeprefix("models:/")
    return Path(urlparse(client.get_logged_model(model_id).artifact_location).path)
