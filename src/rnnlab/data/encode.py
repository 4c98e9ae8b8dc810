"""Ragged token ids -> one fixed-width int32 matrix (Keras ``pad_sequences`` semantics); length statistics.

A ragged batch is ``(flat_ids, offsets)``: the ids of sequence ``i`` are
``flat_ids[offsets[i]:offsets[i + 1]]``, as :meth:`rnnlab.data.vocab.Vocabulary.encode` returns them.
"""

from __future__ import annotations

import numpy as np

from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import ConfigError

SIDES = ("pre", "post")
PERCENTILES = (50, 90, 95, 99)
BLOCK_SLOTS = 1 << 21  # output ids filled per block (8 MiB of int32)


def pad_and_truncate(
    flat_ids: np.ndarray, offsets: np.ndarray, max_len: int, padding: str = "post", truncating: str = "post"
) -> tuple[np.ndarray, np.ndarray]:
    """Cut or pad every sequence to `max_len` ids; returns ``(ids int32 [n, max_len], lengths int32 [n])``.

    `truncating`: "post" keeps the first `max_len` ids of a longer sequence, "pre" keeps the last ones.
    `padding`: "post" puts the padding id (0) after the ids, "pre" before them. `lengths` holds the number
    of ids kept per row (``min(length, max_len)``). Vectorised over blocks of rows (no loop over rows).
    """
    _check_settings(max_len, padding, truncating)
    flat_ids = np.asarray(flat_ids)
    offsets = _checked_offsets(offsets, len(flat_ids))
    lengths = np.diff(offsets)
    out = np.full((len(lengths), max_len), Vocabulary.PAD, dtype=np.int32)
    step = max(1, BLOCK_SLOTS // max_len)
    for lo in range(0, len(lengths), step):  # blocks keep the temporaries small: fresh memory is slow
        hi = min(lo + step, len(lengths))
        _fill_block(out[lo:hi], flat_ids[offsets[lo] : offsets[hi]], lengths[lo:hi], padding, truncating)
    return out, np.minimum(lengths, max_len).astype(np.int32)


def _fill_block(out: np.ndarray, ids: np.ndarray, lengths: np.ndarray, padding: str, truncating: str) -> None:
    """Write the kept part of the sequences (`ids` cut by `lengths`) into `out`'s rows (all padding)."""
    max_len = out.shape[1]
    kept = np.minimum(lengths, max_len)
    starts = np.cumsum(lengths) - lengths + (lengths - kept if truncating == "pre" else 0)
    columns = np.arange(max_len)
    slots = columns >= (max_len - kept)[:, None] if padding == "pre" else columns < kept[:, None]
    out[slots] = ids[_kept_mask(len(ids), starts, kept)]  # both sides in row-major order


def _kept_mask(n_ids: int, starts: np.ndarray, kept: np.ndarray) -> np.ndarray:
    """Boolean mask over the ids: True inside each row's kept run ``[start, start + kept)``.

    Built as +1 at every run start and -1 at every run end, then a running sum in int8.
    """
    nonempty = kept > 0
    delta = np.zeros(n_ids + 1, dtype=np.int8)
    delta[starts[nonempty]] = 1
    delta[starts[nonempty] + kept[nonempty]] -= 1  # a run end may be the next run's start: 1 - 1 = 0
    return np.cumsum(delta[:-1], dtype=np.int8).view(bool)


def token_length_stats(offsets: np.ndarray, max_len: int | None = None) -> dict:
    """Sequence-length summary of a ragged batch, as plain Python numbers (JSON-ready).

    Keys: ``count`` (sequences), ``mean``, ``max``, ``p50``/``p90``/``p95``/``p99`` (numpy's linear
    percentiles), ``empty`` (sequences without tokens), and ``truncated_share`` (share of sequences longer
    than `max_len`; None without `max_len`). An empty batch gives zeros.
    """
    if max_len is not None:
        _check_settings(max_len, "post", "post")
    lengths = np.diff(np.asarray(offsets, dtype=np.int64))
    summarised = lengths if len(lengths) else np.zeros(1, dtype=np.int64)
    stats: dict = {"count": len(lengths), "mean": float(summarised.mean()), "max": int(summarised.max())}
    for q, value in zip(PERCENTILES, np.percentile(summarised, PERCENTILES), strict=True):
        stats[f"p{q}"] = float(value)
    stats["empty"] = int(np.count_nonzero(lengths == 0))
    truncated = np.count_nonzero(lengths > max_len) if max_len is not None else None
    stats["truncated_share"] = None if truncated is None else float(truncated / max(len(lengths), 1))
    return stats


def _check_settings(max_len: object, padding: object, truncating: object) -> None:
    if isinstance(max_len, bool) or not isinstance(max_len, int | np.integer) or max_len < 1:
        raise ConfigError(f"data.encode.max_len must be an integer >= 1; got {max_len!r}")
    for key, value in (("padding", padding), ("truncating", truncating)):
        if value not in SIDES:
            raise ConfigError(f"data.encode.{key} must be one of {', '.join(SIDES)}; got {value!r}")


def _checked_offsets(offsets: np.ndarray, n_ids: int) -> np.ndarray:
    """`offsets` as int64, after checking they start at 0, never decrease and stay within `n_ids`."""
    offsets = np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] > n_ids:
        raise ValueError(f"offsets must be 1-D, start at 0 and end at most at len(flat_ids) = {n_ids}")
    if np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must not decrease")
    return offsets
