"""The classification task's `download` stage: fetch (or read a mirror of) the labelled texts into
`paths.raw_dir` as per-split tables and source.json."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from rnnlab.config import resolve_path, section
from rnnlab.data.sources import acquire
from rnnlab.data.store import write_split_table
from rnnlab.io import atomic_dir, write_json


def download(cfg: DictConfig) -> dict[str, Any]:
    """Fetch (or read a mirror of) the labelled texts into `paths.raw_dir`: per-split tables + source.json."""
    tables, info = acquire(
        section(cfg, "data.source"),
        cfg.data.name,
        downloads_dir=resolve_path(cfg.paths.downloads_dir),
        download_cfg=section(cfg, "data.download"),
    )
    with atomic_dir(resolve_path(cfg.paths.raw_dir)) as out:
        for split, table in tables.items():
            write_split_table(out, split, table)
        write_json(out / "source.json", info)
    facts = {"source": info["uri"], **{split: table.num_rows for split, table in tables.items()}}
    return {**facts, **row_hygiene_facts(info)}


def row_hygiene_facts(info: dict[str, Any]) -> dict[str, Any]:
    """The download summary's account of rows a table source dropped or changed (nothing for IMDB)."""
    counts = list(info.get("row_hygiene", {}).values())
    if not counts:
        return {}
    total = {key: sum(c[key] for c in counts) for key in ("missing_text", "missing_label", "labels_stripped")}
    classes = {
        name: sum(split.get(name, 0) for split in info["label_counts"].values())
        for name in info["label_names"]
    }
    return {
        "dropped": f"{total['missing_text'] + total['missing_label']}(missing_text={total['missing_text']},"
        f"missing_label={total['missing_label']})",
        "labels_stripped": total["labels_stripped"],
        "classes": ",".join(f"{name}:{n}" for name, n in classes.items()),
    }
