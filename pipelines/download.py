"""DVC stage `download`: fetch the data set (or read a local mirror), verify, extract, store per-split tables.

python pipelines/download.py [data.source.uri=...]
RNNLAB_IMDB_SOURCE=../shared/data/imdb/aclImdb_mini.tar.gz python pipelines/download.py
"""

import hydra
from omegaconf import DictConfig

from rnnlab.config import resolve_path, section
from rnnlab.data.sources import acquire
from rnnlab.data.store import write_split_table
from rnnlab.io import atomic_dir, write_json
from rnnlab.stage import report_errors, summary


@hydra.main(config_path="../conf", config_name="config", version_base="1.3")
@report_errors
def main(cfg: DictConfig) -> None:
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
    summary("download", source=info["uri"], **{split: table.num_rows for split, table in tables.items()})


if __name__ == "__main__":
    main()
