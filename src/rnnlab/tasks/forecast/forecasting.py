"""Forecast metrics in the series' own units, the naive and seasonal-naive baselines on the model's own
windows, and the forecast-vs-actual table and plot."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch
from torchmetrics import MeanAbsoluteError, MeanAbsolutePercentageError, MeanSquaredError

from rnnlab import plots
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_file
from rnnlab.tasks.forecast.series import PreparedSeries
from rnnlab.tasks.forecast.windows import WindowDataset, check_positive_int

METRICS = {
    "mae": MeanAbsoluteError,
    "rmse": partial(MeanSquaredError, squared=False),
    "mape": MeanAbsolutePercentageError,  # a fraction in torchmetrics; reported in percent
}
BASELINES = ("naive", "seasonal_naive")


def forecast_metrics(pred: Any, actual: Any) -> dict[str, float]:
    """MAE, RMSE and MAPE (percent) of all forecast values; `pred` and `actual` in the same (original) units.

    MAPE divides by |actual| (torchmetrics clamps it at 1.17e-6): meaningless for a series that crosses zero.
    """
    pred = torch.as_tensor(pred, dtype=torch.float64)
    actual = torch.as_tensor(actual, dtype=torch.float64)
    if pred.shape != actual.shape:
        raise ValueError(
            f"forecasts of shape {tuple(pred.shape)} do not match the actual values' "
            f"shape {tuple(actual.shape)}"
        )
    results = {}
    for name, make in METRICS.items():
        metric = make()
        metric.set_dtype(torch.float64)
        metric.update(pred.reshape(-1), actual.reshape(-1))
        results[name] = float(metric.compute())
    results["mape"] *= 100.0
    return results


def naive_forecast(context_target: Any, horizon: int) -> np.ndarray:
    """Repeat the last observed value: [..., lookback] -> [..., horizon]."""
    context = np.asarray(context_target)
    return np.repeat(context[..., -1:], check_positive_int(horizon, "horizon"), axis=-1)


def seasonal_naive_forecast(context_target: Any, horizon: int, period: int) -> np.ndarray:
    """The value one season earlier (the last observed season repeated): [..., lookback] -> [..., horizon]."""
    context = np.asarray(context_target)
    horizon = check_positive_int(horizon, "horizon")
    period = check_positive_int(period, "data.seasonal_period")
    if period > context.shape[-1]:
        raise ConfigError(
            f"data.seasonal_period {period} is longer than the lookback {context.shape[-1]}: "
            "the seasonal-naive baseline needs a whole season inside each window's inputs. "
            "Set data.window.lookback >= data.seasonal_period."
        )
    reps = [1] * (context.ndim - 1) + [math.ceil(horizon / period)]
    return np.tile(context[..., -period:], reps)[..., :horizon]


def baseline_forecasts(
    dataset: WindowDataset, prepared: PreparedSeries, period: int
) -> dict[str, np.ndarray]:
    """The baselines' forecasts for every window of `dataset`, [windows, horizon] in original units."""
    context = prepared.inverse_target(dataset.context_targets())
    return {
        "naive": naive_forecast(context, dataset.horizon),
        "seasonal_naive": seasonal_naive_forecast(context, dataset.horizon, period),
    }


def baseline_report(dataset: WindowDataset, prepared: PreparedSeries, period: int) -> dict[str, Any]:
    """The baselines' metrics (original units) on the windows of `dataset`: the windows the model sees."""
    actual = prepared.inverse_target(dataset.targets())
    report: dict[str, Any] = {
        "split": dataset.split,
        "windows": len(dataset),
        "horizon": dataset.horizon,
        "seasonal_period": period,
    }
    for name, forecast in baseline_forecasts(dataset, prepared, period).items():
        report[name] = forecast_metrics(forecast, actual)
    return report


def non_overlapping(origins: np.ndarray, horizon: int) -> np.ndarray:
    """Indices of windows with disjoint targets: the first, then each next that starts after the last ends."""
    chosen, free_from = [], -math.inf
    for index, origin in enumerate(origins):
        if origin >= free_from:
            chosen.append(index)
            free_from = origin + horizon
    return np.asarray(chosen, dtype=np.int64)


def forecast_table(
    dataset: WindowDataset,
    prepared: PreparedSeries,
    predicted: Any,
    period: int,
    max_windows: int,
    path_csv: str | os.PathLike | None = None,
) -> pd.DataFrame:
    """Rows (step, actual, model, naive, seasonal_naive) in original units over the first `max_windows`
    non-overlapping windows of `dataset`; `step` is the row in the split. Written to `path_csv` if given.

    `predicted`: the model's forecasts for every window of `dataset`, [windows, horizon], original units.
    """
    predicted = np.asarray(predicted, dtype=np.float64)
    if predicted.shape != (len(dataset), dataset.horizon):
        raise ValueError(
            f"predicted has shape {predicted.shape}; expected one forecast per window of the "
            f"{dataset.split} split: {(len(dataset), dataset.horizon)}"
        )
    max_windows = check_positive_int(max_windows, "max_windows")
    picks = non_overlapping(dataset.origins, dataset.horizon)[:max_windows]
    series = {
        "actual": prepared.inverse_target(dataset.targets()),
        "model": predicted,
        **baseline_forecasts(dataset, prepared, period),
    }
    steps = dataset.origins[picks, None] + np.arange(dataset.horizon)
    columns = {"step": steps.ravel(), **{name: values[picks].ravel() for name, values in series.items()}}
    table = pd.DataFrame(columns)
    if path_csv is not None:
        with atomic_file(path_csv, "w", encoding="utf-8", newline="") as handle:
            table.to_csv(handle, index=False)
    return table


def forecast_plot(
    actual: Any,
    predicted: Any,
    baselines: Mapping[str, Any],
    path_png: str | os.PathLike,
    title: str = "Forecast vs actual",
    steps: Any = None,
    ylabel: str = "value",
) -> None:
    """Actual values, the model's forecast and each baseline over the same steps; PNG written atomically."""
    actual = np.asarray(actual, dtype=np.float64)
    steps = np.arange(len(actual)) if steps is None else np.asarray(steps)
    figure, ax = plots.new_figure(9.0, 3.8)
    ax.plot(steps, actual, color="black", linewidth=1.6, label="actual")
    ax.plot(steps, np.asarray(predicted, dtype=np.float64), linewidth=1.3, label="model")
    for name, values in baselines.items():
        ax.plot(steps, np.asarray(values, dtype=np.float64), linewidth=1.0, linestyle="--", label=name)
    ax.set(xlabel="step (row of the split)", ylabel=ylabel, title=title)
    ax.grid(alpha=0.3)
    figure.legend(ncols=2 + len(baselines), loc="outside lower center", fontsize=8)
    with atomic_file(path_png, "wb") as handle:
        plots.save(figure, handle)
