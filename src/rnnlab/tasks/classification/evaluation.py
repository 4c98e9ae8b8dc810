"""Test-set evaluation of a classifier: predictions, torchmetrics scores, curves, accuracy by review length.

Binary tasks score the probability of the positive class (`data.positive_label`; predicted when above 0.5,
as torchmetrics does);
multiclass tasks predict the argmax, average precision/recall/F1/AUROC over classes (macro) and draw
micro-averaged one-vs-rest curves, so the curve files have the same columns for every task.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torchmetrics.functional.classification as tmf
from torch import nn
from tqdm import tqdm

from rnnlab.buckets import DEFAULT_LENGTH_BUCKETS, assign_buckets, bucket_names, metric_key
from rnnlab.errors import ConfigError

LENGTH_QUANTILES = (0.25, 0.5, 0.75)  # eval.length_buckets: null cuts the test set at the train quartiles
MAX_CURVE_POINTS = 300  # ROC and precision-recall points kept for the plot files


@dataclass(frozen=True)
class Predictions:
    """Per test example: class probabilities [N, C] (float64), label [N] and token count [N]."""

    probs: torch.Tensor
    labels: torch.Tensor
    token_counts: torch.Tensor


@dataclass(frozen=True)
class Bucket:
    name: str
    n: int
    acc: float | None  # None for an empty bucket


@dataclass(frozen=True)
class Evaluation:
    """Everything the evaluate stage reports; curves are thinned to at most MAX_CURVE_POINTS points."""

    scores: dict[str, float]  # acc, precision, recall, f1, auroc, loss
    n: int
    confusion: torch.Tensor  # [C, C], rows actual, columns predicted
    roc: tuple[np.ndarray, np.ndarray]  # fpr, tpr
    pr: tuple[np.ndarray, np.ndarray]  # recall, precision
    buckets: list[Bucket]
    labels: torch.Tensor
    predicted: torch.Tensor


@torch.no_grad()
def predict(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    device: torch.device | str = "cpu",
    progress: bool = True,
) -> Predictions:
    """Run `model(ids, lengths)` over `batches` in eval mode; probabilities are the softmax of its logits."""
    model.eval().to(device)
    probs, labels, counts = [], [], []
    for batch in tqdm(batches, desc="evaluate", unit="batch", disable=not progress):
        logits = model(batch["ids"].to(device), batch["lengths"].to(device))
        probs.append(logits.double().softmax(-1).cpu())
        labels.append(batch["labels"])
        counts.append(batch["token_counts"])
    if not probs:
        raise ConfigError("the test split is empty: nothing to evaluate")
    return Predictions(torch.cat(probs), torch.cat(labels), torch.cat(counts))


def quantile_edges(token_counts: np.ndarray, quantiles: Sequence[float] = LENGTH_QUANTILES) -> list[int]:
    """Bucket edges at the `quantiles` of the training texts' token counts (the default of
    `eval.length_buckets`): equal-sized buckets whatever the data's lengths. Repeated or zero edges go."""
    counts = np.asarray(token_counts)
    if not len(counts):
        raise ConfigError("the training split is empty: no length quantiles for eval.length_buckets")
    edges = sorted({int(round(q)) for q in np.quantile(counts, quantiles)} - {0})
    return edges or [max(int(counts.max()), 1)]


def thin(curve: Sequence[np.ndarray], max_points: int = MAX_CURVE_POINTS) -> tuple[np.ndarray, ...]:
    """Keep at most `max_points` points of a curve, evenly spaced along it, first and last included."""
    from rnnlab.plots import evenly_spaced

    keep = evenly_spaced(len(curve[0]), max_points)
    return tuple(np.asarray(c)[keep] for c in curve)


def evaluate(
    preds: Predictions, edges: Sequence[int] = DEFAULT_LENGTH_BUCKETS, positive: int = 1
) -> Evaluation:
    """Scores, confusion matrix, thinned ROC/PR curves and accuracy per length bucket of `preds`.

    Binary scores (precision, recall, F1, the curves) treat class `positive` as the positive one.
    """
    probs, labels = preds.probs, preds.labels.long()
    num_classes = probs.shape[1]
    if num_classes < 2:
        raise ConfigError(f"evaluation needs at least 2 classes; the model has {num_classes}")
    binary = num_classes == 2
    scores = probs[:, positive] if binary else probs
    target = (labels == positive).long() if binary else labels
    predicted = torch.where(scores > 0.5, positive, 1 - positive) if binary else probs.argmax(-1)
    hit = (predicted == positive).long() if binary else predicted
    task: dict[str, Any] = {"task": "binary"}
    if not binary:
        task = {"task": "multiclass", "num_classes": num_classes}
    averaged = task if binary else {**task, "average": "macro"}
    curves = {} if binary else {"num_classes": num_classes, "average": "micro"}
    roc_curve = tmf.binary_roc if binary else tmf.multiclass_roc
    pr_curve = tmf.binary_precision_recall_curve if binary else tmf.multiclass_precision_recall_curve
    fpr, tpr, _ = roc_curve(scores, target, **curves)
    precision, recall, _ = pr_curve(scores, target, **curves)
    values = {
        "acc": tmf.accuracy(hit, target, **task),
        "precision": tmf.precision(hit, target, **averaged),
        "recall": tmf.recall(hit, target, **averaged),
        "f1": tmf.f1_score(hit, target, **averaged),
        "auroc": tmf.auroc(scores, target, **averaged),
        "loss": nn.functional.nll_loss(probs.clamp_min(torch.finfo(probs.dtype).tiny).log(), labels),
    }
    return Evaluation(
        scores={key: float(value) for key, value in values.items()},
        n=len(labels),
        confusion=tmf.confusion_matrix(predicted, labels, task="multiclass", num_classes=num_classes),
        roc=thin((fpr.numpy(), tpr.numpy())),
        pr=thin((recall.numpy(), precision.numpy())),
        buckets=length_buckets(predicted == labels, preds.token_counts, edges),
        labels=labels,
        predicted=predicted,
    )


def length_buckets(correct: torch.Tensor, token_counts: torch.Tensor, edges: Sequence[int]) -> list[Bucket]:
    """Accuracy and size of each review-length bucket."""
    index = assign_buckets(token_counts, edges)
    buckets = []
    for i, name in enumerate(bucket_names(edges)):
        hits = correct[index == i]
        buckets.append(Bucket(name, len(hits), float(hits.double().mean()) if len(hits) else None))
    return buckets


def metrics_report(result: Evaluation) -> dict[str, Any]:
    """The DVC metrics file: scores, n and `length_buckets` {name: {acc, n}}."""
    return {
        **result.scores,
        "n": result.n,
        "length_buckets": {b.name: {"acc": b.acc, "n": b.n} for b in result.buckets},
    }


def mlflow_metrics(result: Evaluation) -> dict[str, float]:
    """`test/<score>`, `test/n`, and `test/acc_len_<bucket>` / `test/n_len_<bucket>` per bucket."""
    metrics = {f"test/{key}": value for key, value in result.scores.items()}
    metrics["test/n"] = float(result.n)
    for bucket in result.buckets:
        metrics[f"test/n_len_{metric_key(bucket.name)}"] = float(bucket.n)
        if bucket.acc is not None:
            metrics[f"test/acc_len_{metric_key(bucket.name)}"] = bucket.acc
    return metrics


def plot_tables(result: Evaluation, label_names: Sequence[str]) -> dict[str, pd.DataFrame]:
    """The DVC plot data: `roc` (fpr, tpr), `pr` (recall, precision), `confusion` (actual, predicted: one row
    per example, by label name) and `length_buckets` (bucket, n, acc)."""
    names = np.asarray(label_names, dtype=object)
    if len(names) != result.confusion.shape[0]:
        raise ConfigError(
            f"label_names {list(label_names)!r} do not match the model's {result.confusion.shape[0]} classes"
        )
    return {
        "roc": pd.DataFrame({"fpr": result.roc[0], "tpr": result.roc[1]}),
        "pr": pd.DataFrame({"recall": result.pr[0], "precision": result.pr[1]}),
        "confusion": pd.DataFrame(
            {"actual": names[result.labels.numpy()], "predicted": names[result.predicted.numpy()]}
        ),
        "length_buckets": pd.DataFrame([{"bucket": b.name, "n": b.n, "acc": b.acc} for b in result.buckets]),
    }
