"""Load test of `rnnlab serve` on 127.0.0.1: concurrent requests of IMDB reviews, latency and errors, and how
fast the limits answer.

    python bench/bench_serving.py --imdb ../shared/data/imdb/aclImdb_mini.tar.gz \
        [--requests 2000 --concurrency 200 --texts 4] [--model models:/imdb-sentiment@champion]

Without `--model` it serves a stand-in with the shape of the default BiLSTM cell (embedding 128, hidden 128,
max pooling, max_len 400, truncating "pre"), random weights (seed 0; latency does not depend on them) and a
vocabulary built from the reviews, exported by `rnnlab.tasks.classification.onnx_export` and logged by
`rnnlab.tasks.classification.pyfunc.log_text_model` to a temporary MLflow store: what the register stage
logs. The server runs `rnnlab serve` in a subprocess, as the README does, with its default limits unless
`--max-texts`/`--max-bytes` are given.

The load: `--requests` POSTs of `{"inputs": [...]}` with `--texts` reviews each (drawn with seed 0), sent by
`--concurrency` client threads at once (one keep-alive session each) after a warm-up of 10 requests.
Latency is per request, from send to the parsed answer, queueing at the server included. Then three probes,
one at a time: a full batch of `max_texts` reviews (200), `max_texts + 1` (413) and a body over `max_bytes`
(413). Exits 1 on any error (a status other than the expected one, a wrong prediction count, a timeout).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version
from pathlib import Path

import requests

from machine import cpu_model
from rnnlab.cli import MAX_BYTES, MAX_TEXTS

ROOT = Path(__file__).resolve().parents[1]


def read_reviews(archive: Path) -> list[str]:
    """The review texts of an aclImdb archive (train and test, pos and neg)."""
    with tarfile.open(archive) as tar:
        members = sorted(
            (
                m
                for m in tar
                if m.isfile()
                and m.name.endswith(".txt")
                and "/unsup/" not in m.name
                and ("/pos/" in m.name or "/neg/" in m.name)
            ),
            key=lambda m: m.name,
        )
        return [tar.extractfile(m).read().decode("utf-8") for m in members]


def stand_in_model(reviews: list[str], folder: Path) -> tuple[str, str]:
    """Log a random-weight BiLSTM over `reviews`' vocabulary as a registered pyfunc; (model URI, store)."""
    import dataclasses

    import mlflow
    import torch

    from rnnlab.data.tokenize import TokenizerConfig, tokenize
    from rnnlab.data.vocab import Vocabulary
    from rnnlab.io import write_json
    from rnnlab.tasks.classification.classifier import SequenceClassifier
    from rnnlab.tasks.classification.onnx_export import export_onnx
    from rnnlab.tasks.classification.pyfunc import log_text_model

    tokenizer = TokenizerConfig()
    vocab = Vocabulary.build(tokenize(reviews, tokenizer), 30_000, 1)
    vocab.save(folder / "vocab.json")
    meta = {
        "label_names": ["neg", "pos"],
        "num_classes": 2,
        "vocab_size": len(vocab),
        "tokenizer": dataclasses.asdict(tokenizer),
        "max_len": 400,
        "padding": "post",
        "truncating": "pre",
    }
    write_json(folder / "meta.json", meta)
    torch.manual_seed(0)
    encoder = {
        "cell": "lstm",
        "bidirectional": True,
        "hidden_size": 128,
        "embedding_dim": 128,
        "pooling": "max",
    }
    (folder / "export").mkdir()
    export_onnx(SequenceClassifier(len(vocab), 2, encoder).eval(), folder / "export" / "model.onnx")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri)
    experiment = client.create_experiment("bench", artifact_location=(folder / "mlartifacts").as_uri())
    run_id = client.create_run(experiment).info.run_id
    info = log_text_model(
        run_id,
        folder / "export",
        folder / "vocab.json",
        folder / "meta.json",
        uri,
        registered_name="bench-sentiment",
    )
    client.set_registered_model_alias("bench-sentiment", "champion", info.registered_model_version)
    return "models:/bench-sentiment@champion", uri


def start_server(
    model: str, tracking_uri: str, args: argparse.Namespace, log: Path
) -> tuple[subprocess.Popen, str]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": tracking_uri,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    command = [
        sys.executable,
        "-m",
        "rnnlab.cli",
        "serve",
        "--model",
        model,
        "--port",
        str(port),
        "--max-texts",
        str(args.max_texts),
        "--max-bytes",
        str(args.max_bytes),
    ]
    with open(log, "w") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if requests.get(f"{url}/ping", timeout=2).status_code == 200:
                return proc, url
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit(f"the server did not start:\n{log.read_text()}")
        time.sleep(0.3)


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def post(
    session: requests.Session, url: str, texts: list[str] | None = None, body: bytes | None = None
) -> tuple[float, int, int]:
    """(seconds, HTTP status, predictions returned) of one request; status 0 on a connection error."""
    started = time.perf_counter()
    try:
        if body is None:
            answer = session.post(f"{url}/invocations", json={"inputs": texts}, timeout=120)
        else:
            answer = session.post(
                f"{url}/invocations", data=body, timeout=120, headers={"Content-Type": "application/json"}
            )
        count = len(answer.json().get("predictions", [])) if answer.status_code == 200 else 0
        return time.perf_counter() - started, answer.status_code, count
    except (requests.RequestException, ValueError):
        return time.perf_counter() - started, 0, 0


def load(url: str, batches: list[list[str]], concurrency: int) -> tuple[list[tuple[float, int, int]], float]:
    local = threading.local()

    def one(texts: list[str]) -> tuple[float, int, int]:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return post(local.session, url, texts)

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, batches))
    return results, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[round(q * 10) - 1]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--imdb", type=Path, required=True, help="an aclImdb .tar.gz (the texts sent)")
    parser.add_argument("--model", help="serve this registered model instead of the stand-in")
    parser.add_argument("--tracking-uri", help="MLflow store of --model (default: $MLFLOW_TRACKING_URI)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--texts", type=int, default=4, help="reviews per request")
    parser.add_argument("--max-texts", type=int, default=MAX_TEXTS)
    parser.add_argument("--max-bytes", type=int, default=MAX_BYTES)
    args = parser.parse_args()

    reviews = read_reviews(args.imdb)
    rng = random.Random(0)
    batches = [rng.sample(reviews, args.texts) for _ in range(args.requests)]
    full = (reviews * (args.max_texts // len(reviews) + 1))[: args.max_texts]
    with tempfile.TemporaryDirectory(prefix="bench_serving.") as tmp:
        folder = Path(tmp)
        if args.model:
            model, uri = args.model, args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        else:
            model, uri = stand_in_model(reviews, folder)
        proc, url = start_server(model, uri, args, folder / "serve.log")
        try:
            with requests.Session() as session:
                for texts in batches[:10]:
                    post(session, url, texts)
            results, wall = load(url, batches, args.concurrency)
            with requests.Session() as session:
                probes = {
                    f"{args.max_texts} reviews (the limit)": (post(session, url, full), 200),
                    f"{args.max_texts + 1} reviews": (post(session, url, [*full, "one more"]), 413),
                    f"body of {args.max_bytes + 1:,} bytes": (
                        post(session, url, body=b" " * (args.max_bytes + 1)),
                        413,
                    ),
                }
        finally:
            stop(proc)

    latencies = [seconds for seconds, _, _ in results]
    errors = [(status, count) for _, status, count in results if status != 200 or count != args.texts]
    load_average = os.getloadavg()[0]
    print(f"command : python {' '.join(sys.argv)}")
    print(f"machine : {os.cpu_count()} CPUs, {cpu_model()}, {platform.platform()}")
    print(f"load    : 1-minute load average {load_average:.2f} at the end")
    print(
        f"versions: Python {platform.python_version()}, mlflow {version('mlflow')}, "
        f"onnxruntime {version('onnxruntime')}, uvicorn {version('uvicorn')}"
    )
    print(
        f"model   : {args.model or 'stand-in BiLSTM emb128/h128, max_len 400, random weights'}; "
        f"{len(reviews):,} reviews, mean {statistics.mean(map(len, reviews)):,.0f} characters"
    )
    print(f"limits  : --max-texts {args.max_texts:,} --max-bytes {args.max_bytes:,}")
    print()
    print(f"load    : {args.requests:,} requests x {args.texts} reviews, {args.concurrency} concurrent")
    print(f"errors  : {len(errors)}" + (f" (status, predictions): {errors[:5]}" if errors else ""))
    p50, p99 = (percentile(latencies, q) * 1000 for q in (50, 99))
    print(f"latency : p50 {p50:,.0f} ms, p99 {p99:,.0f} ms, max {max(latencies) * 1000:,.0f} ms")
    rate = args.requests / wall
    print(f"through : {rate:,.1f} requests/s, {rate * args.texts:,.0f} reviews/s ({wall:.1f} s wall)")
    print()
    failed = bool(errors)
    for name, ((seconds, status, count), expected) in probes.items():
        ok = status == expected and (expected != 200 or count == args.max_texts)
        failed |= not ok
        print(f"probe   : {name:<32} HTTP {status} in {seconds * 1000:,.0f} ms{'' if ok else '  FAILED'}")
    print(json.dumps({"errors": len(errors), "p50_ms": round(p50), "p99_ms": round(p99)}))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
