"""LightningDataModule over the encode stage's memory-mapped arrays; with `unlabelled`, each training batch
pairs a labelled batch with one of unlabelled texts (virtual adversarial training)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from lightning.pytorch.utilities.combined_loader import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Sampler, SequentialSampler

from rnnlab.data.resumable import ResumableDataModule
from rnnlab.data.sampling import (
    BucketBatchSampler,
    CyclingRandomSampler,
    EpochRandomSampler,
    ResumableBatchSampler,
)
from rnnlab.data.store import SPLITS, UNLABELLED, EncodedSplit
from rnnlab.errors import ConfigError
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
    shuffles by (seed, epoch) and resumes where a checkpoint left off (rnnlab.data.resumable).

    `unlabelled`: training batches are `{"labelled": batch, "unlabelled": batch}` (Lightning's
    `CombinedLoader`, mode min_size), the second from the encoded `unsup` texts: as many batches of the
    same size per epoch as the labelled loader has, bucketed and trimmed alike, cycling through the texts
    when fewer (`CyclingRandomSampler`, by seed and epoch: it resumes with the labelled loader's position).
    The `unsup` split must have rows (ConfigError).
    """

    def __init__(
        self,
        encoded_dir: str | Path,
        batch_size: int = 64,
        num_workers: int = 0,
        bucket: bool = True,
        seed: int = 0,
        unlabelled: bool = False,
    ) -> None:
        super().__init__(seed, num_workers)
        self.encoded_dir = Path(encoded_dir)
        self.batch_size = batch_size
        self.bucket = bucket
        self.unlabelled = unlabelled
        self.meta: dict[str, Any] = read_json(self.encoded_dir / "meta.json")
        self.splits: dict[str, EncodedSplit] = {}
        self.unlabelled_split: EncodedSplit | None = None

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    @property
    def num_classes(self) -> int:
        return int(self.meta["num_classes"])

    @property
    def unlabelled_rows(self) -> int:
        """The unlabelled texts the training batches draw from (0 without `unlabelled`)."""
        return len(self.unlabelled_texts()) if self.unlabelled else 0

    def setup(self, stage: str | None = None) -> None:
        for split in SPLITS:
            if split not in self.splits:
                self.splits[split] = EncodedSplit.load(self.encoded_dir / split)

    def unlabelled_texts(self) -> EncodedSplit:
        """The encoded `unsup` split (loaded on first use: evaluation never needs it); ConfigError if it has
        no rows."""
        if self.unlabelled_split is None:
            split = EncodedSplit.load(self.encoded_dir / UNLABELLED)
            if len(split) == 0:
                raise ConfigError(
                    f"train.adversarial=vat draws unlabelled texts, but {self.encoded_dir / UNLABELLED} has "
                    "no rows: the data source has none (IMDB has train/unsup/); choose train.adversarial=at "
                    "or none"
                )
            self.unlabelled_split = split
        return self.unlabelled_split

    def loader(self, split: str, shuffle: bool, start: tuple[int, int] | None = None) -> DataLoader:
        """A loader over one split; training shuffles (by seed and epoch), evaluation keeps a fixed order.
        `start`: (epoch, batches to skip) of its first pass."""
        self.setup()
        rows = self.splits[split]
        sampler = EpochRandomSampler(rows, self.seed) if shuffle else SequentialSampler(rows)
        return self.batched(rows, sampler, shuffle, start)

    def unlabelled_loader(self, batches: int, start: tuple[int, int] | None) -> DataLoader:
        """`batches` batches per epoch of the unlabelled texts, shuffled by (seed, epoch); `start` as in
        `loader`."""
        rows = self.unlabelled_texts()
        return self.batched(
            rows, CyclingRandomSampler(len(rows), batches * self.batch_size, self.seed), True, start
        )

    def batched(
        self, rows: EncodedSplit, sampler: Sampler[int], shuffle: bool, start: tuple[int, int] | None
    ) -> DataLoader:
        """Batches of `rows` in the order of `sampler`, bucketed by length with `bucket`."""
        if self.bucket:
            batches = BucketBatchSampler(
                sampler,
                self.batch_size,
                drop_last=False,
                lengths=rows.lengths,
                shuffle=shuffle,
                seed=self.seed,
                start=start,
            )
        else:
            batches = ResumableBatchSampler(sampler, self.batch_size, drop_last=False, start=start)
        return self.make_loader(EncodedDataset(rows), batches, TrimCollate(self.meta["padding"]))

    def train_dataloader(self) -> DataLoader | CombinedLoader:
        start = self.take_start()
        labelled = self.loader("train", shuffle=True, start=start)
        if not self.unlabelled:
            return labelled
        loaders = {"labelled": labelled, "unlabelled": self.unlabelled_loader(len(labelled), start)}
        return CombinedLoader(loaders, mode="min_size")

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
