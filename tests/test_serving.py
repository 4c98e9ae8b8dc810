"""Serving on raw text: preprocessing parity with the data stages, ONNX Runtime, the MLflow pyfunc, the
register stage, `rnnlab serve` over HTTP (every rejected payload, the limits) and `rnnlab predict`."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests
import torch
from mlflow.exceptions import MlflowException

from rnnlab.cli import main as cli_main
from rnnlab.data.encode import pad_and_truncate
from rnnlab.data.store import EncodedSplit, ragged_ids, read_split_table
from rnnlab.errors import RnnlabError
from rnnlab.export import export_onnx
from rnnlab.io import current_umask, write_json
from rnnlab.models.classifier import SequenceClassifier
from rnnlab.serving import MAX_CHARS, OnnxSentimentModel, TextEncoder, log_text_model
from synthetic import clean_env

MAX_LEN = 8
POSITIVE = ["A great film, I loved it!", "Wonderful acting<br /><br />and a lovely score.",
            "Great story; great cast. 10/10", "I didn't expect to love it, but I did.",
            "Café scenes were LOVELY and the ending great.", "Loved every minute: wonderful!"]
NEGATIVE = ["A terrible film, I hated it!", "Boring plot<br />and awful acting.",
            "Awful story; terrible cast. 1/10", "I didn't like it, and I won't watch it again.",
            "Two hours I'll never get back... boring.", "Hated every minute: awful!"]
# Unseen words, HTML, upper case, punctuation runs, Unicode, an empty and a blank review, and reviews
# longer than MAX_LEN tokens (truncating "pre" keeps their end).
REVIEWS = ["This film was a masterpiece", "GREAT <i>acting</i>, awful plot!!!", "", "   ",
           "an unseen word: zyzzyva", "I didn't expect a boring, terrible, awful, dull, long, slow film",
           "Café au lait? Lovely.", "ünïcode façade 2024 great, great, GREAT and great again"]
TEXTS = [text for text in REVIEWS if text.strip()]  # what a prediction may be asked for
CHAMPION = "imdb-sentiment"
SERVE_LIMITS = {"max_texts": 300, "max_bytes": 2_000_000}  # small enough to test, over one 256-text chunk


def run_script(project_root: Path, args: list[str], env: dict | None = None, expect_rc: int = 0):
    done = subprocess.run([sys.executable, *args], cwd=project_root, env=env or clean_env(),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == expect_rc, f"{args[0]} exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def stages(tmp_path_factory, project_root) -> Path:
    """The real prepare and encode stages on a handful of raw reviews (max_len 8, post-padding)."""
    work = tmp_path_factory.mktemp("stages")
    raw = work / "raw"
    raw.mkdir()
    train = POSITIVE + NEGATIVE
    for split, texts in (("train", train), ("test", REVIEWS)):
        labels = [int(i >= len(POSITIVE)) for i in range(len(train))] if split == "train" else [0, 1] * 4
        table = pa.table({"text": texts, "label": pa.array(labels, pa.int64())})
        pq.write_table(table, raw / f"{split}.parquet")
    write_json(raw / "source.json", {"label_names": ["neg", "pos"]})
    common = [f"paths.reports_dir={work / 'reports'}", f"hydra.run.dir={work / 'hydra'}",
              f"paths.prepared_dir={work / 'prepared'}"]
    run_script(project_root, ["pipelines/prepare.py", *common, f"paths.raw_dir={raw}",
                              "data.vocab.min_freq=1", "data.split.val_fraction=0.34"])
    run_script(project_root, ["pipelines/encode.py", *common, f"paths.encoded_dir={work / 'encoded'}",
                              f"data.encode.max_len={MAX_LEN}"])
    return work


@pytest.fixture(scope="module")
def tiny_model(stages) -> SequenceClassifier:
    """A random tiny GRU over the stages' vocabulary (random weights still make every text count)."""
    vocab_size = json.loads((stages / "encoded" / "meta.json").read_text())["vocab_size"]
    torch.manual_seed(0)
    return SequenceClassifier(vocab_size, 2, {"cell": "gru", "hidden_size": 8, "embedding_dim": 8}).eval()


@pytest.fixture(scope="module")
def files(stages, tiny_model) -> dict[str, Path]:
    """The tiny model exported by rnnlab.export, with the stages' vocabulary and meta.json."""
    (stages / "export").mkdir()
    export_onnx(tiny_model, stages / "export" / "model.onnx")
    return {"model": stages / "export" / "model.onnx", "vocab": stages / "prepared" / "vocab.json",
            "meta": stages / "encoded" / "meta.json"}


@pytest.fixture(scope="module")
def onnx_model(files) -> OnnxSentimentModel:
    return OnnxSentimentModel.from_files(files["model"], files["vocab"], files["meta"])


# ------------------------------------------------------------------------------------------------------------
# TextEncoder and OnnxSentimentModel


def test_encoder_reproduces_the_encode_stage(stages):
    encoder = TextEncoder.from_files(stages / "prepared" / "vocab.json", stages / "encoded" / "meta.json")
    ids, lengths = encoder.encode(REVIEWS)
    stage = EncodedSplit.load(stages / "encoded" / "test")
    assert ids.dtype == lengths.dtype == np.int64 and ids.shape == (len(REVIEWS), MAX_LEN)
    assert np.array_equal(ids, stage.ids) and np.array_equal(lengths, stage.lengths)
    assert lengths[2] == lengths[3] == 0  # an empty and a blank review
    assert (stage.token_counts > MAX_LEN).sum() >= 2  # truncation ("pre": keep the end) is exercised
    assert encoder.label_names == ("neg", "pos")


def test_encoder_post_pads_for_a_pre_padded_encoding(stages, tmp_path):
    meta = json.loads((stages / "encoded" / "meta.json").read_text())
    write_json(tmp_path / "meta.json", {**meta, "padding": "pre", "truncating": "post"})
    encoder = TextEncoder.from_files(stages / "prepared" / "vocab.json", tmp_path / "meta.json")
    ids, lengths = encoder.encode(REVIEWS)
    flat, offsets = ragged_ids(read_split_table(stages / "prepared", "test"))  # what the encode stage pads
    pre_ids, pre_lengths = pad_and_truncate(flat, offsets, MAX_LEN, "pre", "post")
    assert np.array_equal(lengths, pre_lengths)
    for row, pre_row, n in zip(ids, pre_ids, lengths, strict=True):
        assert np.array_equal(row[:n], pre_row[MAX_LEN - n :]) and not row[n:].any()  # real tokens first


def test_encoder_on_known_tokens(files):
    encoder = TextEncoder.from_files(files["vocab"], files["meta"])
    vocab = encoder.vocab
    ids, lengths = encoder.encode(["GREAT <b>film</b>, zyzzyva!"])
    expected = [vocab.token_to_id(t) for t in ("great", "film", ",")] + [1, vocab.token_to_id("!")]
    assert lengths.tolist() == [5] and ids[0, :5].tolist() == expected and expected.count(1) == 1


def test_encoder_refuses_what_is_not_text(files):
    encoder = TextEncoder.from_files(files["vocab"], files["meta"])
    with pytest.raises(RnnlabError, match=r"text at position 1 is int \(3\), not a string"):
        encoder.encode(["fine", 3])
    with pytest.raises(RnnlabError, match="text at position 0 is missing"):
        encoder.encode([None])
    with pytest.raises(RnnlabError, match="texts must be a list of strings, got str"):
        encoder.encode("one string")


def test_encoder_checks_its_files(tmp_path, files, data):
    _, synthetic_prepared = data
    with pytest.raises(RnnlabError, match="lacks label_names, tokenizer, truncating"):
        TextEncoder.from_files(files["vocab"], data[0] / "meta.json")  # the synthetic meta.json
    with pytest.raises(RnnlabError, match="holds 30 tokens but .* says vocab_size"):
        TextEncoder.from_files(synthetic_prepared / "vocab.json", files["meta"])
    with pytest.raises(RnnlabError, match="vocabulary file not found"):
        TextEncoder.from_files(tmp_path / "vocab.json", files["meta"])
    (tmp_path / "bad.onnx").write_text("not onnx")
    with pytest.raises(RnnlabError, match="is not a loadable ONNX model"):
        OnnxSentimentModel.from_files(tmp_path / "bad.onnx", files["vocab"], files["meta"])


def test_huge_texts_are_clipped_on_the_side_truncation_drops(files):
    encoder = TextEncoder.from_files(files["vocab"], files["meta"])  # truncating "pre": the end counts
    huge = "boring " * 150_000 + "a great film"  # ~1 MB
    started = time.perf_counter()
    ids, lengths = encoder.encode([huge])
    assert time.perf_counter() - started < 2 and len(encoder.clip(huge)) == MAX_CHARS
    assert np.array_equal(ids, encoder.encode([huge[-1000:]])[0]) and lengths.tolist() == [MAX_LEN]


def test_onnx_model_matches_pytorch_in_batches(files, tiny_model):
    model = OnnxSentimentModel(files["model"], TextEncoder.from_files(files["vocab"], files["meta"]),
                               batch_size=3)  # three batches, each trimmed to its own longest review
    probs = model.probabilities(REVIEWS)
    ids, lengths = model.encoder.encode(REVIEWS)
    with torch.no_grad():
        expected = tiny_model(torch.from_numpy(ids), torch.from_numpy(lengths)).softmax(-1).numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-5)
    assert len(set(np.round(probs[:, 1], 6))) > 4  # the texts matter: not one constant answer
    rows = model.predict(TEXTS)
    kept = [i for i, text in enumerate(REVIEWS) if text.strip()]
    assert [r["label"] for r in rows] == [("neg", "pos")[k] for k in probs[kept].argmax(1)]
    assert [r["probability"] for r in rows] == pytest.approx(probs[kept].max(1).tolist())
    assert model.predict([]) == []
    for texts, message in (([*TEXTS, ""], f"text at position {len(TEXTS)} is empty"),
                           ([" \n\t"], "text at position 0 is blank (whitespace only)")):
        with pytest.raises(RnnlabError, match=re.escape(message)):
            model.predict(texts)


# ------------------------------------------------------------------------------------------------------------
# The register stage, the pyfunc, the server and the CLI (one MLflow store, registered once)


@pytest.fixture(scope="module")
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
        write_json(root / "reports" / "train" / f"{name}.json",
                   {"model": name, "run_id": runs[name], "val_acc_best": score})
    (root / "params.yaml").write_text("paths: {reports_dir: reports}\n")  # where `rnnlab predict` looks
    (root / "models" / "lstm" / "export").mkdir(parents=True)  # only the winner needs an export
    shutil.copy(files["model"], root / "models" / "lstm" / "export" / "model.onnx")
    done = run_script(project_root, [
        "pipelines/register.py", f"paths.reports_dir={root / 'reports'}",
        f"paths.models_dir={root / 'models'}",
        f"paths.prepared_dir={files['vocab'].parent}", f"paths.encoded_dir={files['meta'].parent}",
        f"logger.tracking_uri={uri}", f"hydra.run.dir={root / 'hydra'}",
    ], env=clean_env(RNNLAB_ROOT=str(root)))
    return {"root": root, "uri": uri, "runs": runs, "stdout": done.stdout}


def champion_dir(uri: str) -> Path:
    """The champion's model folder in the store (read directly: in-process MLflow resolves models:/ URIs
    through its process-wide tracking URI only, which these tests leave alone)."""
    client = mlflow.MlflowClient(tracking_uri=uri)
    model_id = client.get_model_version_by_alias(CHAMPION, "champion").source.removeprefix("models:/")
    return Path(urlparse(client.get_logged_model(model_id).artifact_location).path)


def test_register_picks_the_best_model_and_sets_the_alias(registered):
    root, uri, runs = registered["root"], registered["uri"], registered["runs"]
    report = json.loads((root / "reports" / "register.json").read_text())
    expected = {"model": "lstm", "run_id": runs["lstm"], "registered_model": CHAMPION, "version": 1,
                "alias": "champion", "val_acc_best": 0.83}
    assert {key: report[key] for key in expected} == expected
    assert report["files"]["model"] == "models/lstm/export/model.onnx"  # relative to the project root
    assert re.search(r"\[register\] model=lstm registered=imdb-sentiment@champion version=1",
                     registered["stdout"])
    champion = mlflow.MlflowClient(tracking_uri=uri).get_model_version_by_alias(CHAMPION, "champion")
    assert int(champion.version) == 1 and champion.run_id == runs["lstm"]
    local = champion_dir(uri)
    requirements = (local / "requirements.txt").read_text().split()
    for package in ("onnxruntime", "numpy", "pandas", "pyarrow"):
        assert f"{package}=={version(package)}" in requirements
    assert "torch" not in " ".join(requirements)
    assert (local / "code" / "rnnlab" / "data" / "tokenize.py").is_file()
    artifacts = sorted(path.name for path in (local / "artifacts").iterdir())
    assert artifacts == ["meta.json", "model.onnx", "vocab.json"]


def register_stage(project_root: Path):
    """pipelines/register.py as a module."""
    path = project_root / "pipelines" / "register.py"
    spec = importlib.util.spec_from_file_location("register_stage", path)
    stage = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(stage)
    return stage


def test_register_needs_a_scored_training_report(tmp_path, project_root):
    stage = register_stage(project_root)
    with pytest.raises(RnnlabError, match="no training report with a val_acc_best in .*: run `dvc repro`"):
        stage.best_report(tmp_path)
    write_json(tmp_path / "rnn.json", {"model": "rnn", "run_id": "r1", "val_acc_best": float("nan")})
    with pytest.raises(RnnlabError, match="no training report with a val_acc_best"):
        stage.best_report(tmp_path)
    write_json(tmp_path / "gru.json", {"model": "gru", "val_acc_best": 0.7})
    with pytest.raises(RnnlabError, match="lacks run_id"):
        stage.best_report(tmp_path)


def test_register_picks_among_the_compared_models_only(tmp_path, project_root):
    stage = register_stage(project_root)
    for name, score in {"rnn": 0.9, "lstm": 0.8, "gru": 0.7}.items():
        write_json(tmp_path / f"{name}.json", {"model": name, "run_id": f"run-{name}", "val_acc_best": score})
    assert stage.best_report(tmp_path)["model"] == "rnn"
    # rnn.json is left from when rnn was compared (and trained): compare.models=[lstm, gru] ignores it
    assert stage.best_report(tmp_path, ["lstm", "gru"])["run_id"] == "run-lstm"
    with pytest.raises(RnnlabError, match="no training report with a val_acc_best"):
        stage.best_report(tmp_path, ["bilstm"])


def test_register_outputs_follow_the_umask(stages, registered):
    """Stage outputs renamed into place from temporary files and folders get the umask's modes."""
    umask = current_umask()
    paths = [registered["root"] / "reports" / "register.json", stages / "prepared", stages / "encoded"]
    paths += [*(stages / "prepared").iterdir(), *(stages / "encoded").rglob("*")]
    modes = {path: stat.S_IMODE(path.stat().st_mode) for path in paths}
    assert modes == {path: (0o777 if path.is_dir() else 0o666) & ~umask for path in paths}


def test_pyfunc_on_raw_text(registered, onnx_model):
    pyfunc = mlflow.pyfunc.load_model(str(champion_dir(registered["uri"])))
    expected = pd.DataFrame(onnx_model.predict(TEXTS))
    for model_input in (TEXTS, pd.Series(TEXTS), pd.DataFrame({"text": TEXTS, "id": range(len(TEXTS))})):
        got = pyfunc.predict(model_input)
        assert list(got.columns) == ["label", "probability"]
        pd.testing.assert_frame_equal(got, expected, atol=1e-6)
    with pytest.raises(MlflowException, match=r"no 'text' column \(columns found: review\)"):
        pyfunc.predict(pd.DataFrame({"review": ["great"]}))
    with pytest.raises(MlflowException, match="text at position 1 is missing"):
        pyfunc.predict(pd.DataFrame({"text": ["great", None]}))
    with pytest.raises(MlflowException, match="text at position 1 is empty"):
        pyfunc.predict(["great", ""])


@pytest.fixture(scope="module")
def review_model(registered, files) -> tuple[str, Path]:
    """The same model logged for a table whose text column is `review` (data.source.text_column): its run
    and its folder in the store."""
    client = mlflow.MlflowClient(tracking_uri=registered["uri"])
    run_id = client.create_run(client.get_experiment_by_name("imdb").experiment_id).info.run_id
    info = log_text_model(run_id, files["model"].parent, files["vocab"], files["meta"], registered["uri"],
                          text_column="review")
    return run_id, Path(urlparse(client.get_logged_model(info.model_id).artifact_location).path)


def test_a_table_may_name_its_text_column_as_in_training(registered, review_model, onnx_model, tmp_path,
                                                         project_root):
    run_id, folder = review_model
    pyfunc = mlflow.pyfunc.load_model(str(folder))
    expected = pd.DataFrame(onnx_model.predict(TEXTS))
    for column in ("review", "text"):
        pd.testing.assert_frame_equal(pyfunc.predict(pd.DataFrame({column: TEXTS})), expected, atol=1e-6)
    with pytest.raises(MlflowException, match=r"no 'text' or 'review' column \(columns found: body\)"):
        pyfunc.predict(pd.DataFrame({"body": TEXTS}))
    # rnnlab predict reads the same column from a table file.
    pd.DataFrame({"id": range(len(TEXTS)), "review": TEXTS}).to_csv(tmp_path / "reviews.csv", index=False)
    done = run_script(project_root, ["-m", "rnnlab.cli", "predict", "--model", f"runs:/{run_id}/model",
                                     "--tracking-uri",
                                     registered["uri"], "--file", str(tmp_path / "reviews.csv")])
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(expected["label"])


@pytest.fixture(scope="module")
def server(registered) -> str:
    """`rnnlab serve` as the README runs it, on the champion, with small limits; its whole process group is
    killed at teardown."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = registered["root"] / "serve.log"
    # The server execs `uvicorn`: the venv's bin must be on PATH even when the venv is not activated.
    env = clean_env(MLFLOW_TRACKING_URI=registered["uri"],
                    PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}")
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "rnnlab.cli", "serve", "--model", f"models:/{CHAMPION}@champion",
             "--port", str(port), "--max-texts", str(SERVE_LIMITS["max_texts"]),
             "--max-bytes", str(SERVE_LIMITS["max_bytes"])],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while not _pings(url):
            assert proc.poll() is None, f"the server exited:\n{log_path.read_text()}"
            assert time.monotonic() < deadline, f"no /ping answer after 90 s:\n{log_path.read_text()}"
            time.sleep(0.3)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _pings(url: str) -> bool:
    try:
        return requests.get(f"{url}/ping", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def invoke(url: str, payload: object, **kwargs) -> requests.Response:
    if isinstance(payload, dict):
        return requests.post(f"{url}/invocations", json=payload, timeout=60, **kwargs)
    return requests.post(f"{url}/invocations", data=payload, timeout=60, **kwargs)


def test_serving_round_trip(server, onnx_model):
    expected = onnx_model.predict(TEXTS)
    records = [{"id": i, "text": text} for i, text in enumerate(TEXTS)]
    csv = pd.DataFrame({"id": range(len(TEXTS)), "text": TEXTS}).to_csv(index=False)
    answers = {
        "inputs": invoke(server, {"inputs": TEXTS}),
        "instances": invoke(server, {"instances": TEXTS}),
        "inputs records": invoke(server, {"inputs": records}),
        "dataframe_records": invoke(server, {"dataframe_records": records}),
        "dataframe_split": invoke(server, {"dataframe_split": {
            "columns": ["id", "text"], "data": [[r["id"], r["text"]] for r in records]}}),
        "csv": invoke(server, csv.encode(), headers={"Content-Type": "text/csv"}),
    }
    for case, answer in answers.items():
        assert answer.status_code == 200, (case, answer.text)
        got = answer.json()["predictions"]
        assert [row["label"] for row in got] == [row["label"] for row in expected], case
        assert [row["probability"] for row in got] == pytest.approx([row["probability"] for row in expected])

    huge = "boring " * 150_000 + "a great film"  # ~1 MB: clipped to MAX_CHARS before tokenizing
    answer = invoke(server, {"inputs": [huge, *TEXTS]})  # MLflow alone built a 1 MB-wide numpy array here
    assert answer.status_code == 200 and answer.json()["predictions"][0]["probability"] == pytest.approx(
        onnx_model.predict([huge])[0]["probability"])


def parquet_body(column: pa.Array) -> bytes:
    sink = pa.BufferOutputStream()
    pq.write_table(pa.table({"text": column}), sink)
    return sink.getvalue().to_pybytes()


# Every payload the README says is refused, with the message it gets (HTTP 400).
REFUSED = {
    "null, number, bool": ({"inputs": [None, 1, True]}, "text at position 0 is missing (None)"),
    "number": ({"inputs": ["fine", 1]}, "text at position 1 is int (1), not a string"),
    "bool": ({"inputs": ["fine", True]}, "text at position 1 is bool (True), not a string"),
    "nested list": ({"inputs": [["a", "b"]]}, "text at position 0 is list (['a', 'b']), not a string"),
    "one string": ({"inputs": "fine"}, "inputs must be a list of texts, got str"),
    "inputs records": ({"inputs": [{"text": "a"}, {"text": 2}]}, "text at position 1 is int (2)"),
    "instances": ({"instances": ["fine", 2.5]}, "text at position 1 is float (2.5), not a string"),
    "instances records": ({"instances": [{"text": None}]}, "text at position 0 is missing (None)"),
    "records": ({"dataframe_records": [{"text": "a"}, {"text": {"b": 1}}]}, "text at position 1 is dict"),
    "records without text": ({"dataframe_records": [{"text": "a"}, {"id": 1}]},
                             "text at position 1 is missing (None)"),
    "split": ({"dataframe_split": {"columns": ["text"], "data": [["a"], [1.5]]}},
              "text at position 1 is float (1.5), not a string"),
    "split null": ({"dataframe_split": {"columns": ["id", "text"], "data": [[1, "a"], [2, None]]}},
                   "text at position 1 is missing (None)"),
    "split ragged": ({"dataframe_split": {"columns": ["text"], "data": [["a"], ["b", "c"]]}},
                     "dataframe_split row 1 must be a list of 1 value(s)"),
    "csv empty cell": (b"id,text\n1,fine\n2,\n", "text at position 1 is empty"),
    "parquet number": (parquet_body(pa.array([3, 4])), "text at position 0 is int (3), not a string"),
    "empty text": ({"inputs": ["fine", ""]}, "text at position 1 is empty"),
    "blank text": ({"inputs": [" \t\n"]}, "text at position 0 is blank (whitespace only)"),
    "no texts": ({"inputs": []}, "the request holds no texts"),
    "no text column": ({"dataframe_split": {"columns": ["review"], "data": [["great"]]}},
                       "the input has no 'text' column (columns found: review)"),
    "no input key": ({"texts": TEXTS}, "the body must hold exactly one of inputs, instances"),
    "not JSON": (b"{", "Ensure that input is a valid JSON formatted string"),  # MLflow's own answer
}
CONTENT_TYPES = {"csv empty cell": "text/csv", "parquet number": "application/vnd.apache.parquet",
                 "not JSON": "application/json"}


def test_server_refuses_what_it_cannot_read(server):
    for case, (payload, message) in REFUSED.items():
        headers = {"Content-Type": CONTENT_TYPES[case]} if case in CONTENT_TYPES else {}
        answer = invoke(server, payload, headers=headers)
        assert answer.status_code == 400, (case, answer.status_code, answer.text)
        assert message in answer.json()["message"], (case, answer.text)
    unsupported = invoke(server, b"great film", headers={"Content-Type": "text/plain"})
    assert unsupported.status_code == 415 and "'text/plain' is not read here" in unsupported.json()["message"]
    assert requests.get(f"{server}/ping", timeout=5).status_code == 200


def test_server_limits_requests_and_scores_big_batches_in_chunks(server, onnx_model):
    max_texts, max_bytes = SERVE_LIMITS["max_texts"], SERVE_LIMITS["max_bytes"]
    batch = [TEXTS[i % len(TEXTS)] + f" {i}" for i in range(max_texts)]  # two chunks of up to 256 texts
    started = time.perf_counter()
    answer = invoke(server, {"inputs": batch})
    assert answer.status_code == 200 and time.perf_counter() - started < 30
    assert [row["probability"] for row in answer.json()["predictions"]] == pytest.approx(
        [row["probability"] for row in onnx_model.predict(batch)])

    too_many = invoke(server, {"inputs": [*batch, "one more"]})
    assert too_many.status_code == 413
    assert too_many.json()["message"] == (
        f"the request holds {max_texts + 1} texts; the limit is {max_texts} per request "
        "(rnnlab serve --max-texts): send them in smaller batches")
    body = json.dumps({"inputs": ["a" * max_bytes]}).encode()
    started = time.perf_counter()
    declared = invoke(server, body, headers={"Content-Type": "application/json"})
    streamed = invoke(server, iter([body[:1000], body[1000:]]), headers={"Content-Type": "application/json"})
    assert time.perf_counter() - started < 10
    for answer in (declared, streamed):  # with Content-Length, and chunked without it
        assert answer.status_code == 413 and f"the limit is {max_bytes:,} bytes per request" in answer.text
    assert str(len(body)) not in streamed.text and f"{len(body):,} bytes" in declared.text
    assert invoke(server, {"inputs": TEXTS[:1]}).status_code == 200  # the server is free again


def test_cli_predict_from_logged_models(registered, project_root, onnx_model, tmp_path):
    reviews = tmp_path / "reviews.txt"
    reviews.write_text("A great film, I loved it!\n\n" + "x" * 200 + "\nboring\n", encoding="utf-8")
    run_id = registered["runs"]["lstm"]
    by_run = run_script(project_root, ["-m", "rnnlab.cli", "predict", "--model", f"runs:/{run_id}/model",
                                       "--tracking-uri", registered["uri"], *REVIEWS[:2]])
    by_alias = run_script(project_root, ["-m", "rnnlab.cli", "predict", "--model",
                                         f"models:/{CHAMPION}@champion", "--file", str(reviews)],
                          env=clean_env(MLFLOW_TRACKING_URI=registered["uri"]))
    expected = onnx_model.predict(REVIEWS[:2])
    assert by_run.stdout.splitlines() == [
        f"{row['label']} {row['probability']:.4f}  {text}"
        for row, text in zip(expected, REVIEWS[:2], strict=True)
    ]
    lines = by_alias.stdout.splitlines()
    assert len(lines) == 3 and lines[1].endswith("  " + "x" * 69 + "…")  # blank line skipped, text shortened
    assert all(re.fullmatch(r"(neg|pos) [01]\.\d{4}  .+", line) for line in lines)


def test_cli_predict_default_is_the_local_champion_without_torch(registered, project_root, onnx_model):
    text = "This film was a masterpiece"
    code = (f"import sys; from rnnlab.cli import main; main(['predict', {text!r}]);"
            " print('torch loaded' if 'torch' in sys.modules else 'no torch')")
    done = run_script(project_root, ["-c", code], env=clean_env(RNNLAB_ROOT=str(registered["root"])))
    row = onnx_model.predict([text])[0]
    assert done.stdout.splitlines() == [f"{row['label']} {row['probability']:.4f}  {text}", "no torch"]


@pytest.mark.parametrize(("args", "message"), [
    (["great"], "params.yaml is missing: run `rnnlab sync-params`, or pass --model"),
    (["--model", "imdb-sentiment", "great"], "unknown model URI 'imdb-sentiment'"),
    (["--file", "missing.txt"], "review file not found: missing.txt"),
    ([], "nothing to classify"),
])
def test_cli_predict_errors(tmp_path, monkeypatch, capsys, args, message):
    monkeypatch.setenv("RNNLAB_ROOT", str(tmp_path))  # an empty project: no params.yaml, no register.json
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", *args])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


def test_cli_predict_default_is_the_selected_data_sets_champion(tmp_path, monkeypatch, capsys):
    """Without --model, the champion of the data set params.yaml was composed for (its reports_dir)."""
    (tmp_path / "params.yaml").write_text("paths: {reports_dir: reports/reviews}\n")
    monkeypatch.setenv("RNNLAB_ROOT", str(tmp_path))
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", "great"])
    report = tmp_path / "reports" / "reviews" / "register.json"
    assert exit_info.value.code == 2
    assert f"no champion model yet ({report} is missing)" in capsys.readouterr().err


def test_cli_predict_unknown_registered_model(registered, project_root):
    args = ["--model", "models:/no-such-model@champion", "--tracking-uri", registered["uri"], "great"]
    done = run_script(project_root, ["-m", "rnnlab.cli", "predict", *args], expect_rc=2)
    assert "cannot load models:/no-such-model@champion" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("texts", "message"), [
    ([""], "rnnlab: error: text at position 0 is empty: there is nothing to classify"),
    (["great", "  "], "rnnlab: error: text at position 1 is blank (whitespace only)"),
])
def test_cli_predict_refuses_empty_texts(registered, monkeypatch, capsys, texts, message):
    monkeypatch.setenv("RNNLAB_ROOT", str(registered["root"]))  # the local champion exists
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", *texts])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and message in err and not out
