"""`rnnlab server start`: a team's MLflow tracking server — runs and registry in a database (PostgreSQL),
artifacts proxied by the server to a folder or bucket, MLflow's basic-auth app in front. A thin wrapper over
`mlflow server`: it checks its input, writes the auth app's config to a private temp folder (never the repo),
runs the server, prints its URL once it answers, and stops it (process group) on Ctrl-C or SIGTERM."""

from __future__ import annotations

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import requests

from rnnlab.errors import RnnlabError

ADMIN_USERNAME_ENV = "MLFLOW_AUTH_ADMIN_USERNAME"
ADMIN_PASSWORD_ENV = "MLFLOW_AUTH_ADMIN_PASSWORD"
SECRET_KEY_ENV = "MLFLOW_FLASK_SERVER_SECRET_KEY"
JOBS_ENV = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"
PERMISSIONS = ("READ", "EDIT", "MANAGE", "NO_PERMISSIONS")
BUCKET_SCHEMES = ("s3", "gs", "wasbs", "abfss", "hdfs", "sftp", "ftp")
STARTUP_TIMEOUT_S = 180
AUTH_CACHE_TTL_S = 30


@dataclass(frozen=True)
class ServerConfig:
    db: str  # SQLAlchemy URI, driver included
    auth_db: str
    artifacts: str  # an absolute folder or a bucket URI
    host: str
    port: int
    default_permission: str
    workers: int
    allowed_hosts: str | None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return f"http://{host}:{self.port}"


def database_uri(uri: str, option: str) -> str:
    """The SQLAlchemy URI of a `postgresql://` (psycopg2 driver) or `sqlite:///` database; others refused."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(uri)
    except ArgumentError:
        url = None
    if url is not None and url.drivername in ("postgresql", "postgresql+psycopg2"):
        if not url.database:
            raise RnnlabError(
                f"{option} {masked(uri)} names no database: postgresql://USER:PASS@HOST:PORT/DB"
            )
        return url.set(drivername="postgresql+psycopg2").render_as_string(hide_password=False)
    if url is not None and url.drivername == "sqlite" and url.database not in (None, "", ":memory:"):
        return uri
    raise RnnlabError(
        f"{option} must be postgresql://USER:PASS@HOST:PORT/DB (or sqlite:///FILE for one person), "
        f"got {masked(uri)!r}"
    )


def masked(uri: str) -> str:
    """`uri` with its password shown as ***."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", uri)


def check_database(uri: str, option: str) -> None:
    """Connect once, so a wrong host, password or database is one clear line rather than a server crash."""
    from sqlalchemy import create_engine
    from sqlalchemy.exc import SQLAlchemyError

    engine = create_engine(uri)
    try:
        with engine.connect():
            pass
    except SQLAlchemyError as error:
        reason = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        raise RnnlabError(f"{option}: cannot connect to {masked(uri)}: {reason}") from None
    finally:
        engine.dispose()


def artifacts_destination(value: str) -> str:
    """A bucket URI as given, or a local folder as an absolute path (created by `make_folder`)."""
    scheme = urlparse(value).scheme
    if scheme in BUCKET_SCHEMES:
        return value
    if scheme not in ("", "file"):
        raise RnnlabError(f"--artifacts must be a folder or a {'/'.join(BUCKET_SCHEMES)} URI, got {value!r}")
    return str(Path(urlparse(value).path if scheme == "file" else value).expanduser().resolve())


def make_folder(artifacts: str) -> None:
    """Create a local artifacts folder; it must be writable."""
    if urlparse(artifacts).scheme in BUCKET_SCHEMES:
        return
    try:
        Path(artifacts).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise RnnlabError(f"--artifacts: cannot create {artifacts}: {error.strerror}") from None
    if not os.access(artifacts, os.W_OK | os.X_OK):
        raise RnnlabError(f"--artifacts: {artifacts} is not writable")


def check_port(host: str, port: int) -> None:
    if not 1 <= port <= 65535:
        raise RnnlabError(f"--port must be 1-65535, got {port}")
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise RnnlabError(f"cannot listen on {host}:{port}: {error.strerror}") from None


def configure(
    db: str, artifacts: str, host: str, port: int, auth_db: str | None = None, **options
) -> ServerConfig:
    """The checked configuration of a server (bad input: RnnlabError naming the option); makes the artifacts
    folder last, once everything else is known to be right."""
    check_environment()
    database = database_uri(db, "--db")
    auth_database = database_uri(auth_db, "--auth-db") if auth_db else database
    destination = artifacts_destination(artifacts)
    check_port(host, port)
    if options["workers"] < 1:
        raise RnnlabError(f"--workers must be at least 1, got {options['workers']}")
    check_database(database, "--db")
    if auth_database != database:
        check_database(auth_database, "--auth-db")
    make_folder(destination)
    return ServerConfig(database, auth_database, destination, host, port, **options)


def check_environment() -> None:
    if not os.environ.get(ADMIN_PASSWORD_ENV):
        raise RnnlabError(
            f"set {ADMIN_PASSWORD_ENV} (the admin's password; MLflow creates the admin user "
            f"{os.environ.get(ADMIN_USERNAME_ENV) or 'admin'!r} with it when the auth database is new)"
        )


def auth_config(config: ServerConfig) -> str:
    """The basic-auth app's .ini: no password in it (the admin's comes from the environment)."""
    database = config.auth_db.replace("%", "%%")  # configparser interpolation
    return (
        "[mlflow]\n"
        f"default_permission = {config.default_permission}\n"
        f"database_uri = {database}\n"
        f"admin_username = {os.environ.get(ADMIN_USERNAME_ENV) or 'admin'}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # a password check (PBKDF2) per request is slow: cache good ones; a changed password reaches the
        # other workers within this many seconds
        f"auth_cache_ttl_seconds = {AUTH_CACHE_TTL_S}\n"
    )


def server_command(config: ServerConfig) -> list[str]:
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", config.db]
    command += ["--serve-artifacts", "--artifacts-destination", config.artifacts]
    command += ["--host", config.host, "--port", str(config.port), "--workers", str(config.workers)]
    command += ["--app-name", "basic-auth"]
    return command + (["--allowed-hosts", config.allowed_hosts] if config.allowed_hosts else [])


def serve(config: ServerConfig) -> int:
    """Run the server until it stops or this process is interrupted; its exit status."""
    with tempfile.TemporaryDirectory(prefix="rnnlab-server-") as private:
        ini = Path(private) / "basic_auth.ini"
        ini.write_text(auth_config(config))
        env = {**os.environ, "MLFLOW_AUTH_CONFIG_PATH": str(ini)}
        env.setdefault(SECRET_KEY_ENV, secrets.token_hex(32))  # CSRF of the sign-up page; same in all workers
        env.setdefault(JOBS_ENV, "false")  # MLflow's GenAI job runner (a dozen processes): rnnlab has no jobs
        child = subprocess.Popen(server_command(config), env=env, start_new_session=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        try:
            deadline = time.monotonic() + STARTUP_TIMEOUT_S
            while not _answers(config.url):
                if child.poll() is not None:
                    raise RnnlabError(f"mlflow server exited with status {child.returncode} (output above)")
                if time.monotonic() > deadline:
                    raise RnnlabError(
                        f"mlflow server did not answer at {config.url} in {STARTUP_TIMEOUT_S} s"
                    )
                time.sleep(0.5)
            print(
                f"rnnlab server: MLflow at {config.url} (database {masked(config.db)}, artifacts "
                f"{config.artifacts}, basic auth, default permission {config.default_permission}); "
                "Ctrl-C stops it",
                flush=True,
            )
            return child.wait()
        except KeyboardInterrupt:
            return 130
        finally:
            if child.poll() is None:
                os.killpg(child.pid, signal.SIGTERM)
                try:
                    child.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(child.pid, signal.SIGKILL)


def _answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/health", timeout=2).ok
    except requests.RequestException:
        return False
