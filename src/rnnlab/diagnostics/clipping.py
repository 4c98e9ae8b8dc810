"""Gradient-clipping statistics: the total gradient norm of each optimizer step before clipping, whether
clipping changed the gradients, and the norms' distribution per epoch.

Lightning 2.6.6 calls `on_before_optimizer_step` before it clips (`Precision._after_closure` in
lightning/pytorch/plugins/precision/precision.py runs the callback and module hooks, then `_clip_gradients`;
under AMP the gradients are already unscaled there), so the norms read in that hook are pre-clip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from rnnlab.diagnostics.choices import CLIP_ALGORITHMS
from rnnlab.errors import ConfigError

QUANTILES = {"p50": 0.5, "p90": 0.9, "p99": 0.99}
METRICS = ("clip_fraction", "grad_norm_p50", "grad_norm_p90", "grad_norm_p99", "grad_norm_max")
SUMMARY_COLUMNS = ["epoch", "steps", "clip_val", *METRICS]


def optimizer_grads(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    """The gradients of the parameters `optimizer` steps (the ones Lightning clips)."""
    return [p.grad for group in optimizer.param_groups for p in group["params"] if p.grad is not None]


def step_statistics(grads: Sequence[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(total 2-norm, largest |element|) of `grads`, as 0-d tensors on their device (no host sync)."""
    if not grads:
        zero = torch.zeros(())
        return zero, zero
    norm = torch.nn.utils.get_total_norm(grads, norm_type=2.0)
    largest = torch.nn.utils.get_total_norm(grads, norm_type=float("inf"))
    return norm.detach().float(), largest.detach().float()


def clipped(norms: np.ndarray, largest: np.ndarray, clip_val: float | None, algorithm: str) -> np.ndarray:
    """Per step, whether clipping changes the gradients: the norm (algorithm `norm`) or the largest
    |element| (`value`) is above `clip_val`; never when `clip_val` is None or <= 0 (Lightning then skips)."""
    if algorithm not in CLIP_ALGORITHMS:
        raise ConfigError(
            f"trainer.gradient_clip_algorithm={algorithm!r} is not allowed; choose one of: "
            f"{', '.join(CLIP_ALGORITHMS)}"
        )
    if clip_val is None or clip_val <= 0:
        return np.zeros(len(norms), dtype=bool)
    return (norms if algorithm == "norm" else largest) > clip_val


def epoch_summary(
    epoch: int, steps: Sequence[tuple[torch.Tensor, torch.Tensor]], clip_val: float | None, algorithm: str
) -> tuple[dict, np.ndarray]:
    """(one row of `SUMMARY_COLUMNS`, the pre-clip norms) of an epoch's `step_statistics`."""
    stats = torch.stack([torch.stack(step).cpu() for step in steps]).numpy().astype(np.float64)
    norms = stats[:, 0]
    quantiles = np.quantile(norms, list(QUANTILES.values()))
    summary = {
        "epoch": epoch,
        "steps": len(norms),
        "clip_val": clip_val,
        "clip_fraction": float(clipped(norms, stats[:, 1], clip_val, algorithm).mean()),
        **{f"grad_norm_{name}": float(q) for name, q in zip(QUANTILES, quantiles, strict=True)},
        "grad_norm_max": float(norms.max()),
    }
    return summary, norms


def histogram_table(norms_by_epoch: Mapping[int, Sequence[float]], bins: int = 30) -> pd.DataFrame:
    """Rows epoch, bin_low, bin_high, count: per epoch, the norms counted in `bins` log-spaced bins shared by
    all epochs (zeros fall in the first bin)."""
    values = np.concatenate([np.asarray(v, dtype=np.float64) for v in norms_by_epoch.values()] or [[]])
    positive = values[values > 0]
    if not len(positive):
        return pd.DataFrame(columns=["epoch", "bin_low", "bin_high", "count"])
    low, high = positive.min(), positive.max()
    if low == high:
        low, high = low / 1.5, high * 1.5
    edges = np.geomspace(low, high, bins + 1)
    rows = []
    for epoch, norms in norms_by_epoch.items():
        counts, _ = np.histogram(np.clip(np.asarray(norms, dtype=np.float64), low, high), edges)
        rows += [(epoch, lo, hi, int(c)) for lo, hi, c in zip(edges[:-1], edges[1:], counts, strict=True)]
    return pd.DataFrame(rows, columns=["epoch", "bin_low", "bin_high", "count"])
