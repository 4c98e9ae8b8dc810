"""Padding/truncation to a fixed width and length statistics (rnnlab.data.encode)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnlab.data import encode
from rnnlab.data.encode import pad_and_truncate, token_length_stats
from rnnlab.errors import ConfigError

# Rows: 5 ids (longer than max_len 4), empty, 3 ids (shorter), 4 ids (exactly max_len).
FLAT = np.array([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], dtype=np.int32)
OFFSETS = np.array([0, 5, 5, 8, 12], dtype=np.int64)

EXPECTED = {
    ("pre", "pre"): [[2, 3, 4, 5], [0, 0, 0, 0], [0, 6, 7, 8], [9, 10, 11, 12]],
    ("pre", "post"): [[1, 2, 3, 4], [0, 0, 0, 0], [0, 6, 7, 8], [9, 10, 11, 12]],
    ("post", "pre"): [[2, 3, 4, 5], [0, 0, 0, 0], [6, 7, 8, 0], [9, 10, 11, 12]],
    ("post", "post"): [[1, 2, 3, 4], [0, 0, 0, 0], [6, 7, 8, 0], [9, 10, 11, 12]],
}


@pytest.mark.parametrize(("padding", "truncating"), list(EXPECTED))
def test_every_padding_truncating_combination(padding, truncating):
    ids, lengths = pad_and_truncate(FLAT, OFFSETS, 4, padding=padding, truncating=truncating)
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    assert ids.tolist() == EXPECTED[padding, truncating]
    assert lengths.tolist() == [4, 0, 3, 4]


def test_defaults_are_post_post_and_wide_max_len_only_pads():
    assert pad_and_truncate(FLAT, OFFSETS, 4)[0].tolist() == EXPECTED["post", "post"]
    ids, lengths = pad_and_truncate(FLAT, OFFSETS, 6, padding="pre")
    assert ids[0].tolist() == [0, 1, 2, 3, 4, 5] and lengths.tolist() == [5, 0, 3, 4]


@pytest.mark.parametrize("block_slots", [1 << 21, 7, 20])  # one block; one row per block; 2 rows per block
def test_matches_a_row_by_row_reference_on_random_data(monkeypatch, block_slots):
    monkeypatch.setattr(encode, "BLOCK_SLOTS", block_slots)
    rng = np.random.default_rng(0)
    offsets = np.concatenate([[0], np.cumsum(rng.integers(0, 12, 300))])
    flat = rng.integers(2, 50, offsets[-1]).astype(np.int32)
    for padding in ("pre", "post"):
        for truncating in ("pre", "post"):
            ids, _ = pad_and_truncate(flat, offsets, 7, padding, truncating)
            for row, (lo, hi) in enumerate(zip(offsets[:-1], offsets[1:], strict=True)):
                seq = flat[lo:hi][-7:] if truncating == "pre" else flat[lo:hi][:7]
                pad = [0] * (7 - len(seq))
                assert ids[row].tolist() == (pad + seq.tolist() if padding == "pre" else seq.tolist() + pad)


def test_no_rows_and_only_empty_rows():
    ids, lengths = pad_and_truncate(np.array([], np.int32), np.array([0]), 3)
    assert ids.shape == (0, 3) and lengths.shape == (0,)
    ids, lengths = pad_and_truncate(np.array([], np.int32), np.array([0, 0, 0]), 2)
    assert ids.tolist() == [[0, 0], [0, 0]] and lengths.tolist() == [0, 0]


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_len": 0}, "data.encode.max_len"),
        ({"max_len": 2.5}, "data.encode.max_len"),
        ({"max_len": 4, "padding": "left"}, "data.encode.padding"),
        ({"max_len": 4, "truncating": "middle"}, "data.encode.truncating"),
    ],
)
def test_bad_settings_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        pad_and_truncate(FLAT, OFFSETS, **kwargs)


def test_bad_offsets():
    with pytest.raises(ValueError, match="offsets"):
        pad_and_truncate(FLAT, np.array([1, 5]), 4)
    with pytest.raises(ValueError, match="offsets"):
        pad_and_truncate(FLAT, np.array([0, 13]), 4)
    with pytest.raises(ValueError, match="decrease"):
        pad_and_truncate(FLAT, np.array([0, 5, 3]), 4)


def test_token_length_stats_known_case():
    offsets = np.concatenate([[0], np.cumsum(np.arange(11))])  # lengths 0, 1, ..., 10
    stats = token_length_stats(offsets, max_len=8)
    assert stats == {
        "count": 11,
        "mean": 5.0,
        "max": 10,
        "p50": 5.0,
        "p90": 9.0,
        "p95": 9.5,
        "p99": 9.9,
        "empty": 1,
        "truncated_share": pytest.approx(2 / 11),
    }
    assert token_length_stats(offsets)["truncated_share"] is None


def test_token_length_stats_of_nothing():
    stats = token_length_stats(np.array([0]), max_len=4)
    assert stats["count"] == 0 and stats["max"] == 0 and stats["truncated_share"] == 0.0
