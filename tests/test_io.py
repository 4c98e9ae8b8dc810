"""Atomic writes: all or nothing, and modes that follow the user's umask like any other new file."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from rnnlab import io
from rnnlab.io import atomic_dir, atomic_file, current_umask, write_json

# Writes a file, a JSON report in a new folder, a folder and a replaced folder with the library's helpers;
# prints the umask it read and every mode it got.
WRITER = """
import json, stat, sys
from pathlib import Path
from rnnlab.io import atomic_dir, atomic_file, current_umask, write_json
root = Path(sys.argv[1])
write_json(root / "reports" / "train" / "gru.json", {"val_acc_best": 0.5})
with atomic_file(root / "plot.png", "wb") as handle:
    handle.write(b"png")
for version in (b"1", b"2"):
    with atomic_dir(root / "export") as out:
        write_json(out / "export.json", {"version": version.decode()})
        (out / "model.onnx").write_bytes(version)
modes = {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in sorted(root.rglob("*"))}
print(json.dumps({"umask": current_umask(), "modes": modes}))
"""


def expected_mode(path: Path, umask: int) -> int:
    return (0o777 if path.is_dir() else 0o666) & ~umask


@pytest.mark.parametrize("umask", [0o022, 0o027, 0o077], ids=oct)
def test_written_files_and_folders_follow_the_umask(tmp_path, umask):
    done = subprocess.run(
        [sys.executable, "-c", WRITER, str(tmp_path)],
        umask=umask,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    result = json.loads(done.stdout)
    assert result["umask"] == umask
    names = [
        "export",
        "export/export.json",
        "export/model.onnx",
        "plot.png",
        "reports",
        "reports/train",
        "reports/train/gru.json",
    ]
    assert sorted(result["modes"]) == names  # no temporary files or folders left
    for name, mode in result["modes"].items():
        assert mode == expected_mode(tmp_path / name, umask), (name, oct(mode))
    assert (tmp_path / "export" / "model.onnx").read_bytes() == b"2"


def test_umask_without_proc_is_read_and_restored(monkeypatch):
    def no_proc(*args, **kwargs):
        raise OSError("no /proc here")

    before = os.umask(0o027)
    try:
        monkeypatch.setattr(io, "open", no_proc, raising=False)  # shadows the builtin inside rnnlab.io
        assert current_umask() == 0o027
        assert os.umask(0o027) == 0o027  # still in place after reading it
    finally:
        os.umask(before)


def test_a_failed_write_leaves_the_target_as_it_was(tmp_path):
    write_json(tmp_path / "report.json", {"old": True})
    (tmp_path / "export").mkdir()
    (tmp_path / "export" / "model.onnx").write_text("old")
    with pytest.raises(RuntimeError), atomic_file(tmp_path / "report.json") as handle:
        handle.write('{"new": ')
        raise RuntimeError("interrupted")
    with pytest.raises(RuntimeError), atomic_dir(tmp_path / "export") as out:
        (out / "model.onnx").write_text("new")
        raise RuntimeError("interrupted")
    assert json.loads((tmp_path / "report.json").read_text()) == {"old": True}
    assert (tmp_path / "export" / "model.onnx").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["export", "report.json"]
    assert stat.S_IMODE((tmp_path / "report.json").stat().st_mode) == 0o666 & ~current_umask()
