"""`rnnlab serve`: MLflow's own scoring server for the text pyfunc, behind a guard that reads the request
as the client sent it.

MLflow's app (`mlflow.pyfunc.scoring_server.init`, what `mlflow models serve` runs) casts the values of
`{"inputs": [...]}` to the signature's string type before the model sees them (`null` becomes "None", `1`
becomes "1"), keeps only a table's first column for an unnamed signature, builds a fixed-width numpy array
for `inputs` (one 1 MB text among 2,000 short ones took 15 GB and 19 s here) and reads bodies of any size.
`RequestGuard` sits in front of it, on `POST /invocations` only:

- a body over `max_bytes` -> 413 (from Content-Length before reading, or while reading);
- a JSON body (`inputs`, `instances`, `dataframe_records`, `dataframe_split`), CSV or parquet: the texts
  are taken from the raw payload (a table's `text` column or the training table's own) and checked:
  a non-string -> 400 naming its position and type, an empty or blank text -> 400, no texts -> 400,
  more than `max_texts` -> 413;
- a content type other than JSON, CSV or parquet (UTF-8) -> 415;
- what passes goes on to MLflow's app as `dataframe_split` with one `text` column (strings only, no
  casting, no fixed-width arrays); MLflow scores it and answers. A body the guard cannot parse (not JSON,
  a broken CSV or parquet file) goes on unchanged, so MLflow gives its own 400.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import BAD_REQUEST, REQUEST_LIMIT_EXCEEDED

from rnnlab.errors import RnnlabError
from rnnlab.tasks.classification.text_input import TEXT_COLUMN, read_csv_table, require_texts, text_column

# MLflow's app runs each request's parsing and `predict` in the event loop's default executor (6 threads on
# 2 cores): with more, more requests wait for the batching scorer at once and share its batches.
REQUEST_THREADS = 64
FORMATS = ("inputs", "instances", "dataframe_records", "dataframe_split")
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]


# A CSV is read with every cell a string (it cannot carry other types, only empty cells), every line a row;
# parquet is typed.
PARSERS: dict[str, Callable[[bytes], Any]] = {
    "application/json": json.loads,
    "text/csv": lambda body: read_csv_table(io.BytesIO(body)),
    "application/vnd.apache.parquet": lambda body: pd.read_parquet(io.BytesIO(body)),
}


class TooLarge(Exception):
    """A request over a limit: answered with HTTP 413."""


class Unsupported(Exception):
    """A content type the scoring server does not read: answered with HTTP 415."""


def payload_texts(payload: object, accepted: Sequence[str]) -> list[object]:
    """The values a JSON request sends as texts, in order, unchecked: `inputs`/`instances` as a list of
    texts or of records, `dataframe_records`, or `dataframe_split` (its text column, or its only column)."""
    if not isinstance(payload, dict):
        raise RnnlabError(f"the body must be a JSON object with one of the keys {', '.join(FORMATS)}")
    keys = [key for key in FORMATS if key in payload]
    if len(keys) != 1:
        found = ", ".join(map(str, payload)) or "none"
        raise RnnlabError(f"the body must hold exactly one of {', '.join(FORMATS)} (keys found: {found})")
    key = keys[0]
    data = payload[key]
    if key == "dataframe_split":
        return _split_texts(data, accepted)
    if key == "dataframe_records" or (
        data and isinstance(data, list) and all(isinstance(r, dict) for r in data)
    ):
        if not isinstance(data, list) or not all(isinstance(record, dict) for record in data):
            raise RnnlabError(f"{key} must be a list of records ({{column: value}} objects)")
        column = text_column(list(dict.fromkeys(name for record in data for name in record)), accepted)
        return [record.get(column) for record in data]
    if not isinstance(data, list):
        raise RnnlabError(f"{key} must be a list of texts, got {type(data).__name__}")
    return data


def _split_texts(data: object, accepted: Sequence[str]) -> list[object]:
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise RnnlabError('dataframe_split must be an object with a "data" list of rows (and "columns")')
    columns = data.get("columns")
    if columns is None:
        width, index = 1, 0
    elif isinstance(columns, list):
        width, index = len(columns), columns.index(text_column(columns, accepted))
    else:
        raise RnnlabError(f"dataframe_split columns must be a list of names, got {type(columns).__name__}")
    rows = data["data"]
    for position, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise RnnlabError(
                f"dataframe_split row {position} must be a list of {width} value(s), got {row!r:.60}"
            )
    return [row[index] for row in rows]


def request_texts(
    body: bytes, content_type: str, accepted: Sequence[str], max_texts: int
) -> list[str] | None:
    """The checked texts of a request body, or None for a body to leave to MLflow (one its parser refuses).
    Raises `RnnlabError` (-> 400), `TooLarge` (-> 413) or `Unsupported` (-> 415)."""
    mime, *parameters = (part.strip().lower() for part in content_type.split(";"))
    if mime not in PARSERS or any(p.replace(" ", "") != "charset=utf-8" for p in parameters):
        raise Unsupported(
            f"Content-Type {content_type or '(none)'!r} is not read here: send {', '.join(PARSERS)} (UTF-8)"
        )
    try:
        parsed = PARSERS[mime](body)
    except (ValueError, OSError):  # not JSON, CSV or parquet: MLflow answers 400 with its parser's error
        return None
    if isinstance(parsed, pd.DataFrame):
        values = parsed[text_column(list(parsed.columns), accepted)].tolist()
    else:
        values = payload_texts(parsed, accepted)
    if not values:
        raise RnnlabError("the request holds no texts")
    if len(values) > max_texts:
        raise TooLarge(
            f"the request holds {len(values):,} texts; the limit is {max_texts:,} per request "
            "(rnnlab serve --max-texts): send them in smaller batches"
        )
    return require_texts(values)


class RequestGuard:
    """ASGI middleware in front of MLflow's scoring app: size limits and the raw-payload check (see the
    module docstring). `accepted`: the text column names
    (`rnnlab.tasks.classification.text_input.accepted_columns`)."""

    def __init__(self, app: Any, accepted: Sequence[str], max_texts: int, max_bytes: int) -> None:
        self.app, self.accepted, self.max_texts, self.max_bytes = app, tuple(accepted), max_texts, max_bytes

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/invocations" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
        }
        try:
            body = await self._body(headers, receive)
            texts = await asyncio.to_thread(
                request_texts, body, headers.get("content-type", ""), self.accepted, self.max_texts
            )
        except TooLarge as error:
            await _answer(send, 413, MlflowException(str(error), error_code=REQUEST_LIMIT_EXCEEDED))
            return
        except Unsupported as error:
            await _answer(send, 415, MlflowException(str(error), error_code=BAD_REQUEST))
            return
        except RnnlabError as error:
            await _answer(send, 400, MlflowException(str(error), error_code=BAD_REQUEST))
            return
        if texts is not None:
            body = json.dumps({"dataframe_split": {"columns": [TEXT_COLUMN], "data": [[t] for t in texts]}})
            body = body.encode()
            headers["content-type"] = "application/json"
        headers["content-length"] = str(len(body))
        scope = {**scope, "headers": [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]}
        await self.app(scope, _replay(body, receive), send)

    async def _body(self, headers: dict[str, str], receive: Receive) -> bytes:
        limit = f"the limit is {self.max_bytes:,} bytes per request (rnnlab serve --max-bytes)"
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            raise TooLarge(f"the request body has {int(declared):,} bytes; {limit}")
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                raise TooLarge(f"the request body has more than {self.max_bytes:,} bytes; {limit}")
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """An ASGI `receive` that hands `body` over in one message, then passes on the server's messages
    (a disconnect)."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


async def _answer(send: Send, status: int, error: MlflowException) -> None:
    """An error in MLflow's own JSON shape: {"error_code": ..., "message": ...}."""
    body = error.serialize_as_json().encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build_app(model_uri: str, max_texts: int, max_bytes: int) -> RequestGuard:
    """MLflow's scoring app for the pyfunc at `model_uri`, behind a `RequestGuard`."""
    import mlflow.pyfunc
    from mlflow.pyfunc import scoring_server

    try:
        model = mlflow.pyfunc.load_model(model_uri)
    except MlflowException as error:
        raise RnnlabError(f"cannot load {model_uri}: {error.message}") from None
    texts_model = getattr(model.unwrap_python_model(), "model", None)
    if texts_model is None or not hasattr(texts_model, "text_columns"):
        raise RnnlabError(f"{model_uri} is not an rnnlab text model (logged by the register stage)")
    return RequestGuard(scoring_server.init(model), texts_model.text_columns, max_texts, max_bytes)


def serve(app: RequestGuard, host: str, port: int) -> None:
    """Run `app` with uvicorn on `host:port` until interrupted (`REQUEST_THREADS` request threads)."""
    import uvicorn

    async def main() -> None:
        executor = ThreadPoolExecutor(REQUEST_THREADS, thread_name_prefix="rnnlab-request")
        asyncio.get_running_loop().set_default_executor(executor)
        await uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="info")).serve()

    asyncio.run(main())
