"""The classical row of every classification comparison: TF-IDF n-grams + logistic regression (scikit-learn).

It sees what the recurrent models see: the same train/val/test split and the project's tokenizer
(`data.tokenizer`). The regularisation strength C is chosen on validation accuracy from `baseline.C`, and the
chosen model is scored on test by `rnnlab.tasks.classification.evaluation`, exactly as the recurrent
models are.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from tqdm import tqdm

from rnnlab.comparison import BASELINE
from rnnlab.errors import ConfigError
from rnnlab.tasks.classification import evaluation


@dataclass(frozen=True)
class BaselineSettings:
    """`baseline` in the config (conf/task/imdb.yaml)."""

    ngram_max: int = 2
    min_df: int = 2
    C: tuple[float, ...] = (0.25, 1.0, 4.0, 16.0, 64.0)
    max_iter: int = 1000

    def __post_init__(self) -> None:
        for key in ("ngram_max", "min_df", "max_iter"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"baseline.{key}={value!r} must be a positive integer")
        if not self.C or not all(isinstance(c, int | float) and c > 0 for c in self.C):
            raise ConfigError(f"baseline.C={list(self.C)!r} must be a non-empty list of positive numbers")


@dataclass(frozen=True)
class BaselineResult:
    """The chosen C, validation accuracy for every C tried, the test evaluation and the model's size."""

    chosen_C: float
    val_acc: dict[float, float]
    test: evaluation.Evaluation
    features: int
    coefficients: int
    train_seconds: float


def documents(tokens: pa.ListArray, level: str) -> list[str]:
    """Token lists as strings the vectorizer splits again: words joined by spaces, characters by nothing."""
    return pc.binary_join(tokens, " " if level == "word" else "").to_pylist()


def vectorizer(settings: BaselineSettings, level: str) -> TfidfVectorizer:
    """Word (or character, for `data.tokenizer.level: char`) 1..ngram_max-grams, sublinear TF."""
    ngrams = (1, settings.ngram_max)
    if level == "char":
        return TfidfVectorizer(
            analyzer="char", ngram_range=ngrams, min_df=settings.min_df, lowercase=False, sublinear_tf=True
        )
    return TfidfVectorizer(
        tokenizer=str.split,
        token_pattern=None,
        preprocessor=None,
        lowercase=False,
        ngram_range=ngrams,
        min_df=settings.min_df,
        sublinear_tf=True,
    )


def fit_and_score(
    tokens: dict[str, pa.ListArray],
    labels: dict[str, np.ndarray],
    level: str,
    settings: BaselineSettings,
    edges: list[int],
    positive: int,
    seed: int,
) -> BaselineResult:
    """Fit TF-IDF on train, one logistic regression per C; keep the best on validation; score it on test."""
    started = time.perf_counter()
    tfidf = vectorizer(settings, level)
    x_train = tfidf.fit_transform(documents(tokens["train"], level))
    x_val, x_test = (tfidf.transform(documents(tokens[s], level)) for s in ("val", "test"))
    val_acc, models = {}, {}
    for c in tqdm(settings.C, desc="baseline C", unit="fit"):
        model = LogisticRegression(C=float(c), max_iter=settings.max_iter, random_state=seed)
        models[c] = model.fit(x_train, labels["train"])
        val_acc[float(c)] = float((model.predict(x_val) == labels["val"]).mean())
    chosen = max(settings.C, key=lambda c: (val_acc[float(c)], -c))  # ties: the stronger regularisation
    train_seconds = time.perf_counter() - started
    model = models[chosen]
    counts = torch.from_numpy(pc.list_value_length(tokens["test"]).to_numpy(zero_copy_only=False).copy())
    preds = evaluation.Predictions(
        torch.as_tensor(model.predict_proba(x_test), dtype=torch.float64),
        torch.as_tensor(labels["test"], dtype=torch.int64),
        counts.long(),
    )
    return BaselineResult(
        chosen_C=float(chosen),
        val_acc=val_acc,
        test=evaluation.evaluate(preds, edges, positive),
        features=int(x_train.shape[1]),
        coefficients=int(model.coef_.size + model.intercept_.size),
        train_seconds=train_seconds,
    )


def reports(result: BaselineResult) -> tuple[dict[str, Any], dict[str, Any]]:
    """The baseline's two reports, shaped as a recurrent model's training report and evaluation metrics,
    so that the comparison reads it as one more row."""
    train = {
        "model": BASELINE,
        "params": result.coefficients,
        "features": result.features,
        "C": result.chosen_C,
        "val_acc_by_C": {str(c): acc for c, acc in result.val_acc.items()},
        "train_seconds": round(result.train_seconds, 1),
        "val_acc_best": result.val_acc[result.chosen_C],
    }
    return train, evaluation.metrics_report(result.test)
