"""The TF-IDF + logistic regression baseline: C chosen on validation, scored like the recurrent models."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from rnnlab.errors import ConfigError
from rnnlab.tasks.classification.baseline import BaselineSettings, documents, fit_and_score, reports


def token_split(rows: int, rng: np.random.Generator) -> tuple[pa.ListArray, np.ndarray]:
    """Label 1 exactly when the bigram `not bad` occurs; `bad` alone occurs in both classes."""
    labels = np.arange(rows) % 2
    texts = []
    for label in labels:
        words = [f"w{i}" for i in rng.integers(0, 30, size=int(rng.integers(3, 12)))]
        at = int(rng.integers(len(words) + 1))
        words[at:at] = ["not", "bad"] if label else ["bad"]
        texts.append(words)
    return pa.array(texts, pa.list_(pa.string())), labels


@pytest.fixture(scope="module")
def splits():
    rng = np.random.default_rng(0)
    parts = {split: token_split(n, rng) for split, n in (("train", 300), ("val", 80), ("test", 100))}
    return {s: p[0] for s, p in parts.items()}, {s: p[1] for s, p in parts.items()}


def test_bigrams_solve_what_unigram_counts_cannot(splits):
    tokens, labels = splits
    bigrams = fit_and_score(tokens, labels, "word", BaselineSettings(ngram_max=2, min_df=1), [5, 10], 1, 0)
    assert bigrams.test.scores["acc"] == 1.0 and set(bigrams.val_acc) == {0.25, 1.0, 4.0, 16.0, 64.0}
    best = max(bigrams.val_acc.values())
    assert bigrams.chosen_C == min(c for c, acc in bigrams.val_acc.items() if acc == best)  # ties: smaller C
    assert [b.n for b in bigrams.test.buckets] == [
        int(((n := np.diff(tokens["test"].offsets.to_numpy())) <= 5).sum()),
        int(((n > 5) & (n <= 10)).sum()),
        int((n > 10).sum()),
    ]
    train, metrics = reports(bigrams)
    assert train["model"] == "tfidf_lr" and train["val_acc_best"] == bigrams.val_acc[bigrams.chosen_C]
    assert train["params"] == bigrams.features + 1 and metrics["n"] == 100


def test_documents_join_words_and_characters():
    tokens = pa.array([["a", "b"], []], pa.list_(pa.string()))
    assert documents(tokens, "word") == ["a b", ""]
    assert documents(pa.array([["a", " ", "b"]], pa.list_(pa.string())), "char") == ["a b"]


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        ({"ngram_max": 0}, "baseline.ngram_max"),
        ({"min_df": 1.5}, "baseline.min_df"),
        ({"C": ()}, "baseline.C"),
        ({"C": (1.0, -2.0)}, "baseline.C"),
        ({"max_iter": True}, "baseline.max_iter"),
    ],
)
def test_bad_settings_name_the_key(settings, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        BaselineSettings(**settings)
