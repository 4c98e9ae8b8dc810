"""DVC stage `download`: fetch the task's data set (or read a local mirror), verify its checksum, store it
in `paths.raw_dir`. What "the data set" is comes from the task (rnnlab.tasks.<kind>.download).

python pipelines/download.py [data.source.uri=...]
RNNLAB_IMDB_SOURCE=../shared/data/imdb/aclImdb_mini.tar.gz python pipelines/download.py
RNNLAB_TINYSHAKESPEARE_SOURCE=<path of input.txt> python pipelines/download.py task=charlm
"""

from omegaconf import DictConfig

from rnnlab.stage import entry_point, summary
from rnnlab.tasks import task_module


@entry_point
def main(cfg: DictConfig) -> None:
    summary("download", **task_module(cfg).download(cfg))


if __name__ == "__main__":
    main()
