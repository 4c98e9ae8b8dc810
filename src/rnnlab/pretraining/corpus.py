"""The pretraining corpus: the prepared training split and the unlabelled texts (`pretrain.corpus`: both, or
one of them), as token ids (the classifier's tokenizer and vocabulary) with their review ids. Only those two
tables can be opened: no validation or test review ever reaches pretraining."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa

from rnnlab.data.store import UNLABELLED, ragged_ids, read_split_table

SOURCES = ("train", UNLABELLED)  # the prepared tables pretraining may read (`pretrain.corpus`), and no other


@dataclass(frozen=True)
class Corpus:
    """Every text's token ids, concatenated (text i is `ids[offsets[i]:offsets[i + 1]]`), its review id,
    and how many texts came from each source table."""

    ids: np.ndarray
    offsets: np.ndarray
    review_ids: list[str]
    texts: dict[str, int]

    def __len__(self) -> int:
        return len(self.review_ids)


def read_corpus(prepared_dir: Path, sources: Sequence[str] = SOURCES) -> Corpus:
    """The texts of `prepared_dir`'s tables `sources` (of SOURCES; the unlabelled table has no rows for a
    data source without such texts), in that order."""
    refused = [name for name in sources if name not in SOURCES]
    if refused or not sources:
        raise ValueError(f"pretraining reads a non-empty selection of {SOURCES}, not {list(sources)}")
    tables = {name: read_split_table(prepared_dir, name, ["ids", "review_id"]) for name in sources}
    both = pa.concat_tables(tables.values())
    ids, offsets = ragged_ids(both)
    return Corpus(
        ids, offsets, both.column("review_id").to_pylist(), {n: t.num_rows for n, t in tables.items()}
    )
