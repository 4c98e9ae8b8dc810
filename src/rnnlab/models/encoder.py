"""One recurrent encoder for every cell and task: inputs -> stacked (bi)directional RNN -> pooling.

Inputs are token ids (embedded; text tasks) or real-valued feature vectors (time series: `vocab_size=None`).

Batches are post-padded (real steps first). The backward direction of a bidirectional layer runs a
forward RNN over each sequence reversed *within its length*, so padding never enters any state: the
same review padded to two lengths gives the same outputs. (Packed sequences give the same guarantee
but train ~5x slower than padded and ~11x slower than length-bucketed batches on CPU: bench/README.md.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.cells import CELLS
from rnnlab.models.choices import INITS, POOLINGS
from rnnlab.models.pooling import Pooling


@dataclass(frozen=True)
class EncoderConfig:
    """Architecture of a `RecurrentEncoder` (the `model` config group, less its training-only keys)."""

    cell: str = "lstm"
    bidirectional: bool = False
    num_layers: int = 1
    hidden_size: int = 128
    embedding_dim: int = 128
    embedding_dropout: float = 0.0
    dropout: float = 0.0
    pooling: str = "last"
    init: str = "orthogonal"
    forget_bias: float | None = 1.0

    def __post_init__(self) -> None:
        for key, value, allowed in (
            ("cell", self.cell, tuple(CELLS)),
            ("pooling", self.pooling, POOLINGS),
            ("init", self.init, INITS),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"model.{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}"
                )
        for key in ("num_layers", "hidden_size", "embedding_dim"):
            if not isinstance(getattr(self, key), int) or getattr(self, key) < 1:
                raise ConfigError(f"model.{key}={getattr(self, key)!r} must be a positive integer")
        for key in ("embedding_dropout", "dropout"):
            if not 0.0 <= getattr(self, key) < 1.0:
                raise ConfigError(f"model.{key}={getattr(self, key)!r} must be in [0, 1)")

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.hidden_size * self.directions


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse the first `lengths[b]` steps of each row of `x` [B, T, ...]; padding steps stay in place.

    One `index_select` of whole steps (its backward adds whole rows): ~2x faster, forward and backward, than
    a `gather` with an index per element.
    """
    batch, width = x.shape[:2]
    steps = torch.arange(width, device=x.device).unsqueeze(0)
    flipped = lengths.unsqueeze(1) - 1 - steps
    rows = width * torch.arange(batch, device=x.device).unsqueeze(1)
    index = torch.where(flipped >= 0, flipped, steps) + rows
    return x.flatten(0, 1).index_select(0, index.flatten()).view_as(x)


class RecurrentLayer(nn.Module):
    """One layer: a forward RNN and, when bidirectional, a backward one over length-reversed input."""

    def __init__(
        self, cell: type[nn.RNNBase], input_size: int, hidden_size: int, bidirectional: bool
    ) -> None:
        super().__init__()
        self.forward_rnn = cell(input_size, hidden_size, batch_first=True)
        self.backward_rnn = cell(input_size, hidden_size, batch_first=True) if bidirectional else None

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.forward_rnn(x)
        if self.backward_rnn is None:
            return out
        back, _ = self.backward_rnn(reverse_within_lengths(x, lengths))
        return torch.cat([out, reverse_within_lengths(back, lengths)], dim=-1)


RecurrentState = list  # one entry per layer: h [1, B, H], or (h, c) for an LSTM


def map_state(state: RecurrentState, fn: Callable[[torch.Tensor], torch.Tensor]) -> RecurrentState:
    """`state` with `fn` applied to each of its tensors."""
    return [tuple(fn(t) for t in s) if isinstance(s, tuple) else fn(s) for s in state]


def detach_state(state: RecurrentState) -> RecurrentState:
    """The same state cut from the autograd graph (truncated backpropagation through time)."""
    return map_state(state, torch.Tensor.detach)


class RecurrentEncoder(nn.Module):
    """Inputs [B, T] (token ids) or [B, T, F] (features) and lengths [B] -> (pooled [B, output_size],
    per-step outputs [B, T, output_size]).

    `vocab_size=None` takes real-valued inputs of width `input_size` (no embedding; the embedding keys of the
    config are unused then).
    """

    def __init__(
        self,
        vocab_size: int | None,
        config: EncoderConfig,
        padding_idx: int | None = 0,
        input_size: int | None = None,
    ) -> None:
        super().__init__()
        self.config = config
        if vocab_size is None:
            if not input_size or input_size < 1:
                raise ConfigError(f"an encoder on feature inputs needs input_size >= 1, got {input_size!r}")
            self.embedding = None
            first_size = input_size
        else:
            self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=padding_idx)
            first_size = config.embedding_dim
        self.embedding_dropout = nn.Dropout(config.embedding_dropout)
        sizes = [first_size] + [config.output_size] * (config.num_layers - 1)
        self.layers = nn.ModuleList(
            RecurrentLayer(CELLS[config.cell].module, size, config.hidden_size, config.bidirectional)
            for size in sizes
        )
        self.layer_dropout = nn.Dropout(config.dropout)
        self.pooling = Pooling(config.pooling, config.hidden_size, config.directions)
        self.reset_recurrent_parameters()

    @property
    def output_size(self) -> int:
        return self.config.output_size

    def recurrent_modules(self) -> list[nn.RNNBase]:
        return [
            rnn for layer in self.layers for rnn in (layer.forward_rnn, layer.backward_rnn) if rnn is not None
        ]

    def reset_recurrent_parameters(self) -> None:
        """Apply `init` (orthogonal W_hh per gate, zero biases) and the LSTM `forget_bias`."""
        cell = CELLS[self.config.cell]
        hidden = self.config.hidden_size
        with torch.no_grad():
            for rnn in self.recurrent_modules():
                if self.config.init == "orthogonal":
                    for gate in cell.gates:
                        nn.init.orthogonal_(rnn.weight_hh_l0[cell.rows(gate, hidden)])
                    nn.init.xavier_uniform_(rnn.weight_ih_l0)
                    rnn.bias_ih_l0.zero_()
                    rnn.bias_hh_l0.zero_()
                if cell.name == "lstm" and self.config.forget_bias is not None:
                    # The forget gate's bias (the two bias vectors add up).
                    rnn.bias_ih_l0[cell.rows("f", hidden)].fill_(self.config.forget_bias)
                    rnn.bias_hh_l0[cell.rows("f", hidden)].zero_()

    def embed(self, inputs: torch.Tensor) -> torch.Tensor:
        """Embedded token ids (with embedding dropout), or the feature inputs as they are."""
        if self.embedding is None:
            return inputs
        return self.embedding_dropout(self.embedding(inputs))

    def forward(self, inputs: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.encode_embedded(self.embed(inputs), lengths)

    def encode_embedded(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`forward` from embedded inputs [B, T, E] (e.g. perturbed ones: adversarial training)."""
        lengths = lengths.clamp(min=1, max=x.size(1))
        steps = x.size(1)
        for depth, layer in enumerate(self.layers):
            x = layer(self.layer_dropout(x) if depth else x, lengths)
        mask = torch.arange(steps, device=x.device).unsqueeze(0) < lengths.unsqueeze(1)
        return self.pooling(x, lengths, mask), x

    def run_stateful(
        self, inputs: torch.Tensor, state: RecurrentState | None = None
    ) -> tuple[torch.Tensor, RecurrentState]:
        """Causal use (language models): per-step top-layer outputs [B, T, H] and every layer's final state,
        starting from `state` (None: zeros). Sequences are unpadded; unidirectional encoders only."""
        if self.config.bidirectional:
            raise ConfigError("run_stateful needs a unidirectional encoder (model.bidirectional=false)")
        x = self.embed(inputs)
        final: RecurrentState = []
        for depth, layer in enumerate(self.layers):
            start = None if state is None else state[depth]
            x, hx = layer.forward_rnn(self.layer_dropout(x) if depth else x, start)
            final.append(hx)
        return x, final
