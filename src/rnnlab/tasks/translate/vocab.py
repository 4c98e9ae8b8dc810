"""The word vocabulary of one language of a translation pair: rnnlab's `Vocabulary` plus `<bos>`, `<eos>`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pyarrow as pa

from rnnlab.data.vocab import Vocabulary


class TranslationVocabulary(Vocabulary):
    """Ids 0-3 are `<pad>`, `<oov>`, `<bos>`, `<eos>`; ids 4, 5, ... the kept words, most frequent first.

    Encoded sentences are stored without `<bos>`/`<eos>`; the datamodule wraps the targets in them.
    """

    BOS = 2
    EOS = 3
    BOS_TOKEN = "<bos>"
    EOS_TOKEN = "<eos>"
    SPECIALS = (Vocabulary.PAD_TOKEN, Vocabulary.OOV_TOKEN, BOS_TOKEN, EOS_TOKEN)

    @classmethod
    def from_sentences(
        cls, sentences: Sequence[Sequence[str]], max_size: int | None = None, min_freq: int = 1
    ) -> TranslationVocabulary:
        """Build from tokenized sentences (lists of words); `max_size` counts the four specials."""
        return cls.build(token_lists(sentences), max_size=max_size, min_freq=min_freq)

    def encode_sentence(self, tokens: Sequence[str]) -> np.ndarray:
        """The ids (int64) of one tokenized sentence, unknown words as `OOV`, without `<bos>`/`<eos>`."""
        return np.array([self.token_to_id(token) for token in tokens], dtype=np.int64)

    def decode(self, ids: Iterable[int]) -> list[str]:
        """The words of a decoded id sequence: `<bos>` and `<pad>` skipped, stopping at the first `<eos>`;
        an unknown word reads `<oov>`."""
        words = []
        for token_id in ids:
            token_id = int(token_id)
            if token_id == self.EOS:
                break
            if token_id not in (self.BOS, self.PAD):
                words.append(self.id_to_token(token_id))
        return words


def token_lists(sentences: Sequence[Sequence[str]]) -> pa.ListArray:
    """Tokenized sentences as the Arrow `list<string>` array `Vocabulary.build`/`encode` take."""
    return pa.array(sentences, type=pa.list_(pa.string()))
