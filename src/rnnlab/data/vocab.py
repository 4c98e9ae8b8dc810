"""Vocabulary: token <-> id mapping built from token counts, with padding id 0 and out-of-vocabulary id 1.

Ids 0 and 1 are the special tokens ``<pad>`` and ``<oov>``; ids 2, 3, ... are the kept tokens, most frequent
first, ties broken by the token string in code-point order, so a build is deterministic. The special strings
themselves are never counted: a literal ``"<pad>"`` token in the data encodes to OOV, never to padding.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from rnnlab.data.tokenize import list_offsets, map_chunks, map_ranges
from rnnlab.errors import ConfigError, RnnlabError
from rnnlab.io import read_json, write_json

FORMAT = "rnnlab-vocabulary/1"
TokenLists = pa.ListArray | pa.ChunkedArray  # list<string>: one list of tokens per text, as from tokenize()


class Vocabulary:
    """An immutable token vocabulary: ``tokens`` lists the kept (non-special) tokens in id order from 2."""

    PAD = 0
    OOV = 1
    PAD_TOKEN = "<pad>"
    OOV_TOKEN = "<oov>"
    SPECIALS = (PAD_TOKEN, OOV_TOKEN)

    def __init__(self, tokens: Sequence[str], counts: Sequence[int]) -> None:
        if len(tokens) != len(counts):
            raise ValueError(f"{len(tokens)} tokens but {len(counts)} counts")
        self._id_of = {token: i for i, token in enumerate(self.SPECIALS + tuple(tokens))}
        if len(self._id_of) != len(tokens) + len(self.SPECIALS):
            raise ValueError("vocabulary tokens must be unique and must not include the special tokens")
        self._itos = list(self._id_of)
        self._counts = np.concatenate([np.zeros(len(self.SPECIALS), np.int64), np.asarray(counts, np.int64)])
        self._value_set = pa.array(tokens, pa.string())

    @classmethod
    def build(
        cls, tokens: TokenLists, max_size: int | None = None, min_freq: int = 1, threads: int | None = None
    ) -> Vocabulary:
        """Count the tokens of `tokens` (one list per text) and keep the most frequent ones.

        `max_size` is the total size *including* the two special tokens (so at most ``max_size - 2``
        counted tokens are kept; None keeps all); `min_freq` drops tokens seen fewer times.
        Counting runs on `threads` (default as in :func:`~rnnlab.data.tokenize.tokenize`).
        """
        _check_int("max_size", max_size, minimum=len(cls.SPECIALS) + 1, allow_none=True)
        _check_int("min_freq", min_freq, minimum=1)
        counts = _count(_as_list_array(tokens).flatten(), threads)
        special = pc.is_in(counts["token"], pa.array(cls.SPECIALS))
        counts = counts.filter(pc.and_(pc.greater_equal(counts["count"], min_freq), pc.invert(special)))
        order = pc.sort_indices(counts, sort_keys=[("count", "descending"), ("token", "ascending")])
        kept = counts.take(order)
        if max_size is not None:
            kept = kept.slice(0, max_size - len(cls.SPECIALS))
        return cls(kept["token"].to_pylist(), kept["count"].to_numpy())

    def __len__(self) -> int:
        return len(self._itos)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Vocabulary):
            return NotImplemented
        return self._itos == other._itos and np.array_equal(self._counts, other._counts)

    __hash__ = None

    @property
    def tokens(self) -> list[str]:
        """All tokens in id order, the special tokens first."""
        return list(self._itos)

    @property
    def counts(self) -> np.ndarray:
        """Occurrences of each token (by id) in the data the vocabulary was built from; 0 for the specials."""
        return self._counts.copy()

    def token_to_id(self, token: str) -> int:
        """The id :meth:`encode` gives `token`: ``OOV`` when it is not a kept token (``"<pad>"`` included)."""
        return self.OOV if token in self.SPECIALS else self._id_of.get(token, self.OOV)

    def id_to_token(self, token_id: int) -> str:
        """The token with id `token_id` (``"<pad>"`` for 0, ``"<oov>"`` for 1)."""
        if not 0 <= token_id < len(self._itos):
            raise IndexError(f"token id {token_id} out of range for a vocabulary of {len(self._itos)}")
        return self._itos[token_id]

    def encode(self, tokens: TokenLists, threads: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Map every token to its id (OOV for unknown ones), threaded over chunks.

        Returns ``(ids, offsets)``: ids is a flat int32 array of all tokens in order, and the tokens of
        text ``i`` are ``ids[offsets[i]:offsets[i + 1]]`` (offsets: int64, length ``len(tokens) + 1``).
        """
        tokens = _as_list_array(tokens)
        values = tokens.flatten()
        ids = np.empty(len(values), dtype=np.int32)
        map_ranges(len(values), lambda lo, hi: self._lookup(values.slice(lo, hi - lo), ids[lo:hi]), threads)
        return ids, list_offsets(tokens)

    def _lookup(self, values: pa.StringArray, out: np.ndarray) -> None:
        """Write the ids of `values` to `out`: position among the kept tokens + the number of specials; a miss
        is filled with the position that lands on OOV (-1 with the two specials here, -3 with four)."""
        miss = self.OOV - len(self.SPECIALS)
        positions = pc.fill_null(pc.index_in(values, value_set=self._value_set), miss)
        np.add(positions.to_numpy(), len(self.SPECIALS), out=out)

    def oov_rate(self, tokens: TokenLists, threads: int | None = None) -> float:
        """Share of the tokens in `tokens` that encode to OOV (0.0 when there are none)."""
        ids, _ = self.encode(tokens, threads)
        return self.oov_share(ids)

    @classmethod
    def oov_share(cls, ids: np.ndarray) -> float:
        """Share of already-encoded `ids` that are OOV (0.0 when there are none)."""
        return float(np.count_nonzero(ids == cls.OOV) / len(ids)) if len(ids) else 0.0

    def save(self, path: str | os.PathLike) -> None:
        """Write the vocabulary as JSON (atomically): the specials, then the kept tokens and their counts."""
        n_special = len(self.SPECIALS)
        payload = {
            "format": FORMAT,
            "specials": list(self.SPECIALS),
            "tokens": self._itos[n_special:],
            "counts": self._counts[n_special:].tolist(),
        }
        write_json(path, payload)

    @classmethod
    def load(cls, path: str | os.PathLike) -> Vocabulary:
        """Read a vocabulary written by :meth:`save`."""
        data = read_json(path)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise RnnlabError(f"{path} is not an rnnlab vocabulary (expected format {FORMAT!r})")
        if data.get("specials") != list(cls.SPECIALS):
            expected = list(cls.SPECIALS)
            raise RnnlabError(f"{path} has special tokens {data.get('specials')}, expected {expected}")
        return cls(data["tokens"], data["counts"])


def _as_list_array(tokens: TokenLists) -> pa.ListArray:
    if isinstance(tokens, pa.ChunkedArray):
        return tokens.combine_chunks() if tokens.num_chunks else pa.array([], pa.list_(pa.string()))
    return tokens


def _count(values: pa.StringArray, threads: int | None) -> pa.Table:
    """Distinct tokens and their counts (columns ``token``, ``count``), counted per chunk and summed."""
    per_chunk = pa.Table.from_struct_array(map_chunks(values, pc.value_counts, threads))
    summed = per_chunk.group_by("values").aggregate([("counts", "sum")])
    return pa.table({"token": summed["values"], "count": summed["counts_sum"]})


def _check_int(key: str, value: object, minimum: int, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        allowed = f"an integer >= {minimum}" + (" or null (no limit)" if allow_none else "")
        raise ConfigError(f"data.vocab.{key} must be {allowed}; got {value!r}")
