"""A few validation sentences translated after every validation epoch and logged to the run, so that the
MLflow UI shows how a model's French improves epoch by epoch (a module-level callback: `ddp_spawn` pickles
it)."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.loggers import MLFlowLogger

from rnnlab.tasks.translate.batches import TranslationDataModule
from rnnlab.tasks.translate.search import Decoding
from rnnlab.tasks.translate.text import detokenize
from rnnlab.tasks.translate.translator import translate_rows


class TranslationSamples(L.Callback):
    """After every validation epoch, translate the first `count` validation pairs greedily (at most `max_len`
    words) and log source, reference and translation as `samples/epoch_<n>.txt` (rank 0 only; no random
    numbers drawn)."""

    def __init__(self, data: TranslationDataModule, count: int, max_len: int) -> None:
        self.data, self.count, self.max_len = data, count, max_len

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or not trainer.is_global_zero or not self.count:
            return
        pairs = self.data.data.splits["val"]
        rows = range(min(self.count, len(pairs)))
        if not rows:
            return
        greedy = Decoding(beam_size=1, length_penalty=0.0, max_len=self.max_len)
        sources = [pairs.source(row) for row in rows]
        found = translate_rows(pl_module, sources, self.data.src_vocab.PAD, greedy)
        raw, references = self.data.texts("val")
        target = self.data.data.settings["languages"]["tgt"]
        lines = [
            f"{raw[row]}\n  reference:   {references[row]}\n  translation: "
            f"{detokenize(self.data.tgt_vocab.decode(hypothesis.tokens), target)}"
            for row, hypothesis in zip(rows, found, strict=True)
        ]
        if isinstance(trainer.logger, MLFlowLogger):
            name = f"samples/epoch_{trainer.current_epoch:02d}.txt"
            trainer.logger.experiment.log_text(trainer.logger.run_id, "\n\n".join(lines) + "\n", name)
