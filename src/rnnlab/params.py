"""Keep params.yaml equal to the composition of conf/ (the file DVC's Hydra integration writes)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from dvc.utils.hydra import compose_and_dump


def compose_params(root: Path, overrides: list[str] | None = None) -> str:
    """The text DVC would write to params.yaml for `dvc exp run -S <overrides>`."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "params.yaml"
        compose_and_dump(out, str((root / "conf").resolve()), None, "config", str(root), overrides or [])
        return out.read_text(encoding="utf-8")


def sync_params(root: Path, check: bool = False) -> bool:
    """Rewrite `root/params.yaml` from conf/ (only compare when `check`); True if it was already in sync."""
    target = root / "params.yaml"
    composed = compose_params(root)
    in_sync = target.is_file() and target.read_text(encoding="utf-8") == composed
    if not in_sync and not check:
        target.write_text(composed, encoding="utf-8")
    return in_sync
