"""Seeded selection of sentence pairs: a sample for smoke runs and a train/val/test split grouped by source.

Tatoeba translates many English sentences several times (up to 32 French versions of one sentence). A split
by pair would put one version in train and another in test, and the test score would reward memorising
the training pairs; `grouped_split` assigns whole groups (every pair of one source sentence) to one split.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from rnnlab.errors import ConfigError

SPLITS = ("train", "val", "test")


def sample_rows(n_rows: int, max_pairs: int | None, seed: int) -> np.ndarray:
    """Row numbers of a seeded sample of `max_pairs` of `n_rows` pairs, in file order (all when None or
    more). A sample, not the first rows: the Tatoeba file is sorted by length, its head is all short."""
    if max_pairs is None or max_pairs >= n_rows:
        return np.arange(n_rows)
    if isinstance(max_pairs, bool) or not isinstance(max_pairs, int | np.integer) or max_pairs < 1:
        raise ConfigError(f"data.max_pairs is {max_pairs!r}; allowed: a positive integer, or null (all).")
    return np.sort(np.random.default_rng(seed).choice(n_rows, size=max_pairs, replace=False))


def grouped_split(
    groups: Sequence[str], val_fraction: float, test_fraction: float, seed: int
) -> dict[str, np.ndarray]:
    """Row numbers (ascending) of each split, such that all rows of one group fall in the same split.

    The fractions are shares of the distinct groups (source sentences), rounded; val and test get at least
    one group each and train keeps at least one. The groups, numbered in order of first appearance, are
    shuffled by `seed` (numpy's PCG64).
    """
    for key, value in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
            raise ConfigError(f"data.split.{key} is {value!r}; allowed: a number strictly between 0 and 1.")
    number: dict[str, int] = {}  # group -> its number, in order of first appearance
    group_of_row = np.fromiter((number.setdefault(g, len(number)) for g in groups), np.int64, len(groups))
    n_groups = len(number)
    n_test = max(1, round(test_fraction * n_groups))
    n_val = max(1, round(val_fraction * n_groups))
    if n_test + n_val >= n_groups:
        raise ConfigError(
            f"data.split.val_fraction={val_fraction} and test_fraction={test_fraction} of {n_groups} "
            "distinct source sentences leave none to train: lower the fractions or use more pairs "
            "(data.max_pairs)."
        )
    split_of_group = np.zeros(n_groups, dtype=np.int8)  # 0 train, 1 val, 2 test
    order = np.random.default_rng(seed).permutation(n_groups)
    split_of_group[order[:n_test]] = 2
    split_of_group[order[n_test : n_test + n_val]] = 1
    split_of_row = split_of_group[group_of_row]
    return {name: np.flatnonzero(split_of_row == code) for code, name in enumerate(SPLITS)}
