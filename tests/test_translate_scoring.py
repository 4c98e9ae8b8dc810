"""Translation scores: sacrebleu's BLEU checked by hand, BLEU by source length, the MLflow names."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rnnlab.tasks.translate.scoring import Decoded, bleu_by_length, corpus_scores, mlflow_metrics


def test_bleu_of_a_hypothesis_one_word_short_is_the_brevity_penalty():
    # every n-gram of the hypothesis is in the reference (precisions 1), 6 words against 7 tokens: BLEU is
    # the brevity penalty exp(1 - 7/6), in percent
    scores = corpus_scores(["le chat dort sur la chaise"], ["Le chat dort sur la chaise."], lowercase=True)
    assert scores["bleu"] == pytest.approx(100 * math.exp(1 - 7 / 6))
    assert scores["signature"]["bleu"].startswith("nrefs:1|case:lc|")
    cased = corpus_scores(["le chat dort sur la chaise ."], ["Le chat dort sur la chaise."], lowercase=False)
    # "le" does not match "Le" cased: unigrams 6/7, bigrams 5/6, trigrams 4/5, 4-grams 3/4, no brevity penalty
    assert cased["bleu"] == pytest.approx(100 * (6 / 7 * 5 / 6 * 4 / 5 * 3 / 4) ** 0.25)
    assert cased["signature"]["bleu"].startswith("nrefs:1|case:mixed|")
    # a typographic apostrophe in the reference is the plain one the training text had
    curly = corpus_scores(["j'ai gagné la course hier."], ["J’ai gagné la course hier."], lowercase=True)
    assert curly["bleu"] == pytest.approx(100.0) and curly["chrf"] == pytest.approx(100.0)


def test_bleu_by_length_scores_each_bucket_on_its_own_sentences():
    decoded = Decoded(
        sources=["a b", "a b c d e f g"],
        references=["il est là .", "nous sommes allés à la plage hier ."],
        hypotheses=["il est là .", "je mange une pomme"],
        source_lengths=np.array([2, 7]),
    )
    found = bleu_by_length(decoded, [5, 10], lowercase=True)
    assert found == {
        "<=5": {"bleu": pytest.approx(100.0), "n": 1},
        "6-10": {"bleu": 0.0, "n": 1},
        ">10": {"bleu": None, "n": 0},
    }
    report = {"bleu": 50.0, "chrf": 40.0, "val_bleu": 45.0, "val_chrf": 41.0, "length_buckets": found}
    assert mlflow_metrics(report) == {
        "test/bleu": 50.0,
        "test/chrf": 40.0,
        "val/bleu": 45.0,
        "val/chrf": 41.0,
        "test/bleu_len_le5": pytest.approx(100.0),
        "test/bleu_len_6_10": 0.0,
    }
