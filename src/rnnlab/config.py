"""Where the project lives and how stage scripts read the composed configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import ConfigError

ROOT_ENV = "RNNLAB_ROOT"


def project_root(start: str | os.PathLike | None = None) -> Path:
    """The folder holding `conf/config.yaml`: `$RNNLAB_ROOT`, else the nearest above `start` or the cwd."""
    if os.environ.get(ROOT_ENV):
        return Path(os.environ[ROOT_ENV]).resolve()
    here = Path(start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / "conf" / "config.yaml").is_file():
            return folder
    return here


def resolve_path(path: str | os.PathLike, root: Path | None = None) -> Path:
    """An absolute path: relative paths from the config are anchored on the project root."""
    path = Path(path).expanduser()
    return path if path.is_absolute() else (root or project_root()) / path


def section(cfg: DictConfig, key: str) -> dict[str, Any]:
    """A resolved plain-dict copy of one config node, e.g. `section(cfg, "data.encode")`."""
    node = OmegaConf.select(cfg, key, throw_on_missing=True)
    if node is None:
        raise KeyError(f"config has no '{key}'")
    return OmegaConf.to_container(node, resolve=True)  # type: ignore[return-value]


def model_config(cfg: DictConfig) -> dict[str, Any]:
    """The cell a stage works on: `models.<model_key>` under DVC (`+model_key=gru`), else `model`."""
    key = cfg.get("model_key")
    if key is None:
        return section(cfg, "model")
    if OmegaConf.select(cfg, f"models.{key}") is None:
        raise ConfigError(f"model_key={key!r} is not allowed; allowed: one of {', '.join(cfg.models)}")
    return section(cfg, f"models.{key}")
