"""Adversarial (AT) and virtual adversarial training (VAT) on normalised word embeddings, after Miyato, Dai &
Goodfellow, "Adversarial Training Methods for Semi-Supervised Text Classification" (ICLR 2017).

The embeddings are normalised with the frequency-weighted mean and variance over the vocabulary, so that a
perturbation of L2 norm ε means the same whatever the embeddings' scale. Each example's perturbation has
norm ε over its whole sequence and is zero at padded steps. AT adds the loss on the embedded batch moved
along the gradient of the loss; VAT adds the KL divergence between the predictions on the clean and on the
embedded batch moved in the direction one power iteration finds from a random one (labels unused); as in
the paper's code, the classifier computes it on the labelled batch and a batch of unlabelled texts joined
into one (`joined`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

LOSS_NAMES = {"at": "train/adv_loss", "vat": "train/vat_loss"}  # the added term's metric, per mode
VARIANCE_FLOOR = 1e-6  # added to the variance under the square root, as in the paper's code

Classify = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (embedded, lengths) -> logits


class NormalisedEmbedding(nn.Embedding):
    """An embedding whose table is normalised on every lookup: v̄ = (v - E[v]) / sqrt(Var[v] + 1e-6), with
    the mean and variance per dimension weighted by the tokens' training frequencies (buffer `frequencies`;
    the special tokens count 0). It shares the weight of the embedding it replaces (no new draws)."""

    def __init__(self, embedding: nn.Embedding, counts: Sequence[int] | None = None) -> None:
        super().__init__(
            embedding.num_embeddings, embedding.embedding_dim, embedding.padding_idx, _weight=embedding.weight
        )
        # None: uniform until a checkpoint's buffer is loaded over it
        weights = torch.ones(embedding.num_embeddings) if counts is None else torch.as_tensor(counts)
        if weights.shape != (embedding.num_embeddings,) or weights.sum() <= 0:
            raise ValueError(f"need {embedding.num_embeddings} token counts, not all zero")
        self.register_buffer("frequencies", weights.float() / weights.sum())

    def normalised_weight(self) -> torch.Tensor:
        freqs = self.frequencies.unsqueeze(1)
        mean = (freqs * self.weight).sum(0)
        var = (freqs * (self.weight - mean) ** 2).sum(0)
        return (self.weight - mean) / torch.sqrt(var + VARIANCE_FLOOR)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.normalised_weight(), self.padding_idx)


def step_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """[B, T, 1] float: 1 at real steps (the first `lengths[b]`, at least one, as the encoder counts them)."""
    lengths = lengths.clamp(min=1, max=steps)
    return (torch.arange(steps, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)


def scaled(direction: torch.Tensor, lengths: torch.Tensor, norm: float) -> torch.Tensor:
    """`direction` [B, T, E] zeroed at padded steps and scaled to L2 norm `norm` per example (over T and E);
    examples whose direction is zero stay zero. Divided by its largest entry first, so tiny gradients do not
    underflow when squared."""
    x = direction * step_mask(lengths, direction.size(1)).to(direction.dtype)
    peak = x.abs().amax(dim=(1, 2), keepdim=True)
    x = x / torch.where(peak > 0, peak, torch.ones_like(peak))
    length = torch.linalg.vector_norm(x, dim=(1, 2), keepdim=True)
    return norm * x / torch.where(length > 0, length, torch.ones_like(length))


def at_perturbation(loss: torch.Tensor, embedded: torch.Tensor, lengths: torch.Tensor, epsilon: float):
    """r_adv = ε g / ‖g‖₂ with g = ∂loss/∂embedded (constant: no gradient flows through it)."""
    (grad,) = torch.autograd.grad(loss, embedded, retain_graph=True)
    return scaled(grad, lengths, epsilon).detach()


def kl_divergence(clean_logits: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """KL(p(·|clean) ‖ p(·|perturbed)), averaged over the batch; the clean side is taken as constant."""
    target = F.log_softmax(clean_logits.detach(), dim=-1)
    return F.kl_div(F.log_softmax(logits, dim=-1), target, log_target=True, reduction="batchmean")


def vat_perturbation(
    classify: Classify,
    clean_logits: torch.Tensor,
    embedded: torch.Tensor,
    lengths: torch.Tensor,
    epsilon: float,
    xi: float,
) -> torch.Tensor:
    """r_vadv: one power iteration from a random direction d (torch's global generator) scaled to ξ, the
    gradient of the KL divergence at embedded + d scaled to ε (constant)."""
    d = scaled(torch.randn_like(embedded), lengths, xi).requires_grad_()
    kl = kl_divergence(clean_logits, classify(embedded.detach() + d, lengths))
    (grad,) = torch.autograd.grad(kl, d)
    return scaled(grad, lengths, epsilon).detach()


def joined(
    embedded: torch.Tensor,
    lengths: torch.Tensor,
    logits: torch.Tensor,
    more: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(embedded, lengths, logits) of two post-padded batches as one: rows of `more` after the first
    batch's, both padded with zeros to the longer width (padded steps: see `step_mask`)."""
    extra, extra_lengths, extra_logits = more
    steps = max(embedded.size(1), extra.size(1))
    rows = [F.pad(x, (0, 0, 0, steps - x.size(1))) for x in (embedded, extra)]
    return torch.cat(rows), torch.cat([lengths, extra_lengths]), torch.cat([logits, extra_logits])


def adversarial_loss(
    mode: str,
    classify: Classify,
    embedded: torch.Tensor,
    lengths: torch.Tensor,
    labels: torch.Tensor,
    clean_logits: torch.Tensor,
    clean_loss: torch.Tensor,
    epsilon: float,
    xi: float,
) -> torch.Tensor:
    """The term `mode` (at | vat) adds to the clean loss; gradients reach the parameters through
    `embedded` + the constant perturbation. AT needs `clean_loss` computed from an `embedded` that requires
    grad (with frozen embeddings, set it on the lookup before the clean forward)."""
    if mode == "at":
        r_adv = at_perturbation(clean_loss, embedded, lengths, epsilon)
        return F.cross_entropy(classify(embedded + r_adv, lengths), labels)
    r_vadv = vat_perturbation(classify, clean_logits, embedded, lengths, epsilon, xi)
    return kl_divergence(clean_logits, classify(embedded + r_vadv, lengths))
