"""DVC stage `prepare`: turn the raw data into what training reads, and report its statistics as DVC metrics
(`<reports_dir>/data/prepare.json`). Per task (rnnlab.tasks.<kind>.prepare): imdb tokenizes and builds the
vocabulary on train; forecast fills gaps, splits in time and fits the scaler on train; charlm builds the
character vocabulary and the contiguous split.

python pipelines/prepare.py [task=forecast]
"""

from omegaconf import DictConfig

from rnnlab.config import resolve_path
from rnnlab.io import write_json
from rnnlab.stage import entry_point, summary
from rnnlab.tasks import task_module


@entry_point
def main(cfg: DictConfig) -> None:
    metrics, facts = task_module(cfg).prepare(cfg)
    write_json(resolve_path(cfg.paths.reports_dir) / "data" / "prepare.json", metrics)
    summary("prepare", **facts)


if __name__ == "__main__":
    main()
