"""safe_extract: unsafe members are refused before anything is written; damaged archives say so."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from rnnlab.data.archive import safe_extract
from rnnlab.errors import ArchiveError


def _add_file(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))


def _add_link(tar: tarfile.TarFile, name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> None:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    tar.addfile(info)


def _tar(path: Path, build, mode: str = "w:gz") -> Path:
    with tarfile.open(path, mode) as tar:
        _add_file(tar, "pkg/good.txt", b"good")
        build(tar)
    return path


def _extracted(dest: Path) -> list[str]:
    return sorted(str(p.relative_to(dest)) for p in dest.rglob("*")) if dest.exists() else []


def test_good_tar_extracts(tmp_path):
    def build(tar):
        _add_file(tar, "pkg/sub/b.txt", b"b")
        _add_link(tar, "pkg/sub/link", "../good.txt")  # a link that stays inside is fine

    archive = _tar(tmp_path / "ok.tar.gz", build)
    safe_extract(archive, tmp_path / "out", progress=False)
    out = tmp_path / "out"
    assert (out / "pkg/good.txt").read_bytes() == b"good"
    assert (out / "pkg/sub/link").read_bytes() == b"good"


@pytest.mark.parametrize("mode", ["w", "w:bz2", "w:xz"])
def test_other_tar_compressions(tmp_path, mode):
    archive = _tar(tmp_path / "ok.tar", lambda tar: None, mode=mode)
    safe_extract(archive, tmp_path / "out", progress=False)
    assert (tmp_path / "out/pkg/good.txt").read_bytes() == b"good"


def test_include_selects_members(tmp_path):
    archive = _tar(tmp_path / "ok.tgz", lambda tar: _add_file(tar, "pkg/skip.bin", b"x"))
    safe_extract(archive, tmp_path / "out", include=lambda name: name.endswith(".txt"), progress=False)
    assert _extracted(tmp_path / "out") == ["pkg", "pkg/good.txt"]


def test_dotdot_member_refused_and_nothing_written(tmp_path):
    archive = _tar(tmp_path / "evil.tar.gz", lambda tar: _add_file(tar, "pkg/../../evil.txt", b"x"))
    dest = tmp_path / "a" / "out"
    with pytest.raises(ArchiveError, match=r"pkg/\.\./\.\./evil\.txt"):
        safe_extract(archive, dest, progress=False)
    assert not (tmp_path / "evil.txt").exists()
    assert _extracted(dest) == []  # checked before extracting: not even the good member


def test_absolute_member_refused(tmp_path):
    target = tmp_path / "abs.txt"
    archive = _tar(tmp_path / "abs.tar.gz", lambda tar: _add_file(tar, str(target), b"x"))
    with pytest.raises(ArchiveError, match="absolute path"):
        safe_extract(archive, tmp_path / "out", progress=False)
    assert not target.exists()


@pytest.mark.parametrize(
    ("target", "kind", "reason"),
    [
        ("../../outside", tarfile.SYMTYPE, "points outside"),
        ("/etc/passwd", tarfile.SYMTYPE, "absolute target"),
        ("../outside", tarfile.LNKTYPE, "points outside"),
    ],
)
def test_links_leaving_destination_refused(tmp_path, target, kind, reason):
    archive = _tar(tmp_path / "link.tar.gz", lambda tar: _add_link(tar, "pkg/link", target, kind))
    with pytest.raises(ArchiveError, match=reason):
        safe_extract(archive, tmp_path / "out", progress=False)
    assert _extracted(tmp_path / "out") == []


def test_device_member_refused(tmp_path):
    def build(tar):
        info = tarfile.TarInfo("pkg/dev")
        info.type = tarfile.CHRTYPE
        tar.addfile(info)

    with pytest.raises(ArchiveError, match="device or fifo"):
        safe_extract(_tar(tmp_path / "dev.tar.gz", build), tmp_path / "out", progress=False)


def test_truncated_tar_gz(tmp_path):
    archive = _tar(tmp_path / "big.tar.gz", lambda tar: _add_file(tar, "pkg/noise.bin", os.urandom(200_000)))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    with pytest.raises(ArchiveError, match="truncated or corrupt") as info:
        safe_extract(archive, tmp_path / "out", progress=False)
    assert str(archive) in str(info.value) and "download it again" in str(info.value)


@pytest.mark.parametrize("name", ["noise.tar.gz", "noise.zip"])
def test_random_bytes(tmp_path, name):
    archive = tmp_path / name
    archive.write_bytes(os.urandom(4096))
    with pytest.raises(ArchiveError, match="truncated or corrupt"):
        safe_extract(archive, tmp_path / "out", progress=False)


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        safe_extract(tmp_path / "nope.tar.gz", tmp_path / "out", progress=False)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_good_zip_extracts(tmp_path):
    archive = _zip(tmp_path / "ok.zip", {"fra-eng/fra.txt": b"hi\tsalut\n", "fra-eng/_about.txt": b"about"})
    safe_extract(archive, tmp_path / "out", progress=False)
    assert (tmp_path / "out/fra-eng/fra.txt").read_bytes() == b"hi\tsalut\n"


def test_zip_dotdot_refused(tmp_path):
    archive = _zip(tmp_path / "evil.zip", {"ok.txt": b"ok", "../evil.txt": b"x"})
    with pytest.raises(ArchiveError, match=r"\.\./evil\.txt"):
        safe_extract(archive, tmp_path / "a" / "out", progress=False)
    assert not (tmp_path / "a" / "evil.txt").exists()
    assert _extracted(tmp_path / "a" / "out") == []


def test_zip_crc_error(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"A" * 1000)
    data = bytearray(archive.read_bytes())
    data[data.index(b"AAAA") + 10] = ord("B")  # damage the stored bytes, not the headers
    archive.write_bytes(bytes(data))
    with pytest.raises(ArchiveError, match="truncated or corrupt.*CRC"):
        safe_extract(archive, tmp_path / "out", progress=False)
