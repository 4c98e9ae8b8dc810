"""Initialise a classifier from a pretrained word language model (ULMFiT, SA-LSTM): the embedding and the
first recurrent layer are copied; the other layers, the pooling and the head keep their initialisation.

The forward language model's first layer becomes the classifier's forward direction; for a bidirectional
classifier the backward language model's, which read the reversed stream, becomes its backward direction
(which reads each review reversed). The end-of-review row of the language model's embedding is not copied.
"""

from __future__ import annotations

import os

import torch

from rnnlab.errors import ConfigError
from rnnlab.pretraining.word_lm import WordLanguageModel
from rnnlab.tasks.classification.classifier import SequenceClassifier

ARCHITECTURE = ("cell", "embedding_dim", "hidden_size", "bidirectional")  # what must match, besides the vocab


def load_language_model(path: str | os.PathLike) -> WordLanguageModel:
    """A pretraining checkpoint, on the CPU."""
    return WordLanguageModel.load_from_checkpoint(path, map_location="cpu")


def mismatches(classifier: SequenceClassifier, lm: WordLanguageModel) -> list[str]:
    """What differs between the classifier and the language model, one `key: ours vs theirs` each."""
    found = []
    rows = classifier.encoder.embedding.num_embeddings
    if rows != lm.hparams.vocab_size:
        found.append(f"vocab_size {rows} (classifier) vs {lm.hparams.vocab_size} (language model)")
    for key in ARCHITECTURE:
        ours, theirs = getattr(classifier.encoder.config, key), getattr(lm.config, key)
        if ours != theirs:
            found.append(f"{key} {ours!r} (classifier) vs {theirs!r} (language model)")
    return found


@torch.no_grad()
def init_from_language_model(classifier: SequenceClassifier, lm: WordLanguageModel) -> list[str]:
    """Copy `lm`'s embedding and first recurrent layer into `classifier` (in place); the names (state-dict
    keys) of the classifier's tensors overwritten. A ConfigError names every mismatch of vocabulary size,
    cell, embedding size, hidden size or directions, before anything is copied."""
    found = mismatches(classifier, lm)
    if found:
        raise ConfigError(
            f"model.init_from=lm: the language model does not fit the classifier: {'; '.join(found)}. "
            "Pretrain with the classifier's model config and vocabulary."
        )
    encoder, first = classifier.encoder, classifier.encoder.layers[0]
    pairs = [(encoder.embedding.weight, lm.embedding.weight[: lm.hparams.vocab_size])]
    directions = [(first.forward_rnn, lm.encoder)]
    if first.backward_rnn is not None:
        directions.append((first.backward_rnn, lm.backward_encoder))
    for target, source in directions:
        source_rnn = source.layers[0].forward_rnn
        pairs += [(param, source_rnn.get_parameter(name)) for name, param in target.named_parameters()]
    names = {id(param): name for name, param in classifier.named_parameters()}
    for target, source in pairs:
        target.copy_(source)
    return [names[id(target)] for target, _ in pairs]
