"""LightningModule for a character-level language model trained with truncated backpropagation through time.

Consecutive batches continue each other row by row, so the hidden state at the end of one chunk is carried
into the next, detached, and saved in mid-epoch checkpoints (rnnlab.models.truncated_bptt). Loss is
cross-entropy in nats per character; `<stage>/bpc` is the same in bits.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.base import check_optim
from rnnlab.models.encoder import EncoderConfig, RecurrentEncoder, RecurrentState
from rnnlab.models.truncated_bptt import CarriedStateModule
from rnnlab.tasks.charlm.corpus import CharVocabulary
from rnnlab.tasks.charlm.generation import generate


class CharLanguageModel(CarriedStateModule):
    """Many-to-many: `inputs` [B, L] character ids -> logits [B, L, V] for the next character.

    `alphabet` (the vocabulary's characters, in id order) is saved with the checkpoint, so a checkpoint
    alone can generate text (`sample`, `rnnlab generate`).
    """

    def __init__(
        self,
        vocab_size: int,
        encoder: dict[str, Any],
        alphabet: str | None = None,
        lr: float = 2e-3,
        weight_decay: float = 1e-2,
        scheduler: str = "plateau",
        head_dropout: float = 0.0,
        monitor: str = "val/loss",
        mode: str = "min",
    ) -> None:
        super().__init__()
        if encoder.get("bidirectional"):
            raise ConfigError(
                "model.bidirectional=true is not allowed for the charlm task: a language model generates "
                "left to right and cannot see the future; choose a unidirectional cell (rnn, lstm or gru)"
            )
        check_optim(scheduler, mode)
        if alphabet is not None and len(alphabet) != vocab_size:
            raise ConfigError(f"alphabet has {len(alphabet)} characters but vocab_size is {vocab_size}")
        self.save_hyperparameters(logger=False)
        # Every id is a real character (no padding), so no embedding row is frozen.
        self.encoder = RecurrentEncoder(vocab_size, EncoderConfig(**encoder), padding_idx=None)
        self.head = nn.Sequential(nn.Dropout(head_dropout), nn.Linear(self.encoder.output_size, vocab_size))
        self.loss = nn.CrossEntropyLoss()

    def step(
        self, ids: torch.Tensor, state: RecurrentState | None = None
    ) -> tuple[torch.Tensor, RecurrentState]:
        """Logits for every position and the state after the last one (the generation step)."""
        outputs, state = self.encoder.run_stateful(ids, state)
        return self.head(outputs), state

    def sample(
        self,
        prompt: str,
        length: int,
        strategy: str = "multinomial",
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
    ) -> str:
        """`prompt` followed by `length` generated characters (greedy, or sampled with temperature/top-k)."""
        if self.hparams.alphabet is None:
            raise ConfigError("this checkpoint has no alphabet saved: it cannot decode characters")
        vocab = CharVocabulary(list(self.hparams.alphabet))
        was_training = self.training
        self.eval()
        ids = generate(
            self.step, vocab.encode(prompt), length, strategy, temperature, top_k, seed, device=self.device
        )
        self.train(was_training)
        return prompt + vocab.decode(ids)

    def _step(self, batch: dict[str, torch.Tensor], stage: str) -> torch.Tensor:
        inputs, targets = batch["inputs"], batch["targets"]
        logits, state = self.step(inputs, self.carried_state(stage, inputs.size(0)))
        self.carry(stage, state)
        loss = self.loss(logits.flatten(0, 1), targets.flatten())
        chars = targets.numel()
        self.log(
            f"{stage}/loss",
            loss,
            on_step=False,
            on_epoch=True,
            prog_bar=True,
            batch_size=chars,
            sync_dist=True,  # averaged over the ranks under DDP (a no-op in one process)
        )
        self.log(
            f"{stage}/bpc", loss / math.log(2), on_step=False, on_epoch=True, batch_size=chars, sync_dist=True
        )
        return loss

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        self._step(batch, "val")
