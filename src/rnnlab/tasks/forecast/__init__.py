"""Time-series forecasting: a series from a PyPI package (or a CSV), gaps filled, split in time, scaled on
train; `SequenceForecaster` on sliding windows; MAE/RMSE/MAPE in the series' units beside the naive and
seasonal-naive baselines on the same test windows, and a forecast-vs-actual plot."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from omegaconf import DictConfig

from rnnlab.config import resolve_path, section
from rnnlab.errors import LayoutError
from rnnlab.io import atomic_dir, write_json
from rnnlab.rules import choice, integer, items, nullable, refused, text
from rnnlab.tasks import Built, Comparison, Evaluated, optim_args, refused_deployment
from rnnlab.tasks.forecast.series import MISSING, SCALINGS, load_raw_series, prepare_series
from rnnlab.tasks.forecast.series import SOURCE_KINDS as SERIES_SOURCES

if TYPE_CHECKING:  # the functions import what they use: validation and the data stages need no torch
    import numpy as np

    from rnnlab.tasks.forecast.forecaster import SequenceForecaster
    from rnnlab.tasks.forecast.windows import ForecastDataModule

HAS_TEST = True
DEPLOYS = False  # export and register refuse, naming NOT_DEPLOYED
NOT_DEPLOYED = (
    "its evaluate stage writes each model's test forecasts beside the naive baselines "
    "(reports/<data>/eval/<model>/plots/forecast.csv)"
)
RAW_FILE = "series.csv"
COMPARE = Comparison(
    columns={
        "params": ("train", "params"),
        "epochs": ("train", "epochs"),
        "train_seconds": ("train", "train_seconds"),
        "val_loss": ("train", "val_loss_best"),
        "test_mae": ("eval", "mae"),
        "test_rmse": ("eval", "rmse"),
        "test_mape": ("eval", "mape"),
        "naive_mae": ("eval", "naive_mae"),
        "seasonal_naive_mae": ("eval", "seasonal_naive_mae"),
    },
    rank_by="val_loss",
    higher_is_better=False,
)
COMPARE_HEADER = (
    "Test MAE, RMSE (series units) and MAPE (%) over every test window; the naive (last value) and "
    "seasonal-naive baselines are scored on the same windows. val_loss: MSE of the scaled target."
)
MONITORS = {"val/loss": "min", "val/mae_scaled": "min"}
SOURCE_KINDS = SERIES_SOURCES
RULES = {
    "data.columns.time": nullable(text(), "rows are equally spaced, in file order"),
    "data.columns.target": text(),
    "data.columns.features": items(text(), unique=True),
    "data.missing": choice(MISSING),
    "data.scaling": choice(SCALINGS),
    "data.window.lookback": integer(1),
    "data.window.horizon": integer(1),
    "data.window.stride": integer(1),
    "data.seasonal_period": integer(1),
    "data.max_rows": nullable(integer(1), "all rows"),
    "eval.plot_windows": integer(1),
}


def relations(cfg: dict[str, Any], key: str, trained: dict[str, Any]) -> Iterator[str]:
    data = cfg.get("data") or {}
    columns = data.get("columns") or {}
    features = columns.get("features") or []
    if "target" in columns and columns["target"] not in features:
        yield refused("data.columns.target", columns["target"], f"one of data.columns.features {features}")
    lookback, period = (data.get("window") or {}).get("lookback"), data.get("seasonal_period")
    if lookback is not None and period is not None and period > lookback:
        yield refused(
            "data.seasonal_period",
            period,
            f"an integer <= data.window.lookback ({lookback}): the seasonal-naive baseline "
            "repeats the last season of the inputs",
        )


def download(cfg: DictConfig) -> dict[str, Any]:
    """The series as a CSV in `paths.raw_dir` (+ source.json): from the installed package, or a CSV."""
    frame, info = load_raw_series(
        section(cfg, "data.source"),
        cfg.data.name,
        resolve_path(cfg.paths.downloads_dir),
        **section(cfg, "data.download"),
    )
    with atomic_dir(resolve_path(cfg.paths.raw_dir)) as out:
        frame.to_csv(out / RAW_FILE, index=False)
        write_json(out / "source.json", info)
    return {"source": info.get("uri") or info.get("file"), "rows": len(frame), "columns": len(frame.columns)}


def prepare(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Gaps filled, time-ordered split, scaler fitted on train: `paths.prepared_dir`/series.{npz,json}."""
    raw = resolve_path(cfg.paths.raw_dir) / RAW_FILE
    if not raw.is_file():
        raise LayoutError(f"{raw} is missing: run the download stage first")
    prepared = prepare_series(pd.read_csv(raw), cfg.data)
    prepared.save(resolve_path(cfg.paths.prepared_dir))
    facts = prepared.facts
    summary = {"rows": facts["rows"], **facts["split_rows"], "missing_filled": facts["missing_filled"]}
    return facts, summary


def data_dir(cfg: DictConfig) -> Path:
    return resolve_path(cfg.paths.prepared_dir)


def datamodule(cfg: DictConfig) -> ForecastDataModule:
    from rnnlab.tasks.forecast.windows import ForecastDataModule

    loader = section(cfg, "data.loader")
    return ForecastDataModule(
        data_dir(cfg),
        **section(cfg, "data.window"),
        batch_size=loader["batch_size"],
        num_workers=loader["num_workers"],
        seed=cfg.seed,
    )


def build_model(cfg: DictConfig, model_cfg: dict[str, Any], data: ForecastDataModule) -> Built:
    from rnnlab.models.build import encoder_args
    from rnnlab.tasks.forecast.forecaster import SequenceForecaster

    model = SequenceForecaster(
        data.num_features,
        data.horizon,
        encoder_args(model_cfg),
        **optim_args(cfg),
        head_dropout=model_cfg["head_dropout"],
    )
    params = {"num_features": data.num_features, "horizon": data.horizon, "features": data.prepared.columns}
    return Built(model, params)


def callbacks(
    cfg: DictConfig, model_cfg: dict[str, Any], data: ForecastDataModule, diagnostics_dir: Path
) -> list:
    return []


def artifacts(cfg: DictConfig) -> list[Path]:
    return [data_dir(cfg) / "series.json"]  # columns, scaler (train-only mean/std), data facts


def load_model(checkpoint: Path) -> SequenceForecaster:
    from rnnlab.tasks.forecast.forecaster import SequenceForecaster

    return SequenceForecaster.load_from_checkpoint(checkpoint, map_location="cpu")


def predict(model: SequenceForecaster, data: ForecastDataModule, split: str) -> np.ndarray:
    """The model's forecasts for every window of `split`, in the series' units: [windows, horizon]."""
    import torch

    model.eval()
    with torch.no_grad():
        scaled = [model(batch["inputs"], batch["lengths"]) for batch in data.loader(split, shuffle=False)]
    return data.prepared.inverse_target(torch.cat(scaled).numpy())


def evaluate(
    cfg: DictConfig, name: str, model: SequenceForecaster, data: ForecastDataModule, folder: Path
) -> Evaluated:
    """Test metrics of the model and of both baselines on the same windows; forecast.{csv,png}."""
    from rnnlab.tasks.forecast.forecasting import (
        BASELINES,
        baseline_report,
        forecast_metrics,
        forecast_plot,
        forecast_table,
    )

    trained = (model.hparams.num_features, model.hparams.horizon)
    if trained != (data.num_features, data.horizon):
        raise LayoutError(
            f"the {name} checkpoint forecasts {trained[1]} steps from {trained[0]} features, but the data "
            f"settings give {data.horizon} from {data.num_features}: run `train@{name}` again"
        )
    test, prepared, period = data.datasets["test"], data.prepared, int(cfg.data.seasonal_period)
    predicted = predict(model, data, "test")
    scores = forecast_metrics(predicted, prepared.inverse_target(test.targets()))
    baselines = baseline_report(test, prepared, period)
    report = {**scores, "windows": len(test), "horizon": test.horizon, "seasonal_period": period}
    for baseline in BASELINES:
        report.update({f"{baseline}_{key}": value for key, value in baselines[baseline].items()})
        report[f"mae_vs_{baseline}"] = scores["mae"] / baselines[baseline]["mae"]
    write_json(folder / "metrics.json", report)
    figures = folder / "plots"
    figures.mkdir()
    windows = int(cfg.eval.plot_windows)
    table = forecast_table(test, prepared, predicted, period, windows, figures / "forecast.csv")
    forecast_plot(
        table["actual"],
        table["model"],
        {b: table[b] for b in BASELINES},
        figures / "forecast.png",
        title=f"Test forecast vs actual, {name} (horizon {test.horizon})",
        steps=table["step"],
        ylabel=prepared.target,
    )
    mlflow = {f"test/{key}": float(value) for key, value in report.items() if key != "seasonal_period"}
    facts = {k: f"{report[k]:.4f}" for k in ("mae", "rmse", "mape", "naive_mae", "seasonal_naive_mae")}
    return Evaluated(report, mlflow, facts)


def compare_plots(table: pd.DataFrame, folder: Path) -> None:
    """Test MAE per model against the two baselines (the same for every model: the same windows)."""
    from rnnlab import plots

    references = {"naive": table["naive_mae"].iloc[0], "seasonal naive": table["seasonal_naive_mae"].iloc[0]}
    plots.model_bars(table["test_mae"], references, folder / "test_mae.png", "test MAE", "Forecast error")


export, registry_name, register = refused_deployment("forecast", NOT_DEPLOYED)
