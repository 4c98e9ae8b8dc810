"""PNG figures of the diagnostics tables (matplotlib's object API, no display needed), and the epoch labels
they share: a measurement is taken at initialisation (`init`) or at the end of a 0-based training epoch."""

from __future__ import annotations

from typing import IO

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator, NullFormatter

from rnnlab.plots import DPI

INIT = "init"


def epochs_trained(label: str | int) -> int:
    """Epochs of training behind a measurement: 0 at `init`, e + 1 after 0-based epoch e."""
    return 0 if str(label) == INIT else int(label) + 1


def panels(count: int, rows: int = 1) -> tuple[Figure, np.ndarray]:
    """A figure with `rows` x `count` axes (a 2-D array of them)."""
    figure = Figure(figsize=(4.2 * count, 3.4 * rows), dpi=DPI, layout="constrained")
    return figure, np.atleast_2d(figure.subplots(rows, count, squeeze=False))


def gradient_flow(table: pd.DataFrame, out: IO[bytes]) -> None:
    """||dL/dh|| against distance from the output (log y): one panel per module, one line per epoch."""
    modules = list(dict.fromkeys(table["module"]))
    labels = sorted(dict.fromkeys(table["epoch"]), key=epochs_trained)
    colours = [f"C{i % 10}" for i in range(len(labels))]
    figure, axes = panels(len(modules))
    for ax, module in zip(axes[0], modules, strict=True):
        for label, colour in zip(labels, colours, strict=True):
            curve = table[(table["module"] == module) & (table["epoch"] == label)].sort_values("distance")
            name = INIT if str(label) == INIT else f"after epoch {label}"
            ax.plot(curve["distance"], curve["grad_norm"], color=colour, label=name)
        ax.set(yscale="log", xlabel="distance from the output d = T-1-t", ylabel="||dL/dh_t||", title=module)
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=8)
    figure.savefig(out, format="png")


def recurrent_weights(table: pd.DataFrame, out: IO[bytes]) -> None:
    """Spectral radius (top row) and largest singular value (bottom) of each gate's W_hh over training."""
    modules = list(dict.fromkeys(table["module"]))
    figure, axes = panels(len(modules), rows=2)
    steps = table["epoch"].map(epochs_trained)
    for column, module in enumerate(modules):
        for row, key in enumerate(("spectral_radius", "sigma_max")):
            ax = axes[row][column]
            for gate in dict.fromkeys(table.loc[table["module"] == module, "gate"]):
                rows = (table["module"] == module) & (table["gate"] == gate)
                ax.plot(steps[rows], table.loc[rows, key], marker="o", label=gate)
            ax.axhline(1.0, color="grey", linestyle="--", linewidth=0.8)
            ax.set(xlabel="epochs trained", ylabel=key.replace("_", " "), title=module)
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.grid(alpha=0.3)
        axes[0][column].legend(fontsize=8, title="gate")
    figure.savefig(out, format="png")


def clipping_histogram(table: pd.DataFrame, clip_val: float | None, out: IO[bytes]) -> None:
    """Per epoch, the distribution of pre-clip gradient norms (log-spaced bins) and the clipping threshold."""
    figure, axes = panels(1)
    ax = axes[0][0]
    for epoch, bins in table.groupby("epoch", sort=True):
        edges = np.append(bins["bin_low"].to_numpy(), bins["bin_high"].to_numpy()[-1])
        ax.stairs(bins["count"].to_numpy(), edges, label=f"epoch {epoch}")
    if clip_val:
        ax.axvline(clip_val, color="black", linestyle="--", label=f"gradient_clip_val {clip_val:g}")
    ax.set(
        xscale="log",
        xlabel="total gradient norm before clipping",
        ylabel="optimizer steps",
        title="Pre-clip gradient norms",
    )
    ax.xaxis.set_minor_formatter(NullFormatter())  # labelled decades only: minor labels collide
    ax.legend(fontsize=8)
    figure.savefig(out, format="png")
