"""The `RecurrentEncoder` settings of a `model` config node (conf/model/*.yaml): every task's model."""

from __future__ import annotations

from typing import Any

ENCODER_KEYS = (
    "cell",
    "bidirectional",
    "num_layers",
    "hidden_size",
    "embedding_dim",
    "embedding_dropout",
    "dropout",
    "pooling",
    "init",
    "forget_bias",
)


def encoder_args(model_cfg: dict[str, Any]) -> dict[str, Any]:
    """The `RecurrentEncoder` settings of a `model` config node (the rest is for the head and training)."""
    return {key: model_cfg[key] for key in ENCODER_KEYS}
