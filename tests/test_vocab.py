"""Vocabulary building, encoding and persistence (rnnlab.data.vocab)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pytest

from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import ConfigError, RnnlabError


def lists(*rows: list[str]) -> pa.ListArray:
    return pa.array(list(rows), pa.list_(pa.string()))


# counts: the 4, b 3, a 2, c 2, é 2, z 1
CORPUS = lists(["the", "b", "a", "c", "the"], ["é", "b", "the", "z"], [], ["c", "a", "b", "é", "the"])


def test_frequency_order_with_deterministic_ties():
    vocab = Vocabulary.build(CORPUS)
    assert vocab.tokens == ["<pad>", "<oov>", "the", "b", "a", "c", "é", "z"]
    assert vocab.counts.tolist() == [0, 0, 4, 3, 2, 2, 2, 1]
    assert len(vocab) == 8


def test_build_ignores_input_order_and_threads():
    shuffled = lists(*reversed(CORPUS.to_pylist()))
    assert Vocabulary.build(shuffled, threads=1) == Vocabulary.build(CORPUS, threads=2)


def test_specials_and_ids():
    vocab = Vocabulary.build(CORPUS)
    assert (Vocabulary.PAD, Vocabulary.OOV) == (0, 1)
    assert vocab.id_to_token(0) == "<pad>" and vocab.id_to_token(1) == "<oov>"
    assert vocab.token_to_id("the") == 2 and vocab.id_to_token(2) == "the"
    assert vocab.token_to_id("unseen") == Vocabulary.OOV
    assert vocab.token_to_id("<pad>") == Vocabulary.OOV  # as encode() maps a literal "<pad>" token
    with pytest.raises(IndexError):
        vocab.id_to_token(8)


def test_max_size_counts_the_specials():
    vocab = Vocabulary.build(CORPUS, max_size=4)
    assert vocab.tokens == ["<pad>", "<oov>", "the", "b"]
    assert len(vocab) == 4


def test_min_freq():
    assert Vocabulary.build(CORPUS, min_freq=2).tokens[2:] == ["the", "b", "a", "c", "é"]
    assert Vocabulary.build(CORPUS, min_freq=3).tokens[2:] == ["the", "b"]
    assert Vocabulary.build(CORPUS, max_size=3, min_freq=3).tokens[2:] == ["the"]
    assert len(Vocabulary.build(CORPUS, min_freq=99)) == 2


def test_special_strings_in_data_are_not_counted():
    vocab = Vocabulary.build(lists(["<pad>", "<oov>", "x"]))
    assert vocab.tokens == ["<pad>", "<oov>", "x"]
    ids, _ = vocab.encode(lists(["<pad>", "x"]))
    assert ids.tolist() == [Vocabulary.OOV, 2]


def test_encode_maps_unknown_to_oov():
    vocab = Vocabulary.build(CORPUS, max_size=4)
    ids, offsets = vocab.encode(lists(["the", "a", "new"], [], ["b"]))
    assert ids.dtype == np.int32 and offsets.dtype == np.int64
    assert ids.tolist() == [2, 1, 1, 3]
    assert offsets.tolist() == [0, 3, 3, 4]


def test_encode_is_the_same_on_any_thread_count():
    vocab = Vocabulary.build(CORPUS, max_size=5)
    many = lists(*(CORPUS.to_pylist() * 40))
    one, offsets_one = vocab.encode(many, threads=1)
    two, offsets_two = vocab.encode(many, threads=2)
    assert np.array_equal(one, two) and np.array_equal(offsets_one, offsets_two)
    assert one.tolist() == [vocab.token_to_id(t) for row in many.to_pylist() for t in row]


def test_encode_sliced_and_chunked_input():
    vocab = Vocabulary.build(CORPUS)
    ids, offsets = vocab.encode(CORPUS.slice(1, 2))
    assert ids.tolist() == [6, 3, 2, 7] and offsets.tolist() == [0, 4, 4]
    ids, offsets = vocab.encode(pa.chunked_array([CORPUS.slice(0, 1), CORPUS.slice(2, 1)]))
    assert ids.tolist() == [2, 3, 4, 5, 2] and offsets.tolist() == [0, 5, 5]


def test_oov_rate():
    vocab = Vocabulary.build(CORPUS, max_size=4)
    assert vocab.oov_rate(lists(["the", "a"], ["zz", "b"])) == pytest.approx(0.5)
    assert vocab.oov_rate(lists([])) == 0.0


def test_save_load_round_trip_with_whitespace_tokens(tmp_path):
    vocab = Vocabulary.build(lists(["\n", "\t", " ", "a", "\n", '"', "\\"]))
    path = tmp_path / "vocab.json"
    vocab.save(path)
    loaded = Vocabulary.load(path)
    assert loaded == vocab
    assert loaded.tokens[2] == "\n" and loaded.counts[2] == 2
    assert json.loads(path.read_text(encoding="utf-8"))["specials"] == ["<pad>", "<oov>"]


def test_load_rejects_other_files(tmp_path):
    path = tmp_path / "other.json"
    path.write_text(json.dumps({"tokens": ["a"]}), encoding="utf-8")
    with pytest.raises(RnnlabError, match="not an rnnlab vocabulary"):
        Vocabulary.load(path)


@pytest.mark.parametrize(
    ("kwargs", "key"),
    [
        ({"max_size": 2}, "data.vocab.max_size"),
        ({"max_size": 0}, "data.vocab.max_size"),
        ({"max_size": 10.5}, "data.vocab.max_size"),
        ({"min_freq": 0}, "data.vocab.min_freq"),
        ({"min_freq": True}, "data.vocab.min_freq"),
    ],
)
def test_bad_values_name_the_key(kwargs, key):
    with pytest.raises(ConfigError, match=key):
        Vocabulary.build(CORPUS, **kwargs)
