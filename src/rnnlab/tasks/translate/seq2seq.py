"""LightningModule for translation: the project's `RecurrentEncoder` over the source, an attentional decoder
(rnnlab.tasks.translate.decoder) over the target, greedy or beam-search decoding (…translate.search).

Batches are dicts of `src` [B, S] and `tgt` [B, T] = `<bos> y_1 .. y_n <eos>` (both post-padded with
`pad_id`) and `src_lengths` [B]. The decoder reads tgt[:, :-1] and predicts tgt[:, 1:].

Training uses teacher forcing with ratio r: each previous token is the reference one with probability r
and the model's own most probable one otherwise (scheduled sampling; the coin comes from torch's global
generator, so a seeded run reproduces). Validation and test always read the reference.

Logged (per epoch): `train/loss` (the training objective: token-averaged cross-entropy over real target
tokens, with label smoothing if set), `val/loss` and `test/loss` (token-averaged negative log-likelihood in
nats, without smoothing) and `val/ppl`, `test/ppl` (their exponential).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanMetric

from rnnlab.errors import ConfigError
from rnnlab.models.base import RecurrentTaskModule, check_optim
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder
from rnnlab.tasks.translate.attention import Memory
from rnnlab.tasks.translate.decoder import AttentionDecoder, DecoderConfig, DecoderState
from rnnlab.tasks.translate.search import Hypothesis, SpecialIds, beam_search, greedy

Batch = dict[str, torch.Tensor]


class Seq2SeqTranslator(RecurrentTaskModule):
    """Encoder-decoder with attention. `encoder`: `EncoderConfig` fields (its `pooling` picks the summary
    the decoder's initial state is bridged from; `last` is the usual one); `decoder`: `DecoderConfig`
    fields."""

    def __init__(
        self,
        src_vocab_size: int,
        tgt_vocab_size: int,
        encoder: dict[str, Any],
        decoder: dict[str, Any] | None = None,
        teacher_forcing: float = 1.0,
        label_smoothing: float = 0.0,
        lr: float = 1e-3,
        weight_decay: float = 1e-2,
        scheduler: str = "plateau",
        monitor: str = "val/loss",
        mode: str = "min",
        pad_id: int = 0,
        bos_id: int = 2,
        eos_id: int = 3,
        oov_id: int = 1,
    ) -> None:
        super().__init__()
        check_optim(scheduler, mode)
        if not 0.0 <= teacher_forcing <= 1.0:
            raise ConfigError(f"model.teacher_forcing={teacher_forcing!r} must be in [0, 1]")
        if not 0.0 <= label_smoothing < 1.0:
            raise ConfigError(f"model.label_smoothing={label_smoothing!r} must be in [0, 1)")
        if len({pad_id, bos_id, eos_id, oov_id}) != 4:
            raise ConfigError(f"the special ids must differ, got {pad_id}, {bos_id}, {eos_id}, {oov_id}")
        self.save_hyperparameters(logger=False)  # the run logs the whole config instead (train.py)
        self.ids = SpecialIds(pad_id, bos_id, eos_id, oov_id)
        self.encoder = RecurrentEncoder(src_vocab_size, EncoderConfig(**encoder), padding_idx=pad_id)
        size = self.encoder.output_size
        self.decoder = AttentionDecoder(tgt_vocab_size, size, size, DecoderConfig(**(decoder or {})), pad_id)
        self.nll = nn.ModuleDict({"val": MeanMetric(), "test": MeanMetric()})

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor) -> tuple[Memory, DecoderState]:
        """The decoder's memory (encoder outputs, attention keys, source mask) and initial state."""
        summary, outputs = self.encoder(src, src_lengths)
        steps = torch.arange(src.size(1), device=src.device).unsqueeze(0)
        mask = steps < src_lengths.clamp(min=1).unsqueeze(1)
        return self.decoder.memory(outputs, mask), self.decoder.start(summary)

    def teacher_forced(self, src: torch.Tensor, src_lengths: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
        """The decoder's attentional vectors [B, T-1, H] for tgt[:, 1:], reading the reference tokens."""
        memory, state = self.encode(src, src_lengths)
        inputs = self.decoder.embed(tgt[:, :-1])
        outputs = []
        for t in range(inputs.size(1)):
            out, state, _ = self.decoder.step(inputs[:, t], state, memory)
            outputs.append(out)
        return torch.stack(outputs, dim=1)

    def forward(
        self, src: torch.Tensor, src_lengths: torch.Tensor, tgt: torch.Tensor, teacher_forcing: float = 1.0
    ) -> torch.Tensor:
        """Logits [B, T-1, V] for tgt[:, 1:], each step reading the previous reference token with probability
        `teacher_forcing` and the model's own prediction otherwise."""
        if teacher_forcing >= 1.0:
            return self.decoder.project(self.teacher_forced(src, src_lengths, tgt))
        memory, state = self.encode(src, src_lengths)
        inputs = tgt[:, :-1]
        logits, tokens = [], inputs[:, 0]
        for t in range(inputs.size(1)):
            out, state, _ = self.decoder.step(self.decoder.embed(tokens), state, memory)
            logits.append(self.decoder.project(out))
            if t + 1 < inputs.size(1):
                reference = torch.rand(tokens.size(0), device=tokens.device) < teacher_forcing
                tokens = torch.where(reference, inputs[:, t + 1], logits[-1].detach().argmax(-1))
        return torch.stack(logits, dim=1)

    def _loss(self, batch: Batch, teacher_forcing: float, smoothing: float) -> tuple[torch.Tensor, int]:
        """Token-averaged cross-entropy over the real target tokens, and their number. Teacher forced, the
        output projection (the costliest step with a large vocabulary) runs on the real tokens only."""
        src, lengths, tgt = batch["src"], batch["src_lengths"], batch["tgt"]
        targets = tgt[:, 1:]
        real = targets != self.ids.pad
        if teacher_forcing >= 1.0:
            logits = self.decoder.project(self.teacher_forced(src, lengths, tgt)[real])
            targets = targets[real]
        else:
            logits = self(src, lengths, tgt, teacher_forcing).flatten(0, 1)
            targets = targets.flatten()
        loss = F.cross_entropy(logits, targets, ignore_index=self.ids.pad, label_smoothing=smoothing)
        return loss, int(real.sum())

    def training_step(self, batch: Batch, batch_idx: int) -> torch.Tensor:
        loss, tokens = self._loss(batch, self.hparams.teacher_forcing, self.hparams.label_smoothing)
        self.log(
            "train/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=tokens,
            sync_dist=True,  # averaged over the ranks under DDP (a no-op in one process)
        )
        return loss

    def _evaluate(self, batch: Batch, stage: str) -> None:
        loss, tokens = self._loss(batch, 1.0, 0.0)
        self.nll[stage].update(loss, weight=tokens)

    def _log_epoch(self, stage: str) -> None:
        """`<stage>/loss` and `<stage>/ppl` of the epoch, weighted by tokens (across ranks too)."""
        nll = self.nll[stage].compute()
        self.nll[stage].reset()
        self.log(f"{stage}/loss", nll, prog_bar=True, sync_dist=True)
        self.log(f"{stage}/ppl", nll.exp(), sync_dist=True)

    def validation_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def on_validation_epoch_end(self) -> None:
        self._log_epoch("val")

    def test_step(self, batch: Batch, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def on_test_epoch_end(self) -> None:
        self._log_epoch("test")

    @torch.no_grad()
    def translate(
        self,
        src: torch.Tensor,
        src_lengths: torch.Tensor,
        beam_size: int = 1,
        length_penalty: float = 0.0,
        max_len: int = 50,
    ) -> list[Hypothesis]:
        """One hypothesis per source row: greedy for `beam_size=1`, else beam search with GNMT's length
        penalty alpha=`length_penalty` (rnnlab.tasks.translate.search). Runs in eval mode."""
        was_training = self.training
        self.eval()
        memory, state = self.encode(src.to(self.device), src_lengths.to(self.device))
        if beam_size == 1:
            found = greedy(self.decoder, memory, state, self.ids, max_len)
        else:
            found = beam_search(self.decoder, memory, state, self.ids, beam_size, length_penalty, max_len)
        self.train(was_training)
        return found
