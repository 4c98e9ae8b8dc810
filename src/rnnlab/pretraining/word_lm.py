"""A word-level recurrent language model for pretraining the classifier (ULMFiT, SA-LSTM): the classifier's
own embedding and recurrent layers for a `model` config, trained with truncated BPTT on the reviews' stream
(rnnlab.pretraining.stream) and an adaptive softmax (Grave et al. 2017), so that a 30,000-word output is
affordable on a CPU.

A bidirectional config trains two language models that share the embedding and the softmax (ELMo): the
forward one on the stream, the backward one on the reversed stream; each is a unidirectional stack of the
config's layers (`encoder`, the name the diagnostics read, and `backward_encoder`). The carried state is the
forward stack's layers, then the backward stack's. Loss: mean
negative log-likelihood in nats per token (both directions averaged; each also as `<stage>/loss_forward`,
`<stage>/loss_backward`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import check_optim
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder, RecurrentState
from rnnlab.models.truncated_bptt import CarriedStateModule

# For a 30,000-word vocabulary sorted by frequency: the 1,000 likeliest ids in the head, then clusters of
# 3,000, 8,000 and ~18,000 ids with projections 2x, 4x and 8x narrower than the hidden state (div_value 2):
# 1.8x the tokens/s of (2000, 10000) with div_value 4 on one CPU thread, at no worse a validation loss after
# 150 batches of IMDB's reviews (bench/README.md).
DEFAULT_CUTOFFS = (1000, 4000, 12000)
DEFAULT_DIV_VALUE = 2.0


class WordLanguageModel(CarriedStateModule):
    """Token ids [B, L] -> log-likelihood of the next id, over the `vocab_size` ids of the project's
    `Vocabulary` (0 padding, 1 OOV) and the end-of-review id `vocab_size`.

    `encoder` holds the classifier's `RecurrentEncoder` settings (rnnlab.models.build.encoder_args); pooling
    plays no part. `cutoffs`: the adaptive softmax's cluster boundaries (increasing ids, 1 to `vocab_size`);
    empty: a full softmax.
    """

    def __init__(
        self,
        vocab_size: int,
        encoder: dict[str, Any],
        cutoffs: Sequence[int] = DEFAULT_CUTOFFS,
        div_value: float = DEFAULT_DIV_VALUE,
        lr: float = 2e-3,
        weight_decay: float = 1e-2,
        scheduler: str = "plateau",
        head_dropout: float = 0.0,
        monitor: str = "val/loss",
        mode: str = "min",
    ) -> None:
        super().__init__()
        check_optim(scheduler, mode)
        self.config = EncoderConfig(**encoder)
        classes, hidden = vocab_size + 1, self.config.hidden_size
        cutoffs = [int(c) for c in cutoffs]
        if cutoffs != sorted(set(cutoffs)) or (cutoffs and not 0 < cutoffs[0] <= cutoffs[-1] < classes):
            raise ConfigError(
                f"cutoffs={cutoffs} is not allowed; allowed: increasing ids between 1 and {vocab_size} "
                f"(vocabulary of {vocab_size} + the end-of-review id), or [] for a full softmax"
            )
        if cutoffs and int(hidden // div_value ** len(cutoffs)) < 1:
            raise ConfigError(
                f"cutoffs={cutoffs} with div_value={div_value} leave the last cluster a projection of "
                f"hidden_size {hidden} // {div_value}**{len(cutoffs)} = 0 units; use fewer cutoffs or a "
                "smaller div_value"
            )
        self.save_hyperparameters(logger=False)
        direction = replace(self.config, bidirectional=False, pooling="last")
        self.embedding = nn.Embedding(classes, self.config.embedding_dim, padding_idx=0)
        self.embedding_dropout = nn.Dropout(self.config.embedding_dropout)
        self.encoder = RecurrentEncoder(None, direction, input_size=self.config.embedding_dim)
        self.backward_encoder = (
            RecurrentEncoder(None, direction, input_size=self.config.embedding_dim)
            if self.config.bidirectional
            else None
        )
        self.output_dropout = nn.Dropout(head_dropout)
        self.softmax = (
            nn.AdaptiveLogSoftmaxWithLoss(hidden, classes, cutoffs, div_value=div_value, head_bias=True)
            if cutoffs
            else nn.Linear(hidden, classes)
        )

    @property
    def end_id(self) -> int:
        """The end-of-review id."""
        return self.hparams.vocab_size

    def directions(self) -> list[RecurrentEncoder]:
        """The forward stack, and the backward one when bidirectional."""
        return [self.encoder] if self.backward_encoder is None else [self.encoder, self.backward_encoder]

    def run(
        self, stack: RecurrentEncoder, ids: torch.Tensor, state: RecurrentState | None
    ) -> tuple[torch.Tensor, RecurrentState]:
        """Top-layer outputs [B, L, H] of one direction's stack and its state after the last step."""
        outputs, state = stack.run_stateful(self.embedding_dropout(self.embedding(ids)), state)
        return self.output_dropout(outputs), state

    def target_log_probs(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """log p(target) at every position: hidden [..., H], targets [...] -> [...]."""
        flat = hidden.reshape(-1, hidden.size(-1))
        if isinstance(self.softmax, nn.AdaptiveLogSoftmaxWithLoss):
            picked = self.softmax(flat, targets.reshape(-1)).output
        else:
            picked = self.softmax(flat).log_softmax(-1).gather(1, targets.reshape(-1, 1)).squeeze(1)
        return picked.view(targets.shape)

    def log_probs(self, hidden: torch.Tensor) -> torch.Tensor:
        """log p(every id): hidden [N, H] -> [N, vocab_size + 1]."""
        if isinstance(self.softmax, nn.AdaptiveLogSoftmaxWithLoss):
            return self.softmax.log_prob(hidden)
        return self.softmax(hidden).log_softmax(-1)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        streams = {"forward": (batch["inputs"], batch["targets"])}
        if self.backward_encoder is not None:
            streams["backward"] = (batch["reverse_inputs"], batch["reverse_targets"])
        start = self.carried_state(stage, batch["inputs"].size(0))
        layers, stacks, final, losses = self.config.num_layers, self.directions(), [], {}
        for i, (name, (inputs, targets)) in enumerate(streams.items()):
            own = None if start is None else start[i * layers : (i + 1) * layers]  # this direction's layers
            hidden, state = self.run(stacks[i], inputs, own)
            final += state
            losses[f"loss_{name}"] = -self.target_log_probs(hidden, targets).mean()
        self.carry(stage, final)
        loss = torch.stack(list(losses.values())).mean()
        logged = {"loss": loss, **(losses if len(losses) > 1 else {})}
        for name, value in logged.items():
            self.log(
                f"{stage}/{name}",
                value,
                on_step=False,
                on_epoch=True,
                prog_bar=name == "loss",
                batch_size=batch["targets"].numel(),
                sync_dist=True,  # averaged over the ranks under DDP (a no-op in one process)
            )
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")
