"""The classification task's `prepare` stage: carve the validation split, tokenize, build the vocabulary on
train and map tokens to ids (the unlabelled texts too, for pretraining); the positive class of binary
metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from omegaconf import DictConfig

from rnnlab.config import resolve_path, section
from rnnlab.data.encode import token_length_stats
from rnnlab.data.splits import stratified_split
from rnnlab.data.store import UNLABELLED, read_split_table, token_id_table, write_split_table
from rnnlab.data.tokenize import TokenizerConfig, tokenize
from rnnlab.data.vocab import Vocabulary
from rnnlab.errors import ConfigError
from rnnlab.io import atomic_dir, read_json, write_json


def prepare(cfg: DictConfig) -> tuple[dict[str, Any], dict[str, Any]]:
    """Carve a stratified validation split, tokenize, build the vocabulary (train only), map tokens to ids;
    the unlabelled texts (`unsup`, no rows when the source has none) get the same tokens and vocabulary.

    Returns the DVC metrics (data statistics) and the summary line's facts.
    """
    source = read_json(resolve_path(cfg.paths.raw_dir) / "source.json")
    tables, unsup = labelled_splits(cfg), unlabelled(cfg)
    tokens = tokenized(cfg, {**tables, UNLABELLED: unsup})
    vocab = Vocabulary.build(tokens["train"], cfg.data.vocab.max_size, cfg.data.vocab.min_freq)
    metrics: dict[str, Any] = {"vocab_size": len(vocab), "splits": {}}
    with atomic_dir(resolve_path(cfg.paths.prepared_dir)) as out:
        vocab.save(out / "vocab.json")
        for split, table in tables.items():
            flat, offsets = vocab.encode(tokens[split])
            columns = {name: table.column(name).combine_chunks() for name in ("label", "review_id")}
            write_split_table(out, split, token_id_table(flat, offsets, **columns))
            metrics["splits"][split] = {
                **token_stats(flat, offsets),
                "label_counts": class_counts(table, source["label_names"]),
            }
        flat, offsets = vocab.encode(tokens[UNLABELLED])
        ids = unsup.column("review_id").combine_chunks()
        write_split_table(out, UNLABELLED, token_id_table(flat, offsets, review_id=ids))
        metrics[UNLABELLED] = token_stats(flat, offsets)
        meta = {
            "label_names": source["label_names"],
            "num_classes": len(source["label_names"]),
            "positive_label": positive_label(cfg.data.get("positive_label"), source["label_names"]),
            "vocab_size": len(vocab),
            "tokenizer": section(cfg, "data.tokenizer"),
        }
        write_json(out / "meta.json", meta)
    facts = {
        "vocab": len(vocab),
        **{s: m["reviews"] for s, m in metrics["splits"].items()},
        UNLABELLED: metrics[UNLABELLED]["reviews"],
        "train_oov": f"{metrics['splits']['train']['oov_rate']:.2%}",
    }
    return metrics, facts


def labelled_splits(cfg: DictConfig) -> dict[str, Any]:
    """The raw train/val/test tables: validation carved from train, stratified and seeded (`data.split`)."""
    raw = resolve_path(cfg.paths.raw_dir)
    train, val = stratified_split(
        read_split_table(raw, "train"),
        cfg.data.split.val_fraction,
        cfg.data.split.seed,
        key="data.split.val_fraction",
    )
    return {"train": train, "val": val, "test": read_split_table(raw, "test")}


def unlabelled(cfg: DictConfig) -> pa.Table:
    """The raw unlabelled texts (`text`, `review_id`): IMDB's train/unsup/; no rows for a source without."""
    raw = resolve_path(cfg.paths.raw_dir)
    if (raw / f"{UNLABELLED}.parquet").is_file():
        return read_split_table(raw, UNLABELLED)
    return pa.table({"text": pa.array([], pa.string()), "review_id": pa.array([], pa.string())})


def token_stats(flat: np.ndarray, offsets: np.ndarray) -> dict[str, Any]:
    """A prepared split's statistics: texts, OOV rate, empty texts, token-length percentiles."""
    lengths = token_length_stats(offsets)
    return {
        "reviews": len(offsets) - 1,
        "oov_rate": Vocabulary.oov_share(flat),
        "empty_reviews": lengths["empty"],
        "token_length": {k: lengths[k] for k in ("p50", "p90", "p95", "p99", "mean", "max")},
    }


def tokenized(cfg: DictConfig, tables: dict[str, Any]) -> dict[str, Any]:
    """Each split's texts as token lists (`data.tokenizer`)."""
    tokenizer = TokenizerConfig(**section(cfg, "data.tokenizer"))
    return {split: tokenize(table.column("text"), tokenizer) for split, table in tables.items()}


def positive_label(configured: str | None, label_names: list[str]) -> str | None:
    """The class binary metrics score (`data.positive_label`, default the label sorting last); None with
    more than two classes (macro averages)."""
    if len(label_names) != 2:
        return None
    if configured is None:
        return label_names[-1]
    if str(configured) not in label_names:
        raise ConfigError(
            f"data.positive_label={configured!r} is not a label of this data; choose one of: "
            f"{', '.join(label_names)}"
        )
    return str(configured)


def class_counts(table: Any, label_names: list[str]) -> dict[str, int]:
    """Rows per class name (a DVC metric of the prepare stage, per split)."""
    counts = np.bincount(table.column("label").to_numpy(), minlength=len(label_names)).tolist()
    return dict(zip(label_names, counts, strict=True))
