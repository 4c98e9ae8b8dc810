"""Raw sentences in, translations out: a trained `Seq2SeqTranslator` with the vocabularies and settings
(languages, casing) of the prepared data it was trained on (`rnnlab translate`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from rnnlab.errors import LayoutError, RnnlabError
from rnnlab.tasks.translate.prepared import PreparedTranslation
from rnnlab.tasks.translate.search import Decoding, Hypothesis
from rnnlab.tasks.translate.seq2seq import Seq2SeqTranslator
from rnnlab.tasks.translate.text import detokenize, tokenize


def translate_sentences(
    model: Seq2SeqTranslator, prepared_dir: Path, sentences: Sequence[str], decoding: Decoding
) -> list[str]:
    """The translations of `sentences`, tokenized, encoded and detokenized as the prepared data was."""
    prepared = PreparedTranslation.load(prepared_dir)
    found = (model.hparams.src_vocab_size, model.hparams.tgt_vocab_size)
    if found != (len(prepared.src_vocab), len(prepared.tgt_vocab)):
        raise LayoutError(
            f"the model's vocabularies ({found[0]}/{found[1]} words) are not those of {prepared_dir} "
            f"({len(prepared.src_vocab)}/{len(prepared.tgt_vocab)}): train it again on this data"
        )
    languages, lowercase = prepared.settings["languages"], prepared.settings["lowercase"]
    rows = []
    for i, sentence in enumerate(sentences):
        words = tokenize(sentence, languages["src"], lowercase)
        if not words:
            raise RnnlabError(f"sentence {i + 1} ({sentence!r}) has no words to translate")
        rows.append(prepared.src_vocab.encode_sentence(words))
    hypotheses = translate_rows(model, rows, prepared.src_vocab.PAD, decoding)
    return [detokenize(prepared.tgt_vocab.decode(h.tokens), languages["tgt"]) for h in hypotheses]


def translate_rows(
    model: Seq2SeqTranslator, rows: Sequence[np.ndarray], pad_id: int, decoding: Decoding
) -> list[Hypothesis]:
    """The hypotheses for encoded source sentences (id arrays of any lengths), as one padded batch."""
    sources = [torch.as_tensor(row, dtype=torch.long) for row in rows]
    lengths = torch.tensor([len(row) for row in sources])
    src = torch.nn.utils.rnn.pad_sequence(sources, batch_first=True, padding_value=pad_id)
    return model.translate(src, lengths, decoding.beam_size, decoding.length_penalty, decoding.max_len)
