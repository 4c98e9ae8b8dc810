"""PNG figures for the reports, one function per figure: each draws its data and writes `path`.

Figures are built with matplotlib's object API (`Figure`, no pyplot): nothing opens a window or needs a
display, and no global figure state is left behind.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import EngFormatter

DPI = 120


def new_figure(width: float = 5.0, height: float = 4.0) -> tuple[Figure, Axes]:
    """A figure with one axes."""
    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure, figure.add_subplot()


def save(figure: Figure, path: str | os.PathLike) -> None:
    figure.savefig(path, format="png")


def evenly_spaced(length: int, count: int) -> list[int]:
    """Indices of `count` of `length` items, evenly spaced from the first to the last (all of them when there
    are no more): the points of a thinned curve, the sentences of the attention heat maps."""
    if length <= count:
        return list(range(length))
    return np.unique(np.linspace(0, length - 1, count).round().astype(int)).tolist()


def roc_curve(
    fpr: Sequence[float],
    tpr: Sequence[float],
    path: str | os.PathLike,
    title: str = "ROC",
    auroc: float | None = None,
) -> None:
    """True against false positive rate, with the chance diagonal; `auroc` goes into the legend."""
    figure, ax = new_figure()
    ax.plot(fpr, tpr, label="model" if auroc is None else f"AUROC {auroc:.4f}")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="chance")
    ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.legend(loc="lower right")
    save(figure, path)


def precision_recall_curve(
    recall: Sequence[float],
    precision: Sequence[float],
    path: str | os.PathLike,
    title: str = "Precision-recall",
) -> None:
    """Precision against recall."""
    figure, ax = new_figure()
    ax.plot(recall, precision)
    ax.set(xlabel="recall", ylabel="precision", title=title, xlim=(0, 1), ylim=(0, 1.02))
    save(figure, path)


def confusion_matrix(
    matrix: np.ndarray,
    label_names: Sequence[str],
    path: str | os.PathLike,
    title: str = "Confusion matrix",
) -> None:
    """Counts with rows = actual and columns = predicted class, each cell annotated."""
    matrix = np.asarray(matrix)
    figure, ax = new_figure(4.0 + 0.4 * len(label_names), 3.5 + 0.4 * len(label_names))
    image = ax.imshow(matrix, cmap="Blues")
    figure.colorbar(image, ax=ax)
    ticks = range(len(label_names))
    ax.set(xticks=ticks, yticks=ticks, xlabel="predicted", ylabel="actual", title=title)
    ax.set_xticklabels(label_names)
    ax.set_yticklabels(label_names)
    dark = matrix > matrix.max() / 2
    for (row, column), count in np.ndenumerate(matrix):
        ax.text(
            column,
            row,
            f"{count:,}",
            ha="center",
            va="center",
            color="white" if dark[row, column] else "black",
        )
    save(figure, path)


def bucket_accuracy(
    buckets: Sequence[str],
    acc: Sequence[float | None],
    n: Sequence[int],
    path: str | os.PathLike,
    title: str = "Accuracy by review length",
) -> None:
    """One bar per bucket labelled with its accuracy and size; an empty bucket (acc None) is marked so."""
    heights = [0.0 if a is None else a for a in acc]
    figure, ax = new_figure()
    bars = ax.bar(buckets, heights)
    labels = ["empty" if a is None else f"{a:.3f}\nn={count:,}" for a, count in zip(acc, n, strict=True)]
    ax.bar_label(bars, labels=labels, fontsize=8)
    ax.set(xlabel="review length (tokens before truncation)", ylabel="accuracy", title=title, ylim=(0, 1.15))
    save(figure, path)


def accuracy_vs_params(
    table: pd.DataFrame, path: str | os.PathLike, classical: Mapping[str, str] | None = None
) -> None:
    """Test accuracy against parameter count, one labelled point per model (rows of the comparison table);
    rows named in `classical` (a non-neural baseline) are crosses labelled with their text there."""
    classical = classical or {}
    figure, ax = new_figure(5.5, 4.0)
    neural = table.drop(index=list(classical), errors="ignore")
    ax.scatter(neural["params"], neural["test_acc"], label="recurrent models")
    others = table.loc[[model for model in table.index if model in classical]]
    if len(others):
        ax.scatter(others["params"], others["test_acc"], marker="X", s=70, color="black", label="baseline")
    for model, row in table.iterrows():
        text = classical.get(str(model), str(model))
        ax.annotate(text, (row["params"], row["test_acc"]), textcoords="offset points", xytext=(5, 4))
    ax.set(xlabel="learned parameters", ylabel="test accuracy", title="Accuracy vs parameters")
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 500k, 4M
    ax.set_xlim(0, table["params"].max() * 1.25)
    ax.margins(y=0.15)
    ax.grid(alpha=0.3)
    if len(others):
        ax.legend(fontsize=8, loc="best")
    save(figure, path)


def score_by_length(
    buckets: pd.DataFrame,
    path: str | os.PathLike,
    classical: Mapping[str, str] | None = None,
    score: str = "test accuracy",
    length: str = "review length (tokens before truncation)",
    top: float | None = 1.0,
) -> None:
    """Grouped bars: a test score per length bucket (columns), one bar per model (rows); rows named in
    `classical` get hatched grey bars and their text there as legend label. `top`: the y axis's upper end
    (None: from the data)."""
    classical = classical or {}
    figure, ax = new_figure(7.0, 4.0)
    width = 0.8 / max(len(buckets), 1)
    positions = np.arange(len(buckets.columns))
    for i, (model, row) in enumerate(buckets.iterrows()):
        style = {"color": "lightgrey", "hatch": "//", "edgecolor": "black"} if model in classical else {}
        label = classical.get(str(model), str(model))
        ax.bar(positions + i * width, row.to_numpy(dtype=float), width, label=label, **style)
    ax.set_xticks(positions + width * (len(buckets) - 1) / 2, buckets.columns)
    values = buckets.to_numpy(dtype=float)
    low = np.nanmin(values) if buckets.size else 0.0
    high = top if top is not None else (np.nanmax(values) * 1.15 if buckets.size else 1.0)
    ax.set(
        xlabel=length,
        ylabel=score,
        title=f"{score.capitalize()} by {length.split(' (')[0]}",
        ylim=(max(0.0, low - 0.05 * high), high),
    )
    ax.legend(ncols=len(buckets), loc="upper center", fontsize=8)
    ax.grid(axis="y", alpha=0.3)
    save(figure, path)


def model_bars(
    values: pd.Series, references: dict[str, float], path: str | os.PathLike, ylabel: str, title: str
) -> None:
    """One bar per model (index of `values`) with labelled horizontal reference lines (baselines)."""
    figure, ax = new_figure(6.0, 4.0)
    bars = ax.bar([str(model) for model in values.index], values.to_numpy(dtype=float))
    ax.bar_label(bars, fmt="%.3f", fontsize=8)
    for (name, level), style in zip(references.items(), ("--", ":", "-."), strict=False):
        ax.axhline(level, color="black", linestyle=style, linewidth=1.0, label=f"{name} {level:.3f}")
    ax.set(ylabel=ylabel, title=title)
    if references:
        ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="y", alpha=0.3)
    save(figure, path)
