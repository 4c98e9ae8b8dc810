"""The translation decoder: a unidirectional rnn/lstm/gru with Luong-style global attention and input feeding.

One decoding step, for the previous target token y_{t-1} (Luong et al. 2015, "input feeding"):

    s_t  = cell([emb(y_{t-1}); h~_{t-1}], s_{t-1})      the recurrent state (top layer's output s_t)
    c_t, a_t = attention(s_t, encoder outputs)           a_t: weights over the source, c_t: context
    h~_t = dropout(tanh(W_c [s_t; c_t]))                  the attentional vector, fed to the next step
    p(y_t) = softmax(W_o h~_t)

So the weights a_t are the ones used to predict y_t (one heat-map row per output token). With attention
`none` the context and the input feeding vanish: s_t = cell(emb(y_{t-1}), s_{t-1}), h~_t = dropout(tanh(W_c
s_t)), and the source reaches the decoder only through its initial state.

Initial state (the encoder returns no final states): a learned bridge from the encoder's pooled summary,
h_0 = tanh(W_b summary) for each decoder layer (for an LSTM, the cell state c_0 likewise). With the
encoder's `pooling: last` the summary is the classic one: the forward direction's state at the last real
step and, when bidirectional, the backward direction's state at the first step (both final states).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.cells import CELLS
from rnnlab.tasks.translate.attention import ATTENTIONS, Memory, build_attention

Hidden = torch.Tensor | tuple[torch.Tensor, torch.Tensor]  # h [L, N, H], or (h, c) for an LSTM


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder's architecture (`model.decoder`); `attention_size` (None: hidden_size) is additive only."""

    cell: str = "lstm"
    bidirectional: bool = False
    num_layers: int = 1
    hidden_size: int = 128
    embedding_dim: int = 128
    dropout: float = 0.0
    attention: str = "additive"
    attention_size: int | None = None
    tie_embeddings: bool = False

    def __post_init__(self) -> None:
        if self.bidirectional:
            raise ConfigError(
                "decoder.bidirectional=true is not allowed: the decoder generates the translation left to "
                "right and cannot read words it has not produced yet; set decoder.bidirectional=false "
                "(the encoder may be bidirectional)"
            )
        for key, value, allowed in (
            ("cell", self.cell, tuple(CELLS)),
            ("attention", self.attention, ATTENTIONS),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"decoder.{key}={value!r} is not allowed; choose one of: {', '.join(allowed)}"
                )
        for key in ("num_layers", "hidden_size", "embedding_dim", "attention_size"):
            value = getattr(self, key)
            if not (value is None and key == "attention_size") and (not isinstance(value, int) or value < 1):
                raise ConfigError(f"decoder.{key}={value!r} must be a positive integer")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"decoder.dropout={self.dropout!r} must be in [0, 1)")
        if self.tie_embeddings and self.embedding_dim != self.hidden_size:
            raise ConfigError(
                f"decoder.tie_embeddings=true needs decoder.embedding_dim ({self.embedding_dim}) equal to "
                f"decoder.hidden_size ({self.hidden_size})"
            )


@dataclass
class DecoderState:
    """The recurrent state and the attentional vector h~_{t-1} for the next step (None: no attention)."""

    hidden: Hidden
    feed: torch.Tensor | None

    def select(self, index: torch.Tensor) -> DecoderState:
        """The rows `index` of the batch (beam expansion and reordering)."""
        if isinstance(self.hidden, tuple):
            hidden: Hidden = tuple(t.index_select(1, index) for t in self.hidden)
        else:
            hidden = self.hidden.index_select(1, index)
        return DecoderState(hidden, None if self.feed is None else self.feed.index_select(0, index))


class AttentionDecoder(nn.Module):
    """Target embedding, bridge, recurrent cell, attention and output projection (see the module docstring).

    `summary_size` is the width of the encoder's pooled vector, `value_size` that of its per-step outputs.
    """

    def __init__(
        self, vocab_size: int, summary_size: int, value_size: int, config: DecoderConfig, pad_id: int = 0
    ) -> None:
        super().__init__()
        self.config = config
        hidden, layers = config.hidden_size, config.num_layers
        self.embedding = nn.Embedding(vocab_size, config.embedding_dim, padding_idx=pad_id)
        self.dropout = nn.Dropout(config.dropout)
        self.attention = build_attention(
            config.attention, hidden, value_size, config.attention_size or hidden
        )
        feed, context = (hidden, value_size) if self.attention is not None else (0, 0)
        self.rnn = CELLS[config.cell].module(
            config.embedding_dim + feed,
            hidden,
            num_layers=layers,
            batch_first=True,
            dropout=config.dropout if layers > 1 else 0.0,
        )
        self.states = 2 if config.cell == "lstm" else 1  # (h, c) or h
        self.bridge = nn.Linear(summary_size, self.states * layers * hidden)
        self.combine = nn.Linear(hidden + context, hidden)
        self.output = nn.Linear(hidden, vocab_size)
        if config.tie_embeddings:
            self.output.weight = self.embedding.weight

    def memory(self, values: torch.Tensor, mask: torch.Tensor) -> Memory:
        """The encoder outputs [B, S, D] with their attention keys computed once per sentence."""
        if self.attention is None:
            return Memory(values, None, mask)
        return self.attention.memory(values, mask)

    def start(self, summary: torch.Tensor) -> DecoderState:
        """The initial state from the encoder's pooled summary [B, summary_size]."""
        layers, hidden = self.config.num_layers, self.config.hidden_size
        bridged = torch.tanh(self.bridge(summary)).view(summary.size(0), self.states, layers, hidden)
        parts = [bridged[:, k].transpose(0, 1).contiguous() for k in range(self.states)]
        feed = None if self.attention is None else summary.new_zeros(summary.size(0), hidden)
        return DecoderState(tuple(parts) if self.states == 2 else parts[0], feed)

    def embed(self, tokens: torch.Tensor) -> torch.Tensor:
        """The decoder's inputs for previous tokens of any shape ([N] or [N, T]), dropout applied.

        Teacher forcing embeds the whole target at once: one embedding lookup per step would give the
        backward pass one dense [V, E] gradient per step to fill and add (24 against 1 ms a training step
        with 15,011 words, batch 64, 11 positions, one CPU thread)."""
        return self.dropout(self.embedding(tokens))

    def step(
        self, x: torch.Tensor, state: DecoderState, memory: Memory
    ) -> tuple[torch.Tensor, DecoderState, torch.Tensor | None]:
        """One target position: the embedded previous tokens [N, E] (`embed`) -> (h~_t [N, H], next state,
        attention weights [N, S])."""
        if state.feed is not None:
            x = torch.cat([x, state.feed], dim=-1)
        out, hidden = self.rnn(x.unsqueeze(1), state.hidden)
        top = out.squeeze(1)
        if self.attention is None:
            return self.dropout(torch.tanh(self.combine(top))), DecoderState(hidden, None), None
        context, weights = self.attention(top, memory)
        attentional = self.dropout(torch.tanh(self.combine(torch.cat([top, context], dim=-1))))
        return attentional, DecoderState(hidden, attentional), weights

    def project(self, attentional: torch.Tensor) -> torch.Tensor:
        """Logits over the target vocabulary."""
        return self.output(attentional)
