"""Sentence pairs from the manythings.org/anki files (Tatoeba): fetch with a checksum, read safely.

The format (data.source kind `anki`): one pair a line, `source<TAB>target`, UTF-8; newer releases add a third
column (the Tatoeba attribution), which is ignored. The file comes alone or inside a zip (`fra-eng.zip` holds
`fra-eng/fra.txt`); `member` names it by its base name, and the macOS resource forks that some zips carry
(`__MACOSX/`, `._*`) are never taken for it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from rnnlab.data.archive import read_members
from rnnlab.data.source_file import fetch_source_file
from rnnlab.errors import ConfigError, DataSourceError, LayoutError

KIND = "anki"


@dataclass(frozen=True)
class Pairs:
    """Parallel sentences in file order: `src[i]` translates to `tgt[i]` (raw text, line ending removed)."""

    src: list[str]
    tgt: list[str]

    def __post_init__(self) -> None:
        if len(self.src) != len(self.tgt):
            raise ValueError(f"{len(self.src)} source but {len(self.tgt)} target sentences")

    def __len__(self) -> int:
        return len(self.src)


def fetch_pairs(
    source_cfg: Mapping,
    dataset_name: str,
    downloads_dir: str | os.PathLike,
    environ: Mapping = os.environ,
    *,
    download_cfg: Mapping | None = None,
    progress: bool = True,
) -> tuple[Path, str, Pairs]:
    """The local file of `data.source` (a zip or the text file), its sha256 and the pairs it holds (read once:
    a file that does not parse is refused here).

    RNNLAB_<NAME>_SOURCE / RNNLAB_<NAME>_SHA256 override `uri` / `sha256` as for every data set; a URL is
    downloaded into `downloads_dir` (`download_cfg`: retries, timeout_s, chunk_bytes, backoff_s).
    """
    path, digest = fetch_source_file(
        source_cfg,
        dataset_name,
        downloads_dir,
        kind=KIND,
        needs="sentence pairs",
        what="a zip or a text file",
        environ=environ,
        download_cfg=download_cfg,
        progress=progress,
    )
    return path, digest, read_pairs(path, member(source_cfg), progress=progress)


def member(source_cfg: Mapping) -> str:
    """`data.source.member`: the base name of the pairs file inside a zip."""
    name = source_cfg.get("member")
    if not isinstance(name, str) or not name or "/" in name:
        raise ConfigError(
            f"data.source.member is {name!r}; give the base name of the pairs file in the zip, e.g. fra.txt."
        )
    return name


def read_pairs(path: str | os.PathLike, member_name: str, *, progress: bool = False) -> Pairs:
    """The pairs of a text file, or of the member `member_name` of a zip (safe reading, CRC checked)."""
    path = Path(path)
    if path.suffix.lower() != ".zip":
        if not path.is_file():
            raise DataSourceError(f"{path} does not exist; check data.source.uri or RNNLAB_<DATASET>_SOURCE.")
        return parse_pairs(path.read_bytes(), str(path))
    found = read_members(path, lambda name: _is_member(name, member_name), progress=progress)
    if len(found) != 1:
        names = ", ".join(name for name, _ in found) or "none"
        raise LayoutError(
            f"{path} should hold one file named {member_name!r} (data.source.member); found: {names}."
        )
    name, data = found[0]
    return parse_pairs(data, f"{path}:{name}")


def parse_pairs(data: bytes, origin: str) -> Pairs:
    """Pairs from the bytes of a pairs file (`origin` names it in errors). Lines end at `\n` (a `\r` before it
    is dropped); blank lines are skipped."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise DataSourceError(f"{origin} is not UTF-8 text (invalid byte at offset {exc.start}).") from exc
    src, tgt = [], []
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.removesuffix("\r")
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            raise LayoutError(f"{origin}, line {number}: expected source<TAB>target, got {line[:80]!r}.")
        src.append(columns[0])
        tgt.append(columns[1])
    if not src:
        raise LayoutError(f"{origin} holds no sentence pairs.")
    return Pairs(src, tgt)


def _is_member(name: str, member_name: str) -> bool:
    parts = PurePosixPath(name).parts
    return bool(parts) and parts[-1] == member_name and "__MACOSX" not in parts
