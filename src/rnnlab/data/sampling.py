"""Length-bucketed batching: batches of similar-length sequences waste little compute on padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, Sampler


class BucketBatchSampler(BatchSampler):
    """Batch the indices of `sampler` so that each batch holds sequences of similar length.

    Indices are drawn from `sampler` (random, sequential or distributed) in pools of
    `pool_factor * batch_size`;
    each pool is sorted by length, cut into batches, and (when `shuffle`) the batches of a pool are shuffled.
    It keeps PyTorch's `BatchSampler` signature so Lightning can swap in a `DistributedSampler` under DDP.
    """

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        lengths: np.ndarray,
        shuffle: bool = True,
        pool_factor: int = 50,
        seed: int = 0,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.lengths = np.asarray(lengths)
        self.shuffle = shuffle
        self.pool_factor = pool_factor
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reshuffle per epoch, and forward to a distributed sampler underneath."""
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def _batches(self, pool: list[int], generator: torch.Generator) -> list[list[int]]:
        ordered = [pool[i] for i in np.argsort(self.lengths[pool], kind="stable")]
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + self.epoch)
        pool_size = self.pool_factor * self.batch_size
        indices = list(iter(self.sampler))
        for start in range(0, len(indices), pool_size):
            for batch in self._batches(indices[start : start + pool_size], generator):
                if len(batch) == self.batch_size or not self.drop_last:
                    yield batch
