"""A throw-away PostgreSQL server on 127.0.0.1 for the team tests: Debian's binaries, a temp data folder,
run as an unprivileged user (PostgreSQL refuses root; as root we run it as `nobody`), password login."""

from __future__ import annotations

import glob
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

UNPRIVILEGED = "nobody"
SUPERUSER = "rnnlab"


def postgres_bin() -> Path | None:
    """The folder of Debian's `initdb` (/usr/lib/postgresql/<newest>/bin), else of one on PATH, or None."""
    debian = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3]))
    found = debian[-1] if debian else shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass(frozen=True)
class Postgres:
    port: int
    password: str
    bin: Path

    def uri(self, database: str, with_password: bool = True) -> str:
        """Without the password, libpq takes it from $PGPASSWORD (or ~/.pgpass)."""
        login = f"{SUPERUSER}:{self.password}" if with_password else SUPERUSER
        return f"postgresql://{login}@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        """Create database `name`; its SQLAlchemy URI."""
        import psycopg2

        connection = psycopg2.connect(self.uri("postgres"))
        connection.autocommit = True  # CREATE DATABASE cannot run in a transaction
        try:
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return self.uri(name)


def _as_unprivileged(command: list[str]) -> list[str]:
    return ["runuser", "-u", UNPRIVILEGED, "--", *command] if os.geteuid() == 0 else command


@contextmanager
def running_postgres(bin_dir: Path) -> Iterator[Postgres]:
    """initdb + pg_ctl start in a fresh temp folder (owned by the unprivileged user); stopped and removed
    on exit. Logins need the generated password (scram-sha-256)."""
    folder = Path(tempfile.mkdtemp(prefix="rnnlab-pg-"))
    password, port = secrets.token_urlsafe(16), free_port()
    (folder / "pwfile").write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, UNPRIVILEGED)
        shutil.chown(folder / "pwfile", UNPRIVILEGED)
    data = folder / "data"
    try:
        subprocess.run(
            _as_unprivileged(
                [str(bin_dir / "initdb"), "-D", str(data), "-U", SUPERUSER, "--auth=scram-sha-256"]
                + ["--pwfile", str(folder / "pwfile"), "--no-sync", "-E", "UTF8", "--locale=C"]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        options = f"-h 127.0.0.1 -p {port} -k {folder} -c fsync=off"
        subprocess.run(
            _as_unprivileged(
                [
                    str(bin_dir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-o",
                    options,
                    "-l",
                    str(folder / "log"),
                    "-w",
                    "start",
                ]
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        yield Postgres(port, password, bin_dir)
    finally:
        if (data / "postmaster.pid").exists():
            subprocess.run(
                _as_unprivileged([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"]),
                capture_output=True,
                timeout=120,
            )
        shutil.rmtree(folder, ignore_errors=True)
