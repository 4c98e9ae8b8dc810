"""`rnnlab serve` over HTTP (every rejected payload, the limits) and `rnnlab predict`, on the champion the
register stage of serving_setup.py registered."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import requests

from dvc_repo import stop_group
from rnnlab.cli import main as cli_main
from serving_setup import (
    CHAMPION,
    REVIEWS,
    SERVE_LIMITS,
    TEXTS,
    run_script,
)
from synthetic import clean_env

pytest_plugins = ["serving_setup"]  # the fixtures serving_stages, tiny_model, files, onnx_model, registered


@pytest.fixture(scope="module")
def server(registered) -> str:
    """`rnnlab serve` as the README runs it, on the champion, with small limits; its whole process group is
    killed at teardown."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = registered["root"] / "serve.log"
    # The server execs `uvicorn`: the venv's bin must be on PATH even when the venv is not activated.
    env = clean_env(
        MLFLOW_TRACKING_URI=registered["uri"],
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    )
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rnnlab.cli",
                "serve",
                "--model",
                f"models:/{CHAMPION}@champion",
                "--port",
                str(port),
                "--max-texts",
                str(SERVE_LIMITS["max_texts"]),
                "--max-bytes",
                str(SERVE_LIMITS["max_bytes"]),
            ],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
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
        stop_group(proc, timeout=15)


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
        "dataframe_split": invoke(
            server,
            {"dataframe_split": {"columns": ["id", "text"], "data": [[r["id"], r["text"]] for r in records]}},
        ),
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
        onnx_model.predict([huge])[0]["probability"]
    )


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
    "records without text": (
        {"dataframe_records": [{"text": "a"}, {"id": 1}]},
        "text at position 1 is missing (None)",
    ),
    "split": (
        {"dataframe_split": {"columns": ["text"], "data": [["a"], [1.5]]}},
        "text at position 1 is float (1.5), not a string",
    ),
    "split null": (
        {"dataframe_split": {"columns": ["id", "text"], "data": [[1, "a"], [2, None]]}},
        "text at position 1 is missing (None)",
    ),
    "split ragged": (
        {"dataframe_split": {"columns": ["text"], "data": [["a"], ["b", "c"]]}},
        "dataframe_split row 1 must be a list of 1 value(s)",
    ),
    "csv empty cell": (b"id,text\n1,fine\n2,\n", "text at position 1 is empty"),
    # A blank line is a row (pandas would skip it, and the answers would no longer match the lines).
    "csv blank line": (b"text\nfine\n\nalso fine\n", "text at position 1 is empty"),
    "parquet number": (parquet_body(pa.array([3, 4])), "text at position 0 is int (3), not a string"),
    "empty text": ({"inputs": ["fine", ""]}, "text at position 1 is empty"),
    "blank text": ({"inputs": [" \t\n"]}, "text at position 0 is blank (whitespace only)"),
    "no texts": ({"inputs": []}, "the request holds no texts"),
    "no text column": (
        {"dataframe_split": {"columns": ["review"], "data": [["great"]]}},
        "the input has no 'text' column (columns found: review)",
    ),
    "no input key": ({"texts": TEXTS}, "the body must hold exactly one of inputs, instances"),
    "not JSON": (b"{", "Ensure that input is a valid JSON formatted string"),  # MLflow's own answer
}
CONTENT_TYPES = {
    "csv empty cell": "text/csv",
    "csv blank line": "text/csv",
    "parquet number": "application/vnd.apache.parquet",
    "not JSON": "application/json",
}


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
        [row["probability"] for row in onnx_model.predict(batch)]
    )

    too_many = invoke(server, {"inputs": [*batch, "one more"]})
    assert too_many.status_code == 413
    assert too_many.json()["message"] == (
        f"the request holds {max_texts + 1} texts; the limit is {max_texts} per request "
        "(rnnlab serve --max-texts): send them in smaller batches"
    )
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
    by_run = run_script(
        project_root,
        [
            "-m",
            "rnnlab.cli",
            "predict",
            "--model",
            f"runs:/{run_id}/model",
            "--tracking-uri",
            registered["uri"],
            *REVIEWS[:2],
        ],
    )
    by_alias = run_script(
        project_root,
        ["-m", "rnnlab.cli", "predict", "--model", f"models:/{CHAMPION}@champion", "--file", str(reviews)],
        env=clean_env(MLFLOW_TRACKING_URI=registered["uri"]),
    )
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
    code = (
        f"import sys; from rnnlab.cli import main; main(['predict', {text!r}]);"
        " print('torch loaded' if 'torch' in sys.modules else 'no torch')"
    )
    done = run_script(project_root, ["-c", code], env=clean_env(RNNLAB_ROOT=str(registered["root"])))
    row = onnx_model.predict([text])[0]
    assert done.stdout.splitlines() == [f"{row['label']} {row['probability']:.4f}  {text}", "no torch"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["great"], "params.yaml is missing: run `rnnlab sync-params`, or pass --model"),
        (["--model", "imdb-sentiment", "great"], "unknown model URI 'imdb-sentiment'"),
        (["--file", "missing.txt"], "review file not found: missing.txt"),
        ([], "nothing to classify"),
    ],
)
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


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([""], "rnnlab: error: text at position 0 is empty: there is nothing to classify"),
        (["great", "  "], "rnnlab: error: text at position 1 is blank (whitespace only)"),
        # a CSV's blank line is a row: refused, not skipped (the answers would no longer match the lines)
        (["--file", "blank_line.csv"], "rnnlab: error: text at position 1 is empty"),
    ],
)
def test_cli_predict_refuses_empty_texts(registered, monkeypatch, capsys, tmp_path, args, message):
    monkeypatch.setenv("RNNLAB_ROOT", str(registered["root"]))  # the local champion exists
    monkeypatch.chdir(tmp_path)
    (tmp_path / "blank_line.csv").write_text("text\ngreat\n\nawful\n", encoding="utf-8")
    with pytest.raises(SystemExit) as exit_info:
        cli_main(["predict", *args])
    out, err = capsys.readouterr()
    assert exit_info.value.code == 2 and message in err and not out
