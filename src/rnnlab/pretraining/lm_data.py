"""The language model's data (stage `pretrain_lm@<cell>`): it learns from the pretraining corpus (the
training split and the unlabelled texts, or one of them: rnnlab.pretraining.corpus) and is monitored on the
prepared validation split, a part of IMDB's labelled training reviews held out from the classifier's
training. The prepared test split is never opened."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rnnlab.data.store import ragged_ids, read_split_table
from rnnlab.pretraining.corpus import SOURCES, Corpus, read_corpus
from rnnlab.pretraining.stream import review_stream

VALIDATION = "val"  # the prepared table the language model is monitored on


@dataclass(frozen=True)
class LanguageModelData:
    """The training stream (the corpus's reviews in an order drawn from the seed), the validation stream (in
    the table's order), and the corpus it was drawn from."""

    train: np.ndarray
    val: np.ndarray
    corpus: Corpus
    val_texts: int


def read_language_model_data(
    prepared_dir: Path, vocab_size: int, seed: int, sources: Sequence[str] = SOURCES
) -> LanguageModelData:
    """The streams of `prepared_dir`'s corpus (its tables `sources`) and validation split, for a vocabulary of
    `vocab_size` ids."""
    corpus = read_corpus(prepared_dir, sources)
    val = read_split_table(prepared_dir, VALIDATION, ["ids"])
    return LanguageModelData(
        review_stream(corpus.ids, corpus.offsets, vocab_size, seed),
        review_stream(*ragged_ids(val), vocab_size),
        corpus,
        val.num_rows,
    )
