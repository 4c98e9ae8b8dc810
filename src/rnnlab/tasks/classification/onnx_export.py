"""Export a trained classifier to TorchScript and ONNX, and prove both agree with PyTorch.

Both formats map post-padded token ids `ids` int64 [batch, sequence] and `lengths` int64 [batch] to class
probabilities `probs` float32 [batch, classes]; batch and sequence length stay dynamic. Both come from
tracing: `torch.jit.trace`, and `torch.onnx.export(..., dynamo=False)`, because torch 2.13's default
(dynamo) ONNX exporter silently fixes the sequence length the second time it exports an RNN type in one
process (see ../shared/DESIGN.md). A trace records one path through Python control flow, so `check_parity`
runs every format at sequence lengths and batch sizes other than the tracing example's.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from rnnlab.errors import RnnlabError
from rnnlab.io import write_json
from rnnlab.tasks.classification.classifier import SequenceClassifier

INPUT_NAMES = ("ids", "lengths")
OUTPUT_NAMES = ("probs",)
DYNAMIC_AXES = {"ids": {0: "batch", 1: "sequence"}, "lengths": {0: "batch"}, "probs": {0: "batch"}}
EXAMPLE_BATCH, EXAMPLE_LEN = 2, 11  # the tracing example; parity is checked at other lengths
PARITY_LENS = (1, 5, 29)
FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
META_KEYS = ("label_names", "vocab_size", "max_len", "padding", "truncating", "tokenizer")


class ExportError(RnnlabError):
    """A model cannot be exported: missing checkpoint or metadata, or inconsistent inputs."""


class ExportParityError(ExportError):
    """An exported model's probabilities differ from PyTorch's by more than the tolerance."""


class ProbabilityModel(nn.Module):
    """A `SequenceClassifier`'s inference path: (ids [B, T], lengths [B]) -> softmax probabilities [B, C].

    It holds the classifier's encoder and head only (not the LightningModule with its metrics and trainer
    hooks, which tracing cannot walk), and exists for export: put the classifier in eval mode first.
    """

    def __init__(self, model: SequenceClassifier) -> None:
        super().__init__()
        self.encoder = model.encoder
        self.head = model.head

    def forward(self, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        pooled, _ = self.encoder(ids, lengths)
        return self.head(pooled).softmax(-1)


def random_batch(
    vocab_size: int, batch: int, seq_len: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Valid post-padded inputs: lengths in [1, seq_len] with the first row full, padding id 0 after."""
    lengths = torch.randint(1, seq_len + 1, (batch,), generator=generator)
    lengths[0] = seq_len
    ids = torch.randint(1, vocab_size, (batch, seq_len), generator=generator)
    ids[torch.arange(seq_len).unsqueeze(0) >= lengths.unsqueeze(1)] = 0
    return ids, lengths


@contextmanager
def _tracing(model: SequenceClassifier) -> Iterator[tuple[ProbabilityModel, tuple[torch.Tensor, ...]]]:
    """The eval-mode probability model and a tracing example, with the tracer's known warnings silenced.

    Silenced: deprecation notices of TorchScript and of the TorchScript-based ONNX exporter; `nn.RNN`'s
    input-shape checks (TracerWarning); the ONNX exporter's notes on advanced indexing (informational) and
    on variable lengths in RNN ops (about packed sequences; this model masks padding itself).
    `check_parity` is what shows that the traces are right.
    """
    model.eval()
    generator = torch.Generator().manual_seed(0)
    example = random_batch(model.hparams.vocab_size, EXAMPLE_BATCH, EXAMPLE_LEN, generator)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message="Exporting a model to ONNX with a batch_size other than 1")
        warnings.filterwarnings("ignore", message="Exporting aten::index operator of advanced indexing")
        yield ProbabilityModel(model).eval(), example


def export_torchscript(model: SequenceClassifier, path: Path) -> None:
    """Trace the probability model into a TorchScript file (`torch.jit.load` reads it)."""
    with _tracing(model) as (probability_model, example):
        torch.jit.save(torch.jit.trace(probability_model, example, check_trace=False), str(path))


def export_onnx(model: SequenceClassifier, path: Path, opset: int = 17) -> None:
    """Export with the TorchScript-based ONNX exporter (`dynamo=False`) and run ONNX's model checker."""
    with _tracing(model) as (probability_model, example):
        torch.onnx.export(
            probability_model,
            example,
            str(path),
            dynamo=False,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=DYNAMIC_AXES,
            opset_version=opset,
        )
    onnx.checker.check_model(str(path))


def check_parity(
    model: SequenceClassifier,
    onnx_path: Path,
    torchscript_path: Path,
    seq_lens: Sequence[int] = PARITY_LENS,
    batch: int = 8,
    tol: float = 1e-5,
    seed: int = 0,
) -> dict[str, Any]:
    """Compare PyTorch, TorchScript and ONNX Runtime (CPU) probabilities on random post-padded inputs.

    Every length in `seq_lens` (none may be the tracing example's) runs at batch size 1 and at `batch`
    with varied lengths inside the batch. Returns the largest absolute difference per format; raises
    `ExportParityError` naming the format, sequence length, batch size and difference above `tol`.
    """
    if EXAMPLE_LEN in seq_lens or min(seq_lens, default=0) < 1 or batch < 2:
        raise ValueError(
            f"seq_lens={list(seq_lens)} must be positive and exclude the tracing length {EXAMPLE_LEN}; "
            f"batch={batch} must be at least 2"
        )
    model.eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # TorchScript is the format under test
        scripted = torch.jit.load(str(torchscript_path), map_location="cpu")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    reference = ProbabilityModel(model).eval()
    generator = torch.Generator().manual_seed(seed)
    worst: dict[str, tuple[float, int, int]] = {"torchscript": (0.0, 0, 0), "onnx": (0.0, 0, 0)}
    for seq_len in seq_lens:
        for size in (1, batch):
            ids, lengths = random_batch(model.hparams.vocab_size, size, seq_len, generator)
            with torch.no_grad():
                expected = reference(ids, lengths).numpy()
                outputs = {"torchscript": scripted(ids, lengths).numpy()}
            feed = {"ids": ids.numpy(), "lengths": lengths.numpy()}
            outputs["onnx"] = session.run(list(OUTPUT_NAMES), feed)[0]
            for fmt, got in outputs.items():
                diff = float(np.abs(got - expected).max()) if got.shape == expected.shape else np.inf
                diff = np.inf if np.isnan(diff) else diff  # NaN counts as the worst
                if diff > worst[fmt][0]:
                    worst[fmt] = (diff, seq_len, size)
    failures = [
        f"{fmt} differs by {diff:.3g} at sequence length {seq_len}, batch {size}"
        for fmt, (diff, seq_len, size) in worst.items()
        if diff > tol
    ]
    if failures:
        raise ExportParityError(
            f"exported model disagrees with PyTorch (tolerance {tol:g}): " + "; ".join(failures)
        )
    return {
        "max_abs_diff": {fmt: diff for fmt, (diff, _, _) in worst.items()},
        "seq_lens": list(seq_lens),
        "batch_sizes": [1, batch],
        "tol": tol,
    }


def load_classifier(checkpoint: Path, name: str) -> SequenceClassifier:
    """The trained classifier from `checkpoint`, on the CPU in eval mode."""
    if not checkpoint.is_file():
        raise ExportError(f"no checkpoint at {checkpoint}: train the model first (dvc repro train@{name})")
    return SequenceClassifier.load_from_checkpoint(checkpoint, map_location="cpu").eval()


def export_model(
    model: SequenceClassifier, folder: Path, meta: dict[str, Any], opset: int = 17
) -> dict[str, Any]:
    """Write `model.onnx`, `model.pt` and `export.json` into `folder` after a passing parity check.

    `meta` is the encode stage's meta.json; `export.json` holds the parity figures, the ONNX interface
    and what a caller needs to prepare inputs (labels, vocabulary size, max_len, padding, tokenizer).
    Not atomic by itself: write into `rnnlab.io.atomic_dir`.
    """
    missing = [key for key in META_KEYS if key not in meta]
    if missing:
        raise ExportError(f"meta.json lacks {', '.join(missing)}: re-run the encode stage (dvc repro encode)")
    if meta["vocab_size"] != model.hparams.vocab_size:
        raise ExportError(
            f"the checkpoint's vocab_size {model.hparams.vocab_size} differs from meta.json's "
            f"{meta['vocab_size']}: re-train on the current data (dvc repro train)"
        )
    export_torchscript(model, folder / FILES["torchscript"])
    export_onnx(model, folder / FILES["onnx"], opset)
    seq_lens = sorted({*PARITY_LENS, meta["max_len"]} - {EXAMPLE_LEN})
    parity = check_parity(model, folder / FILES["onnx"], folder / FILES["torchscript"], seq_lens)
    info = {
        **parity,
        "opset": opset,
        "files": FILES,
        "input_names": list(INPUT_NAMES),
        "output_names": list(OUTPUT_NAMES),
        "dynamic_axes": DYNAMIC_AXES,
        **{key: meta[key] for key in META_KEYS},
    }
    write_json(folder / "export.json", info)
    return info
