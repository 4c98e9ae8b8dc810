"""LightningDataModule over prepared translation data: padded source and `<bos> ... <eos>` target batches.

A batch is a dict of LongTensors:

- `src` [B, S]: source ids, post-padded with 0 (`<pad>`), S the longest source of the batch;
- `src_lengths` [B]: the real length of each source (>= 1);
- `tgt` [B, T]: `<bos> y1 .. yn <eos>`, post-padded with 0, T = longest target + 2; a model feeds
  `tgt[:, :-1]` and predicts `tgt[:, 1:]` (padding ignored by its id);
- `index` [B]: the row numbers of the pairs in their split (the raw references of val/test rows are
  `data.texts(split)[1][index]`).

Training batches are shuffled by (seed, epoch), grouped by source length when `bucket`, and resume
mid-epoch from a checkpoint (rnnlab.data.resumable); val and test batches follow the split's row order.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, SequentialSampler

from rnnlab.data.resumable import ResumableDataModule
from rnnlab.data.sampling import BucketBatchSampler, EpochRandomSampler, ResumableBatchSampler
from rnnlab.tasks.translate.prepared import EncodedPairs, PreparedTranslation
from rnnlab.tasks.translate.split import SPLITS
from rnnlab.tasks.translate.vocab import TranslationVocabulary as Vocab


class PairDataset(Dataset):
    """The pairs of one split; `__getitems__` pads a whole batch with numpy."""

    def __init__(self, pairs: EncodedPairs) -> None:
        self.pairs = pairs

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        return self.__getitems__([index])

    def __getitems__(self, indices: list[int]) -> dict[str, np.ndarray]:
        rows = np.asarray(indices, dtype=np.int64)
        src, src_lengths = _padded(self.pairs.src_ids, self.pairs.src_offsets, rows, extra=0)
        body, tgt_lengths = _padded(self.pairs.tgt_ids, self.pairs.tgt_offsets, rows, extra=2)
        tgt = np.roll(body, 1, axis=1)  # the body moves one step right; the column wrapped to 0 is padding
        tgt[:, 0] = Vocab.BOS
        tgt[np.arange(len(rows)), tgt_lengths + 1] = Vocab.EOS
        return {"src": src, "src_lengths": src_lengths, "tgt": tgt, "index": rows}


def _padded(
    ids: np.ndarray, offsets: np.ndarray, rows: np.ndarray, extra: int
) -> tuple[np.ndarray, np.ndarray]:
    """The sequences `rows` as a [B, longest + extra] int64 array post-padded with 0, and their lengths."""
    starts = offsets[rows]
    lengths = offsets[rows + 1] - starts
    width = int(lengths.max()) + extra
    steps = np.arange(width)
    real = steps[None, :] < lengths[:, None]
    positions = np.where(real, starts[:, None] + steps[None, :], 0)
    return np.where(real, ids[positions], Vocab.PAD).astype(np.int64), lengths.astype(np.int64)


def to_tensors(batch: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """A padded numpy batch as LongTensors (the loaders' collate function)."""
    return {key: torch.from_numpy(np.ascontiguousarray(value)) for key, value in batch.items()}


class TranslationDataModule(ResumableDataModule):
    """Train/val/test loaders over a prepared folder (`PreparedTranslation`); see the module docstring."""

    def __init__(
        self,
        prepared_dir: str | Path,
        batch_size: int = 64,
        num_workers: int = 0,
        bucket: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__(seed, num_workers)
        self.prepared_dir = Path(prepared_dir)
        self.batch_size = batch_size
        self.bucket = bucket
        self.data = PreparedTranslation.load(self.prepared_dir)

    @property
    def src_vocab(self) -> Vocab:
        return self.data.src_vocab

    @property
    def tgt_vocab(self) -> Vocab:
        return self.data.tgt_vocab

    @property
    def src_vocab_size(self) -> int:
        return len(self.data.src_vocab)

    @property
    def tgt_vocab_size(self) -> int:
        return len(self.data.tgt_vocab)

    @property
    def datasets(self) -> dict[str, PairDataset]:
        """The pairs of each split (what the MLflow datasets of a run profile: rows)."""
        return {split: PairDataset(self.data.splits[split]) for split in SPLITS}

    def texts(self, split: str) -> tuple[list[str], list[str]]:
        """(raw sources, raw references) of the val or test split, indexed by a batch's `index`."""
        return self.data.texts[split]

    def loader(self, split: str, shuffle: bool, start: tuple[int, int] | None = None) -> DataLoader:
        """A loader over one split: shuffled by (seed, epoch) and bucketed (when `bucket`) if `shuffle`, else
        in row order. `start`: (epoch, batches to skip) of its first pass."""
        if split not in SPLITS:
            raise ValueError(f"split {split!r} is not one of {', '.join(SPLITS)}")
        dataset = PairDataset(self.data.splits[split])
        if not shuffle:
            batches = BatchSampler(SequentialSampler(dataset), self.batch_size, drop_last=False)
        elif self.bucket:
            batches = BucketBatchSampler(
                EpochRandomSampler(dataset, self.seed),
                self.batch_size,
                drop_last=False,
                lengths=self.data.splits[split].src_lengths,
                seed=self.seed,
                start=start,
            )
        else:
            sampler = EpochRandomSampler(dataset, self.seed)
            batches = ResumableBatchSampler(sampler, self.batch_size, drop_last=False, start=start)
        return self.make_loader(dataset, batches, to_tensors)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True, start=self.take_start())

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
