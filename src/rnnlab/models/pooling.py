"""Padding-aware pooling of per-step RNN outputs into one vector per sequence."""

from __future__ import annotations

import torch
from torch import nn


class Pooling(nn.Module):
    """`last`: the last real step of the forward direction and the first step of the backward one (its final
    state); `mean`/`max`: over real steps only; `attention`: additive attention with padding masked out."""

    def __init__(self, kind: str, hidden_size: int, directions: int) -> None:
        super().__init__()
        self.kind = kind
        self.hidden_size = hidden_size
        self.directions = directions
        if kind == "attention":
            width = hidden_size * directions
            self.score = nn.Sequential(nn.Linear(width, width), nn.Tanh(), nn.Linear(width, 1, bias=False))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if self.kind == "last":
            rows = torch.arange(x.size(0), device=x.device)
            last = x[rows, lengths - 1, : self.hidden_size]
            if self.directions == 1:
                return last
            return torch.cat([last, x[:, 0, self.hidden_size :]], dim=-1)
        if self.kind == "mean":
            weights = mask.unsqueeze(-1).to(x.dtype)
            return (x * weights).sum(1) / lengths.unsqueeze(1).to(x.dtype)
        if self.kind == "max":
            # max(), not amax(): its backward scatters into the argmax steps instead of comparing every step
            return x.masked_fill(~mask.unsqueeze(-1), torch.finfo(x.dtype).min).max(1).values
        scores = self.score(x).squeeze(-1).masked_fill(~mask, torch.finfo(x.dtype).min)
        weights = torch.softmax(scores, dim=1).unsqueeze(-1)
        return (x * weights).sum(1)
