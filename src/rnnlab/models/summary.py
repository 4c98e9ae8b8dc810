"""A Keras-style model summary: parameters per layer, trainable vs frozen."""

from __future__ import annotations

from torch import nn


def parameter_rows(model: nn.Module, max_depth: int = 3) -> list[dict]:
    """One row per module down to `max_depth` (dotted-name depth) that owns parameters."""
    rows = []
    for name, module in model.named_modules():
        depth = name.count(".") + 1 if name else 0
        if not name or depth > max_depth:
            continue
        params = list(module.parameters())
        if not params:
            continue
        trainable = sum(p.numel() for p in params if p.requires_grad)
        total = sum(p.numel() for p in params)
        rows.append(
            {
                "layer": name,
                "type": type(module).__name__,
                "params": total,
                "trainable": trainable,
                "frozen": total - trainable,
            }
        )
    return rows


def model_summary(model: nn.Module, max_depth: int = 3) -> str:
    """The summary as a fixed-width text table with totals."""
    rows = parameter_rows(model, max_depth)
    width = max([len(r["layer"]) + 2 * r["layer"].count(".") for r in rows] + [5])
    lines = [f"{'Layer':<{width}}  {'Type':<16} {'Params':>12} {'Trainable':>12} {'Frozen':>10}"]
    lines.append("-" * len(lines[0]))
    for r in rows:
        label = "  " * r["layer"].count(".") + r["layer"]
        lines.append(
            f"{label:<{width}}  {r['type']:<16} {r['params']:>12,} {r['trainable']:>12,} {r['frozen']:>10,}"
        )
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    lines.append("-" * len(lines[0]))
    lines.append(f"Total params: {total:,}   Trainable: {trainable:,}   Frozen: {total - trainable:,}")
    return "\n".join(lines)
