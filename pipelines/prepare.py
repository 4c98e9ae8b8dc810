"""DVC stage `prepare`: carve a stratified validation split, tokenize, build the vocabulary (train only),
map tokens to ids, and report the data statistics as DVC metrics."""

import hydra
import numpy as np
from omegaconf import DictConfig

from rnnlab.config import resolve_path, section
from rnnlab.data.encode import token_length_stats
from rnnlab.data.splits import stratified_split
from rnnlab.data.store import read_split_table, token_id_table, write_split_table
from rnnlab.data.tokenize import TokenizerConfig, tokenize
from rnnlab.data.vocab import Vocabulary
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.stage import report_errors, summary


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
    tokenizer = TokenizerConfig(**section(cfg, "data.tokenizer"))
    raw = resolve_path(cfg.paths.raw_dir)
    source = read_json(raw / "source.json")
    train, val = stratified_split(
        read_split_table(raw, "train"),
        cfg.data.split.val_fraction,
        cfg.data.split.seed,
        key="data.split.val_fraction",
    )
    tables = {"train": train, "val": val, "test": read_split_table(raw, "test")}
    tokens = {split: tokenize(table.column("text"), tokenizer) for split, table in tables.items()}
    vocab = Vocabulary.build(tokens["train"], cfg.data.vocab.max_size, cfg.data.vocab.min_freq)

    metrics = {"vocab_size": len(vocab), "splits": {}}
    with atomic_dir(resolve_path(cfg.paths.prepared_dir)) as out:
        vocab.save(out / "vocab.json")
        for split, table in tables.items():
            flat, offsets = vocab.encode(tokens[split])
            write_split_table(
                out, split, token_id_table(flat, offsets, table.column("label").combine_chunks())
            )
            lengths = token_length_stats(offsets)
            metrics["splits"][split] = {
                "reviews": table.num_rows,
                "oov_rate": Vocabulary.oov_share(flat),
                "empty_reviews": lengths["empty"],
                "token_length": {k: lengths[k] for k in ("p50", "p90", "p95", "p99", "mean", "max")},
                "label_counts": np.bincount(table.column("label").to_numpy()).tolist(),
            }
        write_json(
            out / "meta.json",
            {
                "label_names": source["label_names"],
                "num_classes": len(source["label_names"]),
                "vocab_size": len(vocab),
                "tokenizer": section(cfg, "data.tokenizer"),
            },
        )
    write_json(resolve_path(cfg.paths.reports_dir) / "data" / "prepare.json", metrics)
    summary(
        "prepare",
        vocab=len(vocab),
        **{s: m["reviews"] for s, m in metrics["splits"].items()},
        train_oov=f"{metrics['splits']['train']['oov_rate']:.2%}",
    )


if __name__ == "__main__":
    main()
