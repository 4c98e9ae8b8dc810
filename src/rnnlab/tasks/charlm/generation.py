"""Sampling from a next-token model, whatever the model: greedy, or multinomial with temperature and top-k.

The model is seen only through a step function `step(ids [1, T], state) -> (logits [1, T, V], state)`,
e.g. `CharLanguageModel.step`: the prompt goes through it once, then one token at a time with the state
carried over, so a sample of n tokens costs n single-step calls whatever the prompt's length.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch

from rnnlab.errors import ConfigError

STRATEGIES = ("greedy", "multinomial")
StepFn = Callable[[torch.Tensor, Any], tuple[torch.Tensor, Any]]


def check_sampling(strategy: str, temperature: float, top_k: int | None) -> None:
    """ConfigError unless strategy is one of STRATEGIES, temperature > 0 and top_k is None or >= 1."""
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy is {strategy!r}; allowed values: {', '.join(STRATEGIES)}.")
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, int | float)
        or not (math.isfinite(temperature) and temperature > 0)
    ):
        raise ConfigError(
            f"temperature is {temperature!r}; allowed: a finite number > 0 (1 samples the model's "
            "distribution, lower sharpens it; for always the most likely token use strategy greedy)."
        )
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ConfigError(f"top_k is {top_k!r}; allowed: an integer >= 1, or null (no limit).")


def next_token(
    logits: torch.Tensor,
    strategy: str = "multinomial",
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Pick one token per row of `logits` [B, V]: int64 ids [B].

    greedy: the argmax (temperature and top_k do not change it). multinomial: a draw from
    softmax(logits / temperature), restricted to the `top_k` largest logits when top_k is given (ties at
    the k-th value are all kept). `generator` must live on the logits' device.
    """
    check_sampling(strategy, temperature, top_k)
    if logits.dim() != 2:
        raise ValueError(f"logits must be [batch, vocab]; got shape {tuple(logits.shape)}")
    if strategy == "greedy":
        return logits.argmax(dim=-1)
    logits = logits.float()
    # Shift the maximum to 0 before dividing: a tiny temperature then gives -inf, never inf - inf = nan.
    scaled = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if top_k is not None and top_k < logits.size(-1):
        kth = scaled.topk(top_k, dim=-1).values[:, -1:]
        scaled = scaled.masked_fill(scaled < kth, -math.inf)
    probs = torch.softmax(scaled, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


@torch.inference_mode()
def generate(
    step: StepFn,
    prompt_ids: Sequence[int] | torch.Tensor,
    length: int,
    strategy: str = "multinomial",
    temperature: float = 1.0,
    top_k: int | None = None,
    seed: int = 0,
    device: torch.device | str = "cpu",
) -> list[int]:
    """The `length` token ids that follow `prompt_ids` (the prompt itself is not included).

    `step` runs the model (put it in eval mode first); the ids it receives live on `device`. Sampling draws
    from a torch.Generator seeded with `seed` on that device, so a seed gives the same sample each time on
    the same device.
    """
    check_sampling(strategy, temperature, top_k)
    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ConfigError(f"length is {length!r}; allowed: an integer >= 1 (tokens to generate).")
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long, device=device).reshape(1, -1)
    if prompt.size(1) == 0:
        raise ConfigError("The prompt is empty; give at least one character to start from.")
    generator = torch.Generator(device=device).manual_seed(seed)
    logits, state = step(prompt, None)
    out: list[int] = []
    while True:
        token = next_token(logits[:, -1], strategy, temperature, top_k, generator)
        out.append(int(token))
        if len(out) == length:
            return out
        logits, state = step(token.view(1, 1), state)
