"""DVC stage `encode`: pad/truncate every split, and the unlabelled texts (`unsup`, for virtual adversarial
training), to `data.encode.max_len` as memory-mappable int32 arrays."""

import numpy as np
from omegaconf import DictConfig

from rnnlab.config import resolve_path, section
from rnnlab.data.encode import pad_and_truncate, token_length_stats
from rnnlab.data.store import ENCODED_SPLITS, EncodedSplit, ragged_ids, read_split_table, table_labels
from rnnlab.io import atomic_dir, read_json, write_json
from rnnlab.stage import entry_point, summary


@entry_point
def main(cfg: DictConfig) -> None:
    settings = section(cfg, "data.encode")
    prepared = resolve_path(cfg.paths.prepared_dir)
    meta = read_json(prepared / "meta.json")
    metrics = {}
    with atomic_dir(resolve_path(cfg.paths.encoded_dir)) as out:
        for split in ENCODED_SPLITS:
            table = read_split_table(prepared, split)
            flat, offsets = ragged_ids(table)
            ids, lengths = pad_and_truncate(flat, offsets, **settings)
            counts = np.diff(offsets).astype(np.int32)
            EncodedSplit(ids, lengths, counts, table_labels(table)).save(out / split)
            stats = token_length_stats(offsets, settings["max_len"])
            metrics[split] = {
                "truncated_share": stats["truncated_share"],
                "mean_kept_length": float(lengths.mean()) if len(lengths) else 0.0,  # unsup may have no rows
            }
        write_json(out / "meta.json", {**meta, **settings})
    write_json(resolve_path(cfg.paths.reports_dir) / "data" / "encode.json", metrics)
    summary(
        "encode",
        max_len=settings["max_len"],
        **{f"{s}_truncated": f"{m['truncated_share']:.1%}" for s, m in metrics.items()},
    )


if __name__ == "__main__":
    main()
