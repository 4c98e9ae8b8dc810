"""What every rnnlab LightningModule shares: AdamW, a scheduler keyed on the task's monitored metric,
and the total gradient norm before clipping."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.utilities import grad_norm

from rnnlab.errors import ConfigError
from rnnlab.models.choices import MODES, SCHEDULERS

LR_NAME = "lr"  # LearningRateMonitor's name for the learning rate (else `lr-AdamW`)


def check_optim(scheduler: str, mode: str) -> None:
    """Config errors for `optim.scheduler` and `task.mode`, naming the allowed values."""
    if scheduler not in SCHEDULERS:
        allowed = ", ".join(SCHEDULERS)
        raise ConfigError(f"optim.scheduler={scheduler!r} is not allowed; choose one of: {allowed}")
    if mode not in MODES:
        raise ConfigError(f"task.mode={mode!r} is not allowed; choose one of: {', '.join(MODES)}")


class RecurrentTaskModule(L.LightningModule):
    """Base class; subclasses save `lr`, `weight_decay`, `scheduler`, `monitor` and `mode` as hparams."""

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """Log the total gradient 2-norm (Lightning calls this before clipping), averaged per epoch."""
        norm = grad_norm(self, norm_type=2)["grad_2.0_norm_total"]
        self.log("train/grad_norm", norm, on_step=False, on_epoch=True, sync_dist=True)  # equal on every rank

    def on_train_epoch_end(self) -> None:
        """Step ReduceLROnPlateau here, before the end-of-epoch checkpoint is saved (checkpoint callbacks run
        after this hook), so that a resumed run continues with the scheduler state and learning rate of the
        uninterrupted one. Lightning would step it only after saving; `lr_scheduler_step` leaves it alone."""
        for config in self.trainer.lr_scheduler_configs:
            value = self.trainer.callback_metrics.get(config.monitor) if config.reduce_on_plateau else None
            if value is not None:
                config.scheduler.step(value)

    def lr_scheduler_step(self, scheduler: Any, metric: Any) -> None:
        if not isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            super().lr_scheduler_step(scheduler, metric)

    def _fused_optimizer(self) -> bool:
        """AdamW's fused kernel: one kernel over all parameters, the same update, on the CPU 6x faster than
        the per-tensor loop (11M parameters: 6 against 36-41 ms a step). Not under mixed precision: Lightning
        refuses to clip the gradients of an optimizer that unscales them itself, as fused ones do."""
        return self._trainer is None or not isinstance(self._trainer.precision_plugin, MixedPrecision)

    def configure_optimizers(self) -> Any:
        hp = self.hparams
        optimizer = torch.optim.AdamW(
            self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay, fused=self._fused_optimizer()
        )
        if hp.scheduler == "none":  # a constant schedule: named, so the learning rate is logged as `lr` too
            constant = torch.optim.lr_scheduler.ConstantLR(optimizer, factor=1.0, total_iters=0)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": constant, "name": LR_NAME}}
        if hp.scheduler == "onecycle":
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimizer, max_lr=hp.lr, total_steps=int(self.trainer.estimated_stepping_batches)
            )
            return {
                "optimizer": optimizer,
                "lr_scheduler": {"scheduler": schedule, "interval": "step", "name": LR_NAME},
            }
        schedule = torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer, mode=hp.mode, factor=0.5, patience=1)
        scheduler = {"scheduler": schedule, "monitor": hp.monitor, "name": LR_NAME}
        return {"optimizer": optimizer, "lr_scheduler": scheduler}
