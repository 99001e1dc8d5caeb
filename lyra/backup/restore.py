"""``lyra restore``: a new home from a backup, then the event log replayed up to a moment.

``--until TIME`` picks the latest backup whose head lies at or before the cut for TIME (the last
entry stamped at or before TIME, the same test as ``lyra audit replay --until``), lays it out
in a new folder, appends the log's entries after the backup's head up to the cut (each one's
hash checked against the backup's chain: a log that forks from the backup is refused), and
rewrites the projection tables from the restored log. ``--to-backup ID`` restores one backup
as it is. The log to replay is the home's JSON-lines mirror (``--log`` names a newer copy); on
a machine that lost its home, the newest backup's own mirror.

The new home is built in a hidden sibling folder and renamed into place when complete, and
records where it came from in ``restored_from.json``. An existing target is refused unless
``force`` and no session runs there.
"""

from __future__ import annotations

import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.log import EventLog
from lyra.audit.verify import verify as audit_verify
from lyra.backup.manifest import Entry, list_backups, read_manifest, sha256_file, write_json_atomic
from lyra.backup.materialize import (
    Laid,
    LogScan,
    check_files,
    check_schema,
    lay_out,
    read_log_file,
    require_target_free,
    scan_log,
)
from lyra.backup.pitr import rebuild_projections
from lyra.core.errors import IntegrityError, ValidationError
from lyra.core.timeutil import ms_to_datetime
from lyra.store.migrate import current_revision, head_revision, upgrade

PROVENANCE = "restored_from.json"
_BATCH = 5000


@dataclass(slots=True)
class RestoreResult:
    """What :func:`restore` did."""

    target: Path
    db_url: str
    backup_id: str
    backup_head: int
    replayed: int
    head_seq: int
    head_hash: str
    verified_entries: int
    notes: list[str] = field(default_factory=list)
    seconds: float = 0.0


def _fmt(ms: int) -> str:
    return ms_to_datetime(ms).isoformat()


def _choose(entries: list[Entry], scan: LogScan | None, until_ms: int | None, log: Path | None) -> Entry:
    if not entries:
        raise ValidationError("backups", "none", "there is no backup to restore from",
                              "take one with `lyra backup create`")
    if until_ms is None or scan is None:
        return entries[-1]
    same = [e for e in entries if not scan.chain_id or not e.manifest.chain_id
            or e.manifest.chain_id == scan.chain_id]
    if not same:
        raise ValidationError("backups", entries[-1].manifest.id,
                              f"every backup is from another home than the log {log} (their first "
                              "entries differ)", "point --from at this home's backups, or --log at its log")
    usable = [e for e in same if e.manifest.head.seq <= scan.cut_seq]
    if not usable:
        first = min(same, key=lambda e: e.manifest.head.seq)
        raise ValidationError(
            "until", _fmt(until_ms),
            f"is before the first backup: the earliest, {first.manifest.id}, already holds entries up to "
            f"{first.manifest.head.seq} (stamped {_fmt(first.manifest.head.ts)}), but the log's last "
            f"entry at or before that time is {scan.cut_seq}")
    return max(usable, key=lambda e: (e.manifest.head.seq, e.manifest.created_ms))


def restore(backups: Path, target: Path, *, until_ms: int | None = None, backup_id: str | None = None,
            log_path: Path | None = None, db_url: str | None = None, force: bool = False,
            current: Engine | None = None, verify_after: bool = True) -> RestoreResult:
    """Restore into the new home ``target``; see the module doc. ``current``: the home's live
    database, to refuse a backup from another home when no log is given."""
    t0 = time.perf_counter()
    if (until_ms is None) == (backup_id is None):
        raise ValidationError("restore", None, "say either --until TIME or --to-backup ID")
    target = target.expanduser().resolve()
    require_target_free(target, force=force)
    entries = list_backups(backups)
    if backup_id is not None:
        entries = [e for e in entries if e.manifest.id == backup_id]
        if not entries:
            read_manifest(backups / backup_id)  # its own error says what is wrong with it
            raise ValidationError("backup id", backup_id, f"no such backup in {backups}")
    log = log_path
    if log is None and until_ms is not None:
        newest = list_backups(backups)
        log = newest[-1].path / "audit" / "events.jsonl" if newest else None
    if log is not None and not log.is_file():
        raise ValidationError("log", str(log), "no such file")
    heads = {e.manifest.head.seq for e in entries}
    scan = scan_log(log, until_ms, want=heads) if log is not None else None
    chosen = _choose(entries, scan, until_ms, log)
    m = chosen.manifest
    _refuse_foreign(m, scan, current, log)
    if (scan is not None and until_ms is not None and scan.hashes is not None and m.head.seq
            and scan.hashes.get(m.head.seq) != m.head.hash):
        raise IntegrityError(f"the log {log} forks from backup {m.id}: its entry {m.head.seq} is not the "
                             "backup's head; restore from a backup of this log's history")
    problems = check_files(chosen.path, m)
    schema = check_schema(m)
    if problems or schema:
        found = "; ".join([*problems, *([schema] if schema else [])])
        raise IntegrityError(f"backup {m.id} cannot be restored: {found} (run `lyra backup verify`)")
    cut = scan.cut_seq if (scan is not None and until_ms is not None) else m.head.seq
    notes: list[str] = []
    if scan is not None and until_ms is not None and scan.later_in_prefix:
        notes.append(f"{scan.later_in_prefix} entries up to entry {cut} are stamped after the time asked "
                     f"(the log is not in time order); the restored log is the prefix up to entry {cut}")
    build = target.parent / f".restore-{uuid.uuid4().hex[:12]}"
    laid: Laid | None = None
    try:
        laid = lay_out(chosen.path, m, build, db_url=db_url)
        engine = laid.engine()
        try:
            if current_revision(engine) != head_revision():
                upgrade(engine)
                notes.append(f"database migrated from {m.schema_revision} to {head_revision()}")
            released = _release_owners(engine)
            if released:
                notes.append(f"released the ownership of {released} session(s) that ran when the backup was "
                             "taken: resume them here with `lyra session resume ID`")
            replayed = _replay(engine, log, m.head.seq, m.head.hash, cut, build / "audit" / "events.jsonl") \
                if log is not None and cut > m.head.seq else 0
            seq, h = EventLog(engine).head()
            verified = 0
            if verify_after:
                rep = audit_verify(engine, build / "audit" / "events.jsonl")
                if not rep.ok:
                    raise IntegrityError(f"the restored home fails audit verify: {rep.first_bad}")
                verified = rep.entries
        finally:
            engine.dispose()
        # the default SQLite file moves with the folder; a named database stays where it is
        url = laid.db_url if db_url is not None else f"sqlite:///{target / 'lyra.db'}"
        result = RestoreResult(target, url, m.id, m.head.seq, replayed, seq, h, verified, notes)
        provenance: dict[str, Any] = {
            "backup_id": m.id, "backup_folder": str(chosen.path), "backup_home": m.home,
            "manifest_sha256": sha256_file(chosen.path / "manifest.json")[1],
            "backup_head": {"seq": m.head.seq, "hash": m.head.hash},
            "until": _fmt(until_ms) if until_ms is not None else None,
            "log": str(log) if log is not None else None, "replayed_entries": replayed,
            "head": {"seq": seq, "hash": h}, "database_url": _redacted(result.db_url),
            "restored_ms": int(time.time() * 1000), "notes": notes,
        }
        write_json_atomic(build / "restored_from.json", json.dumps(provenance, indent=1) + "\n")
        _swap_in(build, target)
    except BaseException:
        if laid is not None and laid.pg_created:
            laid.discard()  # a database this restore created, never one it was handed
        shutil.rmtree(build, ignore_errors=True)
        raise
    result.seconds = time.perf_counter() - t0
    return result


def _redacted(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def _refuse_foreign(m: Any, scan: LogScan | None, current: Engine | None, log: Path | None) -> None:
    if scan is not None and scan.chain_id and m.chain_id and scan.chain_id != m.chain_id:
        raise ValidationError("backup", m.id, f"is from another home than the log {log}: its first entry "
                              "differs", "restore it without --log, or pick this home's backups")
    if current is not None and m.chain_id:
        try:
            with current.connect() as conn:
                first = conn.execute(sa.text("SELECT hash FROM events WHERE seq = 1")).scalar()
        except sa.exc.SQLAlchemyError:
            return  # no usable current database (a lost machine): nothing to compare with
        if first is not None and first != m.chain_id:
            raise ValidationError("backup", m.id, f"is from another home (it says {m.home}): its first log "
                                  "entry differs from this home's", "pick this home's backups")


def _replay(engine: Engine, log: Path, base_seq: int, base_hash: str, cut: int, mirror: Path) -> int:
    """Append the log's entries (base_seq, cut] to the restored database and its mirror, then
    rewrite the projections, in one transaction. Each entry must chain onto the one before."""
    from lyra.audit.chain import entry_hash

    prev = base_hash
    n = 0
    lines: list[str] = []
    with engine.begin() as conn:
        marks = ", ".join(["?" if conn.dialect.paramstyle == "qmark" else "%s"] * 8)
        sql = ("INSERT INTO events (seq, ts, actor, kind, session_id, payload, prev_hash, hash) "  # noqa: S608
               f"VALUES ({marks})")  # placeholders only: the values go as parameters
        rows: list[tuple[Any, ...]] = []
        for rec in read_log_file(log, after_seq=base_seq, until_seq=cut):
            if rec.seq != base_seq + n + 1 or rec.prev_hash != prev:
                raise IntegrityError(
                    f"the log {log} forks from the backup at entry {rec.seq}: it does not chain onto "
                    f"the backup's head (entry {base_seq}); restore from a backup of this log's home")
            if entry_hash(rec.seq, rec.ts, rec.actor, rec.kind, rec.session_id, rec.payload,
                          rec.prev_hash) != rec.hash:
                raise IntegrityError(f"{log}: entry {rec.seq} does not match its hash (edited?)")
            rows.append((rec.seq, rec.ts, rec.actor, rec.kind, rec.session_id, rec.payload, rec.prev_hash,
                         rec.hash))
            lines.append(rec.jsonl_line())
            prev = rec.hash
            n += 1
            if len(rows) >= _BATCH:
                conn.exec_driver_sql(sql, rows)
                rows = []
        if rows:
            conn.exec_driver_sql(sql, rows)
        if base_seq + n != cut:
            raise IntegrityError(f"the log {log} ends at entry {base_seq + n}, before entry {cut}")
        conn.execute(sa.text("UPDATE audit_head SET seq = :s, hash = :h WHERE id = 1"), {"s": cut, "h": prev})
        rebuild_projections(conn, _read_all(conn))
    with open(mirror, "a", encoding="utf-8") as f:
        f.write("".join(lines))
        f.flush()
        os.fsync(f.fileno())
    return n


def _read_all(conn: sa.Connection) -> Any:
    """Every entry of the log on ``conn`` (this transaction sees the appended ones)."""
    from lyra.audit.chain import EventRecord

    sql = "SELECT seq, ts, actor, kind, session_id, payload, prev_hash, hash FROM events ORDER BY seq"
    if conn.dialect.name == "sqlite":  # the driver's cursor: per-row overhead dominates a big log
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            cur.execute(sql)
            while rows := cur.fetchmany(20_000):
                for r in rows:
                    yield EventRecord(*r)
        finally:
            cur.close()
        return
    result = conn.execute(sa.text(
        "SELECT seq, ts, actor, kind, session_id, payload, prev_hash, hash FROM events ORDER BY seq"
    ).execution_options(yield_per=10_000))
    for r in result:
        yield EventRecord(int(r[0]), int(r[1]), r[2], r[3], r[4], r[5], r[6], r[7])


def _release_owners(engine: Engine) -> int:
    """No process owns a session of a restored home: expire the leases the backup caught held
    and mark sessions that were running as stopped (their processes belong to the old home)."""
    with engine.begin() as conn:
        n = conn.execute(sa.text("UPDATE session_leases SET expires_ts = 0 WHERE expires_ts > 0")).rowcount
        m = conn.execute(sa.text(
            "UPDATE sessions SET status = 'stopped', pid = NULL WHERE status = 'running'")).rowcount
    return max(int(n or 0), int(m or 0))


def _swap_in(build: Path, target: Path) -> None:
    """Move the finished home into place (an old target, allowed by ``force``, goes last)."""
    old = None
    if target.exists():
        old = target.with_name(f".replaced-{target.name}-{uuid.uuid4().hex[:8]}")
        os.replace(target, old)
    os.replace(build, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
