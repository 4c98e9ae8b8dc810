"""The comparison table across models, its markdown, its plots, and a missing report."""

from __future__ import annotations

import math

import pytest

from rnnlab import plots
from rnnlab.comparison import best_model, comparison_table, length_buckets, read_reports, to_markdown
from rnnlab.errors import LayoutError
from rnnlab.io import write_json
from rnnlab.tasks import Comparison
from rnnlab.tasks.classification import COMPARE

BUCKETS = ("<=100", "101-200", ">200")


def write_reports(reports_dir, model: str, params: int, acc: float, bucket_acc: list[float | None]) -> None:
    write_json(reports_dir / "train" / f"{model}.json", {
        "model": model, "run_id": f"id-{model}", "params": params, "epochs": 3, "train_seconds": 12.5,
        "val_acc_best": acc + 0.01, "train_seq_per_s": 321.0, "test/acc": acc,
    })
    write_json(reports_dir / "eval" / model / "metrics.json", {
        "acc": acc, "precision": 0.8, "recall": 0.7, "f1": 0.75, "auroc": 0.9, "loss": 0.35, "n": 100,
        "length_buckets": {name: {"acc": a, "n": 10} for name, a in zip(BUCKETS, bucket_acc, strict=True)},
    })


@pytest.fixture
def reports_dir(tmp_path):
    write_reports(tmp_path, "rnn", 1_000, 0.80, [0.9, 0.8, 0.6])
    write_reports(tmp_path, "lstm", 4_000, 0.88, [0.9, 0.88, None])
    return tmp_path


def test_table_has_one_row_per_model_with_sources_joined(reports_dir):
    table = comparison_table(read_reports(["rnn", "lstm"], reports_dir), COMPARE)
    assert list(table.index) == ["rnn", "lstm"]
    assert table.at["lstm", "params"] == 4_000 and table.at["lstm", "test_acc"] == 0.88
    assert table.at["rnn", "val_acc"] == pytest.approx(0.81) and table.at["rnn", "run_id"] == "id-rnn"
    buckets = length_buckets(table)
    assert list(buckets.columns) == list(BUCKETS)
    assert buckets.at["rnn", ">200"] == 0.6 and math.isnan(buckets.at["lstm", ">200"])


def test_markdown_shows_percentages_and_thousands(reports_dir):
    text = to_markdown(comparison_table(read_reports(["rnn", "lstm"], reports_dir), COMPARE), COMPARE)
    header, _, first, second = text.splitlines()[:4]
    assert "test_acc" in header and "acc_len <=100" in header and "run_id" not in header
    assert " rnn |" in first and "80.00" in first and "1,000" in first and "60.00" in first
    assert " lstm |" in second and "88.00" in second and "nan" in second


def test_best_model_follows_the_task_ranking(reports_dir):
    table = comparison_table(read_reports(["rnn", "lstm"], reports_dir), COMPARE)
    assert best_model(table, COMPARE) == "lstm"  # higher val_acc
    lower_is_better = Comparison({"val_acc": ("train", "val_acc_best")}, "val_acc", higher_is_better=False)
    assert best_model(table, lower_is_better) == "rnn"


def test_missing_report_names_the_file_and_the_stage(reports_dir):
    with pytest.raises(LayoutError, match=r"gru.*metrics\.json.*dvc repro evaluate@gru"):
        read_reports(["rnn", "gru"], reports_dir)


def test_comparison_plots_are_png_files(reports_dir, tmp_path):
    table = comparison_table(read_reports(["rnn", "lstm"], reports_dir), COMPARE)
    plots.accuracy_vs_params(table, tmp_path / "params.png")
    plots.accuracy_by_length(length_buckets(table), tmp_path / "length.png")
    for name in ("params.png", "length.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
