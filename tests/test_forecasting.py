"""Forecast metrics against numpy, the naive and seasonal-naive baselines on the model's windows, the plot."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rnnlab.errors import ConfigError
from rnnlab.tasks.forecast.forecasting import (
    baseline_report,
    forecast_metrics,
    forecast_plot,
    forecast_table,
    naive_forecast,
    non_overlapping,
    seasonal_naive_forecast,
)
from rnnlab.tasks.forecast.windows import WindowDataset
from synthetic import PERIOD, periodic_frame, periodic_series


@pytest.fixture(scope="module")
def prepared():
    return periodic_series()


def test_metrics_equal_the_numpy_formulas():
    rng = np.random.default_rng(1)
    actual = rng.uniform(1, 5, (40, 6))
    pred = actual + rng.normal(0, 0.5, actual.shape)
    metrics = forecast_metrics(pred, actual)
    error = pred - actual
    assert metrics["mae"] == pytest.approx(np.abs(error).mean(), rel=1e-12)
    assert metrics["rmse"] == pytest.approx(np.sqrt((error**2).mean()), rel=1e-12)
    assert metrics["mape"] == pytest.approx(100 * np.abs(error / actual).mean(), rel=1e-12)
    with pytest.raises(ValueError, match="do not match"):
        forecast_metrics(pred[:, :3], actual)


def test_naive_and_seasonal_naive_by_hand():
    context = np.array([[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0]])
    np.testing.assert_array_equal(naive_forecast(context, 3), [[4, 4, 4], [8, 8, 8]])
    np.testing.assert_array_equal(seasonal_naive_forecast(context, 5, 2), [[3, 4, 3, 4, 3], [7, 8, 7, 8, 7]])
    np.testing.assert_array_equal(seasonal_naive_forecast(context[0], 2, 4), [1, 2])
    with pytest.raises(ConfigError, match="seasonal_period 5 is longer than the lookback 4"):
        seasonal_naive_forecast(context, 2, 5)


def test_baselines_on_a_periodic_series(prepared):
    windows = WindowDataset.for_split(prepared, "test", 48, 12, 1)
    report = baseline_report(windows, prepared, PERIOD)
    assert (report["windows"], report["horizon"], report["split"]) == (90 - 12 + 1, 12, "test")
    assert report["seasonal_naive"]["mae"] < 1e-5 and report["seasonal_naive"]["rmse"] < 1e-5
    assert report["naive"]["mae"] > 1.0
    # the same windows, straight from the raw series: the test split starts at row 510
    raw = periodic_frame()["demand"].to_numpy()
    origins = 510 + np.arange(report["windows"])
    actual = raw[origins[:, None] + np.arange(12)]
    naive = np.repeat(raw[origins - 1, None], 12, axis=1)
    assert report["naive"]["mae"] == pytest.approx(np.abs(naive - actual).mean(), rel=1e-5)
    with pytest.raises(ConfigError, match="lookback 12"):
        baseline_report(WindowDataset.for_split(prepared, "test", 12, 1, 1), prepared, PERIOD)


def test_non_overlapping_windows():
    np.testing.assert_array_equal(non_overlapping(np.arange(10), 4), [0, 4, 8])
    origins = np.arange(0, 20, 3)  # windows 0, 2, 4, 6 start at 0, 6, 12, 18
    np.testing.assert_array_equal(non_overlapping(origins, 4), [0, 2, 4, 6])


def test_forecast_table_and_plot(prepared, tmp_path):
    windows = WindowDataset.for_split(prepared, "test", 48, 12, 1)
    actual = prepared.inverse_target(windows.targets())
    csv = tmp_path / "f.csv"
    table = forecast_table(windows, prepared, actual + 0.5, PERIOD, max_windows=3, path_csv=csv)
    assert list(table.columns) == ["step", "actual", "model", "naive", "seasonal_naive"]
    np.testing.assert_array_equal(table["step"], np.arange(36))  # 3 consecutive windows of 12 steps
    raw = periodic_frame()["demand"].to_numpy()[510:546]
    np.testing.assert_allclose(table["actual"], raw, rtol=1e-6)
    np.testing.assert_allclose(table["model"] - table["actual"], 0.5, rtol=1e-9)
    np.testing.assert_allclose(table["seasonal_naive"], raw, rtol=1e-6)
    pd.testing.assert_frame_equal(pd.read_csv(csv), table, check_dtype=False)
    with pytest.raises(ValueError, match="one forecast per window"):
        forecast_table(windows, prepared, actual[:5], PERIOD, max_windows=3)

    path = tmp_path / "plots" / "forecast.png"
    forecast_plot(
        table["actual"],
        table["model"],
        {b: table[b] for b in ("naive", "seasonal_naive")},
        path,
        title="test",
        steps=table["step"],
        ylabel="demand",
    )
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert [p.name for p in path.parent.iterdir()] == ["forecast.png"]  # no temporary file left
