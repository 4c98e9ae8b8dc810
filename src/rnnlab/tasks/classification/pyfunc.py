"""Serve a trained classifier on raw text: training-time preprocessing + ONNX Runtime, as an MLflow pyfunc.

`TextEncoder` turns raw strings into the ids the model was trained on (the prepare stage's tokenizer and
vocabulary, the encode stage's truncation), always post-padded. `OnnxSentimentModel` runs the exported
ONNX file (inputs `ids`, `lengths`; output `probs`, see onnx_export) on them. `SentimentPyfunc` wraps
that for MLflow (served by `rnnlab serve`, see `rnnlab.server`), and `log_text_model` logs it with its
artifacts, its code and the name of the table's text column.

Defined behaviour on odd input: the checks of `text_input` (a non-string, or a blank text where a prediction
is asked for, raises `RnnlabError` naming its position; the encoder itself maps a blank text to a row of
length 0, as the encode stage does); a text longer than `MAX_CHARS` characters
is cut to `MAX_CHARS` before tokenizing, on the side that truncation drops anyway (truncating "pre" keeps
the end of the text, "post" its start), so the ids only change when `MAX_CHARS` characters hold fewer than
`max_len` tokens. Nothing here imports torch.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import onnxruntime as ort
import pandas as pd
from mlflow.artifacts import download_artifacts
from mlflow.exceptions import MlflowException
from mlflow.models import Model, ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE
from mlflow.types import ColSpec, Schema

import rnnlab
from rnnlab.batching import BatchingScorer
from rnnlab.data.encode import pad_and_truncate
from rnnlab.data.tokenize import TokenizerConfig, tokenize
from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import RnnlabError
from rnnlab.io import read_json
from rnnlab.tasks.classification.text_input import (
    TEXT_COLUMN,
    accepted_columns,
    check_texts,
    input_texts,
    require_texts,
)

MAX_CHARS = 100_000  # longer texts are cut before tokenizing (a 1 MB review must not stall the server)
BATCH_SIZE = 256
META_KEYS = ("label_names", "num_classes", "vocab_size", "tokenizer", "max_len", "truncating")
ARTIFACT_FILES = {"model": "model.onnx", "vocab": "vocab.json", "meta": "meta.json"}
MODEL_NAME = "model"  # the artifact path of the pyfunc in its run: runs:/<run_id>/model
REQUIREMENTS = ("onnxruntime", "numpy", "pandas", "pyarrow")
# The input column is left unnamed in the signature: MLflow then passes a plain list of strings (in process,
# or `{"inputs": [...]}` over HTTP) as column 0 instead of refusing it; `input_texts` wants a text column
# otherwise. (Over HTTP an unnamed column keeps only a table's first column: `rnnlab serve` sends lists.)
SIGNATURE = ModelSignature(
    inputs=Schema([ColSpec("string")]),
    outputs=Schema([ColSpec("string", "label"), ColSpec("double", "probability")]),
)
EXAMPLE_TEXTS = ["This film was a masterpiece.", "Two hours I will never get back."]


@dataclass(frozen=True)
class TextEncoder:
    """Raw strings -> (ids int64 [B, max_len] post-padded, lengths int64 [B]), exactly as in training."""

    vocab: Vocabulary
    tokenizer: TokenizerConfig
    max_len: int
    truncating: str
    label_names: tuple[str, ...]

    @classmethod
    def from_files(cls, vocab_path: str | Path, meta_path: str | Path) -> TextEncoder:
        """From the prepare stage's `vocab.json` and the encode stage's `meta.json`."""
        meta = read_json(_existing(meta_path, "meta.json"))
        missing = [key for key in META_KEYS if key not in meta]
        if missing:
            raise RnnlabError(
                f"{meta_path} lacks {', '.join(missing)}: it must be the encode stage's meta.json"
            )
        vocab = Vocabulary.load(_existing(vocab_path, "vocabulary"))
        if len(vocab) != meta["vocab_size"]:
            raise RnnlabError(
                f"{vocab_path} holds {len(vocab)} tokens but {meta_path} says vocab_size={meta['vocab_size']}"
            )
        if len(meta["label_names"]) != meta["num_classes"]:
            raise RnnlabError(f"{meta_path}: label_names {meta['label_names']} do not match num_classes")
        try:
            tokenizer = TokenizerConfig(**meta["tokenizer"])
        except TypeError as error:
            raise RnnlabError(f"{meta_path}: bad tokenizer settings {meta['tokenizer']}: {error}") from None
        return cls(vocab, tokenizer, meta["max_len"], meta["truncating"], tuple(meta["label_names"]))

    def clip(self, text: str) -> str:
        """`text` cut to `MAX_CHARS` characters, keeping the side that truncation keeps."""
        if len(text) <= MAX_CHARS:
            return text
        return text[-MAX_CHARS:] if self.truncating == "pre" else text[:MAX_CHARS]

    def encode(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """Tokenize, map to ids (unknown tokens to OOV) and truncate to `max_len`, padding after the ids."""
        clipped = [self.clip(text) for text in check_texts(texts)]
        flat, offsets = self.vocab.encode(tokenize(clipped, self.tokenizer))
        ids, lengths = pad_and_truncate(flat, offsets, self.max_len, "post", self.truncating)
        return ids.astype(np.int64), lengths.astype(np.int64)


class OnnxSentimentModel:
    """An exported classifier on ONNX Runtime behind a `TextEncoder`: raw texts in, labels out.

    `text_columns`: the column names a table of texts may use (`accepted_columns`)."""

    def __init__(
        self,
        onnx_path: str | Path,
        encoder: TextEncoder,
        batch_size: int = BATCH_SIZE,
        text_columns: Sequence[str] = (TEXT_COLUMN,),
    ) -> None:
        path = _existing(onnx_path, "ONNX model")
        try:
            self.session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        except Exception as error:  # ONNX Runtime raises its own exception types for a bad file
            raise RnnlabError(f"{path} is not a loadable ONNX model: {error}") from None
        names = {node.name for node in self.session.get_inputs()}
        outputs = [node.name for node in self.session.get_outputs()]
        if names != {"ids", "lengths"} or "probs" not in outputs:
            raise RnnlabError(
                f"{path} has inputs {sorted(names)} and outputs {outputs}; "
                "expected inputs ids, lengths and output probs (onnx_export)"
            )
        self.encoder = encoder
        self.batch_size = batch_size
        self.text_columns = tuple(text_columns)

    @classmethod
    def from_files(
        cls,
        onnx_path: str | Path,
        vocab_path: str | Path,
        meta_path: str | Path,
        text_column: str | None = None,
    ) -> OnnxSentimentModel:
        encoder = TextEncoder.from_files(vocab_path, meta_path)
        return cls(onnx_path, encoder, text_columns=accepted_columns(text_column))

    @property
    def label_names(self) -> tuple[str, ...]:
        return self.encoder.label_names

    def probabilities(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, float32 [N, C], computed `batch_size` texts at a time (an empty text reads
        as one padding step, as in the encoded data)."""
        texts = check_texts(texts)
        parts = []
        for start in range(0, len(texts), self.batch_size):
            ids, lengths = self.encoder.encode(texts[start : start + self.batch_size])
            width = max(int(lengths.max()), 1)  # trim the batch to its longest text, as training does
            feed = {"ids": np.ascontiguousarray(ids[:, :width]), "lengths": lengths}
            probs = self.session.run(["probs"], feed)[0]
            if probs.shape[1] != len(self.label_names):
                raise RnnlabError(
                    f"the ONNX model gives {probs.shape[1]} classes but meta.json names "
                    f"{len(self.label_names)}: {', '.join(self.label_names)}"
                )
            parts.append(probs)
        return np.concatenate(parts) if parts else np.zeros((0, len(self.label_names)), np.float32)

    def predict(self, texts: Sequence[str]) -> list[dict[str, Any]]:
        """`[{"label": ..., "probability": ...}]` per text: the most likely label and its probability.
        Every text must be a non-blank string (`require_texts`)."""
        return self.label_rows(self.probabilities(require_texts(texts)))

    def label_rows(self, probs: np.ndarray) -> list[dict[str, Any]]:
        """The most likely label and its probability, per row of `probs`."""
        best = probs.argmax(axis=1)
        return [{"label": self.label_names[k], "probability": float(probs[i, k])} for i, k in enumerate(best)]


class SentimentPyfunc(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc on raw text (artifacts: `model` = ONNX, `vocab`, `meta`; model_config: `text_column`)
    -> `label`, `probability`. Concurrent calls (the scoring server's threads) are scored together."""

    def load_context(self, context: mlflow.pyfunc.PythonModelContext) -> None:
        files = context.artifacts
        column = (context.model_config or {}).get("text_column")
        self.model = OnnxSentimentModel.from_files(files["model"], files["vocab"], files["meta"], column)
        self.scorer = BatchingScorer(self.model.probabilities, self.model.batch_size)

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None
    ) -> pd.DataFrame:
        """Labels and probabilities of the texts in `model_input`.

        MLflow's schema enforcement hands over a DataFrame (a list or a Series becomes one); called directly,
        a list of strings, a Series, or a DataFrame with a `text` column or the table's own works too. The
        `pd.DataFrame` hint keeps MLflow from deriving its own signature and input conversion from the hint.
        """
        try:
            texts = require_texts(input_texts(model_input, self.model.text_columns))
            rows = self.model.label_rows(self.scorer(texts))
        except RnnlabError as error:  # a bad request: the scoring server answers 400 with this message
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        return pd.DataFrame(rows, columns=["label", "probability"]).astype({"probability": "float64"})


def pip_requirements() -> list[str]:
    """What the served model needs (MLflow adds itself), pinned to the installed versions."""
    return [f"{name}=={version(name)}" for name in REQUIREMENTS]


def log_text_model(
    run_id: str,
    export_dir: str | Path,
    vocab_path: str | Path,
    meta_path: str | Path,
    tracking_uri: str,
    registered_name: str | None = None,
    text_column: str = TEXT_COLUMN,
    step: int = 0,
) -> ModelInfo:
    """Log the pyfunc (artifact path `model`) to run `run_id`; register it as `registered_name` if given.

    The model bundles `export_dir/model.onnx`, the vocabulary, meta.json and the `rnnlab` package source
    (for the tokenizer), with explicit pip requirements, a signature and an input example; its
    model_config names the training table's text column (`data.source.text_column`), which tables sent to
    it may use instead of `text`. Sets MLflow's process-wide tracking URI to `tracking_uri` (MLflow's
    logging functions read only that).
    """
    artifacts = {"model": Path(export_dir) / ARTIFACT_FILES["model"], "vocab": vocab_path, "meta": meta_path}
    OnnxSentimentModel.from_files(*artifacts.values())  # fail here, with a clear message, on bad files
    mlflow.set_tracking_uri(tracking_uri)
    try:
        with mlflow.start_run(run_id=run_id):
            return mlflow.pyfunc.log_model(
                name=MODEL_NAME,
                python_model=SentimentPyfunc(),
                artifacts={key: str(path) for key, path in artifacts.items()},
                code_paths=[str(Path(rnnlab.__file__).parent)],
                pip_requirements=pip_requirements(),
                signature=SIGNATURE,
                input_example=pd.DataFrame({TEXT_COLUMN: EXAMPLE_TEXTS}),
                model_config={"text_column": text_column},
                registered_model_name=registered_name,
                step=step,  # the model shows the run's metrics at this step
            )
    except MlflowException as error:
        raise RnnlabError(f"cannot log a model to run {run_id} at {tracking_uri}: {error.message}") from None


def load_logged_model(model_uri: str, tracking_uri: str) -> OnnxSentimentModel:
    """The ONNX model of a logged pyfunc (`models:/<name>@<alias>`, `runs:/<run_id>/model`), without torch.

    Sets MLflow's process-wide tracking URI: MLflow 3.17 resolves these URIs through it whatever
    `download_artifacts(tracking_uri=...)` says.
    """
    mlflow.set_tracking_uri(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="rnnlab-model-") as tmp:
        try:
            local = Path(download_artifacts(model_uri, dst_path=tmp))
            flavor = Model.load(local).flavors["python_function"]
            files = flavor["artifacts"]
        except MlflowException as error:
            raise RnnlabError(f"cannot load {model_uri} from {tracking_uri}: {error.message}") from None
        except KeyError:
            raise RnnlabError(f"{model_uri} is not an rnnlab text model (no ONNX artifacts)") from None
        paths = (local / files[key]["path"] for key in ARTIFACT_FILES)
        return OnnxSentimentModel.from_files(*paths, (flavor.get("config") or {}).get("text_column"))


def _existing(path: str | Path, what: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise RnnlabError(f"{what} file not found: {path}")
    return path
