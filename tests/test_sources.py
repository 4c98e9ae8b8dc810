"""data.source resolution, IMDB folder/archive reading and the acquire entry point (table sources:
test_table_sources.py)."""

from __future__ import annotations

import functools
import hashlib
import socket
import tarfile
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest

from rnnlab.data.imdb import read_imdb_archive, read_imdb_folder
from rnnlab.data.sources import acquire, resolve_source
from rnnlab.errors import ChecksumError, ConfigError, DataSourceError, LayoutError

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared/data"
MINI = SHARED_DATA / "imdb/aclImdb_mini.tar.gz"
MINI_SHA256 = "5e5fd58d692cf7cfa6258283ac4c3c794a256c4f955a903d77168e3bb405c518"
SHA_A, SHA_B = "a" * 64, "b" * 64


def _tar_gz(folder: Path, archive: Path, arcname: str | None = None) -> Path:
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(folder, arcname=folder.name if arcname is None else arcname)
    return archive


def _imdb_folder(parent: Path, extra: dict[str, bytes] | None = None, skip: str = "") -> Path:
    """Write a tiny aclImdb/ (ids 2 and 10 per split and label, and in train/unsup/; a README); return it."""
    files = {
        f"{split}/{label}/{i}_{rating}.txt": f"{split} {label} {i}".encode()
        for split in ("train", "test")
        for label, rating in (("neg", 2), ("pos", 9))
        for i in (10, 2)
    }
    files.update({f"train/unsup/{i}_0.txt": f"unlabelled {i}".encode() for i in (10, 2)})
    files.update({"README": b"readme", **(extra or {})})
    root = parent / "aclImdb"
    for name, data in files.items():
        if skip and name.startswith(skip):
            continue
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return root


# --- resolve_source ---------------------------------------------------------------------------------------


def test_source_env_override_clears_configured_checksum():
    cfg = {"kind": "imdb", "uri": "http://example.org/aclImdb.tar.gz", "sha256": SHA_A}
    assert resolve_source(cfg, "imdb", environ={}).sha256 == SHA_A
    spec = resolve_source(cfg, "imdb", environ={"RNNLAB_IMDB_SOURCE": "/mirror/a.tgz"})
    assert (spec.uri, spec.sha256) == ("/mirror/a.tgz", None)
    env = {"RNNLAB_IMDB_SOURCE": "/mirror/a.tgz", "RNNLAB_IMDB_SHA256": SHA_B.upper()}
    assert resolve_source(cfg, "imdb", environ=env).sha256 == SHA_B


def test_sha256_env_alone_replaces_checksum_only():
    cfg = {"kind": "imdb", "uri": "http://example.org/a.tgz", "sha256": SHA_A}
    spec = resolve_source(cfg, "imdb", environ={"RNNLAB_IMDB_SHA256": SHA_B})
    assert (spec.uri, spec.sha256) == ("http://example.org/a.tgz", SHA_B)


def test_env_names_follow_dataset_name_and_paths_resolve_against_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = {"RNNLAB_FRA_ENG_SOURCE": "d/y.csv"}
    spec = resolve_source({"kind": "table", "uri": "x.csv"}, "fra-eng", environ=env)
    assert spec.uri == str(tmp_path / "d/y.csv")


def test_bad_kind_names_key_and_allowed_values():
    with pytest.raises(ConfigError, match=r"data\.source\.kind.*'csv'.*imdb, table"):
        resolve_source({"kind": "csv", "uri": "x"}, "imdb", environ={})


@pytest.mark.parametrize(
    ("cfg", "key"),
    [
        ({"kind": "imdb"}, "data.source.uri"),
        ({"kind": "imdb", "uri": "s3://bucket/a.tgz"}, "data.source.uri"),
        ({"kind": "imdb", "uri": "a.tgz", "sha256": "abc"}, "data.source.sha256"),
        ({"kind": "table", "uri": "a.csv", "text_column": ""}, "data.source.text_column"),
        ({"kind": "table", "uri": "a.csv", "test_fraction": 1.0}, "data.source.test_fraction"),
    ],
)
def test_invalid_source_config_names_key(cfg, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        resolve_source(cfg, "imdb", environ={})


def test_test_fraction_unchecked_with_test_file():
    spec = resolve_source({"kind": "table", "uri": "a.csv", "test_uri": "b.csv", "test_fraction": 0}, "t", {})
    assert spec.test_uri.endswith("b.csv")


# --- IMDB -------------------------------------------------------------------------------------------------


@pytest.mark.skipif(not MINI.exists(), reason="offline mini IMDB archive not present")
def test_mini_archive(tmp_path):
    downloads = tmp_path / "downloads"
    tables, info = acquire(
        {"kind": "imdb", "uri": str(MINI), "sha256": MINI_SHA256},
        "imdb",
        downloads,
        environ={},
        progress=False,
    )
    assert info["reviews"] == {"train": 1000, "test": 1000, "unsup": 200}
    assert info["label_counts"]["train"] == info["label_counts"]["test"] == {"neg": 500, "pos": 500}
    assert info["sha256"] == MINI_SHA256 and info["label_names"] == ["neg", "pos"]
    train = tables["train"].to_pydict()
    assert tables["train"].schema.field("label").type == pa.int8()
    assert train["review_id"][:2] == ["train/neg/0", "train/neg/1"]  # numeric, not lexical, id order
    assert all((r <= 4) if y == 0 else (r >= 7) for y, r in zip(train["label"], train["rating"], strict=True))
    assert not downloads.exists()  # a local archive is read in place: nothing is written


@pytest.mark.skipif(not MINI.exists(), reason="offline mini IMDB archive not present")
def test_mini_archive_and_its_extraction_give_identical_tables(tmp_path):
    with tarfile.open(MINI) as tar:
        tar.extractall(tmp_path, filter="data")
    from_archive = read_imdb_archive(MINI, progress=False)
    from_folder = read_imdb_folder(tmp_path, progress=False)
    assert from_archive[1] == from_folder[1]
    for split in ("train", "test", "unsup"):
        assert from_archive[0][split].equals(from_folder[0][split])
        assert from_archive[0][split].schema == from_folder[0][split].schema


def test_folder_source_reads_in_numeric_order(tmp_path):
    root = _imdb_folder(tmp_path)
    for uri in (root, tmp_path):  # the aclImdb/ folder itself, or the folder holding it
        tables, info = acquire(
            {"kind": "imdb", "uri": str(uri), "sha256": SHA_A},
            "imdb",
            tmp_path / "dl",
            environ={},
            progress=False,
        )
        assert tables["train"]["review_id"].to_pylist() == [
            "train/neg/2",
            "train/neg/10",
            "train/pos/2",
            "train/pos/10",
        ]
        assert tables["test"]["label"].to_pylist() == [0, 0, 1, 1]
        assert tables["test"]["rating"].to_pylist() == [2, 2, 9, 9]
        assert info["sha256"] is None and "ignored" in info["sha256_note"]
    assert not (tmp_path / "dl").exists()


def test_local_archive_is_checksummed_and_read(tmp_path):
    archive = _tar_gz(_imdb_folder(tmp_path / "src"), tmp_path / "imdb.tar.gz")
    cfg = {"kind": "imdb", "uri": str(archive)}
    tables, info = acquire(cfg, "imdb", tmp_path / "dl", environ={}, progress=False)
    assert info["reviews"] == {"train": 4, "test": 4, "unsup": 2} and len(info["sha256"]) == 64
    assert tables["train"]["review_id"].to_pylist() == [
        "train/neg/2",
        "train/neg/10",
        "train/pos/2",
        "train/pos/10",
    ]
    with pytest.raises(ChecksumError, match=SHA_A):
        acquire({**cfg, "sha256": SHA_A}, "imdb", tmp_path / "dl", environ={}, progress=False)


@pytest.mark.parametrize("from_archive", [False, True])
def test_unlabelled_reviews_are_a_table_of_their_own(tmp_path, from_archive):
    """train/unsup/ becomes the `unsup` table (text and review id, in numeric id order), never a labelled row;
    a copy without train/unsup/ gives an empty one."""
    for skip in ("", "train/unsup/"):
        root = _imdb_folder(tmp_path / (skip.strip("/").replace("/", "_") or "all"), skip=skip)
        if from_archive:
            tables, info = read_imdb_archive(_tar_gz(root, root.parent / "imdb.tar.gz"), progress=False)
        else:
            tables, info = read_imdb_folder(root, progress=False)
        unsup = tables["unsup"].to_pydict()
        expected = {"text": ["unlabelled 2", "unlabelled 10"], "review_id": ["unsup/2", "unsup/10"]}
        assert unsup == ({"text": [], "review_id": []} if skip else expected)
        assert info["reviews"]["unsup"] == len(unsup["text"]) and "unsup" not in info["label_counts"]
        assert not any(
            "unlabelled" in text for split in ("train", "test") for text in tables[split]["text"].to_pylist()
        )


@pytest.mark.parametrize(("skip", "missing"), [("test/", "test/"), ("train/pos/", "train/pos/")])
def test_missing_folder_raises_layout_error(tmp_path, skip, missing):
    root = _imdb_folder(tmp_path, skip=skip)
    with pytest.raises(LayoutError, match=f"missing {missing}") as info:
        read_imdb_folder(root, progress=False)
    assert str(root) in str(info.value)


@pytest.mark.parametrize(("skip", "missing"), [("test/", "test/"), ("train/pos/", "train/pos/")])
def test_archive_missing_folder_raises_layout_error(tmp_path, skip, missing):
    archive = _tar_gz(_imdb_folder(tmp_path, skip=skip), tmp_path / "imdb.tar.gz")
    with pytest.raises(LayoutError, match=f"Archive {archive} .*missing {missing}"):
        read_imdb_archive(archive, progress=False)


@pytest.mark.parametrize("arcname", ["", "./aclImdb"])  # reviews at the top, or below ./aclImdb/
def test_archive_root_variants(tmp_path, arcname):
    archive = _tar_gz(_imdb_folder(tmp_path), tmp_path / "imdb.tar.gz", arcname=arcname)
    tables, info = read_imdb_archive(archive, progress=False)
    assert info["reviews"] == {"train": 4, "test": 4, "unsup": 2}
    assert tables["test"]["review_id"].to_pylist() == [
        "test/neg/2",
        "test/neg/10",
        "test/pos/2",
        "test/pos/10",
    ]


def test_bad_review_name_raises_layout_error(tmp_path):
    archive = _tar_gz(_imdb_folder(tmp_path, {"train/neg/notes.txt": b"x"}), tmp_path / "imdb.tar.gz")
    with pytest.raises(LayoutError, match="'train/neg/notes.txt'.*<id>_<rating>.txt"):
        read_imdb_archive(archive, progress=False)


@pytest.mark.parametrize("from_archive", [False, True])
def test_empty_and_non_utf8_reviews_are_kept_and_counted(tmp_path, from_archive):
    extra = {"train/pos/11_8.txt": b"", "test/neg/12_1.txt": b"caf\xe9 au lait"}
    root = _imdb_folder(tmp_path, extra)
    if from_archive:
        tables, info = read_imdb_archive(_tar_gz(root, tmp_path / "imdb.tar.gz"), progress=False)
    else:
        tables, info = read_imdb_folder(root, progress=False)
    assert info["empty_reviews"] == {"train": 1, "test": 0, "unsup": 0}
    assert info["non_utf8_reviews"] == {"train": 0, "test": 1, "unsup": 0}
    assert info["reviews"] == {"train": 5, "test": 5, "unsup": 2}
    assert "caf\ufffd au lait" in tables["test"]["text"].to_pylist()


def test_url_source_downloads_once_into_downloads_dir(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    archive = _tar_gz(_imdb_folder(tmp_path / "src"), served / "aclImdb_v1.tar.gz")
    requests_seen = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            requests_seen.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/aclImdb_v1.tar.gz"
        cfg = {"kind": "imdb", "uri": url, "sha256": hashlib.sha256(archive.read_bytes()).hexdigest()}
        for _ in range(2):
            tables, info = acquire(cfg, "imdb", tmp_path / "dl", {"retries": 0}, environ={}, progress=False)
            assert info["reviews"] == {"train": 4, "test": 4, "unsup": 2}
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert requests_seen == ["/aclImdb_v1.tar.gz"]  # the second run reused the verified download
    assert [p.name for p in (tmp_path / "dl").iterdir()] == ["aclImdb_v1.tar.gz"]


def test_missing_local_path(tmp_path):
    with pytest.raises(DataSourceError, match="nope.tar.gz"):
        acquire({"kind": "imdb", "uri": str(tmp_path / "nope.tar.gz")}, "imdb", tmp_path, environ={})


def test_unreachable_url_suggests_offline_mirror(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    cfg = {"kind": "imdb", "uri": f"http://127.0.0.1:{port}/aclImdb_v1.tar.gz"}
    with pytest.raises(DataSourceError, match="RNNLAB_IMDB_SOURCE"):
        acquire(cfg, "imdb", tmp_path, {"retries": 0, "timeout_s": 2}, environ={}, progress=False)
