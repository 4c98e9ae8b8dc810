"""Resumable HTTP(S) downloads with retries, and sha256 checks.

`fetch` streams into `<dest>.part`, resumes an existing part with a `Range` request, retries transient
failures (connection errors, timeouts, 5xx, bodies cut short) with exponential backoff, and renames the part
onto `dest` only once it is complete, so a file at `dest` is never a half download.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import requests
import urllib3
from tqdm.auto import tqdm

from rnnlab.errors import ChecksumError, DataSourceError

_HASH_CHUNK = 1 << 20
_URL = re.compile(r"^https?://", re.IGNORECASE)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-\d+/(\d+|\*)")
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)")


_TRANSIENT = (requests.ConnectionError, requests.Timeout, urllib3.exceptions.HTTPError)


class _TransientError(Exception):
    """A failure worth retrying: 5xx, or a body that ended before its announced length."""


FETCH_KEYS = {"retries": int, "timeout_s": float, "chunk_bytes": int, "backoff_s": float}


def fetch_kwargs(download_cfg: Mapping | None) -> dict[str, Any]:
    """The `data.download` settings that `local_copy` takes, typed."""
    download_cfg = download_cfg or {}
    return {key: cast(download_cfg[key]) for key, cast in FETCH_KEYS.items() if key in download_cfg}


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_sha256(path: str | os.PathLike, expected: str | None) -> str:
    """Return the actual sha256 of `path`; raise ChecksumError if `expected` is given and differs."""
    actual = sha256_file(path)
    if expected and expected.strip().lower() != actual:
        raise ChecksumError(
            f"Checksum mismatch for {path}:\n  expected sha256 {expected.strip().lower()}\n"
            f"  actual   sha256 {actual}\n"
            "The file is damaged, or the checksum setting does not belong to this file. Fix the checksum "
            "setting (data.source.sha256): for a mirror or a repacked copy, set its right sha256 or leave "
            "it unset."
        )
    return actual


def is_url(uri: str) -> bool:
    """True for http(s) URLs, False for anything else (local paths)."""
    return bool(_URL.match(uri))


def local_copy(
    uri: str, expected: str | None, downloads_dir: str | os.PathLike, **fetch_kw: object
) -> tuple[Path, str]:
    """Return a local file for `uri` and its sha256, verified against `expected` when that is given.

    A path is checked in place. A URL is fetched into `downloads_dir` under the URL's file name; an earlier
    download there is reused only when `expected` is given and matches it.
    """
    if not is_url(uri):
        path = Path(uri)
        if not path.is_file():
            raise DataSourceError(
                f"Data source {path} does not exist; check data.source.uri and the "
                "RNNLAB_<DATASET>_SOURCE variable."
            )
        return path, verify_sha256(path, expected)
    dest = Path(downloads_dir) / (unquote(Path(urlparse(uri).path).name) or "download")
    if dest.is_file() and expected and sha256_file(dest) == expected.lower():
        return dest, expected.lower()
    fetch(uri, dest, **fetch_kw)
    return dest, verify_sha256(dest, expected)


def fetch(
    url: str,
    dest: str | os.PathLike,
    *,
    retries: int = 5,
    timeout_s: float = 60.0,
    chunk_bytes: int = 1 << 20,
    backoff_s: float = 1.0,
    progress: bool = True,
    mirror_hint: str = "",
) -> Path:
    """Download `url` to `dest` and return `dest`.

    `retries` counts the attempts after the first; the wait before retry k is `backoff_s * 2**(k-1)`.
    A 4xx answer (other than 416 to a resume) fails at once. On failure `<dest>.part` is kept so the
    next call resumes it; the DataSourceError names the URL, the last error and `mirror_hint`.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    failures = 0
    while True:
        try:
            if _download_once(url, part, timeout_s, chunk_bytes, progress, mirror_hint):
                os.replace(part, dest)
                return dest
        except (*_TRANSIENT, _TransientError) as exc:
            failures += 1
            if failures > retries:
                raise DataSourceError(_unreachable_message(url, part, failures, exc, mirror_hint)) from exc
            time.sleep(backoff_s * 2 ** (failures - 1))
        except requests.RequestException as exc:
            raise DataSourceError(f"Cannot download {url}: {exc}. Check the URL. {mirror_hint}") from exc


def _download_once(
    url: str, part: Path, timeout_s: float, chunk_bytes: int, progress: bool, hint: str
) -> bool:
    """Make one request and stream its body into `part`.

    Returns True when `part` holds the whole file, False when the part was discarded and the download
    must start again from zero.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    with requests.get(url, headers=headers, stream=True, timeout=timeout_s) as resp:
        if resp.status_code == 416 and offset:
            return _settle_unsatisfied_range(part, offset, resp.headers.get("Content-Range", ""))
        if resp.status_code >= 500:
            raise _TransientError(f"HTTP {resp.status_code} {resp.reason}")
        if resp.status_code not in (200, 206):
            raise DataSourceError(
                f"Download of {url} failed with HTTP {resp.status_code} {resp.reason} (not retried); "
                f"check the URL. {hint}".strip()
            )
        start, total = _body_span(resp)
        if start is None or start not in (0, offset):
            part.unlink(missing_ok=True)
            return False
        _write_body(resp, part, start, total, chunk_bytes, progress)
    size = part.stat().st_size
    if total is not None and size != total:
        raise _TransientError(f"connection closed after {size} of {total} bytes")
    return True


def _body_span(resp: requests.Response) -> tuple[int | None, int | None]:
    """Return (offset the body starts at, total file size) for a 200 or 206 answer; None where unknown."""
    length = resp.headers.get("Content-Length")
    if resp.status_code == 200:
        return 0, int(length) if length else None
    match = _CONTENT_RANGE.match(resp.headers.get("Content-Range", ""))
    if not match:
        return None, None
    start = int(match.group(1))
    if match.group(2) != "*":
        return start, int(match.group(2))
    return start, start + int(length) if length else None


def _settle_unsatisfied_range(part: Path, offset: int, content_range: str) -> bool:
    """Handle 416 to a resume: the part is complete when the server reports exactly its size, else drop it."""
    match = _UNSATISFIED_RANGE.match(content_range)
    if match and int(match.group(1)) == offset:
        return True
    part.unlink()
    return False


def _write_body(
    resp: requests.Response, part: Path, start: int, total: int | None, chunk: int, progress: bool
) -> None:
    """Append (206) or write from zero (200) the raw, undecoded body to `part` with a progress bar."""
    with (
        open(part, "ab" if start else "wb") as out,
        tqdm(
            total=total,
            initial=start,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            desc=part.name.removesuffix(".part"),
            disable=not progress,
        ) as bar,
    ):
        for block in resp.raw.stream(chunk, decode_content=False):
            out.write(block)
            bar.update(len(block))


def _unreachable_message(url: str, part: Path, attempts: int, error: Exception, hint: str) -> str:
    kept = ""
    if part.exists() and part.stat().st_size:
        kept = f" The partial download {part} ({part.stat().st_size} bytes) is kept; the next run resumes it."
    return f"Cannot download {url} after {attempts} attempt(s); last error: {error}.{kept} {hint}".strip()
