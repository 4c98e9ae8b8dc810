"""Hydra callback: make an Optuna search's shared storage (`hydra.sweeper.storage`) ready before the sweeper
opens it, so that workers started at once share one study.

The sweeper's `optuna.create_study(..., load_if_exists=True)` copes with two workers creating the same
study (the second loads it), but not with two workers creating Optuna's tables in an empty database: one of
two workers started at once failed on 9 of 10 fresh PostgreSQL databases here (a UniqueViolation in
SQLAlchemy's `create_all`) and on 2 of 6 fresh SQLite files (alembic's version row). So the tables are made
here, one worker at a time: under a PostgreSQL advisory lock (workers on any machine) or an flock on the
SQLite file (workers on one machine).

The URL must not hold a password: Hydra writes `hydra.sweeper.*` into every job's `.hydra/hydra.yaml` and
the sweeper prints the storage; libpq reads the password from `$PGPASSWORD` or `~/.pgpass`.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from rnnlab.errors import ConfigError
from rnnlab.stage import report_errors

KEY = "hydra.sweeper.storage"
FORMS = "postgresql+psycopg2://USER@HOST:PORT/DB (password in $PGPASSWORD or ~/.pgpass) or sqlite:///FILE"
ADVISORY_LOCK = 0x726E6E6C6162  # "rnnlab": one lock id for Optuna's tables in a database


def storage_url(value: str) -> Any:
    """The SQLAlchemy URL of `value`: a PostgreSQL (psycopg2) database, no password; or an SQLite file."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
    except ArgumentError:
        raise ConfigError(f"{KEY} must be {FORMS}, got {value!r}") from None
    if url.password is not None:
        raise ConfigError(
            f"{KEY} holds a password, which Hydra would write into every job's .hydra/hydra.yaml: leave "
            "it out (postgresql+psycopg2://USER@HOST:PORT/DB) and set $PGPASSWORD or ~/.pgpass"
        )
    if url.drivername == "postgresql":  # SQLAlchemy 2.1 would pick psycopg 3, which is not installed
        raise ConfigError(f"{KEY}: write postgresql+psycopg2:// (the installed driver), got {value!r}")
    if url.drivername == "postgresql+psycopg2" and url.database:
        return url
    if url.drivername == "sqlite" and url.database not in (None, "", ":memory:"):
        return url
    raise ConfigError(f"{KEY} must be {FORMS}, got {value!r}")


@contextmanager
def one_at_a_time(url: Any) -> Iterator[None]:
    """Hold, until the block ends, the lock that every worker of this storage takes."""
    if url.drivername == "sqlite":
        try:
            handle = open(url.database, "ab")  # noqa: SIM115 - an empty file is an empty SQLite database
        except OSError as error:
            raise ConfigError(f"{KEY}: cannot open {url.database}: {error.strerror}") from None
        with handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # independent of SQLite's own (fcntl) locks on Linux
            yield
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as connection:  # the lock ends with this transaction
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK})
            yield
    finally:
        engine.dispose()


def prepare(value: str) -> None:
    """Create Optuna's tables in the storage at `value` unless they exist (the study is the sweeper's)."""
    import optuna
    from sqlalchemy.exc import SQLAlchemyError

    url = storage_url(value)
    try:
        with one_at_a_time(url):
            optuna.storages.RDBStorage(value).engine.dispose()
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise ConfigError(f"{KEY}: cannot use {value}: {reason}") from None


class OptunaStorage(Callback):
    """On multirun start, prepare `hydra.sweeper.storage` when one is set (a search shared by workers)."""

    @report_errors
    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        value = OmegaConf.select(config, KEY)
        if value is not None:
            prepare(str(value))
