"""Lay a backup out as a home (a restore, or a verification's scratch copy), and check its files."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import Engine, make_url

from lyra.audit.chain import EventRecord
from lyra.backup.dbcopy import drop_pg_database, pg_restore
from lyra.backup.manifest import MANIFEST, VERIFIED, Manifest, sha256_file
from lyra.core.errors import ConfigError, IntegrityError, ValidationError
from lyra.store import create_engine_for


def check_files(folder: Path, m: Manifest) -> list[str]:
    """Every file of the manifest present with its size and sha256; no file it does not list."""
    problems: list[str] = []
    for rel, (size, digest) in sorted(m.files.items()):
        p = folder / rel
        what = "key file" if rel in m.keys else "file"
        if not p.is_file():
            problems.append(f"{what} {rel} listed in the manifest is missing from backup {m.id}")
            continue
        real_size = p.stat().st_size
        if real_size != size:
            problems.append(f"{what} {rel}: {real_size} bytes, the manifest says {size} "
                            f"({'truncated' if real_size < size else 'grown'})")
            continue
        if sha256_file(p)[1] != digest:
            problems.append(f"{what} {rel}: checksum mismatch (content changed since the backup)")
    listed = set(m.files)
    for p in sorted(folder.rglob("*")):
        rel = p.relative_to(folder).as_posix()
        if p.is_file() and rel not in listed and rel not in (MANIFEST, VERIFIED):
            problems.append(f"file {rel} is in the backup but not in its manifest")
    return problems


def check_schema(m: Manifest) -> str | None:
    """A problem if this Lyra does not know the backup's schema revision (a newer Lyra wrote it)."""
    from alembic.script import ScriptDirectory

    from lyra.store.migrate import MIGRATIONS_DIR, head_revision

    script = ScriptDirectory(str(MIGRATIONS_DIR))
    known = {r.revision for r in script.walk_revisions()}
    if m.schema_revision not in known:
        return (f"backup {m.id} has database schema {m.schema_revision!r}, unknown to this Lyra "
                f"(its newest is {head_revision()}): written by a newer Lyra; upgrade Lyra to restore it")
    return None


@dataclass(slots=True)
class Laid:
    """A backup laid out under ``home``: its database URL (and whether we created that database)."""

    home: Path
    db_url: str
    pg_created: bool = False  #: we created the database: discard() drops it

    def engine(self) -> Engine:
        return create_engine_for(self.db_url)

    def discard(self) -> None:
        """Remove the laid-out copy (a verification's scratch), database included."""
        if self.pg_created:
            drop_pg_database(make_url(self.db_url))
        shutil.rmtree(self.home, ignore_errors=True)


def lay_out(folder: Path, m: Manifest, home: Path, *, db_url: str | None = None) -> Laid:
    """Copy the backup's files into ``home`` (created) and restore its database.

    SQLite goes to ``home/lyra.db`` unless ``db_url`` names another file; PostgreSQL needs
    ``db_url`` (a database that does not exist yet or is empty)."""
    home.mkdir(parents=True, exist_ok=True)
    for rel in m.files:
        if rel.startswith("db/"):
            continue
        src = folder / rel
        if rel.startswith("keys/"):
            dst = home / "secrets" / rel[len("keys/"):]
            dst.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            os.chmod(dst.parent, 0o700)
            shutil.copyfile(src, dst)
            os.chmod(dst, 0o600)
        else:
            dst = home / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
    for sub in ("market", "runs", "audit"):
        (home / sub).mkdir(exist_ok=True)
    if m.backend == "sqlite":
        url = db_url or f"sqlite:///{home / 'lyra.db'}"
        path = make_url(url).database
        if make_url(url).get_backend_name() != "sqlite" or not path:
            raise ConfigError("database_url", url, "a SQLite backup restores into a SQLite file")
        if Path(path).exists():
            raise ConfigError("database_url", url, "the database file exists; restore never overwrites one")
        shutil.copyfile(folder / "db" / "lyra.db", path)
        return Laid(home, url)
    if db_url is None:
        raise ConfigError("database_url", None, "a PostgreSQL backup needs a database to restore into",
                          "pass --database-url postgresql+psycopg://user@host/NEW_DB")
    created = pg_restore(folder / "db" / "lyra.dump", db_url)
    return Laid(home, db_url, pg_created=created)


# ------------------------------------------------------------------------------- a log file
def read_log_file(path: Path, *, after_seq: int = 0, until_seq: int | None = None) -> Iterator[EventRecord]:
    """Entries of a JSON-lines mirror with ``after_seq < seq <= until_seq``, in order."""
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith("\n"):
                return  # a torn last line was never a durable entry
            if not line.startswith('{"seq":'):
                raise IntegrityError(f"{path} line {n}: not an event entry")
            seq = int(line[7: line.index(",")])
            if seq <= after_seq:
                continue
            if until_seq is not None and seq > until_seq:
                return
            try:
                d = json.loads(line)
                payload = line[line.index(',"payload":') + 11: line.rindex(',"prev_hash":')]
                rec = EventRecord(int(d["seq"]), int(d["ts"]), d["actor"], d["kind"], d["session_id"],
                                  payload, d["prev_hash"], d["hash"])
            except (ValueError, KeyError) as exc:
                raise IntegrityError(f"{path} line {n}: unreadable entry ({exc})") from None
            yield rec


@dataclass(slots=True)
class LogScan:
    """What a pass over a log file found: last entry, the cut for a time, the chain id."""

    last_seq: int = 0
    last_hash: str = ""
    cut_seq: int = 0  #: the last entry stamped at or before the time asked
    cut_hash: str = ""
    chain_id: str = ""
    later_in_prefix: int = 0  #: entries up to the cut stamped after the time (log not in time order)
    hashes: dict[int, str] | None = None


def scan_log(path: Path, until_ms: int | None, want: set[int] | None = None) -> LogScan:
    """One fast pass over a log file (sequence numbers and times, no JSON parsing): the cut for
    ``until_ms``, the chain id, and the hashes of the ``want`` seqs (to compare with backups'
    heads). The entries a restore replays are checked in full (hash and link) as they are read."""
    s = LogScan(hashes={})
    after_cut = 0
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.endswith('"}\n'):
                break  # a torn last line was never a durable entry
            if not line.startswith('{"seq":'):
                raise IntegrityError(f"{path} line {n}: not an event entry")
            comma = line.index(",", 7)
            seq = int(line[7:comma])
            if not line.startswith(',"ts":', comma):
                raise IntegrityError(f"{path} line {n}: not an event entry")
            ts = int(line[comma + 6: line.index(",", comma + 6)])
            h = line[-67:-3]
            if seq != s.last_seq + 1:
                raise IntegrityError(f"{path}: entry {seq} follows entry {s.last_seq} (a gap)")
            if seq == 1:
                s.chain_id = h
            if want is not None and seq in want:
                assert s.hashes is not None
                s.hashes[seq] = h
            s.last_seq, s.last_hash = seq, h
            if until_ms is None or ts <= until_ms:
                s.cut_seq, s.cut_hash = seq, h
                s.later_in_prefix += after_cut
                after_cut = 0
            else:
                after_cut += 1
    return s


def require_target_free(target: Path, *, force: bool) -> None:
    """Refuse a restore target that exists (unless ``force`` and nothing runs there)."""
    if not target.exists() or (target.is_dir() and not any(target.iterdir())):
        return
    if not force:
        raise ValidationError("target", str(target),
                              "exists and is not empty; a restore never writes over a home",
                              "choose a new folder, or pass --force to replace it once nothing runs there")
    running = running_sessions(target)
    if running:
        raise ValidationError("target", str(target), f"sessions still run there: {', '.join(running)}",
                              "stop them (lyra session stop ID) before replacing this home")


def running_sessions(home: Path) -> list[str]:
    """Sessions whose lease in ``home``'s SQLite database has not expired (or that say running
    with a live process on this host)."""
    import socket
    import time

    import sqlalchemy as sa

    db = home / "lyra.db"
    if not db.exists():
        return []
    eng = create_engine_for(f"sqlite:///{db}")
    now = int(time.time() * 1000)
    out: set[str] = set()
    try:
        with eng.connect() as conn:
            tables = set(sa.inspect(conn).get_table_names())
            if "session_leases" in tables:
                out |= {str(r[0]) for r in conn.execute(
                    sa.text("SELECT session_id FROM session_leases WHERE expires_ts > :n"), {"n": now})}
            if "sessions" in tables:
                for sid, pid, host in conn.execute(
                        sa.text("SELECT session_id, pid, host FROM sessions WHERE status = 'running'")):
                    if host == socket.gethostname() and pid and _alive(int(pid)):
                        out.add(str(sid))
    finally:
        eng.dispose()
    return sorted(out)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
