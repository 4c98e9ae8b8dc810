"""Truncated backpropagation through time over a stream of token ids: the in-order chunks, their datamodule,
and the LightningModule base that carries the hidden state from one chunk to the next.

A stream of n ids is cut into `batch_size` contiguous rows of N = n // batch_size ids each (the last
n % batch_size ids are dropped): row b is the stream from b*N to (b+1)*N. Batch i holds columns [i*L, (i+1)*L)
as inputs and the same columns shifted by one id as targets, so row b of batch i+1 starts exactly where row b
of batch i ended: the hidden state left by one batch is the right start for the next, and the model carries it
over (detached: gradients stop at the chunk boundary, L is the truncation length). The last chunk of a row is
kept even when it is shorter than L: every id of the rows is predicted once, so a validation loss covers the
whole split. A checkpoint saved mid-epoch holds the carried state, so a run resumed from it continues as the
uninterrupted run did. Used by the character LM (rnnlab.tasks.charlm) and the word LM (rnnlab.pretraining).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from rnnlab.data.resumable import ResumableDataModule
from rnnlab.data.sampling import ResumableBatchSampler
from rnnlab.errors import ConfigError
from rnnlab.models.base import RecurrentTaskModule
from rnnlab.models.encoder import RecurrentState, detach_state, map_state
from rnnlab.resume import training_position

CARRIED_KEY = "carried_train_state"  # the checkpoint's entry for the state carried into the next batch


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
    """The loaders' collate function: each one-index "batch" fetches one dataset item, a whole batch."""
    (item,) = items
    return item


class BpttDataModule(ResumableDataModule):
    """Train/val loaders over the whole-batch datasets (`BpttChunks` or alike) a subclass puts in
    `self.datasets` in `setup`.

    Batches come IN ORDER, never shuffled, in both splits: carrying the hidden state from one batch to the
    next is only right when the next batch continues the stream of the previous one row by row. Epochs repeat
    the same chunk boundaries; with the state carried over, each boundary is only a gradient cut. A resumed
    run starts at the checkpoint's batch (rnnlab.data.resumable); the model restores the carried state.
    """

    def __init__(self, batch_size: int, chunk_len: int, num_workers: int = 0) -> None:
        super().__init__()
        for key, value, minimum in (
            ("batch_size", batch_size, 1),
            ("chunk_len", chunk_len, 1),
            ("num_workers", num_workers, 0),
        ):
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
                raise ConfigError(f"data.loader.{key} is {value!r}; allowed: an integer >= {minimum}.")
        self.batch_size, self.chunk_len, self.num_workers = int(batch_size), int(chunk_len), int(num_workers)
        self.datasets: dict[str, Dataset] = {}

    def check_size(self, split: str, count: int, unit: str, remedy: str) -> None:
        """One full chunk per row needs batch_size * (chunk_len + 1) ids; else a ConfigError ending with
        `remedy`."""
        needed = self.batch_size * (self.chunk_len + 1)
        if count < needed:
            raise ConfigError(
                f"The {split} split has {count} {unit}, too few for one chunk of data.loader.batch_size="
                f"{self.batch_size} rows x data.loader.chunk_len={self.chunk_len} (+1 for the targets) = "
                f"{needed}. {remedy}"
            )

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


def state_rows(state: RecurrentState) -> int:
    """The batch size (rows) of a carried state."""
    first = state[0][0] if isinstance(state[0], tuple) else state[0]
    return first.size(1)


class CarriedStateModule(RecurrentTaskModule):
    """Base of the language models trained on `BpttDataModule` batches: `carried_state` is the state the
    previous batch of a stage left (None, i.e. zeros, at an epoch's start), `carry` keeps a batch's final
    state detached for the next one, and a checkpoint saved mid-epoch holds it, for exact resume."""

    def __init__(self) -> None:
        super().__init__()
        self.carried: dict[str, RecurrentState | None] = {"train": None, "val": None}
        self.resumed: RecurrentState | None = None  # the carried state of the checkpoint a fit resumes

    def carried_state(self, stage: str, rows: int) -> RecurrentState | None:
        """The state to start a batch of `stage` with `rows` rows from (a last batch with fewer rows starts
        afresh)."""
        state = self.carried[stage]
        return None if state is None or state_rows(state) != rows else state

    def carry(self, stage: str, state: RecurrentState) -> None:
        self.carried[stage] = detach_state(state)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Mid-epoch, the state the next training batch starts from (an epoch's first batch starts afresh)."""
        state = self.carried["train"]
        if state is not None and self._trainer is not None and training_position(self._trainer)[1] > 0:
            checkpoint[CARRIED_KEY] = map_state(state, torch.Tensor.cpu)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self._trainer is not None:  # a fit resuming, not `load_from_checkpoint`
            self.resumed = checkpoint.get(CARRIED_KEY)

    def on_train_start(self) -> None:
        """A fit resumed mid-epoch starts from the checkpoint's carried state (Lightning does not call
        `on_train_epoch_start` for the epoch it resumes mid-way)."""
        state, self.resumed = self.resumed, None
        if state is not None:
            self.carried["train"] = map_state(state, lambda t: t.to(self.device))

    def on_train_epoch_start(self) -> None:
        self.carried["train"] = None

    def on_validation_epoch_start(self) -> None:
        self.carried["val"] = None
