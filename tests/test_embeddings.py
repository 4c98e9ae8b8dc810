"""Pretrained word vectors: GloVe and word2vec formats, gzip, lowercase fallback, errors, encoder rows."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
import torch
from torch import nn

from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import ConfigError, DataSourceError
from rnnlab.models import embeddings
from rnnlab.models.embeddings import PretrainedVectors, apply_pretrained, read_pretrained_vectors
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder

DIM = 3
# ids: 0 <pad>, 1 <oov>, 2 the, 3 movie, 4 great, 5 zzz (not in the file)
VOCAB = Vocabulary(["the", "movie", "great", "zzz"], [9, 5, 3, 1])
VECTORS = {"the": [0.1, 0.2, 0.3], "movie": [-1.0, 2.5, 4.0], "great": [7.0, 8.0, 9.5], "other": [1, 1, 0]}


def write(path: Path, lines: list[str]) -> Path:
    text = "".join(line + "\n" for line in lines)
    if path.suffix == ".gz":
        path.write_bytes(gzip.compress(text.encode()))
    else:
        path.write_text(text, encoding="utf-8")
    return path


def glove_lines(vectors: dict[str, list[float]] = VECTORS) -> list[str]:
    return [" ".join([word, *map(str, values)]) for word, values in vectors.items()]


def check_vectors(pretrained: PretrainedVectors) -> None:
    assert pretrained.vectors.dtype == torch.float32 and pretrained.vectors.shape == (len(VOCAB), DIM)
    assert pretrained.found.tolist() == [False, False, True, True, True, False]
    for token in ("the", "movie", "great"):
        assert pretrained.vectors[VOCAB.token_to_id(token)].tolist() == pytest.approx(VECTORS[token])
    assert not pretrained.vectors[[0, 1, 5]].any()
    assert pretrained.coverage == pytest.approx(3 / 4)


def test_glove_round_trip(tmp_path):
    pretrained = read_pretrained_vectors(write(tmp_path / "glove.txt", glove_lines()), VOCAB.tokens, DIM)
    check_vectors(pretrained)
    torch.manual_seed(0)
    embedding = nn.Embedding(len(VOCAB), DIM, padding_idx=0)
    before = embedding.weight.detach().clone()
    assert apply_pretrained(embedding, pretrained) == 3
    weight = embedding.weight.detach()
    assert torch.equal(weight[2:5], pretrained.vectors[2:5])
    assert not weight[0].any()
    assert torch.equal(weight[[1, 5]], before[[1, 5]])
    assert embedding.weight.requires_grad


def test_word2vec_header_and_gzip(tmp_path):
    lines = [f"{len(VECTORS)} {DIM}", *(line + " " for line in glove_lines())]  # gensim's trailing spaces
    check_vectors(read_pretrained_vectors(write(tmp_path / "w2v.txt", lines), VOCAB.tokens, DIM))
    check_vectors(read_pretrained_vectors(write(tmp_path / "w2v.txt.gz", lines), VOCAB.tokens, DIM))
    check_vectors(read_pretrained_vectors(write(tmp_path / "glove.txt.gz", glove_lines()), VOCAB.tokens, DIM))


def test_large_file_progress_bar(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(embeddings, "_PROGRESS_MIN_BYTES", 0)
    lines = [f"filler{i} 0 0 0" for i in range(20_000)] + glove_lines()
    check_vectors(read_pretrained_vectors(write(tmp_path / "big.txt.gz", lines), VOCAB.tokens, DIM))
    assert "read big.txt.gz" in capsys.readouterr().err


def test_lowercase_fallback(tmp_path):
    lines = ["The 5 5 5", "THE 6 6 6", "Movie 1 1 1", "movie 2 2 2", "ZZZ 3 3 3"]
    pretrained = read_pretrained_vectors(write(tmp_path / "cased.txt", lines), VOCAB.tokens, DIM)
    assert pretrained.vectors[2].tolist() == [5, 5, 5]  # first lowercase match wins
    assert pretrained.vectors[3].tolist() == [2, 2, 2]  # an exact match beats an earlier lowercase one
    assert pretrained.vectors[5].tolist() == [3, 3, 3]
    assert pretrained.found.tolist() == [False, False, True, True, False, True]


def test_encoder_embedding_rows_equal_file_vectors(tmp_path):
    path = write(tmp_path / "glove.txt", glove_lines())
    encoder = RecurrentEncoder(len(VOCAB), EncoderConfig(embedding_dim=DIM, hidden_size=4))
    pretrained = read_pretrained_vectors(path, VOCAB.tokens, encoder.config.embedding_dim)
    assert apply_pretrained(encoder.embedding, pretrained) == 3
    ids = torch.tensor([[VOCAB.token_to_id(t) for t in ("great", "the", "movie")] + [0]])
    rows = encoder.embedding(ids)[0]
    expected = torch.tensor([VECTORS["great"], VECTORS["the"], VECTORS["movie"], [0.0] * DIM])
    assert torch.equal(rows, expected)
    pooled, _ = encoder(ids, torch.tensor([3]))
    assert pooled.shape == (1, 4)


@pytest.mark.parametrize(
    ("lines", "error", "match"),
    [
        (["the 1 2 3 4", "movie 1 2 3 4"], ConfigError, r"4-dimensional.*model\.embedding_dim=3"),
        (["2 5", "the 1 2 3 4 5"], ConfigError, r"5-dimensional.*model\.embedding_dim=3"),
        (["the 1 2 3", "movie 1 2"], DataSourceError, r"line 2: expected a word and 3 values, got 2"),
        (["2 3", "the 1 2 3", "other 1 2 3 4"], DataSourceError, r"line 3: expected a word and 3 values"),
        (["the 1 2 3", "movie 1 x 3"], DataSourceError, r"line 2: a value is not a number"),
        ([], DataSourceError, r"is empty"),
        (["", "  "], DataSourceError, r"is empty"),
        (["other 1 2 3", "more 4 5 6"], ConfigError, r"none of the vocabulary's 4 tokens occur"),
    ],
)
def test_errors_name_file_and_problem(tmp_path, lines, error, match):
    path = write(tmp_path / "vectors.txt", lines)
    with pytest.raises(error, match=match) as raised:
        read_pretrained_vectors(path, VOCAB.tokens, DIM)
    assert str(path) in str(raised.value)


def test_missing_and_corrupt_files(tmp_path):
    with pytest.raises(DataSourceError, match=r"missing\.txt does not exist"):
        read_pretrained_vectors(tmp_path / "missing.txt", VOCAB.tokens, DIM)
    (tmp_path / "bad.txt.gz").write_bytes(b"not gzip at all")
    with pytest.raises(DataSourceError, match=r"cannot read pretrained vectors file .*bad\.txt\.gz"):
        read_pretrained_vectors(tmp_path / "bad.txt.gz", VOCAB.tokens, DIM)


def test_apply_rejects_wrong_shape_before_modifying(tmp_path):
    pretrained = read_pretrained_vectors(write(tmp_path / "glove.txt", glove_lines()), VOCAB.tokens, DIM)
    embedding = nn.Embedding(len(VOCAB) + 1, DIM, padding_idx=0)
    before = embedding.weight.detach().clone()
    with pytest.raises(ConfigError, match=r"do not fit an embedding"):
        apply_pretrained(embedding, pretrained)
    assert torch.equal(embedding.weight.detach(), before)
