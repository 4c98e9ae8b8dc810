"""The language model's samples, logged to its MLflow run after every validation epoch (a module-level
callback: `ddp_spawn` pickles it)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import MLFlowLogger


class TextSamples(L.Callback):
    """After every validation epoch, generate from `prompt` at each temperature with a language model that has
    a `sample` method, and log the texts to the MLflow run as `samples/epoch_<n>.txt` (rank 0 only)."""

    def __init__(self, prompt: str, length: int, temperatures: list[float], seed: int = 0) -> None:
        self.prompt, self.length, self.temperatures, self.seed = prompt, length, list(temperatures), seed

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero:
            return
        sample = pl_module.sample
        parts = [
            f"--- temperature {t} ---\n{sample(self.prompt, self.length, temperature=t, seed=self.seed)}"
            for t in self.temperatures
        ]
        if isinstance(trainer.logger, MLFlowLogger):
            name = f"samples/epoch_{trainer.current_epoch:02d}.txt"
            trainer.logger.experiment.log_text(trainer.logger.run_id, "\n\n".join(parts) + "\n", name)
