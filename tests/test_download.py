"""fetch / verify_sha256 against a local HTTP server with Range support and switchable failures."""

from __future__ import annotations

import hashlib
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from rnnlab.data.download import fetch, local_copy, sha256_file, verify_sha256
from rnnlab.errors import ChecksumError, DataSourceError

PAYLOAD = bytes(range(256)) * 400  # 102,400 bytes
HINT = "Offline? Point RNNLAB_TEST_SOURCE at a local copy."


class _Handler(BaseHTTPRequestHandler):
    """Serves PAYLOAD at /file.bin; `server.state` switches failures on and records requests."""

    def do_GET(self) -> None:
        state = self.server.state
        state["ranges"].append(self.headers.get("Range"))
        if state["fail_500"] > 0:
            state["fail_500"] -= 1
            self.send_error(500, "boom")
            return
        if self.path != "/file.bin":
            self.send_error(404, "no such file")
            return
        start = self._range_start(state)
        if start >= len(PAYLOAD):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(PAYLOAD)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = PAYLOAD[start:]
        self.send_response(206 if start else 200)
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(PAYLOAD) - 1}/{len(PAYLOAD)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if state["cut"] > 0:  # promise the whole body, send half of it, hang up
            state["cut"] -= 1
            body = body[: len(body) // 2]
        self.wfile.write(body)

    def _range_start(self, state: dict) -> int:
        header = self.headers.get("Range")
        if not header or state["ignore_range"]:
            return 0
        return int(header.removeprefix("bytes=").split("-")[0])

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server():
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.state = {"ranges": [], "fail_500": 0, "cut": 0, "ignore_range": False}
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _url(httpd: ThreadingHTTPServer, path: str = "/file.bin") -> str:
    return f"http://127.0.0.1:{httpd.server_address[1]}{path}"


def _fetch(url: str, dest, **kw):
    return fetch(url, dest, backoff_s=0.0, progress=False, mirror_hint=HINT, **kw)


def test_full_download(server, tmp_path):
    dest = _fetch(_url(server), tmp_path / "sub" / "file.bin")
    assert dest.read_bytes() == PAYLOAD
    assert not (tmp_path / "sub" / "file.bin.part").exists()
    assert server.state["ranges"] == [None]


def test_resume_sends_range_and_appends(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD[:1000])
    dest = _fetch(_url(server), tmp_path / "file.bin")
    assert dest.read_bytes() == PAYLOAD
    assert server.state["ranges"] == ["bytes=1000-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    server.state["ignore_range"] = True
    (tmp_path / "file.bin.part").write_bytes(b"stale bytes")
    assert _fetch(_url(server), tmp_path / "file.bin").read_bytes() == PAYLOAD


def test_complete_part_answered_416_is_kept(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD)
    assert _fetch(_url(server), tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert server.state["ranges"] == [f"bytes={len(PAYLOAD)}-"]


def test_oversized_part_is_discarded(server, tmp_path):
    (tmp_path / "file.bin.part").write_bytes(PAYLOAD + b"junk")
    assert _fetch(_url(server), tmp_path / "file.bin").read_bytes() == PAYLOAD
    assert server.state["ranges"] == [f"bytes={len(PAYLOAD) + 4}-", None]


def test_retries_after_500(server, tmp_path):
    server.state["fail_500"] = 2
    assert _fetch(_url(server), tmp_path / "file.bin", retries=2).read_bytes() == PAYLOAD
    assert len(server.state["ranges"]) == 3


def test_gives_up_after_retries_with_last_error(server, tmp_path):
    server.state["fail_500"] = 10
    with pytest.raises(DataSourceError, match="after 3 attempt") as info:
        _fetch(_url(server), tmp_path / "file.bin", retries=2)
    assert "HTTP 500" in str(info.value) and HINT in str(info.value)


def test_cut_connection_resumes_on_retry(server, tmp_path):
    server.state["cut"] = 1
    assert _fetch(_url(server), tmp_path / "file.bin", retries=1).read_bytes() == PAYLOAD
    assert server.state["ranges"] == [None, f"bytes={len(PAYLOAD) // 2}-"]


def test_failed_download_keeps_part(server, tmp_path):
    server.state["cut"] = 1
    with pytest.raises(DataSourceError, match="kept; the next run resumes"):
        _fetch(_url(server), tmp_path / "file.bin", retries=0)
    assert (tmp_path / "file.bin.part").read_bytes() == PAYLOAD[: len(PAYLOAD) // 2]
    assert not (tmp_path / "file.bin").exists()


def test_unreachable_url_names_url_and_hint(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/file.bin"
    with pytest.raises(DataSourceError) as info:
        _fetch(url, tmp_path / "file.bin", retries=1, timeout_s=2.0)
    message = str(info.value)
    assert url in message and HINT in message and "2 attempt" in message


def test_404_fails_fast(server, tmp_path):
    with pytest.raises(DataSourceError, match="404") as info:
        _fetch(_url(server, "/missing.bin"), tmp_path / "file.bin", retries=5)
    assert len(server.state["ranges"]) == 1
    assert HINT in str(info.value)


def test_sha256_and_verify(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    assert sha256_file(path) == digest
    assert verify_sha256(path, None) == digest
    assert verify_sha256(path, digest.upper()) == digest


def test_checksum_mismatch_shows_both_hashes(tmp_path):
    path = tmp_path / "data.bin"
    path.write_bytes(PAYLOAD)
    wrong = "0" * 64
    with pytest.raises(ChecksumError) as info:
        verify_sha256(path, wrong)
    message = str(info.value)
    assert str(path) in message and wrong in message and hashlib.sha256(PAYLOAD).hexdigest() in message
    assert "leave it unset" in message


def test_local_copy_reuses_verified_download(server, tmp_path):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    kw = {"backoff_s": 0.0, "progress": False}
    path, actual = local_copy(_url(server), digest, tmp_path, **kw)
    assert path == tmp_path / "file.bin" and actual == digest
    assert local_copy(_url(server), digest, tmp_path, **kw) == (path, digest)
    assert len(server.state["ranges"]) == 1  # second call did not download
    path.write_bytes(b"corrupted")
    assert local_copy(_url(server), digest, tmp_path, **kw)[1] == digest
    assert len(server.state["ranges"]) == 2  # a file that fails its checksum is fetched again
