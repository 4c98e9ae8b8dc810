"""Stratified, seeded splits of labelled tables."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from rnnlab.errors import ConfigError


def stratified_split(
    table: pa.Table, fraction: float, seed: int, key: str = "fraction"
) -> tuple[pa.Table, pa.Table]:
    """Split `table` into (rest, held-out) with `fraction` of each label held out; row order is kept.

    `key` names the config setting in error messages (e.g. `data.split.val_fraction`).
    """
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"{key}={fraction} must be between 0 and 1 (exclusive)")
    from sklearn.model_selection import train_test_split  # here: seconds to import, not needed to validate

    labels = table.column("label").to_numpy()
    try:
        rest, held = train_test_split(
            np.arange(table.num_rows), test_size=fraction, stratify=labels, random_state=seed
        )
    except ValueError as error:  # too few rows of a label to put one on each side
        raise ConfigError(f"{key}={fraction} cannot split {table.num_rows} rows by label: {error}") from None
    return table.take(np.sort(rest)), table.take(np.sort(held))
