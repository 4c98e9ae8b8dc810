"""Safe archive reading: every member is checked before any member's contents are returned.

Zip archives are recognised by the `.zip` suffix; anything else is read as a tar with any compression
tarfile knows (gzip, bz2, xz). Nothing is written to disk. Refused: absolute member names, `..` components,
links whose target is absolute or leaves the archive root, and device or fifo members. Only regular files
are returned: links are checked but never followed. Zip symlink entries read as plain files.
"""

from __future__ import annotations

import gzip
import lzma
import os
import posixpath
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from tqdm.auto import tqdm

from rnnlab.errors import ArchiveError

_CORRUPT = (
    EOFError,
    tarfile.ReadError,
    tarfile.CompressionError,
    zlib.error,
    gzip.BadGzipFile,
    lzma.LZMAError,
    zipfile.BadZipFile,
)
_PROGRESS_MIN_BYTES = 4 << 20
_DRAIN_BYTES = 1 << 20
_DRIVE = re.compile(r"^[A-Za-z]:")

Members = list[tuple[str, bytes]]


def read_members(
    archive: str | os.PathLike, include: Callable[[str], bool], *, progress: bool = True
) -> Members:
    """Return (name, contents) of the regular files in a tar or zip `archive` that `include(name)` selects.

    Members come in archive order. A tar is read in a single decompression pass; the selected contents
    are held in memory until every member has been checked, so an unsafe, truncated or corrupt archive
    raises ArchiveError and returns nothing.
    """
    archive = Path(archive)
    if not archive.is_file():
        raise ArchiveError(f"Archive {archive} does not exist or is not a file; check the path.")
    reader = _read_zip if archive.suffix.lower() == ".zip" else _read_tar
    try:
        with open(archive, "rb") as raw, _byte_bar(archive, raw, progress) as advance:
            return reader(raw, archive, include, advance)
    except _CORRUPT as exc:
        raise ArchiveError(
            f"Archive {archive} is truncated or corrupt ({type(exc).__name__}: {exc}). "
            "Delete it and download it again, or point the source at a good copy."
        ) from exc


def _read_tar(raw: BinaryIO, archive: Path, include: Callable[[str], bool], advance: Callable) -> Members:
    selected = []
    with tarfile.open(fileobj=raw, mode="r:*") as tar:
        # iterating parses each header as the stream reaches it, and a member read right after its header
        # needs no seek, so the compressed stream is decompressed once, front to back
        for member in tar:
            _check_tar_member(member, archive)
            if member.isfile() and include(member.name):
                selected.append((member.name, tar.extractfile(member).read()))
            advance()
        while tar.fileobj.read(_DRAIN_BYTES):  # read to the end: gzip, bz2 and xz check their checksums there
            pass
        advance()
    return selected


def _read_zip(raw: BinaryIO, archive: Path, include: Callable[[str], bool], advance: Callable) -> Members:
    with zipfile.ZipFile(raw) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_name(info.filename, archive)
        selected = []
        for info in infos:
            if not info.is_dir() and include(info.filename):
                selected.append((info.filename, zf.read(info)))  # zipfile checks each member's CRC
                advance()
    return selected


def _is_absolute(name: str) -> bool:
    return name.startswith(("/", "\\")) or bool(_DRIVE.match(name))


def _check_name(name: str, archive: Path) -> None:
    """Refuse absolute member names and names with a `..` component."""
    if _is_absolute(name):
        raise ArchiveError(f"Archive {archive}: refused member {name!r} with an absolute path.")
    if ".." in re.split(r"[\\/]", name):
        raise ArchiveError(f"Archive {archive}: refused member {name!r}: its path leaves the archive root.")


def _check_tar_member(member: tarfile.TarInfo, archive: Path) -> None:
    """Refuse unsafe names, device/fifo members, and links pointing outside the archive root."""
    _check_name(member.name, archive)
    if member.isdev():
        raise ArchiveError(f"Archive {archive}: refused device or fifo member {member.name!r}.")
    if not (member.issym() or member.islnk()):
        return
    if _is_absolute(member.linkname):
        raise ArchiveError(
            f"Archive {archive}: refused link {member.name!r} -> {member.linkname!r} (absolute target)."
        )
    # a symlink target is relative to the link's folder, a hard link target to the archive root
    base = posixpath.dirname(member.name) if member.issym() else ""
    target = posixpath.normpath(posixpath.join(base, member.linkname))
    if target == ".." or target.startswith("../"):
        raise ArchiveError(
            f"Archive {archive}: refused link {member.name!r} -> {member.linkname!r} (points outside the "
            "archive root)."
        )


@contextmanager
def _byte_bar(archive: Path, raw: BinaryIO, progress: bool) -> Iterator[Callable[[], None]]:
    """Yield a callable that moves a progress bar (shown for large archives) to `raw`'s read position."""
    size = archive.stat().st_size
    quiet = not progress or size < _PROGRESS_MIN_BYTES
    with tqdm(
        total=size, desc=f"read {archive.name}", unit="B", unit_scale=True, unit_divisor=1024, disable=quiet
    ) as bar:
        yield (lambda: None) if quiet else (lambda: bar.update(raw.tell() - bar.n))
