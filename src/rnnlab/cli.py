"""The `rnnlab` command: small tools around the pipeline (the stages themselves run through DVC)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from rnnlab.cli_data import add_data_parser
from rnnlab.cli_server import add_server_parser
from rnnlab.cli_tasks import add_task_parsers, pipeline_params
from rnnlab.config import project_root, resolve_path
from rnnlab.errors import RnnlabError
from rnnlab.io import read_json
from rnnlab.stage import report_errors

if TYPE_CHECKING:
    from rnnlab.tasks.classification.pyfunc import OnnxSentimentModel

REGISTER_REPORT = "<reports_dir>/register.json"  # of the selected data set (params.yaml: paths.reports_dir)
SHOWN_CHARS = 70  # of each text in `rnnlab predict`'s output
MAX_TEXTS = 1_000  # per request to `rnnlab serve`: a full batch scores well inside MLflow's 60 s timeout
MAX_BYTES = 8 * 1024 * 1024  # request body limit of `rnnlab serve`


@report_errors
def _sync_params(args: argparse.Namespace) -> int:
    from rnnlab.params import sync_params, tasks

    root = project_root()
    if args.overrides and not args.task:
        raise RnnlabError(
            "overrides need --task, e.g. `rnnlab sync-params --task forecast experiment=smoke_forecast`"
        )
    drifted = []
    for task in [args.task] if args.task else tasks(root):
        path, in_sync = sync_params(root, task, args.overrides, check=args.check)
        if in_sync:
            print(f"{path} matches conf/ (task={task})")
        elif args.check:
            drifted.append(path)
            print(f"{path} differs from conf/ (task={task}): run `rnnlab sync-params`", file=sys.stderr)
        else:
            print(f"rewrote {path} from conf/ (task={task})")
    return 1 if drifted else 0


@report_errors
def _predict(args: argparse.Namespace) -> int:
    if not args.texts and not args.file:
        raise RnnlabError("nothing to classify: give texts as arguments or --file FILE (one review per line)")
    if args.file and not args.file.is_file():
        raise RnnlabError(f"review file not found: {args.file}")
    model = _load_model(args.model, args.tracking_uri)
    texts = list(args.texts) + (_read_texts(args.file, model.text_columns) if args.file else [])
    for text, row in zip(texts, model.predict(texts), strict=True):
        print(f"{row['label']} {row['probability']:.4f}  {_shortened(text)}")
    return 0


@report_errors
def _serve(args: argparse.Namespace) -> int:
    for flag, value in (("--max-texts", args.max_texts), ("--max-bytes", args.max_bytes)):
        if value < 1:
            raise RnnlabError(f"{flag} must be at least 1, got {value}")
    root = project_root()
    model_uri = args.model or _champion_uri(root)
    import mlflow

    from rnnlab.server import build_app, serve
    from rnnlab.tracking import tracking_uri

    mlflow.set_tracking_uri(tracking_uri(args.tracking_uri, root))  # where models:/ URIs resolve
    app = build_app(model_uri, args.max_texts, args.max_bytes)
    print(
        f"[serve] model={model_uri} url=http://{args.host}:{args.port}/invocations "
        f"max_texts={args.max_texts} max_bytes={args.max_bytes}",
        flush=True,
    )
    serve(app, args.host, args.port)
    return 0


def _champion_report(root: Path) -> Path:
    """The selected data set's register.json (params.yaml's reports_dir), which must exist."""
    paths = pipeline_params(root / "params.yaml", "rnnlab sync-params", "pass --model").paths
    report = resolve_path(paths.reports_dir, root) / "register.json"
    if not report.is_file():
        raise RnnlabError(
            f"no champion model yet ({report} is missing): run `dvc repro`, "
            "or pass --model models:/<name>@<alias> or runs:/<run_id>/model"
        )
    return report


def _champion_uri(root: Path) -> str:
    return read_json(_champion_report(root))["model_uri"]


def _load_model(model_uri: str | None, tracking_uri: str | None) -> OnnxSentimentModel:
    """The champion's local export by default, else the ONNX model inside a logged pyfunc; never torch."""
    root = project_root()
    report = _champion_report(root) if model_uri is None else None
    if model_uri is not None and not model_uri.startswith(("models:/", "runs:/")):
        raise RnnlabError(
            f"unknown model URI {model_uri!r}: use models:/<name>@<alias>, models:/<name>/<version> "
            "or runs:/<run_id>/model"
        )
    from rnnlab.tasks.classification.pyfunc import (  # ~1.3 s: after checks
        ARTIFACT_FILES,
        OnnxSentimentModel,
        load_logged_model,
    )

    if model_uri is None:
        registered = read_json(report)
        files = registered.get("files")
        if not isinstance(files, dict) or set(files) != set(ARTIFACT_FILES):
            raise RnnlabError(f"{report} does not name the model's files: run `dvc repro register`")
        paths = (resolve_path(files[key], root) for key in ARTIFACT_FILES)
        return OnnxSentimentModel.from_files(*paths, registered.get("text_column"))
    from rnnlab.tracking import tracking_uri as default_uri  # MLflow, which load_logged_model needs anyway

    return load_logged_model(model_uri, default_uri(tracking_uri, root))


def _read_texts(path: Path, columns: tuple[str, ...]) -> list[object]:
    """The texts of a review file: a .csv/.parquet table's text column (`text` or the training table's own;
    every row, a CSV's blank lines too, checked by the model), else the non-blank lines of a UTF-8 file."""
    if path.suffix.lower() in (".csv", ".parquet"):
        import pandas as pd

        from rnnlab.tasks.classification.text_input import read_csv_table, text_column

        try:
            frame = read_csv_table(path) if path.suffix.lower() == ".csv" else pd.read_parquet(path)
        except (ValueError, OSError) as error:
            raise RnnlabError(f"{path} is not a readable {path.suffix[1:]} table: {error}") from None
        return frame[text_column(list(frame.columns), columns)].tolist()
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as error:
        raise RnnlabError(f"{path} is not UTF-8 text: {error}") from None
    return [line for line in lines if line.strip()]


def _shortened(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= SHOWN_CHARS else text[: SHOWN_CHARS - 1] + "…"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rnnlab", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    sync = commands.add_parser(
        "sync-params",
        help="rewrite each pipeline's params.yaml as the composition of conf/ for its task",
        description="params.yaml (imdb) and pipelines/<task>/params.yaml; --task with overrides rewrites "
        "one, e.g. `rnnlab sync-params --task charlm experiment=smoke_charlm`.",
    )
    sync.add_argument("--check", action="store_true", help="only compare; exit 1 when any differs")
    sync.add_argument("--task", help="only this task's file (conf/task/<task>.yaml)")
    sync.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="Hydra overrides (with --task)")
    sync.set_defaults(func=_sync_params)
    predict = commands.add_parser(
        "predict",
        help="classify raw texts with the champion model (ONNX Runtime)",
        description="Print `label probability  text` per text: `pos 0.9731  This film was a masterpiece`.",
    )
    predict.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    predict.add_argument(
        "--file",
        type=Path,
        help="UTF-8 file, one review per line (blank lines skipped), or a .csv/.parquet table with a `text` "
        "column or the training table's own text column",
    )
    predict.add_argument(
        "--model",
        help="models:/<name>@<alias>, models:/<name>/<version> or runs:/<run_id>/model "
        f"(default: the local export of the champion named in {REGISTER_REPORT})",
    )
    predict.add_argument(
        "--tracking-uri",
        help="MLflow store of --model (default: $MLFLOW_TRACKING_URI, else sqlite:///<project>/mlflow.db)",
    )
    predict.set_defaults(func=_predict)
    serve = commands.add_parser(
        "serve",
        help="serve the champion model over HTTP (MLflow's scoring server with request checks and limits)",
        description='POST /invocations with {"inputs": [texts]} (or dataframe_split/dataframe_records/'
        "instances, CSV, parquet); non-strings and blank texts get 400, requests over the limits 413.",
    )
    serve.add_argument(
        "--model",
        help="models:/<name>@<alias> or runs:/<run_id>/model "
        f"(default: the champion named in {REGISTER_REPORT})",
    )
    serve.add_argument("--tracking-uri", help="MLflow store of --model (default as for predict)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    serve.add_argument("--port", type=int, default=5001, help="port (default: %(default)s)")
    serve.add_argument(
        "--max-texts",
        type=int,
        default=MAX_TEXTS,
        help="texts per request; more get HTTP 413 (default: %(default)s)",
    )
    serve.add_argument(
        "--max-bytes",
        type=int,
        default=MAX_BYTES,
        help="request body size in bytes; larger gets HTTP 413 (default: %(default)s)",
    )
    serve.set_defaults(func=_serve)
    add_task_parsers(commands)
    add_server_parser(commands)
    add_data_parser(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
