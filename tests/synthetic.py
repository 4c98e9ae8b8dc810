"""Synthetic data for each task (encoded IMDB-like rows, a periodic series, a small text) and a runner for
`pipelines/train.py`, shared by tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from rnnlab.data.store import NO_LABEL, UNLABELLED, EncodedSplit
from rnnlab.data.vocab import Vocabulary
from rnnlab.io import write_json
from rnnlab.tasks.forecast.series import PreparedSeries, prepare_series

VOCAB_SIZE = 30  # ids 0 (<pad>) and 1 (<oov>), then w2 ... w29
SIGNAL = 5  # label 1 exactly when token 5 occurs
MAX_LEN = 20
SPLIT_ROWS = {"train": 200, "val": 60, "test": 60}
UNLABELLED_ROWS = 40  # fewer than the training rows: virtual adversarial training cycles through them
PERIOD, SERIES_ROWS = 24, 600  # a daily cycle of hourly values; split 420 / 90 / 90
TEXT = "".join(f"{i} little pigs, {i * 7 % 13} wolves.\n" for i in range(200))  # 5,335 characters


def class_word_table(
    path: Path, classes: tuple[str, ...], rows: int = 600, columns: tuple[str, str] = ("review", "topic")
) -> Path:
    """A CSV of texts of filler words with one word naming the class (`<label>word`); labels with stray
    spaces (every 7th row), a blank text (row 5) and a blank label (row 6)."""
    rng = np.random.default_rng(0)
    filler = [f"w{i}" for i in range(40)]
    texts, labels = [], []
    for i in range(rows):
        label = classes[i % len(classes)]
        words = list(rng.choice(filler, size=int(rng.integers(4, 16))))
        words.insert(int(rng.integers(len(words) + 1)), f"{label}word")
        texts.append(" ".join(words))
        labels.append(f" {label}" if i % 7 == 0 else label)  # ' alpha' and 'alpha' are one class
    texts[5], labels[6] = "  ", ""  # a blank text and a blank label: dropped and counted
    pd.DataFrame({columns[0]: texts, columns[1]: labels}).to_csv(path, index=False)
    return path


def write_vocab(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    tokens = [f"w{i}" for i in range(2, VOCAB_SIZE)]
    Vocabulary(tokens, list(range(1000, 1000 - len(tokens), -1))).save(folder / "vocab.json")


def synthetic_split(rows: int, rng: np.random.Generator) -> EncodedSplit:
    """Balanced, learnable rows: random tokens (never the signal) plus, for label 1, the signal somewhere."""
    labels = np.arange(rows) % 2
    rng.shuffle(labels)
    lengths = rng.integers(2, MAX_LEN + 1, size=rows)
    ids = np.zeros((rows, MAX_LEN), np.int32)
    choices = np.array([t for t in range(2, VOCAB_SIZE) if t != SIGNAL])
    for i, (length, label) in enumerate(zip(lengths, labels, strict=True)):
        ids[i, :length] = rng.choice(choices, size=length)
        if label:
            ids[i, rng.integers(length)] = SIGNAL
    return EncodedSplit(ids, lengths, lengths, labels)


def write_encoded(folder: Path, seed: int = 0) -> None:
    """An encode-stage output (post-padded, as in tests/test_datamodule.py) with ~200/60/60 rows and 40
    unlabelled ones."""
    rng = np.random.default_rng(seed)
    for split, rows in SPLIT_ROWS.items():
        synthetic_split(rows, rng).save(folder / split)
    unlabelled = synthetic_split(UNLABELLED_ROWS, rng)
    EncodedSplit(
        unlabelled.ids, unlabelled.lengths, unlabelled.lengths, np.full(UNLABELLED_ROWS, NO_LABEL)
    ).save(folder / UNLABELLED)
    meta = {"vocab_size": VOCAB_SIZE, "num_classes": 2, "padding": "post", "max_len": MAX_LEN}
    write_json(folder / "meta.json", meta)


def periodic_frame() -> pd.DataFrame:
    """An exactly periodic target (period 24) with a second, noisy feature."""
    t = np.arange(SERIES_ROWS)
    demand = 10 + 3 * np.sin(2 * np.pi * t / PERIOD) + np.cos(4 * np.pi * t / PERIOD)
    return pd.DataFrame({"demand": demand, "temp": np.random.default_rng(0).normal(20, 5, SERIES_ROWS)})


def periodic_series() -> PreparedSeries:
    """`periodic_frame` as the forecast task's prepare stage leaves it: split 70/15/15, scaled on train."""
    cfg = {
        "columns": {"time": None, "target": "demand", "features": ["demand", "temp"]},
        "missing": "error",
        "split": {"val_fraction": 0.15, "test_fraction": 0.15},
        "scaling": "standard",
    }
    return prepare_series(periodic_frame(), cfg)


def tiny_overrides(work: Path, encoded: Path, prepared: Path, uri: str) -> list[str]:
    """Hydra overrides that train a tiny model on the synthetic data into `work`, tracked at `uri`."""
    return [
        f"paths.encoded_dir={encoded}",
        f"paths.prepared_dir={prepared}",
        f"paths.models_dir={work / 'models'}",
        f"paths.runs_dir={work / 'runs'}",
        f"paths.reports_dir={work / 'reports'}",
        f"logger.tracking_uri={uri}",
        f"hydra.run.dir={work / 'hydra'}",
        f"hydra.sweep.dir={work / 'multirun'}",
        "trainer.accelerator=cpu",
        "trainer.enable_progress_bar=false",
        "model.hidden_size=8",
        "model.embedding_dim=8",
        "model.init_from=none",  # the synthetic data has no pretrain stage's word vectors
        "data.loader.batch_size=8",
        "optim.lr=0.03",  # learns the synthetic task within two epochs
    ]


def run_folders(work: Path, cell: str) -> list[Path]:
    """The finished one-off run folders of `cell` under `work` (`paths.runs_dir` of `tiny_overrides`), oldest
    first."""
    reports = sorted((work / "runs" / cell).glob("*/report.json"), key=lambda path: path.stat().st_mtime)
    return [report.parent for report in reports]


def stage_overrides(cell: str) -> list[str]:
    """Run pipelines/train.py as the DVC stage train@<cell> does, on the tiny settings of `tiny_overrides`."""
    return [
        f"+model_key={cell}",
        f"models.{cell}.hidden_size=8",
        f"models.{cell}.embedding_dim=8",
        f"models.{cell}.init_from=none",
    ]


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without the caller's MLflow/rnnlab settings, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "RNNLAB_"))}
    return {**env, **extra}


def run_stage(project_root: Path, stage: str, args: list[str], expect_rc: int = 0, timeout: int = 600):
    """Run pipelines/<stage>.py in a subprocess (clean environment) and check its exit status."""
    done = subprocess.run(
        [sys.executable, f"pipelines/{stage}.py", *args],
        cwd=project_root,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == expect_rc, f"{stage}.py exit {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done


def run_train(project_root: Path, args: list[str], expect_rc: int = 0, timeout: int = 600):
    return run_stage(project_root, "train", args, expect_rc, timeout)
