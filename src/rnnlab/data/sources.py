"""Turn the `data.source` config into labelled train/test tables.

Two kinds of source: `imdb` (the aclImdb layout, from a URL, a local archive or an extracted folder) and
`table` (a CSV or parquet file with a text and a label column). Every table returned has the columns
`text` (string), `label` (int8, 0..K-1) and `review_id` (string); IMDB tables also carry `rating` (int8).
Downstream code relies only on `text` and `label`.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sklearn.model_selection import train_test_split
from tqdm.auto import tqdm

from rnnlab.data.archive import safe_extract
from rnnlab.data.download import is_url, local_copy
from rnnlab.errors import ConfigError, DataSourceError, LayoutError

KINDS = ("imdb", "table")
IMDB_SPLITS = ("train", "test")
IMDB_LABELS = ("neg", "pos")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
_FETCH_KEYS = {"retries": int, "timeout_s": float, "chunk_bytes": int, "backoff_s": float}
_REVIEW_NAME = re.compile(r"(\d+)_(\d+)\.txt")
_LABELLED_REVIEW = re.compile(r"(?:^|/)(?:train|test)/(?:neg|pos)/[^/]+\.txt$")
_MAX_CLASSES = 127  # labels are int8


@dataclass(frozen=True)
class SourceSpec:
    """A validated `data.source`: where the data is, its checksum, and (kind table) how to read it."""

    kind: str
    uri: str
    sha256: str | None = None
    text_column: str = "text"
    label_column: str = "label"
    test_uri: str | None = None
    test_fraction: float = 0.2
    seed: int = 0


def env_names(dataset_name: str) -> tuple[str, str]:
    """The environment variables that override the source and its checksum, e.g. RNNLAB_IMDB_SOURCE."""
    stem = "RNNLAB_" + re.sub(r"[^0-9A-Za-z]+", "_", dataset_name).upper()
    return f"{stem}_SOURCE", f"{stem}_SHA256"


def resolve_source(source_cfg: Mapping, dataset_name: str, environ: Mapping = os.environ) -> SourceSpec:
    """Validate `data.source` and apply the RNNLAB_<NAME>_SOURCE / RNNLAB_<NAME>_SHA256 overrides.

    A SOURCE override also clears the configured sha256 (it belongs to the configured file), unless the
    SHA256 variable gives one. Relative paths resolve against the current working directory.
    """
    kind = source_cfg.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"data.source.kind is {kind!r}; allowed values: {', '.join(KINDS)}.")
    source_var, sha_var = env_names(dataset_name)
    uri, sha256 = source_cfg.get("uri"), source_cfg.get("sha256")
    if environ.get(source_var):
        uri, sha256 = environ[source_var], None
    if environ.get(sha_var):
        sha256 = environ[sha_var]
    if not uri:
        raise ConfigError(f"data.source.uri is not set: give a URL, an archive or a folder, or {source_var}.")
    test_uri = source_cfg.get("test_uri")
    spec = SourceSpec(
        kind=kind,
        uri=_absolute(str(uri), "data.source.uri"),
        sha256=_checksum(sha256, sha_var),
        text_column=str(source_cfg.get("text_column", "text") or ""),
        label_column=str(source_cfg.get("label_column", "label") or ""),
        test_uri=_absolute(str(test_uri), "data.source.test_uri") if test_uri else None,
        test_fraction=float(source_cfg.get("test_fraction", 0.2)),
        seed=int(source_cfg.get("seed", 0)),
    )
    if kind == "table":
        _check_table_spec(spec)
    return spec


def _absolute(uri: str, key: str) -> str:
    """Keep http(s) URLs; turn paths absolute; refuse other URL schemes."""
    if is_url(uri):
        return uri
    if "://" in uri:
        raise ConfigError(f"{key} = {uri!r}: only http(s) URLs and local paths are supported.")
    return os.path.abspath(os.path.expanduser(uri))


def _checksum(value: object, sha_var: str) -> str | None:
    if value is None or not str(value).strip():
        return None
    text = str(value).strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", text):
        raise ConfigError(f"data.source.sha256 (or {sha_var}) = {value!r} is not a 64-digit hex sha256.")
    return text


def _check_table_spec(spec: SourceSpec) -> None:
    for key in ("text_column", "label_column"):
        if not getattr(spec, key).strip():
            raise ConfigError(f"data.source.{key} is empty: name the column that holds the {key[:-7]}.")
    if spec.test_uri is None and not 0.0 < spec.test_fraction < 1.0:
        raise ConfigError(
            f"data.source.test_fraction is {spec.test_fraction}; it must lie strictly between 0 and 1 "
            "(or set data.source.test_uri)."
        )


def read_imdb_folder(root: str | os.PathLike, progress: bool = True) -> tuple[dict[str, pa.Table], dict]:
    """Read the labelled reviews of an extracted `aclImdb/` folder (or the folder that contains it).

    Reads train/{neg,pos}/*.txt and test/{neg,pos}/*.txt in (split, label, numeric id) order; `unsup/`
    and other files are ignored. Non-UTF-8 files are decoded with replacement characters and counted;
    empty reviews are kept and counted.
    """
    root = Path(root)
    if (root / "aclImdb").is_dir() and not (root / "train").is_dir():
        root = root / "aclImdb"
    files = _imdb_files(root)
    tables: dict[str, pa.Table] = {}
    info: dict = {"label_names": list(IMDB_LABELS), "reviews": {}, "label_counts": {},
                  "non_utf8_reviews": {}, "empty_reviews": {}}
    total = sum(map(len, files.values()))
    with tqdm(total=total, desc="read reviews", unit="file", disable=not progress) as bar:
        for split, rows in files.items():
            tables[split], stats = _read_reviews(split, rows, bar)
            for key, value in stats.items():
                info[key][split] = value
    return tables, info


def _imdb_files(root: Path) -> dict[str, list[tuple[int, int, int, str]]]:
    """List (label, id, rating, path) per split, sorted; raise LayoutError naming missing folders."""
    missing = [f"{split}/" for split in IMDB_SPLITS if not (root / split).is_dir()]
    missing += [f"{split}/{label}/" for split in IMDB_SPLITS if (root / split).is_dir()
                for label in IMDB_LABELS if not (root / split / label).is_dir()]
    if missing:
        raise LayoutError(
            f"{root} is not an extracted aclImdb/ folder: missing {', '.join(missing)}. Expected aclImdb/"
            "{train,test}/{neg,pos}/<id>_<rating>.txt; point the source at the archive or that folder."
        )
    return {split: sorted(row for label, name in enumerate(IMDB_LABELS)
                          for row in _review_files(root / split / name, label)) for split in IMDB_SPLITS}


def _review_files(folder: Path, label: int) -> list[tuple[int, int, int, str]]:
    rows = []
    for entry in os.scandir(folder):
        if entry.name.endswith(".txt"):
            match = _REVIEW_NAME.fullmatch(entry.name)
            if not match:
                raise LayoutError(f"Unexpected file {entry.path}: reviews are named <id>_<rating>.txt.")
            rows.append((label, int(match.group(1)), int(match.group(2)), entry.path))
    return rows


def _read_reviews(split: str, rows: list, bar: tqdm) -> tuple[pa.Table, dict]:
    """Read one split's files into a table; return it with its review, label, non-UTF-8 and empty counts."""
    texts, non_utf8, empty = [], 0, 0
    for *_, path in rows:
        with open(path, "rb") as handle:
            raw = handle.read()
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            text, non_utf8 = raw.decode("utf-8", errors="replace"), non_utf8 + 1
        empty += not text.strip()
        texts.append(text)
        bar.update()
    labels = [row[0] for row in rows]
    table = pa.table({
        "text": pa.array(texts, pa.string()),
        "label": pa.array(labels, pa.int8()),
        "rating": pa.array([row[2] for row in rows], pa.int8()),
        "review_id": pa.array([f"{split}/{IMDB_LABELS[row[0]]}/{row[1]}" for row in rows], pa.string()),
    })
    counts = np.bincount(labels, minlength=len(IMDB_LABELS)).tolist()
    return table, {"reviews": len(rows), "label_counts": dict(zip(IMDB_LABELS, counts, strict=True)),
                   "non_utf8_reviews": non_utf8, "empty_reviews": empty}


def read_table_source(spec: SourceSpec) -> tuple[dict[str, pa.Table], dict]:
    """Read a CSV/parquet table source into train/test tables with labels mapped to 0..K-1.

    Rows missing the text or the label are dropped and counted (in a CSV an empty cell is missing).
    Without `test_uri` the rows are split stratified by label with `test_fraction` and `seed`.
    `review_id` is "<split>/<row number in its source file>".
    """
    train, dropped = _labelled_rows(spec.uri, spec, "data.source.uri")
    info: dict = {"text_column": spec.text_column, "label_column": spec.label_column,
                  "test_uri": spec.test_uri, "dropped_rows": {"uri": dropped}}
    if spec.test_uri:
        test, info["dropped_rows"]["test_uri"] = _labelled_rows(spec.test_uri, spec, "data.source.test_uri")
    else:
        train, test = _stratified_split(train, spec)
        info.update(test_fraction=spec.test_fraction, seed=spec.seed)
    index = _label_index(train, test, spec)
    splits = {"train": train, "test": test}
    tables = {split: _rows_table(split, rows, index) for split, rows in splits.items()}
    info.update(
        label_names=[str(name) for name in index],
        reviews={split: len(rows) for split, rows in splits.items()},
        label_counts={split: dict(Counter(str(y) for *_, y in rows)) for split, rows in splits.items()},
        empty_reviews={split: sum(not t.strip() for _, t, _ in rows) for split, rows in splits.items()},
        non_utf8_reviews=dict.fromkeys(splits, 0),  # table files must be UTF-8: invalid bytes are an error
    )
    return tables, info


def _labelled_rows(uri: str, spec: SourceSpec, key: str) -> tuple[list[tuple[int, str, object]], int]:
    """Read (row number, text, raw label) rows from a table file; return them and the count dropped."""
    table = _read_table_file(Path(uri), spec, key)
    texts = table.column(spec.text_column).cast(pa.string()).to_pylist()
    labels = table.column(spec.label_column).to_pylist()
    rows = [(i, t, y) for i, (t, y) in enumerate(zip(texts, labels, strict=True)) if None not in (t, y)]
    return rows, len(texts) - len(rows)


def _read_table_file(path: Path, spec: SourceSpec, key: str) -> pa.Table:
    name = path.name.lower()
    if not name.endswith(TABLE_SUFFIXES):
        raise ConfigError(f"{key} = {str(path)!r}: unsupported table format; allowed extensions: "
                          f"{', '.join(TABLE_SUFFIXES)}.")
    if not path.is_file():
        raise DataSourceError(f"{key} = {str(path)!r} does not exist; check the path.")
    try:
        if name.endswith(".parquet"):
            table = pq.read_table(path)
        else:
            types = {spec.text_column: pa.string()}
            table = pacsv.read_csv(path, convert_options=pacsv.ConvertOptions(
                column_types=types, strings_can_be_null=True))
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"Cannot read {path}: {exc}. Tables must be UTF-8 CSV with a header row, "
                              "or parquet.") from exc
    missing = [c for c in (spec.text_column, spec.label_column) if c not in table.column_names]
    if missing:
        raise LayoutError(f"{path} has no column {', '.join(map(repr, missing))}; columns present: "
                          f"{', '.join(table.column_names)}. Set data.source.text_column / label_column.")
    return table


def _stratified_split(rows: list, spec: SourceSpec) -> tuple[list, list]:
    """Split rows stratified by label; both parts keep the file's row order."""
    labels = [label for *_, label in rows]
    try:
        train_idx, test_idx = train_test_split(
            np.arange(len(rows)), test_size=spec.test_fraction, random_state=spec.seed, stratify=labels
        )
    except ValueError as exc:
        raise DataSourceError(f"Cannot split {spec.uri} stratified by label with test_fraction "
                              f"{spec.test_fraction}: {exc}. Add rows, or set data.source.test_uri.") from exc
    return [rows[i] for i in sorted(train_idx)], [rows[i] for i in sorted(test_idx)]


def _label_index(train: list, test: list, spec: SourceSpec) -> dict:
    """Map the sorted distinct train labels to 0..K-1; refuse test labels unseen in train."""
    names = sorted({label for *_, label in train})
    if len(names) > _MAX_CLASSES:
        raise DataSourceError(f"{spec.uri}: column {spec.label_column!r} has {len(names)} distinct labels, "
                              f"more than {_MAX_CLASSES}. Is data.source.label_column right?")
    unseen = sorted({label for *_, label in test} - set(names), key=str)
    if unseen:
        raise DataSourceError(f"Test labels {unseen} never occur in the train split (labels: {names}); "
                              "every test label needs training rows. Fix the label column or the test file.")
    return {name: i for i, name in enumerate(names)}


def _rows_table(split: str, rows: list, index: dict) -> pa.Table:
    return pa.table({
        "text": pa.array([text for _, text, _ in rows], pa.string()),
        "label": pa.array([index[label] for *_, label in rows], pa.int8()),
        "review_id": pa.array([f"{split}/{number}" for number, *_ in rows], pa.string()),
    })


def acquire(
    source_cfg: Mapping,
    dataset_name: str,
    downloads_dir: str | os.PathLike,
    download_cfg: Mapping | None = None,
    environ: Mapping = os.environ,
    progress: bool = True,
) -> tuple[dict[str, pa.Table], dict]:
    """Resolve, fetch, verify, extract and read a data source: the download stage's single entry point.

    URLs are downloaded into `downloads_dir` (an existing download is reused only if its checksum
    verifies); archives are extracted into a temporary folder inside it that is always removed.
    """
    spec = resolve_source(source_cfg, dataset_name, environ)
    downloads_dir = Path(downloads_dir)
    what = "the archive or an extracted aclImdb/ folder" if spec.kind == "imdb" else "the table"
    fetch_kw = {k: cast(download_cfg[k]) for k, cast in _FETCH_KEYS.items() if k in (download_cfg or {})}
    fetch_kw.update(progress=progress,
                    mirror_hint=f"Offline? Point {env_names(dataset_name)[0]} at a local copy of {what}.")
    head = {"kind": spec.kind, "uri": spec.uri}
    if spec.kind == "imdb" and not is_url(spec.uri) and Path(spec.uri).is_dir():
        tables, info = read_imdb_folder(spec.uri, progress)
        note = "not checked: the source is a folder" + (" (configured sha256 ignored)" if spec.sha256 else "")
        return tables, {**head, "sha256": None, "sha256_note": note, **info}
    path, digest = local_copy(spec.uri, spec.sha256, downloads_dir, **fetch_kw)
    head.update(file=str(path), sha256=digest)
    if spec.kind == "table":
        test = local_copy(spec.test_uri, None, downloads_dir, **fetch_kw)[0] if spec.test_uri else None
        tables, info = read_table_source(replace(spec, uri=str(path), test_uri=test and str(test)))
        return tables, {**head, **info, "test_uri": spec.test_uri}
    downloads_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".extract-", dir=downloads_dir) as tmp:
        safe_extract(path, tmp, include=_LABELLED_REVIEW.search, progress=progress)
        tables, info = read_imdb_folder(tmp, progress)
    return tables, {**head, **info}
