"""Sampling: greedy chains, seeded multinomial draws, temperature and top-k, argument checks."""

from __future__ import annotations

import math

import pytest
import torch

from rnnlab.errors import ConfigError
from rnnlab.tasks.charlm.generation import generate, next_token

V = 12


class BigramModel:
    """A deterministic bigram table as a step function; records every call and counts steps in its state."""

    def __init__(self, seed: int = 0, scale: float = 3.0) -> None:
        self.table = torch.randn(V, V, generator=torch.Generator().manual_seed(seed)) * scale
        self.calls: list[tuple[list[int], object]] = []

    def __call__(self, ids: torch.Tensor, state: int | None) -> tuple[torch.Tensor, int]:
        self.calls.append((ids[0].tolist(), state))
        return self.table[ids], (state or 0) + 1


def _greedy_chain(table: torch.Tensor, last: int, length: int) -> list[int]:
    out = []
    for _ in range(length):
        last = int(table[last].argmax())
        out.append(last)
    return out


def test_greedy_follows_the_argmax_chain_and_carries_the_state():
    model = BigramModel()
    prompt = [3, 1, 4]
    sample = generate(model, prompt, length=20, strategy="greedy")
    assert sample == _greedy_chain(model.table, prompt[-1], 20)
    assert model.calls[0] == (prompt, None)  # the prompt is fed once, from no state
    assert [ids for ids, _ in model.calls[1:]] == [[token] for token in sample[:-1]]  # then one token a call
    assert [state for _, state in model.calls[1:]] == list(range(1, 20))  # each call gets the last state


def test_seeded_sampling_is_reproducible_and_seeds_differ():
    model = BigramModel(scale=0.1)  # nearly uniform: high entropy
    first = generate(model, [0], length=60, strategy="multinomial", seed=7)
    assert generate(model, [0], length=60, strategy="multinomial", seed=7) == first
    assert generate(model, [0], length=60, strategy="multinomial", seed=8) != first
    assert len(set(first)) > V // 2  # it really samples, it does not follow one chain


def test_top_k_one_and_a_tiny_temperature_equal_greedy():
    model = BigramModel()
    greedy = generate(model, [5, 2], length=40, strategy="greedy")
    assert generate(model, [5, 2], length=40, top_k=1, seed=3) == greedy
    for temperature in (1e-4, 1e-30):  # the second would overflow without shifting the maximum to 0
        assert generate(model, [5, 2], length=40, temperature=temperature, seed=3) == greedy
    assert generate(model, [5, 2], length=40, strategy="greedy", temperature=9.0, top_k=4) == greedy


def _frequencies(logits: torch.Tensor, n: int, **kwargs: object) -> torch.Tensor:
    draws = next_token(logits.expand(n, -1), generator=torch.Generator().manual_seed(0), **kwargs)
    return torch.bincount(draws, minlength=logits.size(-1)).double() / n


def test_temperature_matches_the_tempered_softmax_and_concentrates():
    logits = torch.tensor([[2.0, 1.0, 0.5, 0.0, -1.0]])
    n = 40_000
    top_share = {}
    for temperature in (2.0, 1.0, 0.5, 0.25):
        measured = _frequencies(logits, n, temperature=temperature)
        expected = torch.softmax(logits[0].double() / temperature, dim=-1)
        assert torch.all((measured - expected).abs() <= 4 * (expected * (1 - expected) / n).sqrt() + 1e-9)
        top_share[temperature] = float(measured[0])
    assert top_share[2.0] < top_share[1.0] < top_share[0.5] < top_share[0.25]
    assert top_share[0.25] > 0.95


def test_top_k_keeps_only_the_k_largest_renormalised():
    logits = torch.tensor([[0.1, 2.0, -1.0, 1.5, 1.0, 0.0]])
    n = 40_000
    measured = _frequencies(logits, n, top_k=3)
    assert measured[[0, 2, 5]].sum() == 0
    kept = torch.tensor([1, 3, 4])
    expected = torch.softmax(logits[0, kept].double(), dim=-1)
    assert torch.all((measured[kept] - expected).abs() <= 4 * (expected * (1 - expected) / n).sqrt())
    assert torch.equal(_frequencies(logits, 100, top_k=99), _frequencies(logits, 100))  # k >= V: no limit


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"strategy": "beam"}, "strategy is 'beam'; allowed values: greedy, multinomial"),
        ({"temperature": 0.0}, "temperature is 0.0; allowed: a finite number > 0"),
        ({"temperature": -0.5}, "temperature is -0.5"),
        ({"temperature": math.nan}, "temperature is nan"),
        ({"top_k": 0}, "top_k is 0; allowed: an integer >= 1, or null"),
        ({"top_k": 2.5}, "top_k is 2.5"),
        ({"length": 0}, "length is 0; allowed: an integer >= 1"),
        ({"prompt_ids": []}, "The prompt is empty"),
    ],
)
def test_invalid_arguments(kwargs, message):
    model = BigramModel()
    args = {"prompt_ids": [1], "length": 5, **kwargs}
    with pytest.raises(ConfigError, match=message):
        generate(model, **args)
    assert model.calls == []  # refused before the model runs
    if "length" not in kwargs and "prompt_ids" not in kwargs:
        with pytest.raises(ConfigError, match=message):
            next_token(torch.zeros(1, V), **kwargs)


def test_next_token_wants_batch_by_vocab_logits():
    with pytest.raises(ValueError, match=r"\[batch, vocab\]; got shape \(1, 2, 12\)"):
        next_token(torch.zeros(1, 2, V))
