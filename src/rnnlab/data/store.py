"""On-disk formats passed between the data stages.

- raw (download): one parquet table per split with `text`, `label` and `review_id` columns, plus
  `source.json`; IMDB sources also `unsup.parquet`, the unlabelled texts (`text`, `review_id`).
- prepared (prepare): one parquet table per split with `ids` (list<int32>, unpadded), `label` and `review_id`;
  `unsup.parquet` with `ids` and `review_id` (no rows when the source has no unlabelled texts).
- encoded (encode): per split, and for `unsup`, a folder of `.npy` arrays that numpy memory-maps:
  `ids` int32 [n, max_len], `lengths` int32 (tokens kept), `token_counts` int32 (before truncation),
  `labels` int32 (`NO_LABEL` in `unsup`, which has no rows when the source has no unlabelled texts).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from rnnlab.errors import LayoutError

SPLITS = ("train", "val", "test")  # the splits prepare and encode write
UNLABELLED = "unsup"  # the table of unlabelled texts (raw: IMDB's train/unsup/; prepared: always written)
ENCODED_SPLITS = (*SPLITS, UNLABELLED)  # the folders encode writes
ENCODED_ARRAYS = ("ids", "lengths", "token_counts", "labels")
NO_LABEL = -1  # the label of an unlabelled text in the encoded arrays


def write_split_table(folder: Path, split: str, table: pa.Table) -> None:
    pq.write_table(table, folder / f"{split}.parquet")


def read_split_table(folder: Path, split: str, columns: list[str] | None = None) -> pa.Table:
    path = folder / f"{split}.parquet"
    if not path.is_file():
        raise LayoutError(f"{path} is missing: run the stage that writes {folder} first (dvc repro)")
    return pq.read_table(path, columns=columns)


def token_id_table(flat_ids: np.ndarray, offsets: np.ndarray, **columns: pa.Array) -> pa.Table:
    """A prepared split: ragged token ids (one list per text) beside `columns` (label, review_id)."""
    ids = pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), pa.array(flat_ids, pa.int32()))
    return pa.table({"ids": ids, **columns})


def table_labels(table: pa.Table) -> np.ndarray:
    """A prepared table's labels as int32; `NO_LABEL` for each row of a table without (`unsup`)."""
    if "label" not in table.column_names:
        return np.full(table.num_rows, NO_LABEL, dtype=np.int32)
    return table.column("label").to_numpy().astype(np.int32)


def ragged_ids(table: pa.Table) -> tuple[np.ndarray, np.ndarray]:
    """(flat ids, offsets) of a prepared split's `ids` column."""
    ids = table.column("ids").combine_chunks()
    offsets = ids.offsets.to_numpy().astype(np.int64)
    flat = ids.values.to_numpy(zero_copy_only=False).astype(np.int32, copy=False)
    return flat[offsets[0] : offsets[-1]], offsets - offsets[0]


@dataclass(frozen=True)
class EncodedSplit:
    """Padded token ids and their per-row facts; arrays may be memory-mapped."""

    ids: np.ndarray
    lengths: np.ndarray
    token_counts: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        for name in ENCODED_ARRAYS:
            np.save(folder / f"{name}.npy", np.ascontiguousarray(getattr(self, name), dtype=np.int32))

    @classmethod
    def load(cls, folder: Path, mmap: bool = True) -> EncodedSplit:
        missing = [n for n in ENCODED_ARRAYS if not (folder / f"{n}.npy").is_file()]
        if missing:
            raise LayoutError(f"{folder} lacks {', '.join(missing)}.npy: run `dvc repro encode` first")
        mode = "r" if mmap else None
        return cls(**{n: np.load(folder / f"{n}.npy", mmap_mode=mode) for n in ENCODED_ARRAYS})
