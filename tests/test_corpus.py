"""The character corpus: fetching with overrides and checks, the character vocabulary, the split."""

from __future__ import annotations

import functools
import hashlib
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from rnnlab.errors import ChecksumError, ConfigError, DataSourceError, LayoutError, RnnlabError
from rnnlab.tasks.charlm.corpus import (
    CharVocabulary,
    PreparedCorpus,
    fetch_corpus,
    prepare_corpus,
    read_corpus,
)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SHAKESPEARE = SHARED_DATA / "tinyshakespeare" / "input.txt"
SHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
URL = "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
CFG = {"kind": "text", "uri": URL, "sha256": SHAKESPEARE_SHA256}
SOURCE_VAR, SHA_VAR = "RNNLAB_TINYSHAKESPEARE_SOURCE", "RNNLAB_TINYSHAKESPEARE_SHA256"


@pytest.fixture(scope="module")
def shakespeare() -> str:
    if not SHAKESPEARE.is_file():
        pytest.skip(f"offline data not found at {SHAKESPEARE}")
    path, digest = fetch_corpus(
        CFG, "tinyshakespeare", "unused", environ={SOURCE_VAR: str(SHAKESPEARE), SHA_VAR: SHAKESPEARE_SHA256}
    )
    assert (path, digest) == (SHAKESPEARE, SHAKESPEARE_SHA256)
    return read_corpus(path)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# --- the real corpus ----------------------------------------------------------------------------------------


def test_tinyshakespeare_vocabulary_and_split_sizes(shakespeare):
    assert len(shakespeare) == 1_115_394
    prepared = prepare_corpus(shakespeare, val_fraction=0.1, max_chars=None)
    assert len(prepared.vocab) == 65
    assert prepared.vocab.chars == sorted(set(shakespeare))
    n_train = int(len(shakespeare) * 0.9)
    assert prepared.facts["chars"] == {"train": n_train, "val": len(shakespeare) - n_train}
    assert prepared.facts["val_only_chars"] == []
    assert prepared.vocab.decode(prepared.train) == shakespeare[:n_train]
    assert prepared.vocab.decode(prepared.val) == shakespeare[n_train:]


def test_max_chars_keeps_the_beginning(shakespeare):
    prepared = prepare_corpus(shakespeare, val_fraction=0.25, max_chars=1000)
    assert (len(prepared.train), len(prepared.val)) == (750, 250)
    assert prepared.vocab.chars == sorted(set(shakespeare[:1000]))
    assert prepared.vocab.decode(np.concatenate([prepared.train, prepared.val])) == shakespeare[:1000]


# --- fetch_corpus -------------------------------------------------------------------------------------------


def test_env_override_picks_a_temp_file_and_clears_the_configured_checksum(tmp_path):
    mirror = tmp_path / "mirror.txt"
    mirror.write_text("To be, or not to be", encoding="utf-8")
    path, digest = fetch_corpus(CFG, "tinyshakespeare", tmp_path / "dl", environ={SOURCE_VAR: str(mirror)})
    assert (path, digest) == (mirror, _sha(mirror))
    with pytest.raises(ChecksumError, match="expected sha256 " + "a" * 64):
        fetch_corpus(
            CFG, "tinyshakespeare", tmp_path / "dl", environ={SOURCE_VAR: str(mirror), SHA_VAR: "a" * 64}
        )


def test_checksum_mismatch_of_the_configured_file(tmp_path):
    text = tmp_path / "input.txt"
    text.write_text("not the real play", encoding="utf-8")
    with pytest.raises(ChecksumError, match=f"actual   sha256 {_sha(text)}"):
        fetch_corpus({**CFG, "uri": str(text)}, "tinyshakespeare", tmp_path, environ={})


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "is empty"), (b"caf\xe9 latin-1", "not UTF-8 text .invalid byte at offset 3")],
)
def test_unreadable_text_is_refused(tmp_path, content, message):
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    with pytest.raises(DataSourceError, match=message):
        fetch_corpus({"kind": "text", "uri": str(path)}, "tinyshakespeare", tmp_path, environ={})


def test_bad_source_settings(tmp_path):
    with pytest.raises(DataSourceError, match="does not exist"):
        fetch_corpus({"kind": "text", "uri": str(tmp_path / "nope.txt")}, "x", tmp_path, environ={})
    with pytest.raises(ConfigError, match="kind 'text'"):
        fetch_corpus({**CFG, "kind": "imdb"}, "x", tmp_path, environ={})
    with pytest.raises(ConfigError, match="RNNLAB_X_SOURCE"):
        fetch_corpus({"kind": "text"}, "x", tmp_path, environ={})
    with pytest.raises(ConfigError, match="sha256 .or RNNLAB_X_SHA256. = 'ABC ' is not a 64-digit hex"):
        fetch_corpus({**CFG, "sha256": "ABC "}, "x", tmp_path, environ={})
    mirror = tmp_path / "mirror.txt"
    mirror.write_text("text", encoding="utf-8")
    upper = {"kind": "text", "uri": str(mirror), "sha256": f" {_sha(mirror).upper()} "}
    assert fetch_corpus(upper, "x", tmp_path, environ={})[1] == _sha(mirror)  # case and spaces do not matter
    assert fetch_corpus({**upper, "sha256": ""}, "x", tmp_path, environ={})[1] == _sha(mirror)  # blank: unset


def test_url_is_downloaded_then_reused(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    (served / "input.txt").write_text("First Citizen:\nBefore we proceed any further, hear me speak.\n")
    seen: list[str] = []

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            seen.append(self.path)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(served)))
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        cfg = {
            "kind": "text",
            "uri": f"http://127.0.0.1:{httpd.server_address[1]}/input.txt",
            "sha256": _sha(served / "input.txt"),
        }
        for _ in range(2):
            path, digest = fetch_corpus(
                cfg,
                "tinyshakespeare",
                tmp_path / "dl",
                environ={},
                download_cfg={"retries": 0},
                progress=False,
            )
            assert (path, digest) == (tmp_path / "dl" / "input.txt", cfg["sha256"])
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert seen == ["/input.txt"]  # the second call reused the verified download
    assert read_corpus(path).startswith("First Citizen:")


# --- CharVocabulary -----------------------------------------------------------------------------------------


def test_encode_decode_round_trip_and_save_load(tmp_path):
    text = "Hello, wörld!\nÆ → 🙂"
    vocab = CharVocabulary.build(text)
    assert vocab.chars == sorted(set(text))
    ids = vocab.encode(text)
    assert ids.dtype == np.int64
    assert ids.tolist() == [vocab.chars.index(c) for c in text]
    assert vocab.decode(ids) == text
    vocab.save(tmp_path / "vocab.json")
    assert CharVocabulary.load(tmp_path / "vocab.json") == vocab
    (tmp_path / "other.json").write_text('{"format": "rnnlab-vocabulary/1"}')
    with pytest.raises(RnnlabError, match="not an rnnlab character vocabulary"):
        CharVocabulary.load(tmp_path / "other.json")


def test_unknown_prompt_characters_are_listed():
    vocab = CharVocabulary.build("ROMEO: JULIET:\n")
    with pytest.raises(ConfigError, match=r"2 character\(s\).*'a' \(U\+0061\), 'é' \(U\+00E9\)") as err:
        vocab.encode("ROMEa éa")
    assert repr("\n :EIJLMORTU") in str(err.value)
    with pytest.raises(IndexError, match="character id 12 out of range"):
        vocab.decode([0, 12])


# --- prepare / save / load ----------------------------------------------------------------------------------


def test_split_is_contiguous_and_reports_val_only_characters(tmp_path):
    text = "abcabcabcabcabcabcXYZ!"  # 22 characters; "XYZ!" occur only in the validation part
    prepared = prepare_corpus(text, val_fraction=0.2)
    n_train = int(22 * 0.8)
    assert prepared.vocab.decode(prepared.train) == text[:n_train]
    assert prepared.vocab.decode(prepared.val) == text[n_train:]
    assert prepared.facts == {
        "chars": {"train": n_train, "val": 22 - n_train},
        "vocab_size": 7,
        "val_only_chars": ["!", "X", "Y", "Z"],
    }
    prepared.save(tmp_path / "prepared")
    loaded = PreparedCorpus.load(tmp_path / "prepared")
    assert loaded.vocab == prepared.vocab and loaded.facts == prepared.facts
    assert np.array_equal(loaded.train, prepared.train) and np.array_equal(loaded.val, prepared.val)
    (tmp_path / "prepared" / "val.npy").unlink()
    with pytest.raises(LayoutError, match="lacks val.npy"):
        PreparedCorpus.load(tmp_path / "prepared")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"val_fraction": 0.0}, "val_fraction is 0.0; allowed: a number strictly between 0 and 1"),
        ({"val_fraction": 1}, "val_fraction is 1"),
        ({"val_fraction": 0.1, "max_chars": 0}, "max_chars is 0; allowed: a positive integer"),
        ({"val_fraction": 0.1, "max_chars": 10}, "leaves 9 to train and 1 to validate"),
    ],
)
def test_bad_split_settings(kwargs, message):
    with pytest.raises(ConfigError, match=message):
        prepare_corpus("abcdefghijklmnopqrstuvwxyz", **kwargs)
