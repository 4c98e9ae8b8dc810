"""Table sources (CSV, Parquet): columns, labels, splits, checksums and the download summary."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from rnnlab.data.sources import SourceSpec, acquire, read_table_source
from rnnlab.errors import ConfigError, DataSourceError, LayoutError


def _write_csv(path: Path, n: int = 100) -> Path:
    texts = [f"review {i}" for i in range(n)] + ["no label", None]
    labels = ["pos" if i % 5 < 2 else "neg" for i in range(n)] + [None, "pos"]
    pacsv.write_csv(pa.table({"body": texts, "sentiment": labels, "other": list(range(n + 2))}), path)
    return path


def _spec(uri: Path, **kw) -> SourceSpec:
    return SourceSpec(kind="table", uri=str(uri), text_column="body", label_column="sentiment", **kw)


def test_csv_string_labels_stratified_split(tmp_path):
    spec = _spec(_write_csv(tmp_path / "reviews.csv"), test_fraction=0.2, seed=3)
    tables, info = read_table_source(spec)
    assert info["label_names"] == ["neg", "pos"] and info["dropped_rows"] == {"uri": 2}
    assert info["row_hygiene"]["uri"] == {
        "rows": 102,
        "missing_text": 1,
        "missing_label": 1,
        "labels_stripped": 0,
    }
    assert info["reviews"] == {"train": 80, "test": 20}
    assert info["label_counts"]["test"] == {"neg": 12, "pos": 8}  # 60/40, as in the file
    assert tables["test"].column_names == ["text", "label", "review_id"]
    test_ids = tables["test"]["review_id"].to_pylist()
    assert test_ids == read_table_source(spec)[0]["test"]["review_id"].to_pylist()
    other_seed = read_table_source(_spec(spec.uri, test_fraction=0.2, seed=4))[0]
    assert test_ids != other_seed["test"]["review_id"].to_pylist()
    for row in tables["train"].to_pylist():  # review_id is the row number in the file
        number = int(row["review_id"].removeprefix("train/"))
        assert row["text"] == f"review {number}" and row["label"] == (number % 5 < 2)


def test_parquet_with_separate_test_file(tmp_path):
    train, test = tmp_path / "train.parquet", tmp_path / "test.parquet"
    pq.write_table(pa.table({"body": ["a", "b", "c", "d"], "sentiment": [5, 1, 2, 1]}), train)
    pq.write_table(pa.table({"body": ["e", "f"], "sentiment": [2, 5]}), test)
    tables, info = read_table_source(_spec(train, test_uri=str(test)))
    assert info["label_names"] == ["1", "2", "5"]
    assert tables["train"]["label"].to_pylist() == [2, 0, 1, 0]
    assert tables["test"]["label"].to_pylist() == [1, 2]
    assert tables["test"]["review_id"].to_pylist() == ["test/0", "test/1"]
    pq.write_table(pa.table({"body": ["g"], "sentiment": [7]}), test)
    with pytest.raises(DataSourceError, match=r"Test labels \[7\] never occur"):
        read_table_source(_spec(train, test_uri=str(test)))


def test_missing_column_lists_columns_present(tmp_path):
    spec = SourceSpec(kind="table", uri=str(_write_csv(tmp_path / "r.csv")), text_column="review")
    with pytest.raises(LayoutError, match="'review'.*columns present: body, sentiment, other"):
        read_table_source(spec)


def test_unsupported_table_extension(tmp_path):
    with pytest.raises(ConfigError, match=r"data\.source\.uri.*\.csv, \.csv\.gz, \.parquet"):
        read_table_source(_spec(tmp_path / "reviews.xlsx"))


def test_acquire_table_records_checksum(tmp_path):
    path = _write_csv(tmp_path / "reviews.csv")
    cfg = {"kind": "table", "uri": str(path), "text_column": "body", "label_column": "sentiment"}
    tables, info = acquire(cfg, "reviews", tmp_path / "dl", environ={}, progress=False)
    assert info["kind"] == "table" and len(info["sha256"]) == 64
    assert sum(info["reviews"].values()) == 100


def test_labels_are_stripped_and_counted(tmp_path):
    labels = [" pos", "pos ", "pos", "neg", " neg ", "neg"] * 10
    texts = [f"text {i}" for i in range(len(labels))]
    texts[0], labels[3] = "   ", "  "  # a blank text and a blank label: dropped, by reason
    path = tmp_path / "r.csv"
    pacsv.write_csv(pa.table({"body": texts, "sentiment": labels}), path)
    tables, info = read_table_source(_spec(path, test_fraction=0.2, seed=0))
    assert info["label_names"] == ["neg", "pos"]
    assert info["row_hygiene"]["uri"] == {
        "rows": 60,
        "missing_text": 1,
        "missing_label": 1,
        "labels_stripped": 31,
    }
    assert sum(info["reviews"].values()) == 58


def test_single_class_table_is_refused_with_its_counts(tmp_path):
    path = tmp_path / "r.csv"
    table = pa.table({"body": [f"t{i}" for i in range(30)], "sentiment": ["pos"] * 29 + [" pos"]})
    pacsv.write_csv(table, path)
    with pytest.raises(DataSourceError, match=r"'sentiment' has 1 class \('pos': 30 rows\).*at least two"):
        read_table_source(_spec(path))


def test_empty_text_column_names_the_column(tmp_path):
    path = tmp_path / "r.csv"
    table = pa.table({"body": pa.array([None] * 20, pa.string()), "sentiment": ["a", "b"] * 10})
    pacsv.write_csv(table, path)
    with pytest.raises(DataSourceError, match=r"no row has both a text \('body'\).*20 have a missing"):
        read_table_source(_spec(path))


def test_download_summary_reports_dropped_rows_and_classes(tmp_path):
    from rnnlab.tasks.classification.acquisition import row_hygiene_facts

    path = _write_csv(tmp_path / "reviews.csv")
    cfg = {"kind": "table", "uri": str(path), "text_column": "body", "label_column": "sentiment"}
    _, info = acquire(cfg, "reviews", tmp_path / "dl", environ={}, progress=False)
    facts = row_hygiene_facts(info)
    assert facts == {
        "dropped": "2(missing_text=1,missing_label=1)",
        "labels_stripped": 0,
        "classes": "neg:60,pos:40",
    }
