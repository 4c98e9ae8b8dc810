"""Attention of a decoder state over the encoder's per-step outputs, with padded source steps masked out.

Kinds (`decoder.attention`): `additive` (Bahdanau: v^T tanh(W_q q + W_k k)), `multiplicative` (Luong
"general": q^T W k), `dot` (Luong: q^T k; the query and the keys must have the same size) and `none`
(no attention: `build_attention` returns None). The key side of each score (W_k k, W k) does not depend on
the decoder, so `Memory` computes it once per sentence and every decoding step reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from rnnlab.errors import ConfigError
from rnnlab.models.choices import ATTENTIONS


@dataclass
class Memory:
    """What the decoder attends over: encoder outputs `values` [N, S, D], their precomputed `keys`
    [N, S, A] (None without attention) and `mask` [N, S] (True on real source steps)."""

    values: torch.Tensor
    keys: torch.Tensor | None
    mask: torch.Tensor

    def select(self, index: torch.Tensor) -> Memory:
        """The rows `index` (e.g. each sentence repeated once per beam)."""
        keys = None if self.keys is None else self.keys.index_select(0, index)
        return Memory(self.values.index_select(0, index), keys, self.mask.index_select(0, index))


class Attention(nn.Module):
    """Scores a query [N, Q] against precomputed keys; returns (context [N, D], weights [N, S]).

    Padded steps get the score -inf before the softmax, hence a weight of exactly zero (every source has at
    least one real step, so no row is all -inf).
    """

    def __init__(self, kind: str, query_size: int, value_size: int, attention_size: int) -> None:
        super().__init__()
        self.kind = kind
        if kind == "additive":
            self.key_proj = nn.Linear(value_size, attention_size, bias=False)
            self.query_proj = nn.Linear(query_size, attention_size)
            self.v = nn.Linear(attention_size, 1, bias=False)
        elif kind == "multiplicative":
            self.key_proj = nn.Linear(value_size, query_size, bias=False)  # W k, so that q^T (W k)
        elif kind == "dot":
            if query_size != value_size:
                raise ConfigError(
                    f"decoder.attention='dot' needs the decoder's hidden size ({query_size}) to equal the "
                    f"encoder's output size ({value_size}, hidden_size x directions); choose "
                    "'multiplicative' or 'additive', or make the sizes equal"
                )
        else:
            raise ConfigError(
                f"decoder.attention={kind!r} is not allowed here; choose one of: {', '.join(ATTENTIONS[1:])}"
            )

    def keys(self, values: torch.Tensor) -> torch.Tensor:
        """The query-independent part of the scores, once per sentence: [N, S, A]."""
        return values if self.kind == "dot" else self.key_proj(values)

    def memory(self, values: torch.Tensor, mask: torch.Tensor) -> Memory:
        return Memory(values, self.keys(values), mask)

    def forward(self, query: torch.Tensor, memory: Memory) -> tuple[torch.Tensor, torch.Tensor]:
        if self.kind == "additive":
            hidden = torch.tanh(memory.keys + self.query_proj(query).unsqueeze(1))
            scores = self.v(hidden).squeeze(-1)
        else:
            scores = torch.bmm(memory.keys, query.unsqueeze(-1)).squeeze(-1)
        weights = torch.softmax(scores.masked_fill(~memory.mask, float("-inf")), dim=-1)
        context = torch.bmm(weights.unsqueeze(1), memory.values).squeeze(1)
        return context, weights


def build_attention(kind: str, query_size: int, value_size: int, attention_size: int) -> Attention | None:
    """The attention of `decoder.attention=kind`, or None for `none`."""
    if kind == "none":
        return None
    return Attention(kind, query_size, value_size, attention_size)
