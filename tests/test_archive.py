"""read_members: unsafe members refuse the whole archive before anything is returned; damage says so."""

from __future__ import annotations

import io
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from rnnlab.data import archive as archive_module
from rnnlab.data.archive import read_members
from rnnlab.errors import ArchiveError


def _everything(name: str) -> bool:
    return True


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


def _refused(archive: Path, match: str) -> ArchiveError:
    """Read `archive`, expect ArchiveError matching `match`: nothing is returned, not even good members."""
    with pytest.raises(ArchiveError, match=match) as info:
        read_members(archive, _everything, progress=False)
    return info.value


def test_good_tar_read_in_archive_order(tmp_path):
    def build(tar):
        folder = tarfile.TarInfo("pkg/sub")
        folder.type = tarfile.DIRTYPE
        tar.addfile(folder)
        _add_file(tar, "pkg/sub/b.txt", b"b")
        _add_link(tar, "pkg/sub/link", "../good.txt")  # links that stay inside are fine, but not returned
        _add_link(tar, "pkg/hard", "pkg/good.txt", tarfile.LNKTYPE)
        _add_file(tar, "pkg/empty.txt", b"")

    archive = _tar(tmp_path / "ok.tar.gz", build)
    members = read_members(archive, _everything, progress=False)
    assert members == [("pkg/good.txt", b"good"), ("pkg/sub/b.txt", b"b"), ("pkg/empty.txt", b"")]


@pytest.mark.parametrize("mode", ["w", "w:bz2", "w:xz"])
def test_other_tar_compressions(tmp_path, mode):
    archive = _tar(tmp_path / "ok.tar", lambda tar: None, mode=mode)
    assert read_members(archive, _everything, progress=False) == [("pkg/good.txt", b"good")]


def test_include_selects_members(tmp_path):
    archive = _tar(tmp_path / "ok.tgz", lambda tar: _add_file(tar, "pkg/skip.bin", b"x"))
    members = read_members(archive, lambda name: name.endswith(".txt"), progress=False)
    assert members == [("pkg/good.txt", b"good")]


def test_progress_bar_over_archive_bytes(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(archive_module, "_PROGRESS_MIN_BYTES", 0)
    archive = _tar(tmp_path / "ok.tar.gz", lambda tar: None)
    assert read_members(archive, _everything) == [("pkg/good.txt", b"good")]
    assert f"read {archive.name}" in capsys.readouterr().err


def test_dotdot_member_refused_and_nothing_returned(tmp_path):
    archive = _tar(tmp_path / "evil.tar.gz", lambda tar: _add_file(tar, "pkg/../../evil.txt", b"x"))
    _refused(archive, r"pkg/\.\./\.\./evil\.txt.*leaves the archive root")  # the good member is not returned
    assert not (tmp_path / "evil.txt").exists()


def test_unsafe_member_after_selected_ones_refuses_the_whole_archive(tmp_path):
    def build(tar):
        for i in range(50):
            _add_file(tar, f"pkg/{i}.txt", b"ok")
        _add_link(tar, "pkg/zz", "/etc/passwd")

    _refused(_tar(tmp_path / "late.tar.gz", build), "absolute target")


def test_absolute_member_refused(tmp_path):
    target = tmp_path / "abs.txt"
    archive = _tar(tmp_path / "abs.tar.gz", lambda tar: _add_file(tar, str(target), b"x"))
    _refused(archive, "absolute path")
    assert not target.exists()


@pytest.mark.parametrize(
    ("target", "kind", "reason"),
    [
        ("../../outside", tarfile.SYMTYPE, "points outside"),
        ("/etc/passwd", tarfile.SYMTYPE, "absolute target"),
        ("../outside", tarfile.LNKTYPE, "points outside"),
        ("pkg/../../outside", tarfile.LNKTYPE, "points outside"),
    ],
)
def test_links_leaving_archive_root_refused(tmp_path, target, kind, reason):
    archive = _tar(tmp_path / "link.tar.gz", lambda tar: _add_link(tar, "pkg/link", target, kind))
    _refused(archive, reason)


@pytest.mark.parametrize("kind", [tarfile.CHRTYPE, tarfile.BLKTYPE, tarfile.FIFOTYPE])
def test_device_member_refused(tmp_path, kind):
    def build(tar):
        info = tarfile.TarInfo("pkg/dev")
        info.type = kind
        tar.addfile(info)

    _refused(_tar(tmp_path / "dev.tar.gz", build), "device or fifo")


def test_truncated_tar_gz(tmp_path):
    archive = _tar(tmp_path / "big.tar.gz", lambda tar: _add_file(tar, "pkg/noise.bin", os.urandom(200_000)))
    data = archive.read_bytes()
    archive.write_bytes(data[: len(data) // 2])
    error = _refused(archive, "truncated or corrupt")
    assert str(archive) in str(error) and "download it again" in str(error)


def test_tar_gz_checksum_error(tmp_path):
    archive = _tar(tmp_path / "crc.tar.gz", lambda tar: None)
    data = bytearray(archive.read_bytes())
    data[-8] ^= 0xFF  # the gzip trailer's CRC-32: the tar itself parses fine
    archive.write_bytes(bytes(data))
    _refused(archive, "truncated or corrupt.*CRC")


@pytest.mark.parametrize("name", ["noise.tar.gz", "noise.zip"])
def test_random_bytes(tmp_path, name):
    archive = tmp_path / name
    archive.write_bytes(os.urandom(4096))
    _refused(archive, "truncated or corrupt")


def test_missing_archive(tmp_path):
    with pytest.raises(ArchiveError, match="does not exist"):
        read_members(tmp_path / "nope.tar.gz", _everything, progress=False)


def _zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_good_zip_read(tmp_path):
    members = {"fra-eng/": b"", "fra-eng/fra.txt": b"hi\tsalut\n", "fra-eng/_about.txt": b"about"}
    archive = _zip(tmp_path / "ok.zip", members)
    assert read_members(archive, _everything, progress=False) == [
        ("fra-eng/fra.txt", b"hi\tsalut\n"),
        ("fra-eng/_about.txt", b"about"),
    ]
    assert read_members(archive, lambda name: "fra." in name, progress=False) == [
        ("fra-eng/fra.txt", b"hi\tsalut\n")
    ]


@pytest.mark.parametrize(
    ("name", "reason"), [("../evil.txt", "leaves the archive root"), ("/abs.txt", "absolute path")]
)
def test_zip_unsafe_name_refused(tmp_path, name, reason):
    archive = _zip(tmp_path / "evil.zip", {"ok.txt": b"ok", name: b"x"})
    _refused(archive, reason)


def test_zip_crc_error(tmp_path):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"A" * 1000)
    data = bytearray(archive.read_bytes())
    data[data.index(b"AAAA") + 10] = ord("B")  # damage the stored bytes, not the headers
    archive.write_bytes(bytes(data))
    _refused(archive, "truncated or corrupt.*CRC")
