"""Turn the `data.source` config into labelled train/test tables.

Two kinds of source: `imdb` (the aclImdb layout, from a URL, a local archive or an extracted folder) and
`table` (a CSV or parquet file with a text and a label column). Every table returned has the columns
`text` (string), `label` (int8, 0..K-1) and `review_id` (string); IMDB tables also carry `rating` (int8).
Downstream code relies only on `text` and `label`.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from rnnlab.data.download import fetch_kwargs, is_url, local_copy
from rnnlab.data.imdb import read_imdb_archive, read_imdb_folder
from rnnlab.data.splits import stratified_split
from rnnlab.errors import ConfigError, DataSourceError, LayoutError

KINDS = ("imdb", "table")
TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
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
    uri, sha256, _ = overridden_source(source_cfg, dataset_name, environ)
    if not uri:
        source_var = env_names(dataset_name)[0]
        raise ConfigError(f"data.source.uri is not set: give a URL, an archive or a folder, or {source_var}.")
    test_uri = source_cfg.get("test_uri")
    spec = SourceSpec(
        kind=kind,
        uri=absolute_uri(str(uri), "data.source.uri"),
        sha256=sha256,
        text_column=str(source_cfg.get("text_column", "text") or ""),
        label_column=str(source_cfg.get("label_column", "label") or ""),
        test_uri=absolute_uri(str(test_uri), "data.source.test_uri") if test_uri else None,
        test_fraction=float(source_cfg.get("test_fraction", 0.2)),
        seed=int(source_cfg.get("seed", 0)),
    )
    if kind == "table":
        _check_table_spec(spec)
    return spec


def overridden_source(
    source_cfg: Mapping, dataset_name: str, environ: Mapping = os.environ
) -> tuple[str | None, str | None, bool]:
    """(uri, sha256, overridden): `data.source.uri` and `sha256` after the environment overrides.

    RNNLAB_<NAME>_SOURCE replaces the uri and clears the configured sha256 (it belongs to the configured
    file) unless RNNLAB_<NAME>_SHA256 gives one. The sha256 is checked and lower-cased; None when unset.
    """
    source_var, sha_var = env_names(dataset_name)
    uri, sha256 = source_cfg.get("uri"), source_cfg.get("sha256")
    overridden = bool(environ.get(source_var))
    if overridden:
        uri, sha256 = environ[source_var], None
    if environ.get(sha_var):
        sha256 = environ[sha_var]
    return uri, checked_sha256(sha256, sha_var), overridden


def absolute_uri(uri: str, key: str) -> str:
    """Keep http(s) URLs; turn paths absolute; refuse other URL schemes (`key` names the setting)."""
    if is_url(uri):
        return uri
    if "://" in uri:
        raise ConfigError(f"{key} = {uri!r}: only http(s) URLs and local paths are supported.")
    return os.path.abspath(os.path.expanduser(uri))


def checked_sha256(value: object, sha_var: str) -> str | None:
    """A 64-digit hex sha256, lower-cased; None for an empty setting."""
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


def read_table_source(spec: SourceSpec) -> tuple[dict[str, pa.Table], dict]:
    """Read a CSV/parquet table source into train/test tables with labels mapped to 0..K-1.

    String labels are stripped of surrounding whitespace (`' pos'` and `'pos'` are one class; the rows
    changed are counted). Rows whose text or label is missing or blank are dropped and counted by reason
    (in a CSV an empty cell is missing). At least two classes must remain. Without `test_uri` the rows are
    split stratified by label with `test_fraction` and `seed`. `review_id` is "<split>/<row number in its
    source file>".
    """
    rows, hygiene = _labelled_rows(spec.uri, spec, "data.source.uri")
    info: dict = {
        "text_column": spec.text_column,
        "label_column": spec.label_column,
        "test_uri": spec.test_uri,
        "dropped_rows": {"uri": hygiene.dropped},
        "row_hygiene": {"uri": hygiene.as_dict()},
    }
    test_rows = None
    if spec.test_uri:
        test_rows, test_hygiene = _labelled_rows(spec.test_uri, spec, "data.source.test_uri")
        info["dropped_rows"]["test_uri"] = test_hygiene.dropped
        info["row_hygiene"]["test_uri"] = test_hygiene.as_dict()
    index = _label_index(rows, test_rows or [], spec)
    if test_rows is None:
        train, test = stratified_split(
            _indexed(rows, index), spec.test_fraction, spec.seed, key="data.source.test_fraction"
        )
        info.update(test_fraction=spec.test_fraction, seed=spec.seed)
    else:
        train, test = _indexed(rows, index), _indexed(test_rows, index)
    tables = {"train": _with_ids("train", train), "test": _with_ids("test", test)}
    names = [str(name) for name in index]
    info.update(
        label_names=names,
        reviews={split: table.num_rows for split, table in tables.items()},
        label_counts={split: _label_counts(table, names) for split, table in tables.items()},
        empty_reviews=dict.fromkeys(tables, 0),  # blank texts were dropped above
        non_utf8_reviews=dict.fromkeys(tables, 0),  # table files must be UTF-8: invalid bytes are an error
    )
    return tables, info


@dataclass
class RowHygiene:
    """What reading one table file dropped or changed, by reason."""

    rows: int = 0
    missing_text: int = 0
    missing_label: int = 0
    labels_stripped: int = 0

    @property
    def dropped(self) -> int:
        return self.missing_text + self.missing_label

    def as_dict(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "missing_text": self.missing_text,
            "missing_label": self.missing_label,
            "labels_stripped": self.labels_stripped,
        }


def _labelled_rows(uri: str, spec: SourceSpec, key: str) -> tuple[list[tuple[int, str, object]], RowHygiene]:
    """(row number, text, label) rows of a table file, labels stripped; blank or missing values dropped."""
    table = _read_table_file(Path(uri), spec, key)
    texts = table.column(spec.text_column).cast(pa.string()).to_pylist()
    labels = table.column(spec.label_column).to_pylist()
    hygiene = RowHygiene(rows=len(texts))
    rows = []
    for number, (text, label) in enumerate(zip(texts, labels, strict=True)):
        if isinstance(label, str) and label != label.strip():
            label = label.strip()
            hygiene.labels_stripped += 1
        if text is None or not text.strip():
            hygiene.missing_text += 1
        elif label is None or label == "":
            hygiene.missing_label += 1
        else:
            rows.append((number, text, label))
    if not rows:
        raise DataSourceError(
            f"{key} = {uri!r}: no row has both a text ({spec.text_column!r}) and a label "
            f"({spec.label_column!r}): of {hygiene.rows} rows, {hygiene.missing_text} have a missing or "
            f"blank text and {hygiene.missing_label} a missing label. "
            "Check data.source.text_column / label_column."
        )
    return rows, hygiene


def _read_table_file(path: Path, spec: SourceSpec, key: str) -> pa.Table:
    name = path.name.lower()
    if not name.endswith(TABLE_SUFFIXES):
        raise ConfigError(
            f"{key} = {str(path)!r}: unsupported table format; allowed extensions: "
            f"{', '.join(TABLE_SUFFIXES)}."
        )
    if not path.is_file():
        raise DataSourceError(f"{key} = {str(path)!r} does not exist; check the path.")
    try:
        if name.endswith(".parquet"):
            table = pq.read_table(path)
        else:
            types = {spec.text_column: pa.string()}
            table = pacsv.read_csv(
                path, convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True)
            )
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(
            f"Cannot read {path}: {exc}. Tables must be UTF-8 CSV with a header row, or parquet."
        ) from exc
    missing = [c for c in (spec.text_column, spec.label_column) if c not in table.column_names]
    if missing:
        raise LayoutError(
            f"{path} has no column {', '.join(map(repr, missing))}; columns present: "
            f"{', '.join(table.column_names)}. Set data.source.text_column / label_column."
        )
    return table


def _label_index(rows: list, test_rows: list, spec: SourceSpec) -> dict:
    """Map the sorted distinct labels of `rows` (before any split) to 0..K-1; refuse test labels not there."""
    counts = Counter(label for *_, label in rows)
    names = sorted(counts)
    if len(names) < 2:
        found = ", ".join(f"{name!r}: {n} rows" for name, n in counts.items())
        raise DataSourceError(
            f"{spec.uri}: column {spec.label_column!r} has {len(names)} class ({found}); "
            "a classifier needs at least two. Is data.source.label_column right?"
        )
    if len(names) > _MAX_CLASSES:
        raise DataSourceError(
            f"{spec.uri}: column {spec.label_column!r} has {len(names)} distinct labels, "
            f"more than {_MAX_CLASSES}. Is data.source.label_column right?"
        )
    unseen = sorted({label for *_, label in test_rows} - set(names), key=str)
    if unseen:
        raise DataSourceError(
            f"Test labels {unseen} never occur in the train split (labels: {names}); "
            "every test label needs training rows. Fix the label column or the test file."
        )
    return {name: i for i, name in enumerate(names)}


def _indexed(rows: list, index: dict) -> pa.Table:
    """A table of the rows' text, label index and row number."""
    return pa.table(
        {
            "text": pa.array([text for _, text, _ in rows], pa.string()),
            "label": pa.array([index[label] for *_, label in rows], pa.int8()),
            "row": pa.array([number for number, *_ in rows], pa.int64()),
        }
    )


def _with_ids(split: str, table: pa.Table) -> pa.Table:
    """Replace the row number column by `review_id` = "<split>/<row number>"."""
    ids = pa.array([f"{split}/{number}" for number in table["row"].to_pylist()], pa.string())
    return table.drop_columns(["row"]).append_column("review_id", ids)


def _label_counts(table: pa.Table, names: list[str]) -> dict[str, int]:
    counts = Counter(table["label"].to_pylist())
    return {names[label]: counts[label] for label in sorted(counts)}


def acquire(
    source_cfg: Mapping,
    dataset_name: str,
    downloads_dir: str | os.PathLike,
    download_cfg: Mapping | None = None,
    environ: Mapping = os.environ,
    progress: bool = True,
) -> tuple[dict[str, pa.Table], dict]:
    """Resolve, fetch, verify and read a data source: the download stage's single entry point.

    URLs are downloaded into `downloads_dir` (an existing download is reused only if its checksum
    verifies); archives are read in memory, nothing is extracted to disk.
    """
    spec = resolve_source(source_cfg, dataset_name, environ)
    downloads_dir = Path(downloads_dir)
    what = "the archive or an extracted aclImdb/ folder" if spec.kind == "imdb" else "the table"
    fetch_kw = fetch_kwargs(download_cfg)
    fetch_kw.update(
        progress=progress,
        mirror_hint=f"Offline? Point {env_names(dataset_name)[0]} at a local copy of {what}.",
    )
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
    tables, info = read_imdb_archive(path, progress)
    return tables, {**head, **info}
