"""Word vectors for `model.init_from=word2vec`: gensim's Word2Vec on the pretraining corpus (the classifier's
tokens and vocabulary), written in the word2vec text format that rnnlab.models.embeddings reads, the loader
of `model.pretrained_embeddings` too."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Any, TextIO

import numpy as np
from gensim.models import Word2Vec
from gensim.models.callbacks import CallbackAny2Vec
from gensim.models.keyedvectors import KeyedVectors
from gensim.models.word2vec import MAX_WORDS_IN_BATCH
from tqdm.auto import tqdm

from rnnlab.data.vocab import Vocabulary
from rnnlab.pretraining.corpus import Corpus


class Sentences:
    """The corpus as lists of token strings, read afresh on every pass (gensim makes one for its vocabulary,
    then one per epoch). A text longer than gensim's limit on a sentence goes in pieces of that length."""

    def __init__(self, corpus: Corpus, tokens: Sequence[str]) -> None:
        self.words = np.asarray(tokens, dtype=object)[corpus.ids]
        self.offsets = corpus.offsets

    def __iter__(self) -> Iterator[list[str]]:
        for start, end in zip(self.offsets[:-1], self.offsets[1:], strict=True):
            for piece in range(start, end, MAX_WORDS_IN_BATCH):
                yield self.words[piece : min(piece + MAX_WORDS_IN_BATCH, end)].tolist()


class EpochBar(CallbackAny2Vec):
    """Advances a progress bar by one at the end of each epoch."""

    def __init__(self, bar: tqdm) -> None:
        self.bar = bar

    def on_epoch_end(self, model: Word2Vec) -> None:
        self.bar.update(1)


def train_word2vec(
    corpus: Corpus, tokens: Sequence[str], settings: dict[str, Any], seed: int, progress: bool = True
) -> KeyedVectors:
    """Vectors for every token the corpus holds at least `min_count` times (`settings`: Word2Vec's
    vector_size, window, min_count, sg, negative, sample, epochs). One worker thread and `seed` make them the
    same on every run: several threads interleave their updates differently each time. gensim's own
    progress lines (INFO) are silenced: the bar counts epochs."""
    logging.getLogger("gensim").setLevel(logging.WARNING)
    with tqdm(total=settings["epochs"], desc="word2vec", unit="epoch", disable=not progress) as bar:
        model = Word2Vec(
            Sentences(corpus, tokens), workers=1, seed=seed, callbacks=[EpochBar(bar)], **settings
        )
    return model.wv


def written_tokens(vectors: KeyedVectors) -> list[str]:
    """The tokens the text format can hold, most frequent first: all but those containing whitespace (the
    space of `data.tokenizer.level=char`), which would break its lines."""
    return [token for token in vectors.index_to_key if not any(c.isspace() for c in token)]


def vocabulary_coverage(written: Sequence[str], tokens: Sequence[str]) -> dict[str, Any]:
    """How many of the classifier's tokens (the specials aside) have a written vector."""
    kept, have = tokens[len(Vocabulary.SPECIALS) :], set(written)
    found = sum(token in have for token in kept)
    return {"tokens": len(kept), "with_vector": found, "coverage": found / len(kept) if kept else 0.0}


def write_vectors(vectors: KeyedVectors, written: Sequence[str], handle: TextIO) -> None:
    """The word2vec text format: a `<count> <dim>` line, then per line a token of `written` and its values
    (float32, written exactly)."""
    handle.write(f"{len(written)} {vectors.vector_size}\n")
    for token in written:
        handle.write(f"{token} {' '.join(map(str, vectors[token]))}\n")
