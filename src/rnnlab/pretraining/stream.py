"""The reviews as one stream of token ids for the word language model, and its truncated-BPTT loaders.

Each review is followed by an end-of-review id, `vocab_size` (one past the project's vocabulary: the language
model's output and embedding have `vocab_size + 1` rows). The state is carried across review boundaries, and
the marker tells the model that the next words start a new review, as a classifier reading it from a zero
state does; the classifier never sees the id (rnnlab.pretraining.transfer copies the first `vocab_size` rows).
Padding (id 0) never enters the stream; OOV (id 1) stays, as the classifier sees it.

A bidirectional model reads the stream forwards and, with a second language model, the reversed stream
forwards (ELMo, ULMFiT): each direction reads a stream of its own in order, so the state each carries from one
chunk to the next is right. Both streams are cut into the same number of chunks.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from rnnlab.errors import RnnlabError
from rnnlab.models.truncated_bptt import BpttChunks, BpttDataModule

SPLITS = ("train", "val")


def review_stream(
    flat_ids: np.ndarray, offsets: np.ndarray, vocab_size: int, seed: int | None = None
) -> np.ndarray:
    """The reviews `flat_ids[offsets[i]:offsets[i + 1]]` (as `rnnlab.data.store.ragged_ids` gives them), each
    followed by the end-of-review id `vocab_size`, int32; `seed` shuffles the reviews' order (None keeps it).
    Refuses padding and ids outside the vocabulary."""
    flat_ids, offsets = np.asarray(flat_ids), np.asarray(offsets)
    bad = (flat_ids <= 0) | (flat_ids >= vocab_size)
    if bad.any():
        raise RnnlabError(
            f"token id {int(flat_ids[bad][0])} in the reviews: a language model's stream takes ids 1 to "
            f"{vocab_size - 1} (no padding); were these reviews encoded with this vocabulary?"
        )
    reviews = len(offsets) - 1
    order = np.arange(reviews) if seed is None else np.random.default_rng(seed).permutation(reviews)
    end = np.array([vocab_size], np.int32)
    pieces = [piece for i in order for piece in (flat_ids[offsets[i] : offsets[i + 1]], end)]
    return np.concatenate(pieces).astype(np.int32, copy=False) if pieces else np.empty(0, np.int32)


class TwoWayChunks(Dataset):
    """Batch i of the stream and batch i of the reversed stream: {"inputs", "targets"} and
    {"reverse_inputs", "reverse_targets"}."""

    def __init__(self, ids: np.ndarray, batch_size: int, chunk_len: int) -> None:
        self.forward = BpttChunks(ids, batch_size, chunk_len)
        self.backward = BpttChunks(np.ascontiguousarray(ids[::-1]), batch_size, chunk_len)

    def __len__(self) -> int:
        return len(self.forward)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        reverse = self.backward[index]
        return {
            **self.forward[index],
            "reverse_inputs": reverse["inputs"],
            "reverse_targets": reverse["targets"],
        }


class ReviewStreamData(BpttDataModule):
    """In-order truncated-BPTT loaders over a train and a validation stream (`review_stream`); `reverse` adds
    the reversed streams' chunks to every batch (a bidirectional model)."""

    def __init__(
        self,
        train: np.ndarray,
        val: np.ndarray,
        batch_size: int,
        chunk_len: int,
        reverse: bool = False,
        num_workers: int = 0,
    ) -> None:
        super().__init__(batch_size, chunk_len, num_workers)
        self.streams = {"train": np.asarray(train), "val": np.asarray(val)}
        self.reverse = reverse
        for split in SPLITS:
            self.check_size(split, len(self.streams[split]), "tokens", "Lower batch_size or chunk_len.")

    def setup(self, stage: str | None = None) -> None:
        if not self.datasets:
            chunks = TwoWayChunks if self.reverse else BpttChunks
            self.datasets = {
                split: chunks(self.streams[split], self.batch_size, self.chunk_len) for split in SPLITS
            }
