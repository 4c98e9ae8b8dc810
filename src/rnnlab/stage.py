"""Shared behaviour of the pipeline entry points: friendly errors and a one-line summary."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from rnnlab.errors import RnnlabError


def report_errors(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an `RnnlabError` into one clear line on stderr and exit status 2 (no traceback)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except RnnlabError as error:
            print(f"rnnlab: error: {error}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


def summary(stage: str, **facts: Any) -> None:
    """Print the stage's one-line summary, e.g. `[prepare] vocab=30000 train=22500`."""
    print(f"[{stage}] " + " ".join(f"{key}={value}" for key, value in facts.items()), flush=True)
