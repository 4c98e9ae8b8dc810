"""LightningDataModule over the encode stage's memory-mapped arrays."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from rnnlab.data.resumable import ResumableDataModule
from rnnlab.data.sampling import BucketBatchSampler, EpochRandomSampler, ResumableBatchSampler
from rnnlab.data.store import SPLITS, EncodedSplit
from rnnlab.io import read_json


class EncodedDataset(Dataset):
    """Rows of an encoded split; `__getitems__` fetches a whole batch with one fancy index."""

    def __init__(self, split: EncodedSplit) -> None:
        self.split = split

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, np.ndarray]:
        rows = np.asarray(indices)
        return {
            "ids": self.split.ids[rows],
            "lengths": self.split.lengths[rows],
            "labels": self.split.labels[rows],
            "token_counts": self.split.token_counts[rows],
        }


class TrimCollate:
    """Turn a fetched batch into tensors, trimmed to its longest sequence and always post-padded.

    Pre-padded rows (real tokens last) are rotated so that real tokens come first: the encoder reads the
    last real step from `lengths`, whichever side the stored arrays were padded on.
    """

    def __init__(self, padding: str) -> None:
        self.padding = padding

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
        lengths = batch["lengths"].astype(np.int64)
        width = max(int(lengths.max()), 1)
        if self.padding == "post":
            ids = batch["ids"][:, :width]
        else:
            ids = batch["ids"][:, -width:]
            shift = (np.arange(width)[None, :] + (width - lengths)[:, None]) % width
            ids = np.take_along_axis(ids, shift, axis=1)
        return {
            "ids": torch.from_numpy(np.ascontiguousarray(ids, dtype=np.int64)),
            "lengths": torch.from_numpy(lengths),
            "labels": torch.from_numpy(batch["labels"].astype(np.int64)),
            "token_counts": torch.from_numpy(batch["token_counts"].astype(np.int64)),
        }


class SequenceDataModule(ResumableDataModule):
    """Train/val/test loaders over `encoded_dir`; `bucket` groups similar lengths into batches; training
    shuffles by (seed, epoch) and resumes where a checkpoint left off (rnnlab.data.resumable)."""

    def __init__(
        self,
        encoded_dir: str | Path,
        batch_size: int = 64,
        num_workers: int = 0,
        bucket: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(seed, num_workers)
        self.encoded_dir = Path(encoded_dir)
        self.batch_size = batch_size
        self.bucket = bucket
        self.meta: dict[str, Any] = read_json(self.encoded_dir / "meta.json")
        self.splits: dict[str, EncodedSplit] = {}

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.splits:
                self.splits[split] = EncodedSplit.load(self.encoded_dir / split)

    def loader(self, split: str, shuffle: bool, start: tuple[int, int] | None = None) -> DataLoader:
        """A loader over one split; training shuffles (by seed and epoch), evaluation keeps a fixed order.
        `start`: (epoch, batches to skip) of its first pass."""
        self.setup()
        dataset = EncodedDataset(self.splits[split])
        sampler = EpochRandomSampler(dataset, self.seed) if shuffle else SequentialSampler(dataset)
        if self.bucket:
            batches = BucketBatchSampler(
                sampler,
                self.batch_size,
                drop_last=False,
                lengths=self.splits[split].lengths,
                shuffle=shuffle,
                seed=self.seed,
                start=start,
            )
        else:
            batches = ResumableBatchSampler(sampler, self.batch_size, drop_last=False, start=start)
        return self.make_loader(dataset, batches, TrimCollate(self.meta["padding"]))

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True, start=self.take_start())

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
