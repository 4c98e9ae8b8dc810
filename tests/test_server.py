"""`rnnlab serve` in process: the request guard on raw bodies (which texts each format sends, the column
names it accepts, the limits) and the scorer that batches concurrent requests. (The HTTP round trip and
every refused payload: tests/test_serving.py.)"""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from rnnlab.batching import BatchingScorer
from rnnlab.errors import RnnlabError
from rnnlab.server import TooLarge, Unsupported, request_texts

ACCEPTED = ("text", "review")  # a model trained on a table whose text column is `review`
JSON = "application/json"


def texts_of(payload: object, content_type: str = JSON, max_texts: int = 10) -> list[str] | None:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return request_texts(body, content_type, ACCEPTED, max_texts)


@pytest.mark.parametrize(
    "payload",
    [
        {"inputs": ["a", "b"]},
        {"instances": ["a", "b"]},
        {"inputs": [{"review": "a"}, {"review": "b", "id": 2}]},
        {"dataframe_records": [{"id": 1, "text": "a"}, {"text": "b"}]},
        {"dataframe_split": {"columns": ["id", "review"], "data": [[1, "a"], [2, "b"]]}},
        {"dataframe_split": {"index": [7, 8], "data": [["a"], ["b"]]}},  # one unnamed column
    ],
)
def test_every_json_format_gives_its_texts_in_order(payload):
    assert texts_of(payload) == ["a", "b"]


def test_tables_give_their_text_column():
    assert texts_of(b"id,review\n1,a\n2,b\n", "text/csv; charset=utf-8") == ["a", "b"]
    assert texts_of(b'review\n"a, with a comma"\n', "text/csv") == ["a, with a comma"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (
            {"dataframe_records": [{"text": "a", "review": "b"}]},
            "the input has both 'text' and 'review' columns",
        ),
        (
            {"dataframe_split": {"columns": ["body"], "data": [["a"]]}},
            "the input has no 'text' or 'review' column (columns found: body)",
        ),
        (b"body\na\n", "the input has no 'text' or 'review' column (columns found: body)"),
        (
            {"dataframe_split": {"columns": "text", "data": [["a"]]}},
            "columns must be a list of names, got str",
        ),
        ({"dataframe_split": [["a"]]}, 'dataframe_split must be an object with a "data" list of rows'),
        ({"dataframe_records": {"text": ["a"]}}, "dataframe_records must be a list of records"),
        (
            {"inputs": ["a"], "instances": ["b"]},
            "exactly one of inputs, instances, dataframe_records, "
            "dataframe_split (keys found: inputs, instances)",
        ),
        (["a", "b"], "the body must be a JSON object with one of the keys"),
    ],
)
def test_unreadable_requests_are_named(payload, message):
    content_type = "text/csv" if isinstance(payload, bytes) else JSON
    with pytest.raises(RnnlabError) as error:
        texts_of(payload, content_type)
    assert message in str(error.value)


def test_the_text_limit_is_checked_before_the_texts():
    assert len(texts_of({"inputs": ["a"] * 10})) == 10
    with pytest.raises(TooLarge, match="the request holds 11 texts; the limit is 10 per request"):
        texts_of({"inputs": [None] * 11})


def test_what_the_guard_cannot_parse_is_left_to_mlflow():
    assert texts_of(b"{") is None  # MLflow answers 400 with its JSON parser's message
    assert texts_of(b"not parquet", "application/vnd.apache.parquet") is None


@pytest.mark.parametrize("content_type", ["", "text/plain", "application/json; charset=latin-1"])
def test_other_content_types_are_named(content_type):
    expected = f"Content-Type {content_type or '(none)'!r} is not read here: send application/json, text/csv"
    with pytest.raises(Unsupported) as error:
        texts_of(b'{"inputs": ["a"]}', content_type)
    assert str(error.value).startswith(expected)


def test_concurrent_callers_are_scored_together():
    calls, gate = [], threading.Event()

    def score(texts: list[str]) -> np.ndarray:
        calls.append(len(texts))
        if not gate.wait(10):  # the first batch holds the worker until every other caller waits
            raise TimeoutError("the callers never queued")
        if "bad" in texts:
            raise RnnlabError("a failing batch")
        return np.array([[len(text), i] for i, text in enumerate(texts)])

    scorer = BatchingScorer(score, batch_size=256)
    batches = [[f"{caller}-{i}" * (caller + 1) for i in range(caller + 1)] for caller in range(12)]
    with ThreadPoolExecutor(12) as pool:
        first = pool.submit(scorer, batches[0])
        while not calls:
            time.sleep(0.01)
        rest = [pool.submit(scorer, batch) for batch in batches[1:]]
        while scorer._queue.qsize() < len(rest):
            time.sleep(0.01)
        gate.set()
        results = [first.result(), *(future.result() for future in rest)]
    assert calls == [1, sum(map(len, batches[1:]))] and scorer.calls == 2  # two batches for 12 callers
    for batch, rows in zip(batches, results, strict=True):
        assert rows[:, 0].tolist() == [len(text) for text in batch]  # each caller gets its own rows back
    with pytest.raises(RnnlabError, match="a failing batch"):  # its callers get the error...
        scorer(["bad"])
    assert scorer(["fine"])[:, 0].tolist() == [4]  # ...and the worker goes on
