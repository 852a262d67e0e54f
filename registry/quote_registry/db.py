"""Engine and sessions. SQLite gets foreign keys and a busy timeout; PostgreSQL a sane pool."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_connection: Any, _: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs; SQLAlchemy emits BEGIN itself instead.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(connection: Any) -> None:
    # IMMEDIATE: take the write lock up front, so concurrent writers wait (busy timeout) instead of
    # failing on a read-to-write upgrade.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on any error."""
    with factory() as session, session.begin():
        yield session


def insert_skipping_duplicates(session: Session, rows: Sequence[Any], columns: Sequence[str]) -> int:
    """Insert `rows`; those whose unique key another writer stored first are skipped. How many were stored.

    All at once in a savepoint; if that hits a unique violation (a replica or gateway raced us on an
    id), again one savepoint per row, each a fresh copy of the row's `columns`.
    """
    try:
        with session.begin_nested():
            session.add_all(rows)
        return len(rows)
    except IntegrityError:
        pass
    stored = 0
    for row in rows:
        try:
            with session.begin_nested():
                session.add(type(row)(**{c: getattr(row, c) for c in columns}))
            stored += 1
        except IntegrityError:
            continue
    return stored
