"""Translation's pictures: an attention heat map per sentence, and the comparison's BLEU charts."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from rnnlab import plots


def attention_heatmap(
    weights: np.ndarray, source: Sequence[str], output: Sequence[str], path: str | os.PathLike, title: str
) -> None:
    """Rows: the output words (and <eos>), columns: the source words; cell (i, j) is the weight output word i
    gave source word j, each row summing to 1."""
    weights = np.asarray(weights, dtype=float)
    if weights.shape != (len(output), len(source)):
        raise ValueError(f"weights of shape {weights.shape} for {len(output)} outputs, {len(source)} sources")
    figure, ax = plots.new_figure(0.45 * len(source) + 2.0, 0.35 * len(output) + 1.6)
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(output)), output, fontsize=8)
    ax.set(xlabel="source (English)", ylabel="translation (French)", title=title)
    figure.colorbar(image, ax=ax, fraction=0.04, pad=0.02)
    plots.save(figure, path)


def bleu_bars(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Test BLEU per model."""
    plots.model_bars(table["test_bleu"], {}, path, "test BLEU", "Test BLEU (higher is better)")


def bleu_length_bars(buckets: pd.DataFrame, path: str | os.PathLike) -> None:
    """Test BLEU per source-length bucket, one bar per model: attention's gain on long sentences."""
    plots.score_by_length(buckets, path, score="test BLEU", length="source length (words)", top=None)
