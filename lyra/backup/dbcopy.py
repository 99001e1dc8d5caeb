"""Consistent copies of the database while sessions keep writing.

SQLite: the online backup API, a few hundred pages per step with a pause between steps. The
source connection holds one read transaction for the whole copy: in WAL mode a reader never
blocks a writer, and the copy is the snapshot that transaction sees (without it, SQLite
restarts the copy whenever another process writes, which under a busy session never ends).
The copy is then switched to a rollback journal (one self-contained file) and checked with
``PRAGMA integrity_check``.

PostgreSQL: ``pg_dump --format=custom --snapshot=...``: the head and row counts are read in a
REPEATABLE READ transaction whose snapshot ``pg_dump`` then dumps, so the manifest and the dump
describe the same moment. ``pg_dump`` takes only ACCESS SHARE locks (writers go on).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Connection, Engine, make_url

from lyra.backup.manifest import Head
from lyra.core.errors import ConfigError, IntegrityError

#: Pages per backup step and the pause between steps (SQLite).
STEP_PAGES = 256
STEP_PAUSE_S = 0.002


@dataclass(slots=True)
class Snapshot:
    """What the copy holds: the log head, the schema revision, rows per table."""

    head: Head
    revision: str
    row_counts: dict[str, int]
    chain_id: str
    tools: dict[str, str] = field(default_factory=dict)
    longest_step_ms: float = 0.0
    steps: int = 0


def read_snapshot(conn: Connection) -> tuple[Head, str, dict[str, int], str]:
    """Head, alembic revision, row count per table and chain id, on ``conn``'s snapshot."""
    row = conn.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).one_or_none()
    if row is None:
        raise IntegrityError("event log head row is missing: the database is not initialised "
                             "(run `lyra init`)")
    seq, h = int(row[0]), str(row[1])
    ts = conn.execute(sa.text("SELECT ts FROM events WHERE seq = :s"), {"s": seq}).scalar()
    first = conn.execute(sa.text("SELECT hash FROM events WHERE seq = 1")).scalar()
    rev = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    counts: dict[str, int] = {}
    for name in sorted(sa.inspect(conn).get_table_names()):
        # names come from the database's own catalogue, quoted
        counts[name] = int(conn.execute(sa.text(f'SELECT count(*) FROM "{name}"')).scalar() or 0)  # noqa: S608
    return Head(seq, h, int(ts or 0)), str(rev or ""), counts, str(first or "")


# ----------------------------------------------------------------------------------- SQLite
def sqlite_path(engine: Engine) -> Path:
    db = engine.url.database
    if not db or db == ":memory:":
        raise ConfigError("database_url", str(engine.url), "an in-memory database cannot be backed up")
    return Path(db)


def sqlite_copy(src: Path, dst: Path, *, pages: int = STEP_PAGES, pause_s: float = STEP_PAUSE_S,
                progress: Callable[[int, int], None] | None = None) -> Snapshot:
    """Copy the SQLite database ``src`` to ``dst`` (a new file) in small steps; integrity-check it."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(f"{src.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None, timeout=30)
    target = sqlite3.connect(dst, isolation_level=None)
    steps: list[float] = []
    mark = [0.0]

    def step(_status: int, remaining: int, total: int) -> None:
        steps.append(time.perf_counter() - mark[0])
        if progress is not None:
            progress(total - remaining, total)
        if remaining:
            time.sleep(pause_s)  # let writers (and the GIL) in between steps
        mark[0] = time.perf_counter()

    try:
        # The copy is thrown away if anything fails: no journal, no fsync per step (one at the end).
        target.execute("PRAGMA journal_mode=OFF")
        target.execute("PRAGMA synchronous=OFF")
        source.execute("BEGIN")  # one read snapshot for the whole copy (see the module doc)
        source.execute("SELECT seq FROM audit_head").fetchall()
        mark[0] = time.perf_counter()
        source.backup(target, pages=pages, progress=step)
        source.execute("COMMIT")
        target.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
        check = [r[0] for r in target.execute("PRAGMA integrity_check").fetchall()]
        if check != ["ok"]:
            raise IntegrityError(f"the copy {dst} fails PRAGMA integrity_check: {'; '.join(check[:5])}")
        version = sqlite3.sqlite_version
    finally:
        source.close()
        target.close()
    with open(dst, "rb+") as f:
        os.fsync(f.fileno())
    snap = _snapshot_of_file(dst)
    snap.tools["sqlite"] = version
    snap.longest_step_ms = max(steps, default=0.0) * 1000
    snap.steps = len(steps)
    return snap


def _snapshot_of_file(path: Path) -> Snapshot:
    eng = sa.create_engine(f"sqlite:///{path}")
    try:
        with eng.connect() as conn:
            head, rev, counts, chain = read_snapshot(conn)
    finally:
        eng.dispose()
    return Snapshot(head, rev, counts, chain)


def sqlite_integrity(path: Path) -> list[str]:
    """``PRAGMA integrity_check`` of a SQLite file: [] if it is sound, else what is wrong."""
    try:
        con = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            rows = [r[0] for r in con.execute("PRAGMA integrity_check").fetchall()]
        finally:
            con.close()
    except sqlite3.DatabaseError as exc:
        return [str(exc)]
    return [] if rows == ["ok"] else rows


# ------------------------------------------------------------------------------- PostgreSQL
def _major(version_text: str) -> int:
    m = re.search(r"(\d+)(?:\.(\d+))?", version_text)
    if m is None:
        raise ConfigError("pg_dump", version_text, "cannot read a version number")
    return int(m.group(1))


def client_version(tool: str = "pg_dump") -> str:
    """The version line of a PostgreSQL client tool; a ConfigError if it is not installed."""
    try:
        out = subprocess.run([tool, "--version"], capture_output=True, text=True, check=True, timeout=30)
    except FileNotFoundError:
        raise ConfigError(tool, None, "not installed", "install the PostgreSQL client tools "
                          "(Debian: postgresql-client)") from None
    return out.stdout.strip()


def check_client_matches(tool_version: str, server_version: str, tool: str = "pg_dump") -> None:
    """Refuse a client older than the server: ``pg_dump`` cannot dump a newer major version."""
    client, server = _major(tool_version), _major(server_version)
    if client < server:
        raise ConfigError(
            tool, tool_version,
            f"is version {client} but the database server runs PostgreSQL {server_version}: "
            f"{tool} cannot read a newer server",
            f"install the version {server} client tools (Debian: postgresql-client-{server})",
        )


def libpq_env(url: URL) -> tuple[str, dict[str, str]]:
    """(libpq connection URL without the password, environment with PGPASSWORD if any)."""
    u = url.set(drivername="postgresql", password=None)
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    return u.render_as_string(hide_password=False), env


def pg_dump(engine: Engine, dst: Path) -> Snapshot:
    """Dump the PostgreSQL database of ``engine`` to ``dst`` at one snapshot."""
    tool = client_version("pg_dump")
    dst.parent.mkdir(parents=True, exist_ok=True)
    conninfo, env = libpq_env(engine.url)
    t0 = time.perf_counter()
    with engine.connect() as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
        with conn.begin():
            server = str(conn.execute(sa.text("SHOW server_version")).scalar())
            check_client_matches(tool, server)
            snapshot_id = conn.execute(sa.text("SELECT pg_export_snapshot()")).scalar()
            head, rev, counts, chain = read_snapshot(conn)
            proc = subprocess.run(
                ["pg_dump", "--format=custom", "--no-owner", "--no-privileges",
                 f"--snapshot={snapshot_id}", f"--file={dst}", f"--dbname={conninfo}"],
                env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise IntegrityError(f"pg_dump failed (exit {proc.returncode}): {proc.stderr.strip()[:2000]}")
    snap = Snapshot(head, rev, counts, chain, {"pg_dump": tool, "postgresql_server": server})
    snap.longest_step_ms = (time.perf_counter() - t0) * 1000  # MVCC: nothing waits on it
    snap.steps = 1
    return snap


def pg_restore(dump: Path, target_url: str, *, create: bool = True) -> bool:
    """Restore a custom-format dump into the database ``target_url`` (created if missing);
    True if this call created the database.

    Refuses a database that already has tables: a restore never writes over data.
    """
    url = make_url(target_url)
    if url.get_backend_name() != "postgresql":
        raise ConfigError("database_url", target_url, "a PostgreSQL backup restores into PostgreSQL only")
    tool = client_version("pg_restore")
    created = ensure_pg_database(url) if create else False
    check = sa.create_engine(url.set(drivername="postgresql+psycopg"))
    try:
        with check.connect() as conn:
            server = str(conn.execute(sa.text("SHOW server_version")).scalar())
            tables = sa.inspect(conn).get_table_names()
    finally:
        check.dispose()
    check_client_matches(tool, server, "pg_restore")
    if tables:
        raise ConfigError("database_url", url.render_as_string(hide_password=True),
                          f"database is not empty ({len(tables)} tables)", "restore into a new database")
    conninfo, env = libpq_env(url)
    proc = subprocess.run(["pg_restore", "--no-owner", "--no-privileges", "--exit-on-error",
                           "--single-transaction", f"--dbname={conninfo}", str(dump)],
                          env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise IntegrityError(f"pg_restore of {dump} failed (exit {proc.returncode}): "
                             f"{proc.stderr.strip()[:2000]}")
    return created


def _admin(url: URL) -> Engine:
    return sa.create_engine(url.set(drivername="postgresql+psycopg", database="postgres"),
                            isolation_level="AUTOCOMMIT")


def ensure_pg_database(url: URL) -> bool:
    """Create the database of ``url`` if it does not exist; True if it was created."""
    name = url.database
    if not name or not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise ConfigError("database_url", url.render_as_string(hide_password=True),
                          "the database name must be letters, digits and underscores")
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                                  {"n": name}).scalar()
            if not exists:
                conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    finally:
        admin.dispose()
    return not exists


def drop_pg_database(url: URL) -> None:
    """Drop the database of ``url`` (a verification's scratch copy)."""
    admin = _admin(url)
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)'))
    finally:
        admin.dispose()


def count_rows(engine: Engine) -> dict[str, Any]:
    """Rows per table of ``engine``'s database (for comparing with a manifest)."""
    with engine.connect() as conn:
        return read_snapshot(conn)[2]
