"""A data set that is one file (a text, a zip of sentence pairs): `data.source` with the environment's
mirror overrides, downloaded or found locally, checksummed. The tasks that read such a file (charlm,
translate) check that it reads after this."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from rnnlab.data.download import fetch_kwargs, local_copy
from rnnlab.data.sources import absolute_uri, env_names, overridden_source
from rnnlab.errors import ConfigError


def fetch_source_file(
    source_cfg: Mapping,
    dataset_name: str,
    downloads_dir: str | os.PathLike,
    *,
    kind: str,
    needs: str,
    what: str,
    environ: Mapping = os.environ,
    download_cfg: Mapping | None = None,
    progress: bool = True,
) -> tuple[Path, str]:
    """The local file of `data.source` (of kind `kind`) and its sha256. `needs` words what the task reads
    ("the character corpus"), `what` the file ("a text file"), in the errors.

    A RNNLAB_<NAME>_SOURCE override replaces `uri` and clears the configured sha256 (it belongs to the
    configured file) unless RNNLAB_<NAME>_SHA256 gives one. A URL is downloaded into `downloads_dir`
    (`download_cfg`: retries, timeout_s, chunk_bytes, backoff_s); a path is checked in place.
    """
    found = source_cfg.get("kind")
    if found != kind:
        raise ConfigError(f"data.source.kind is {found!r}; {needs} needs kind {kind!r}.")
    source_var = env_names(dataset_name)[0]
    uri, sha256, _ = overridden_source(source_cfg, dataset_name, environ)
    if not uri:
        raise ConfigError(f"data.source.uri is not set: give a URL or {what}, or set {source_var}.")
    uri = absolute_uri(str(uri), "data.source.uri")
    hint = f"Offline? Point {source_var} at a local copy of {what}."
    return local_copy(
        uri, sha256, downloads_dir, progress=progress, mirror_hint=hint, **fetch_kwargs(download_cfg)
    )
