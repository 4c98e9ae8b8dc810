"""Pretrained word vectors (word2vec text or GloVe format, optionally gzipped) placed on vocabulary ids.

The file is streamed line by line and only the vectors of wanted tokens are kept, so multi-GB GloVe files
fit in memory. A word2vec header line (``<count> <dim>``) is detected and checked. Words containing
spaces are not supported. Values are parsed only on the lines of wanted tokens.
"""

from __future__ import annotations

import gzip
import os
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from rnnlab.errors import ConfigError, DataSourceError

N_SPECIAL = 2  # ids 0 and 1 are <pad> and <oov> (see Vocabulary): never looked up, not in coverage
_PROGRESS_MIN_BYTES = 50 << 20


@dataclass(frozen=True)
class PretrainedVectors:
    """`vectors` float32 [vocab_size, dim] (zero rows where not found); `found` bool [vocab_size]."""

    vectors: torch.Tensor
    found: torch.Tensor

    @property
    def coverage(self) -> float:
        """Share of the non-special tokens (ids >= 2) that the file had (0.0 when there are none)."""
        kept = self.found[N_SPECIAL:]
        return float(kept.sum()) / len(kept) if len(kept) else 0.0


def read_pretrained_vectors(path: str | os.PathLike, tokens: Sequence[str], dim: int) -> PretrainedVectors:
    """Vectors for `tokens` (``tokens[i]`` is the token of id i) from the word-vector file at `path`.

    A token matches a file word exactly; failing that, the first file word whose lowercased form equals it.
    """
    path = Path(path)
    if not path.is_file():
        raise DataSourceError(f"pretrained vectors file {path} does not exist")
    wanted = {token: i for i, token in enumerate(tokens) if i >= N_SPECIAL}
    best: dict[int, tuple[int, np.ndarray]] = {}  # id -> (0 exact / 1 lowercase match, vector)
    file_dim = None
    try:
        for number, line in _numbered_lines(path):
            fields = line.split(None, 1)
            if not fields:
                continue
            rest = fields[1].rstrip() if len(fields) > 1 else b""
            if file_dim is None:
                header = _is_header(line.split())
                file_dim = int(rest) if header else len(rest.split())
                if file_dim != dim:
                    raise ConfigError(
                        f"{path} holds {file_dim}-dimensional vectors but model.embedding_dim={dim}; set "
                        f"model.embedding_dim={file_dim} or use a {dim}-dimensional vectors file"
                    )
                if header:
                    continue
            if (rest.count(b" ") + 1 if rest else 0) != file_dim and len(rest.split()) != file_dim:
                raise DataSourceError(
                    f"{path} line {number}: expected a word and {file_dim} values, got {len(rest.split())}"
                )
            word, vector = fields[0].decode("utf-8", errors="replace"), None
            for rank, key in enumerate((word, word.lower())):
                token_id = wanted.get(key)
                if token_id is not None and rank < best.get(token_id, (2,))[0]:
                    vector = _parse(path, number, rest) if vector is None else vector
                    best[token_id] = (rank, vector)
    except (OSError, EOFError, zlib.error) as error:
        raise DataSourceError(f"cannot read pretrained vectors file {path}: {error}") from error
    if file_dim is None:
        raise DataSourceError(f"pretrained vectors file {path} is empty: it holds no word vectors")
    vectors = torch.zeros(len(tokens), dim, dtype=torch.float32)
    found = torch.zeros(len(tokens), dtype=torch.bool)
    for token_id, (_, vector) in best.items():
        vectors[token_id] = torch.from_numpy(vector)
        found[token_id] = True
    if not found.any():
        raise ConfigError(f"none of the vocabulary's {len(wanted)} tokens occur in pretrained vectors {path}")
    return PretrainedVectors(vectors, found)


def _numbered_lines(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) pairs of the file, gunzipped for `.gz`; a byte progress bar for big files."""
    size = path.stat().st_size
    with (
        open(path, "rb") as raw,
        tqdm(
            total=size,
            desc=f"read {path.name}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=size < _PROGRESS_MIN_BYTES,
        ) as bar,
    ):
        lines = gzip.GzipFile(fileobj=raw) if path.suffix == ".gz" else raw
        for number, line in enumerate(lines, start=1):
            if number % 16384 == 0 and not bar.disable:
                bar.update(raw.tell() - bar.n)
            yield number, line
        bar.update(size - bar.n)


def _parse(path: Path, number: int, values: bytes) -> np.ndarray:
    try:
        return np.array([float(v) for v in values.split()], dtype=np.float32)
    except ValueError:
        raise DataSourceError(f"{path} line {number}: a value is not a number") from None


def _is_header(fields: list[bytes]) -> bool:
    """A word2vec header: ``<count> <dim>``."""
    return len(fields) == 2 and all(field.isdigit() for field in fields)


def apply_pretrained(embedding: nn.Embedding, pretrained: PretrainedVectors) -> int:
    """Copy the found rows into `embedding` (the padding row excepted); return how many rows were copied."""
    if pretrained.vectors.shape != embedding.weight.shape:
        raise ConfigError(
            f"pretrained vectors of shape {tuple(pretrained.vectors.shape)} do not fit an embedding of "
            f"shape {tuple(embedding.weight.shape)} (vocabulary size, model.embedding_dim)"
        )
    rows = pretrained.found.clone()
    if embedding.padding_idx is not None:
        rows[embedding.padding_idx] = False
    with torch.no_grad():
        embedding.weight[rows] = pretrained.vectors[rows].to(embedding.weight)
    return int(rows.sum())
