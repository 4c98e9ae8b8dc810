"""Greedy and beam-search decoding for a batch of sentences, from their encoded memory and initial state.

Both decode at most `max_len` steps; a hypothesis ends at `<eos>` (one that has not ended by then is cut).
`<pad>`, `<bos>` and `<oov>` are never generated (their logits are masked before the softmax: a translation
uses words the model knows). A hypothesis's
score is its log-probability under that distribution, `<eos>` included; its length counts `<eos>` too.

Beam search keeps `beam_size` hypotheses per sentence in one [B*K] batch. A finished hypothesis stays in
its slot and can only be extended by a free `<pad>` (log-probability 0), so it competes with the growing
ones until the end. Candidates are ranked by the GNMT-normalised score (Wu et al. 2016)
log p(y) / ((5 + |y|) / 6) ** alpha, with alpha = `length_penalty` (0: the plain log-probability; larger
alpha favours longer translations); among the growing hypotheses, which all have one length, that is the
plain log-probability order. The best-ranked hypothesis of each sentence is returned.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from rnnlab.errors import ConfigError
from rnnlab.tasks.translate.attention import Memory
from rnnlab.tasks.translate.decoder import AttentionDecoder, DecoderState


@dataclass(frozen=True)
class Decoding:
    """How `decode` searches: beam width (1: greedy), GNMT length penalty alpha, longest output in words."""

    beam_size: int = 5
    length_penalty: float = 0.6
    max_len: int = 40


@dataclass(frozen=True)
class SpecialIds:
    """The target vocabulary's special token ids."""

    pad: int = 0
    bos: int = 2
    eos: int = 3
    oov: int = 1


@dataclass
class Hypothesis:
    """A translation: target ids (without `<bos>`/`<eos>`), its log-probability, and the attention weights
    [len(tokens), source length] (row i: the weights that predicted tokens[i]; None without attention)."""

    tokens: list[int]
    score: float
    attention: torch.Tensor | None


def length_penalty(lengths: torch.Tensor, alpha: float) -> torch.Tensor:
    """GNMT's ((5 + |y|) / 6) ** alpha (1 when alpha is 0)."""
    return ((5.0 + lengths.to(torch.float32)) / 6.0) ** alpha


def next_log_probs(decoder: AttentionDecoder, out: torch.Tensor, ids: SpecialIds) -> torch.Tensor:
    """Log-probabilities [N, V] of the next token, `<pad>`, `<bos>` and `<oov>` excluded."""
    logits = decoder.project(out)
    logits[:, [ids.pad, ids.bos, ids.oov]] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def _hypotheses(
    tokens: torch.Tensor,
    scores: torch.Tensor,
    attention: torch.Tensor | None,
    mask: torch.Tensor,
    eos_id: int,
) -> list[Hypothesis]:
    """Cut each row of `tokens` [B, T] at its first `<eos>`; attention [B, T, S] also to the source length."""
    result = []
    for row, generated in enumerate(tokens.tolist()):
        length = generated.index(eos_id) if eos_id in generated else len(generated)
        weights = None
        if attention is not None:
            weights = attention[row, :length, : int(mask[row].sum())].cpu()
        result.append(Hypothesis(generated[:length], float(scores[row]), weights))
    return result


def _check(max_len: int, beam_size: int = 1) -> None:
    if not isinstance(max_len, int) or max_len < 1:
        raise ConfigError(f"max_len={max_len!r} must be a positive integer")
    if not isinstance(beam_size, int) or beam_size < 1:
        raise ConfigError(f"beam_size={beam_size!r} must be a positive integer")


@torch.no_grad()
def greedy(
    decoder: AttentionDecoder, memory: Memory, state: DecoderState, ids: SpecialIds, max_len: int = 50
) -> list[Hypothesis]:
    """The most probable next token at each step, for every sentence of the batch at once."""
    _check(max_len)
    batch = memory.mask.size(0)
    tokens = torch.full((batch,), ids.bos, dtype=torch.long, device=memory.mask.device)
    finished = torch.zeros(batch, dtype=torch.bool, device=tokens.device)
    scores = torch.zeros(batch, device=tokens.device)
    chosen, weights = [], []
    for _ in range(max_len):
        out, state, attention = decoder.step(decoder.embed(tokens), state, memory)
        best, tokens = next_log_probs(decoder, out, ids).max(dim=-1)
        scores += best.masked_fill(finished, 0.0)
        chosen.append(tokens)
        weights.append(attention)
        finished |= tokens == ids.eos
        if finished.all():
            break
    attention = None if weights[0] is None else torch.stack(weights, dim=1)
    return _hypotheses(torch.stack(chosen, dim=1), scores, attention, memory.mask, ids.eos)


@torch.no_grad()
def beam_search(
    decoder: AttentionDecoder,
    memory: Memory,
    state: DecoderState,
    ids: SpecialIds,
    beam_size: int,
    alpha: float = 0.0,
    max_len: int = 50,
) -> list[Hypothesis]:
    """The best of `beam_size` hypotheses per sentence (see the module docstring for the ranking)."""
    _check(max_len, beam_size)
    batch, beams, device = memory.mask.size(0), beam_size, memory.mask.device
    rows = torch.arange(batch, device=device).repeat_interleave(beams)  # sentence of each [B*K] row
    memory, state = memory.select(rows), state.select(rows)
    scores = torch.zeros(batch, beams, device=device)
    scores[:, 1:] = float("-inf")  # all beams start identical: expand the first only
    finished = torch.zeros(batch, beams, dtype=torch.bool, device=device)
    lengths = torch.zeros(batch, beams, dtype=torch.long, device=device)
    tokens = torch.full((batch * beams,), ids.bos, dtype=torch.long, device=device)
    history = torch.zeros(batch * beams, 0, dtype=torch.long, device=device)
    attention_history: torch.Tensor | None = None
    offsets = (torch.arange(batch, device=device) * beams).unsqueeze(1)
    for step in range(max_len):
        out, state, attention = decoder.step(decoder.embed(tokens), state, memory)
        logp = next_log_probs(decoder, out, ids).view(batch, beams, -1)
        vocab = logp.size(-1)
        ended = torch.full_like(logp[0, 0], float("-inf"))
        ended[ids.pad] = 0.0  # a finished hypothesis continues with free padding only
        logp = torch.where(finished.unsqueeze(-1), ended, logp)
        total = scores.unsqueeze(-1) + logp
        new_lengths = torch.where(finished, lengths, step + 1)
        ranked = total / length_penalty(new_lengths, alpha).unsqueeze(-1)
        flat = ranked.view(batch, -1).topk(beams, dim=1).indices  # [B, K], best first
        origin, tokens = flat // vocab, flat % vocab
        scores = total.view(batch, -1).gather(1, flat)
        lengths = new_lengths.gather(1, origin)
        finished = finished.gather(1, origin) | (tokens == ids.eos)
        index = (offsets + origin).view(-1)
        state = state.select(index)
        tokens = tokens.view(-1)
        history = torch.cat([history.index_select(0, index), tokens.unsqueeze(1)], dim=1)
        if attention is not None:
            current = attention.index_select(0, index).unsqueeze(1)
            if attention_history is not None:
                current = torch.cat([attention_history.index_select(0, index), current], dim=1)
            attention_history = current
        if finished.all():
            break
    best = offsets.view(-1)  # the first of each sentence's beams ranks best
    kept = None if attention_history is None else attention_history.index_select(0, best)
    mask = memory.mask.index_select(0, best)
    return _hypotheses(history.index_select(0, best), scores[:, 0], kept, mask, ids.eos)
