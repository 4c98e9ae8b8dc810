"""The IMDB reviews (aclImdb layout), read from an archive or from an extracted folder.

Both read aclImdb/{train,test}/{neg,pos}/<id>_<rating>.txt and the unlabelled reviews
aclImdb/train/unsup/<id>_0.txt (optional: a copy without them gives an empty `unsup` table; the aclImdb/ level
is optional too; other files are ignored) and turn the (path, bytes) review files into tables through one code
path, so an archive and its extraction give identical tables.
"""

from __future__ import annotations

import os
import posixpath
import re
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from rnnlab.data.archive import read_members
from rnnlab.errors import LayoutError

IMDB_SPLITS = ("train", "test")
IMDB_LABELS = ("neg", "pos")
UNLABELLED = "unsup"  # the unlabelled reviews' table (as rnnlab.data.store names it); ids "unsup/<id>"
UNSUP_FOLDER = "train/unsup"
_TOP = "aclImdb"
_IN_REVIEW_FOLDER = rf"(?:(?:train|test)/(?:neg|pos)|{UNSUP_FOLDER})/[^/]+\.txt"
_BELOW_ROOT = re.compile(_IN_REVIEW_FOLDER)
_REVIEW_PATH = re.compile(rf"(?:{_TOP}/)?{_IN_REVIEW_FOLDER}")
_REVIEW_NAME = re.compile(r"(\d+)_(\d+)\.txt")

Tables = tuple[dict[str, pa.Table], dict]


def read_imdb_folder(root: str | os.PathLike, progress: bool = True) -> Tables:
    """Read the reviews of an extracted `aclImdb/` folder (or the folder that contains it)."""
    root = Path(root)
    root = root / _prefix(lambda rel: (root / rel).is_dir())
    _check_layout(lambda rel: (root / rel).is_dir(), str(root))
    folders = [f"{split}/{label}" for split in IMDB_SPLITS for label in IMDB_LABELS]
    folders += [UNSUP_FOLDER] if (root / UNSUP_FOLDER).is_dir() else []
    names = [
        f"{folder}/{entry.name}"
        for folder in folders
        for entry in os.scandir(root / folder)
        if entry.name.endswith(".txt") and entry.is_file()
    ]
    bar = tqdm(names, desc="read reviews", unit="file", disable=not progress)
    return _tables(((name, (root / name).read_bytes()) for name in bar), str(root))


def read_imdb_archive(archive: str | os.PathLike, progress: bool = True) -> Tables:
    """Read the reviews straight out of an IMDB tar or zip archive; nothing is written to disk."""
    selected = read_members(archive, _is_review_path, progress=progress)
    files = {posixpath.normpath(name): data for name, data in selected}  # a later duplicate wins
    folders = {parent for name in files for parent in _parents(name)}
    prefix = _prefix(folders.__contains__)
    _check_layout(lambda rel: prefix + rel in folders, f"Archive {archive}")
    reviews = [
        (name[len(prefix) :], data)
        for name, data in files.items()
        if name.startswith(prefix) and _BELOW_ROOT.fullmatch(name[len(prefix) :])
    ]
    return _tables(reviews, f"archive {archive}")


def _is_review_path(name: str) -> bool:
    return _REVIEW_PATH.fullmatch(posixpath.normpath(name)) is not None


def _parents(name: str) -> list[str]:
    """The folders above `name`: a/b/c.txt -> [a/b, a]."""
    parts = name.split("/")[:-1]
    return ["/".join(parts[:i]) for i in range(len(parts), 0, -1)]


def _prefix(has_folder: Callable[[str], bool]) -> str:
    """`aclImdb/` when the reviews sit in an aclImdb/ folder below the root, else the empty string."""
    return f"{_TOP}/" if has_folder(_TOP) and not has_folder("train") else ""


def _check_layout(has_folder: Callable[[str], bool], where: str) -> None:
    """Raise LayoutError naming the missing split and label folders."""
    missing = [f"{split}/" for split in IMDB_SPLITS if not has_folder(split)]
    missing += [
        f"{split}/{label}/"
        for split in IMDB_SPLITS
        if has_folder(split)
        for label in IMDB_LABELS
        if not has_folder(f"{split}/{label}")
    ]
    if missing:
        raise LayoutError(
            f"{where} does not hold the aclImdb layout: missing {', '.join(missing)}. Expected aclImdb/"
            "{train,test}/{neg,pos}/<id>_<rating>.txt; point the source at an IMDB archive or an extracted "
            "aclImdb/ folder."
        )


def _tables(files: Iterable[tuple[str, bytes]], where: str) -> Tables:
    """Turn (split/label/<id>_<rating>.txt or train/unsup/<id>_0.txt, bytes) review files into the tables
    `train`, `test` and `unsup` (text and review_id only) and their info.

    Rows are in (label, numeric id) order. Non-UTF-8 reviews are decoded with replacement characters and
    counted; empty reviews are kept and counted.
    """
    rows: dict[str, list] = {split: [] for split in (*IMDB_SPLITS, UNLABELLED)}
    for rel, data in files:
        folder, name = rel.rsplit("/", 1)
        match = _REVIEW_NAME.fullmatch(name)
        if not match:
            raise LayoutError(f"Unexpected file {rel!r} in {where}: reviews are named <id>_<rating>.txt.")
        if folder == UNSUP_FOLDER:
            rows[UNLABELLED].append((0, int(match[1]), int(match[2]), name, data))
        else:
            split, label = folder.split("/")
            rows[split].append((IMDB_LABELS.index(label), int(match[1]), int(match[2]), name, data))
    info: dict = {
        "label_names": list(IMDB_LABELS),
        "reviews": {},
        "label_counts": {},
        "non_utf8_reviews": {},
        "empty_reviews": {},
    }
    tables = {}
    for split in rows:
        tables[split], stats = _split_table(split, sorted(rows[split]))
        for key, value in stats.items():
            info[key][split] = value
    return tables, info


def _split_table(split: str, rows: list) -> tuple[pa.Table, dict]:
    """Decode one split's sorted (label, id, rating, name, bytes) rows into a table and its counts (the
    unlabelled split: texts and ids only)."""
    texts, non_utf8 = [], 0
    for *_, raw in rows:
        try:
            texts.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            texts.append(raw.decode("utf-8", errors="replace"))
            non_utf8 += 1
    stats = {
        "reviews": len(rows),
        "non_utf8_reviews": non_utf8,
        "empty_reviews": sum(not text.strip() for text in texts),
    }
    if split == UNLABELLED:
        ids = pa.array([f"{UNLABELLED}/{row[1]}" for row in rows], pa.string())
        return pa.table({"text": pa.array(texts, pa.string()), "review_id": ids}), stats
    labels = [row[0] for row in rows]
    table = pa.table(
        {
            "text": pa.array(texts, pa.string()),
            "label": pa.array(labels, pa.int8()),
            "rating": pa.array([row[2] for row in rows], pa.int8()),
            "review_id": pa.array([f"{split}/{IMDB_LABELS[row[0]]}/{row[1]}" for row in rows], pa.string()),
        }
    )
    counts = np.bincount(labels, minlength=len(IMDB_LABELS)).tolist()
    return table, {**stats, "label_counts": dict(zip(IMDB_LABELS, counts, strict=True))}
