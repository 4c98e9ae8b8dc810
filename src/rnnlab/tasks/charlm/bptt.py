"""Truncated-BPTT batches over a character stream, and the LightningDataModule that serves them.

A split's stream of n ids is cut into `batch_size` contiguous rows of N = n // batch_size ids each (the last
n % batch_size ids are dropped): row b is the text from b*N to (b+1)*N. Batch i holds columns [i*L, (i+1)*L)
as inputs and the same columns shifted by one character as targets, so row b of batch i+1 starts exactly
where row b of batch i ended: the hidden state left by one batch is the right start for the next, and the
model carries it over (detached: gradients stop at the chunk boundary, L is the truncation length).

The last chunk of a row is kept even when it is shorter than L (the N - 1 input positions rarely divide
by L): every character of the rows is predicted once, so the validation loss covers the whole split.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from rnnlab.data.resumable import ResumableDataModule
from rnnlab.data.sampling import ResumableBatchSampler
from rnnlab.errors import ConfigError, LayoutError
from rnnlab.io import read_json
from rnnlab.tasks.charlm.corpus import META_FILE, SPLITS, VOCAB_FILE, CharVocabulary, PreparedCorpus


def bptt_rows(ids: np.ndarray, batch_size: int) -> torch.Tensor:
    """The stream `ids` as `batch_size` contiguous rows, int64 [batch_size, len(ids) // batch_size]."""
    width = len(ids) // batch_size
    return torch.from_numpy(np.asarray(ids[: batch_size * width], dtype=np.int64).reshape(batch_size, width))


def num_chunks(stream_len: int, batch_size: int, chunk_len: int) -> int:
    """How many batches a stream of `stream_len` ids gives: ceil((N - 1) / L) with N = stream_len // B."""
    return max(math.ceil((stream_len // batch_size - 1) / chunk_len), 0)


class BpttChunks(Dataset):
    """Item i is batch i, already batched: {"inputs": int64 [B, l], "targets": int64 [B, l]}, l <= L."""

    def __init__(self, ids: np.ndarray, batch_size: int, chunk_len: int) -> None:
        self.rows = bptt_rows(ids, batch_size)
        self.chunk_len = chunk_len

    def __len__(self) -> int:
        return num_chunks(self.rows.numel(), self.rows.size(0), self.chunk_len)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        if not 0 <= index < len(self):
            raise IndexError(f"batch {index} out of range for {len(self)} batches")
        start = index * self.chunk_len
        stop = min(start + self.chunk_len, self.rows.size(1) - 1)
        return {
            "inputs": self.rows[:, start:stop].contiguous(),
            "targets": self.rows[:, start + 1 : stop + 1].contiguous(),
        }


def only_item(items: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """The loaders' collate function: each one-index "batch" fetches one `BpttChunks` item, a whole batch."""
    (item,) = items
    return item


class CharLMDataModule(ResumableDataModule):
    """Train/val truncated-BPTT loaders over a prepared corpus (corpus.PreparedCorpus.save).

    Batches come IN ORDER, never shuffled, in both splits: carrying the hidden state from one batch to the
    next is only right when the next batch continues the text of the previous one row by row. Epochs repeat
    the same chunk boundaries; with the state carried over, each boundary is only a gradient cut. A resumed
    run starts at the checkpoint's batch (rnnlab.data.resumable); the model restores the carried state.
    """

    def __init__(
        self, prepared_dir: str | os.PathLike, batch_size: int, chunk_len: int, num_workers: int = 0
    ) -> None:
        super().__init__()
        for key, value, minimum in (
            ("batch_size", batch_size, 1),
            ("chunk_len", chunk_len, 1),
            ("num_workers", num_workers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
                raise ConfigError(f"data.loader.{key} is {value!r}; allowed: an integer >= {minimum}.")
        self.prepared_dir = Path(prepared_dir)
        self.batch_size, self.chunk_len, self.num_workers = int(batch_size), int(chunk_len), int(num_workers)
        meta_path = self.prepared_dir / META_FILE
        if not meta_path.is_file():
            raise LayoutError(f"{meta_path} does not exist: run the prepare stage with task=charlm first.")
        self.meta = read_json(meta_path)
        for split in SPLITS:
            self._check_size(split, int(self.meta["chars"][split]))
        self.datasets: dict[str, BpttChunks] = {}

    def _check_size(self, split: str, chars: int) -> None:
        """One full chunk per row needs batch_size * (chunk_len + 1) characters."""
        needed = self.batch_size * (self.chunk_len + 1)
        if chars < needed:
            raise ConfigError(
                f"The {split} split has {chars} characters, too few for one chunk of data.loader.batch_size="
                f"{self.batch_size} rows x data.loader.chunk_len={self.chunk_len} (+1 for the targets) = "
                f"{needed}. Lower batch_size or chunk_len, or raise data.max_chars."
            )

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def vocab(self) -> CharVocabulary:
        """The corpus's character vocabulary (for encoding prompts and decoding samples)."""
        return CharVocabulary.load(self.prepared_dir / VOCAB_FILE)

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            corpus = PreparedCorpus.load(self.prepared_dir)
            self.datasets = {
                split: BpttChunks(getattr(corpus, split), self.batch_size, self.chunk_len) for split in SPLITS
            }

    def loader(self, split: str, start: tuple[int, int] | None = None) -> DataLoader:
        """Batches of `split` in order (the dataset yields whole batches: the loader fetches one item at a
        time); `start`: (epoch, batches to skip) of its first pass."""
        self.setup()
        dataset = self.datasets[split]
        chunks = ResumableBatchSampler(SequentialSampler(dataset), 1, drop_last=False, start=start)
        return self.make_loader(dataset, chunks, only_item)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", start=self.take_start())

    def val_dataloader(self) -> DataLoader:
        return self.loader("val")
