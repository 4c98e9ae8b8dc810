"""The base of every rnnlab datamodule, for exact resume: the training order is a function of (seed, epoch)
(rnnlab.data.sampling), every checkpoint holds the position in it, and the loaders draw nothing from the
global random generators (dropout's). A run resumed from any checkpoint then trains on the batches, with the
random numbers, that the uninterrupted run would."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from lightning.pytorch.trainer.states import TrainerFn
from torch.utils.data import DataLoader, Dataset, Sampler

from rnnlab.resume import training_position


class ResumableDataModule(L.LightningDataModule):
    """Subclasses build their training batches with `rnnlab.data.sampling.ResumableBatchSampler` (or a
    subclass), starting at `take_start()`, and their loaders with `make_loader`."""

    def __init__(self, seed: int = 0, num_workers: int = 0) -> None:
        super().__init__()
        self.seed, self.num_workers = seed, num_workers
        self.start: tuple[int, int] | None = None  # where the next training loader starts (resuming)

    def state_dict(self) -> dict[str, int]:
        if self.trainer is None or self.trainer.state.fn != TrainerFn.FITTING:
            return {}
        epoch, batches = training_position(self.trainer)
        return {"epoch": epoch, "batches": batches}

    def load_state_dict(self, state_dict: dict[str, int]) -> None:
        if state_dict:
            self.start = (state_dict["epoch"], state_dict["batches"])

    def take_start(self) -> tuple[int, int] | None:
        """(epoch, batches already trained in it) where the next training loader starts; None after the
        first call (later loaders start at the beginning of the epoch Lightning sets)."""
        start, self.start = self.start, None
        return start

    def make_loader(
        self, dataset: Dataset, batches: Sampler[list[int]], collate_fn: Callable[[Any], Any]
    ) -> DataLoader:
        """A loader over `batches`, with a generator of its own: PyTorch draws a seed from the global
        generator each time a loader without one starts a pass, which would shift dropout's numbers."""
        return DataLoader(
            dataset,
            batch_sampler=batches,
            collate_fn=collate_fn,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
            generator=torch.Generator().manual_seed(self.seed),
        )
