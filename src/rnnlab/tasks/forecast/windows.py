"""Sliding windows over a prepared series, and the forecast task's LightningDataModule.

A window forecasts `horizon` consecutive target values from the `lookback` rows just before them. Its
targets lie entirely inside one split; its inputs may reach back into the preceding split(s), which are the
past of that split (no leakage), so val and test forecasts start at the split's first row. Training windows
start every `stride` rows; val and test windows every `eval_stride` rows (default 1: every origin is scored).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, SequentialSampler

from rnnlab.data.resumable import ResumableDataModule
from rnnlab.data.sampling import EpochRandomSampler, ResumableBatchSampler
from rnnlab.errors import ConfigError
from rnnlab.tasks.forecast.series import SPLITS, PreparedSeries


def check_positive_int(value: object, key: str) -> int:
    """`value` if it is a positive integer, else a ConfigError naming `key`."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ConfigError(f"{key} is {value!r}; give a positive integer.")
    return int(value)


class WindowDataset(Dataset):
    """Windows over `series` [rows, F], whose rows are preceded by `inputs_context` [<= lookback, F].

    Window i forecasts rows `origins[i] .. origins[i] + horizon - 1` of `series` (column `target_index`) from
    the `lookback` rows before them, context included. Origins start at the first row that has `lookback`
    rows before it and step by `stride`. Items: {"inputs": float32 [lookback, F], "targets": float32
    [horizon], "lengths": int64 lookback}; `__getitems__` gathers a whole batch at once.
    """

    def __init__(
        self,
        inputs_context: np.ndarray,
        series: np.ndarray,
        lookback: int,
        horizon: int,
        stride: int,
        target_index: int = 0,
        split: str = "series",
    ) -> None:
        self.lookback = check_positive_int(lookback, "data.window.lookback")
        self.horizon = check_positive_int(horizon, "data.window.horizon")
        self.stride = check_positive_int(stride, "data.window.stride")
        series = np.asarray(series, dtype=np.float32)
        context = np.asarray(inputs_context, dtype=np.float32).reshape(-1, series.shape[1])
        context = context[max(len(context) - self.lookback, 0) :]
        self._rows = np.concatenate([context, series])  # the context rows, then the split's rows
        self.target_index, self.split = target_index, split
        first = max(self.lookback - len(context), 0)  # the first row with `lookback` rows before it
        self.origins = np.arange(first, len(series) - self.horizon + 1, self.stride)
        if not len(self.origins):
            raise ConfigError(
                f"The {split} split has {len(series)} rows (after {len(context)} earlier rows as context): "
                f"too short for one window of lookback {self.lookback} + horizon {self.horizon}; it needs at "
                f"least {first + self.horizon} rows. Lower data.window.lookback or horizon, or enlarge it."
            )
        self._inputs_at = self.origins + len(context) - self.lookback  # row of `_rows` where the inputs begin
        self._targets_at = self.origins + len(context)

    @classmethod
    def for_split(
        cls, prepared: PreparedSeries, split: str, lookback: int, horizon: int, stride: int
    ) -> WindowDataset:
        """Windows over one split of `prepared`; val/test take the last `lookback` earlier rows as context."""
        if split not in SPLITS:
            raise ConfigError(f"split is {split!r}; allowed values: {', '.join(SPLITS)}.")
        earlier = [prepared.splits[name] for name in SPLITS[: SPLITS.index(split)]]
        context = np.concatenate(earlier) if earlier else np.empty((0, prepared.num_features), np.float32)
        return cls(context, prepared.splits[split], lookback, horizon, stride, prepared.target_index, split)

    def __len__(self) -> int:
        return len(self.origins)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {key: value[0] for key, value in self.__getitems__([index]).items()}

    def __getitems__(self, indices: list[int]) -> dict[str, torch.Tensor]:
        windows = np.asarray(indices)
        targets = self._span(self._targets_at[windows], self.horizon, self.target_index)
        return {
            "inputs": torch.from_numpy(self._span(self._inputs_at[windows], self.lookback)),
            "targets": torch.from_numpy(targets),
            "lengths": torch.full((len(windows),), self.lookback, dtype=torch.int64),
        }

    def _span(self, starts: np.ndarray, length: int, column: int | None = None) -> np.ndarray:
        """Rows `start .. start + length - 1` for each start: [windows, length, F], or [windows, length]."""
        rows = starts[:, None] + np.arange(length)
        return self._rows[rows] if column is None else self._rows[rows, column]

    def context_targets(self) -> np.ndarray:
        """The target column of every window's inputs, float32 [windows, lookback] (scaled)."""
        return self._span(self._inputs_at, self.lookback, self.target_index)

    def targets(self) -> np.ndarray:
        """Every window's targets, float32 [windows, horizon] (scaled)."""
        return self._span(self._targets_at, self.horizon, self.target_index)


def keep_batch(batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The loaders' collate function: `WindowDataset.__getitems__` already returns a batch."""
    return batch


class ForecastDataModule(ResumableDataModule):
    """Train (shuffled by seed and epoch, resumable: rnnlab.data.resumable) / val / test (in time order)
    window loaders over a prepared series folder."""

    def __init__(
        self,
        prepared_dir: str | Path,
        lookback: int,
        horizon: int,
        stride: int = 1,
        batch_size: int = 128,
        num_workers: int = 0,
        seed: int = 0,
        eval_stride: int = 1,
    ) -> None:
        if isinstance(num_workers, bool) or not isinstance(num_workers, int) or num_workers < 0:
            raise ConfigError(f"data.loader.num_workers is {num_workers!r}; give an integer >= 0.")
        super().__init__(seed, num_workers)
        self.batch_size = check_positive_int(batch_size, "data.loader.batch_size")
        eval_stride = check_positive_int(eval_stride, "eval_stride (between val/test windows)")
        self.prepared = PreparedSeries.load(prepared_dir)
        strides = {"train": stride, "val": eval_stride, "test": eval_stride}
        self.datasets = {
            split: WindowDataset.for_split(self.prepared, split, lookback, horizon, strides[split])
            for split in SPLITS
        }

    @property
    def num_features(self) -> int:
        return self.prepared.num_features

    @property
    def horizon(self) -> int:
        return self.datasets["train"].horizon

    def loader(self, split: str, shuffle: bool, start: tuple[int, int] | None = None) -> DataLoader:
        """Batches of one split; training shuffles by (seed, epoch). `start`: (epoch, batches to skip) of
        its first pass."""
        dataset = self.datasets[split]
        sampler = EpochRandomSampler(dataset, self.seed) if shuffle else SequentialSampler(dataset)
        batches = ResumableBatchSampler(sampler, self.batch_size, drop_last=False, start=start)
        return self.make_loader(dataset, batches, keep_batch)

    def train_dataloader(self) -> DataLoader:
        return self.loader("train", shuffle=True, start=self.take_start())

    def val_dataloader(self) -> DataLoader:
        return self.loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader("test", shuffle=False)
