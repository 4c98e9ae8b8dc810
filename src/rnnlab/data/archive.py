"""Safe archive extraction: every member is checked before anything is written.

Zip archives are recognised by the `.zip` suffix; anything else is opened as a tar with any compression
tarfile knows (gzip, bz2, xz). Refused: absolute member names, `..` components, links whose target is
absolute or leaves the destination, and device or fifo members. Tar extraction also runs tarfile's
`data` filter as a second line of defence. Zip symlink entries are written as plain files by zipfile.
"""

from __future__ import annotations

import gzip
import lzma
import os
import re
import tarfile
import zipfile
import zlib
from collections.abc import Callable, Iterable
from pathlib import Path

from tqdm.auto import tqdm

from rnnlab.errors import ArchiveError

_CORRUPT = (
    EOFError, tarfile.ReadError, tarfile.CompressionError, zlib.error, gzip.BadGzipFile, lzma.LZMAError,
    zipfile.BadZipFile,
)
_PROGRESS_MIN_MEMBERS = 1000
_DRIVE = re.compile(r"^[A-Za-z]:")


def safe_extract(
    archive: str | os.PathLike,
    dest: str | os.PathLike,
    *,
    include: Callable[[str], bool] | None = None,
    progress: bool = True,
) -> None:
    """Extract a .tar, .tar.gz/.tgz (any tar compression) or .zip `archive` into `dest`.

    All members are checked first, so an unsafe archive writes nothing. `include(name)`, when given,
    selects the members to write (all are still checked); their parent folders are created as needed.
    A truncated or corrupt archive raises ArchiveError; what was extracted before the damage was found
    stays in `dest`, so extract into a temporary folder.
    """
    archive, dest = Path(archive), Path(dest)
    if not archive.is_file():
        raise ArchiveError(f"Archive {archive} does not exist or is not a file; check the path.")
    dest.mkdir(parents=True, exist_ok=True)
    try:
        if archive.suffix.lower() == ".zip":
            _extract_zip(archive, dest, include, progress)
        else:
            _extract_tar(archive, dest, include, progress)
    except _CORRUPT as exc:
        raise ArchiveError(
            f"Archive {archive} is truncated or corrupt ({type(exc).__name__}: {exc}). "
            "Delete it and download it again, or point the source at a good copy."
        ) from exc


def _extract_tar(archive: Path, dest: Path, include: Callable[[str], bool] | None, progress: bool) -> None:
    root = os.path.realpath(dest)
    with tarfile.open(archive, "r:*") as tar:
        members = tar.getmembers()
        for member in members:
            _check_tar_member(member, root, archive)
        if include is not None:
            members = [member for member in members if include(member.name)]
        try:
            tar.extractall(dest, members=_bar(members, archive, progress), filter="data")
        except tarfile.FilterError as exc:
            raise ArchiveError(f"Archive {archive}: refused member {exc.tarinfo.name!r}: {exc}") from exc


def _extract_zip(archive: Path, dest: Path, include: Callable[[str], bool] | None, progress: bool) -> None:
    with zipfile.ZipFile(archive) as zf:
        infos = zf.infolist()
        for info in infos:
            _check_name(info.filename, archive)
        if include is not None:
            infos = [info for info in infos if include(info.filename)]
        for info in _bar(infos, archive, progress):
            zf.extract(info, dest)


def _check_name(name: str, archive: Path) -> None:
    """Refuse absolute member names and names with a `..` component."""
    if name.startswith(("/", "\\")) or _DRIVE.match(name):
        raise ArchiveError(f"Archive {archive}: refused member {name!r} with an absolute path.")
    if ".." in re.split(r"[\\/]", name):
        raise ArchiveError(f"Archive {archive}: refused member {name!r}: its path leaves the destination.")


def _check_tar_member(member: tarfile.TarInfo, root: str, archive: Path) -> None:
    """Refuse unsafe names, device/fifo members, and links pointing outside `root`."""
    _check_name(member.name, archive)
    if member.isdev():
        raise ArchiveError(f"Archive {archive}: refused device or fifo member {member.name!r}.")
    if not (member.issym() or member.islnk()):
        return
    if os.path.isabs(member.linkname) or _DRIVE.match(member.linkname):
        raise ArchiveError(
            f"Archive {archive}: refused link {member.name!r} -> {member.linkname!r} (absolute target)."
        )
    # a symlink target is relative to the link's folder, a hard link target to the archive root
    base = os.path.dirname(member.name) if member.issym() else ""
    target = os.path.normpath(os.path.join(root, base, member.linkname))
    if os.path.commonpath([root, target]) != root:
        raise ArchiveError(
            f"Archive {archive}: refused link {member.name!r} -> {member.linkname!r} (points outside the "
            "destination)."
        )


def _bar(items: list, archive: Path, progress: bool) -> Iterable:
    """Wrap `items` in a progress bar when there are many of them."""
    quiet = not progress or len(items) < _PROGRESS_MIN_MEMBERS
    return tqdm(items, desc=f"extract {archive.name}", unit="file", disable=quiet)
