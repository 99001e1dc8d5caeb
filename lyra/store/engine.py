"""Database engines: SQLite (WAL, the embedded default) and PostgreSQL behave alike."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError

from lyra.core.errors import ConfigError


def create_engine_for(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url``.

    SQLite gets WAL journaling, a busy timeout, foreign keys, and ``BEGIN IMMEDIATE``
    transactions: writers take the lock up front, so two processes appending to the event log
    queue up instead of failing half-way with "database is locked".
    PostgreSQL URLs without a driver get psycopg 3.
    """
    try:
        u = make_url(url)
    except ArgumentError as exc:
        raise ConfigError("database_url", url, "not a database URL") from exc
    backend = u.get_backend_name()
    if backend == "postgresql" and u.drivername == "postgresql":
        u = u.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if u.database and u.database != ":memory:":
            parent = Path(u.database).expanduser().parent
            if not parent.exists():
                raise ConfigError(
                    "database_url", url, f"folder {parent} does not exist", "run `lyra init` first"
                )
            _create_owner_only(Path(u.database).expanduser())
        engine = sa.create_engine(u, connect_args={"timeout": 30}, **kwargs)
        _sqlite_setup(engine)
        return engine
    if backend == "postgresql":
        kwargs.setdefault("pool_pre_ping", True)
        return sa.create_engine(u, **kwargs)
    raise ConfigError("database_url", url, f"unsupported database {backend!r}", "use sqlite or postgresql")


def _create_owner_only(path: Path) -> None:
    """Create an empty database file readable by its owner only (0600), if there is none.

    SQLite creates its ``-wal``/``-shm`` files with the database file's mode, so they follow.
    An existing file is left as it is (``lyra doctor`` reports loose permissions)."""
    if str(path).startswith("file:"):
        return  # a URI filename: SQLite's business
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    except OSError:
        return  # unwritable folder: SQLite's own error on connect says so more clearly
    os.close(fd)


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the driver, decide when transactions begin.
        dbapi_conn.isolation_level = None
        cur = dbapi_conn.cursor()
        if engine.url.database not in (None, "", ":memory:"):
            cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Reads begin DEFERRED (they never block writers in WAL mode); writers that read
        # before they write use ``writer(engine)`` and take the write lock up front, so two
        # processes queue up instead of failing half-way with "database is locked".
        mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
        conn.exec_driver_sql(f"BEGIN {mode}")


def writer(engine: Engine) -> Engine:
    """The engine, for transactions that read then write (BEGIN IMMEDIATE on SQLite)."""
    if engine.url.get_backend_name() == "sqlite":
        return engine.execution_options(sqlite_begin="IMMEDIATE")
    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.url.get_backend_name() == "sqlite"


def ping(engine: Engine) -> None:
    """Open a connection and run ``SELECT 1``; a ConfigError that says why if it fails."""
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except OperationalError as exc:
        raise ConfigError(
            "database_url", engine.url.render_as_string(hide_password=True),
            f"cannot connect: {str(exc.orig).strip().splitlines()[0]}",
            "is the database file's folder writable? `lyra doctor` checks" if is_sqlite(engine)
            else "is the server running and the URL right?",
        ) from None
