"""Length-bucketed batching, and a shuffle that a resumed run can replay: the order of an epoch depends only
on (seed, epoch), and a batch sampler can start part-way through an epoch."""

from __future__ import annotations

from collections.abc import Iterator, Sequence, Sized
from itertools import islice

import numpy as np
import torch
from torch.utils.data import BatchSampler, RandomSampler, Sampler


class EpochRandomSampler(RandomSampler):
    """A `RandomSampler` whose permutation is a function of `seed + epoch`, like `DistributedSampler`.

    Lightning calls `set_epoch` before every epoch, so a run resumed at epoch 5 draws the order the
    uninterrupted run drew there (a `RandomSampler` with one generator would replay epoch 0's order).
    """

    def __init__(self, data_source: Sized, seed: int = 0) -> None:
        super().__init__(data_source, generator=torch.Generator())
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __iter__(self) -> Iterator[int]:
        self.generator.manual_seed(self.seed + self.epoch)
        return super().__iter__()


class ResumableBatchSampler(BatchSampler):
    """A `BatchSampler` that can start part-way through an epoch: `start=(epoch, batches)` makes its first
    pass the given epoch's, without its first `batches` batches; later passes are whole epochs. This is how
    a run resumed mid-epoch skips what it already trained on (Lightning restores loop counters, not data).
    `start` is an `__init__` argument so that it survives Lightning re-creating the sampler under DDP."""

    def __init__(
        self,
        sampler: Sampler[int] | Sequence[int],
        batch_size: int,
        drop_last: bool,
        start: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last)
        self.start = start
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Forwarded to the sampler underneath (Lightning calls the sampler's `set_epoch` itself)."""
        self.epoch = epoch
        if hasattr(self.sampler, "set_epoch"):
            self.sampler.set_epoch(epoch)

    def epoch_batches(self) -> Iterator[list[int]]:
        return super().__iter__()

    def __iter__(self) -> Iterator[list[int]]:
        skip = 0
        if self.start is not None:
            (epoch, skip), self.start = self.start, None
            self.set_epoch(epoch)
        return islice(self.epoch_batches(), skip, None)


class BucketBatchSampler(ResumableBatchSampler):
    """Batch the indices of `sampler` so that each batch holds sequences of similar length.

    Indices are drawn from `sampler` (random, sequential or distributed) in pools of
    `pool_factor * batch_size`;
    each pool is sorted by length, cut into batches, and (when `shuffle`) the batches of a pool are shuffled
    with a generator seeded by `seed + epoch`. The epoch is the sampler's own when it counts epochs
    (`EpochRandomSampler`, `DistributedSampler`: Lightning calls their `set_epoch`, not this one's).
    It keeps PyTorch's `BatchSampler` signature so Lightning can swap in a `DistributedSampler` under DDP;
    `start` as in `ResumableBatchSampler`.
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
        start: tuple[int, int] | None = None,
    ) -> None:
        super().__init__(sampler, batch_size, drop_last, start)
        self.lengths = np.asarray(lengths)
        self.shuffle = shuffle
        self.pool_factor = pool_factor
        self.seed = seed

    def _batches(self, pool: list[int], generator: torch.Generator) -> list[list[int]]:
        ordered = [pool[i] for i in np.argsort(self.lengths[pool], kind="stable")]
        batches = [ordered[i : i + self.batch_size] for i in range(0, len(ordered), self.batch_size)]
        if self.shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        return batches

    def epoch_batches(self) -> Iterator[list[int]]:
        generator = torch.Generator().manual_seed(self.seed + getattr(self.sampler, "epoch", self.epoch))
        pool_size = self.pool_factor * self.batch_size
        indices = list(iter(self.sampler))
        for start in range(0, len(indices), pool_size):
            for batch in self._batches(indices[start : start + pool_size], generator):
                if len(batch) == self.batch_size or not self.drop_last:
                    yield batch


class CyclingRandomSampler(Sampler[int]):
    """`num_samples` indices per epoch from `size` rows: shuffled passes over all rows one after the other,
    the last cut short, so that a shorter data set cycles and a longer one is sampled. An epoch's passes come
    from a generator seeded by (seed, epoch), so that a resumed run replays them (`set_epoch`, as
    `EpochRandomSampler`)."""

    def __init__(self, size: int, num_samples: int, seed: int = 0) -> None:
        if size < 1:
            raise ValueError("a cycling sampler needs at least one row")
        self.size, self.num_samples, self.seed = size, num_samples, seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = np.random.default_rng([self.seed, self.epoch])
        passes = -(-self.num_samples // self.size)
        order = np.concatenate([rng.permutation(self.size) for _ in range(passes)])
        return iter(order[: self.num_samples].tolist())
