"""Serving on raw text: preprocessing parity with the data stages, ONNX Runtime, the MLflow pyfunc and the
register stage (test_serving_http.py: `rnnlab serve` over HTTP and `rnnlab predict`)."""

from __future__ import annotations

import importlib.util
import json
import re
import stat
import time
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlparse

import mlflow
import numpy as np
import pandas as pd
import pytest
import torch
from mlflow.exceptions import MlflowException

from rnnlab.data.encode import pad_and_truncate
from rnnlab.data.store import EncodedSplit, ragged_ids, read_split_table
from rnnlab.errors import RnnlabError
from rnnlab.io import current_umask, write_json
from rnnlab.tasks.classification import COMPARE
from rnnlab.tasks.classification.pyfunc import MAX_CHARS, OnnxSentimentModel, TextEncoder, log_text_model
from serving_setup import (
    CHAMPION,
    MAX_LEN,
    REVIEWS,
    TEXTS,
    champion_dir,
    run_script,
)

pytest_plugins = ["serving_setup"]  # the fixtures serving_stages, tiny_model, files, onnx_model, registered


# ------------------------------------------------------------------------------------------------------------
# TextEncoder and OnnxSentimentModel


def test_encoder_reproduces_the_encode_stage(serving_stages):
    encoder = TextEncoder.from_files(
        serving_stages / "prepared" / "vocab.json", serving_stages / "encoded" / "meta.json"
    )
    ids, lengths = encoder.encode(REVIEWS)
    stage = EncodedSplit.load(serving_stages / "encoded" / "test")
    assert ids.dtype == lengths.dtype == np.int64 and ids.shape == (len(REVIEWS), MAX_LEN)
    assert np.array_equal(ids, stage.ids) and np.array_equal(lengths, stage.lengths)
    assert lengths[2] == lengths[3] == 0  # an empty and a blank review
    assert (stage.token_counts > MAX_LEN).sum() >= 2  # truncation ("pre": keep the end) is exercised
    assert encoder.label_names == ("neg", "pos")


def test_encoder_post_pads_for_a_pre_padded_encoding(serving_stages, tmp_path):
    meta = json.loads((serving_stages / "encoded" / "meta.json").read_text())
    write_json(tmp_path / "meta.json", {**meta, "padding": "pre", "truncating": "post"})
    encoder = TextEncoder.from_files(serving_stages / "prepared" / "vocab.json", tmp_path / "meta.json")
    ids, lengths = encoder.encode(REVIEWS)
    # what the encode stage pads
    flat, offsets = ragged_ids(read_split_table(serving_stages / "prepared", "test"))
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
    model = OnnxSentimentModel(
        files["model"], TextEncoder.from_files(files["vocab"], files["meta"]), batch_size=3
    )  # three batches, each trimmed to its own longest review
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
    for texts, message in (
        ([*TEXTS, ""], f"text at position {len(TEXTS)} is empty"),
        ([" \n\t"], "text at position 0 is blank (whitespace only)"),
    ):
        with pytest.raises(RnnlabError, match=re.escape(message)):
            model.predict(texts)


# ------------------------------------------------------------------------------------------------------------
# The register stage and the pyfunc


def test_register_picks_the_best_model_and_sets_the_alias(registered):
    root, uri, runs = registered["root"], registered["uri"], registered["runs"]
    report = json.loads((root / "reports" / "register.json").read_text())
    expected = {
        "model": "lstm",
        "run_id": runs["lstm"],
        "registered_model": CHAMPION,
        "version": 1,
        "alias": "champion",
        "val_acc_best": 0.83,
    }
    assert {key: report[key] for key in expected} == expected
    assert report["files"]["model"] == "models/lstm/export/model.onnx"  # relative to the project root
    assert re.search(
        r"\[register\] model=lstm registered=imdb-sentiment@champion version=1", registered["stdout"]
    )
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
        stage.best_report(tmp_path, COMPARE)
    write_json(tmp_path / "rnn.json", {"model": "rnn", "run_id": "r1", "val_acc_best": float("nan")})
    with pytest.raises(RnnlabError, match="no training report with a val_acc_best"):
        stage.best_report(tmp_path, COMPARE)
    write_json(tmp_path / "gru.json", {"model": "gru", "val_acc_best": 0.7})
    with pytest.raises(RnnlabError, match="lacks run_id"):
        stage.best_report(tmp_path, COMPARE)


def test_register_picks_among_the_compared_models_only(tmp_path, project_root):
    stage = register_stage(project_root)
    for name, score in {"rnn": 0.9, "lstm": 0.8, "gru": 0.7}.items():
        write_json(tmp_path / f"{name}.json", {"model": name, "run_id": f"run-{name}", "val_acc_best": score})
    assert stage.best_report(tmp_path, COMPARE)["model"] == "rnn"
    # rnn.json is left from when rnn was compared (and trained): compare.models=[lstm, gru] ignores it
    assert stage.best_report(tmp_path, COMPARE, ["lstm", "gru"])["run_id"] == "run-lstm"
    with pytest.raises(RnnlabError, match="no training report with a val_acc_best"):
        stage.best_report(tmp_path, COMPARE, ["bilstm"])


def test_register_outputs_follow_the_umask(serving_stages, registered):
    """Stage outputs renamed into place from temporary files and folders get the umask's modes."""
    umask = current_umask()
    paths = [
        registered["root"] / "reports" / "register.json",
        serving_stages / "prepared",
        serving_stages / "encoded",
    ]
    paths += [*(serving_stages / "prepared").iterdir(), *(serving_stages / "encoded").rglob("*")]
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
    info = log_text_model(
        run_id, files["model"].parent, files["vocab"], files["meta"], registered["uri"], text_column="review"
    )
    return run_id, Path(urlparse(client.get_logged_model(info.model_id).artifact_location).path)


def test_a_table_may_name_its_text_column_as_in_training(
    registered, review_model, onnx_model, tmp_path, project_root
):
    run_id, folder = review_model
    pyfunc = mlflow.pyfunc.load_model(str(folder))
    expected = pd.DataFrame(onnx_model.predict(TEXTS))
    for column in ("review", "text"):
        pd.testing.assert_frame_equal(pyfunc.predict(pd.DataFrame({column: TEXTS})), expected, atol=1e-6)
    with pytest.raises(MlflowException, match=r"no 'text' or 'review' column \(columns found: body\)"):
        pyfunc.predict(pd.DataFrame({"body": TEXTS}))
    # rnnlab predict reads the same column from a table file.
    pd.DataFrame({"id": range(len(TEXTS)), "review": TEXTS}).to_csv(tmp_path / "reviews.csv", index=False)
    done = run_script(
        project_root,
        [
            "-m",
            "rnnlab.cli",
            "predict",
            "--model",
            f"runs:/{run_id}/model",
            "--tracking-uri",
            registered["uri"],
            "--file",
            str(tmp_path / "reviews.csv"),
        ],
    )
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(expected["label"])
