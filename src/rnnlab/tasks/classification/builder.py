"""The sentiment classifier from a `model` config node, the optimiser settings and `train.adversarial*`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rnnlab.config import resolve_path
from rnnlab.data.vocab import Vocabulary
from rnnlab.models.build import encoder_args
from rnnlab.models.embeddings import apply_pretrained, read_pretrained_vectors
from rnnlab.tasks.classification.classifier import SequenceClassifier

ADVERSARIAL_KEYS = ("adversarial", "adversarial_epsilon", "adversarial_xi")  # under train (imdb task)


def adversarial_args(train_cfg: dict[str, Any]) -> dict[str, Any]:
    """The `SequenceClassifier`'s adversarial-training arguments from the `train` config node."""
    return {key: train_cfg[key] for key in ADVERSARIAL_KEYS}


def build_classifier(
    model_cfg: dict[str, Any],
    optim: dict[str, Any],
    num_classes: int,
    vocab_path: Path,
    positive_index: int = 1,
    adversarial: dict[str, Any] | None = None,
    vectors: Path | None = None,
) -> tuple[SequenceClassifier, float | None]:
    """The classifier, and the pretrained-vector coverage of the vocabulary (None without vectors).

    `adversarial`: the classifier's `adversarial*` arguments (`train.adversarial*`); the embeddings are then
    normalised with the vocabulary's training counts. `vectors`: a word-vector file for the embedding (the
    pretrain stage's, with `model.init_from=word2vec`); else `model.pretrained_embeddings`, if set.
    """
    vocab = Vocabulary.load(vocab_path)
    adversarial = adversarial or {}
    counts = vocab.counts if adversarial.get("adversarial", "none") != "none" else None
    model = SequenceClassifier(
        len(vocab),
        num_classes,
        encoder_args(model_cfg),
        **optim,
        head_dropout=model_cfg["head_dropout"],
        positive_index=positive_index,
        **adversarial,
        word_counts=counts,
    )
    if vectors is None and model_cfg.get("pretrained_embeddings"):
        vectors = resolve_path(model_cfg["pretrained_embeddings"])
    if vectors is None:
        return model, None
    found = read_pretrained_vectors(vectors, vocab.tokens, model_cfg["embedding_dim"])
    apply_pretrained(model.encoder.embedding, found)
    return model, found.coverage
