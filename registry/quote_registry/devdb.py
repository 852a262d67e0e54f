"""A throwaway PostgreSQL cluster (initdb + pg_ctl in a temp dir) for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class PostgresUnavailable(RuntimeError):
    """initdb/pg_ctl are not installed."""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres_user() -> list[str]:
    # initdb refuses to run as root; CI runs as root, so drop to the postgres account there.
    return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []


@contextmanager
def postgres_cluster() -> Iterator[str]:
    """Start a cluster on 127.0.0.1; yields `postgresql+psycopg://quote@127.0.0.1:<port>` (no database)."""
    if not (shutil.which("initdb") and shutil.which("pg_ctl")):
        raise PostgresUnavailable("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH; install postgresql")
    root = Path(tempfile.mkdtemp(prefix="quote-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    data, port, prefix = root / "data", _free_port(), _as_postgres_user()
    subprocess.run(
        [*prefix, "initdb", "-D", str(data), "-U", "quote", "--auth=trust", "-E", "UTF8"],
        check=True,
        capture_output=True,
    )
    options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    subprocess.run(
        [*prefix, "pg_ctl", "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql+psycopg://quote@127.0.0.1:{port}"
    finally:
        subprocess.run([*prefix, "pg_ctl", "-D", str(data), "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def create_database(server: str) -> str:
    """A new empty database on the cluster; returns its SQLAlchemy URL."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.replace("postgresql+psycopg", "postgresql") + "/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{server}/{name}"
