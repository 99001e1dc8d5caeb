"""``lyra backup verify``: restore a backup into scratch and prove it whole.

Checks, each named in the report when it fails:

1. every file's size and sha256 against the manifest (a truncated or changed file; a missing
   key file), and that the schema revision is one this Lyra knows;
2. the backup restores (into a scratch folder; PostgreSQL: a scratch database), SQLite's
   ``PRAGMA integrity_check`` passes, and ``audit verify`` passes there (chain and mirror);
3. the restored head equals the manifest's head, and its row counts the manifest's;
4. the restored chain is a prefix of the home's current chain: same first entry (same home),
   the current log reaches the backup's head (else the log was rolled back), and has the same
   hash there (else the histories fork; the first differing entry is named).
"""

from __future__ import annotations

import json
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from lyra.audit.verify import verify as audit_verify
from lyra.backup.dbcopy import count_rows, sqlite_integrity
from lyra.backup.manifest import VERIFIED, Manifest, read_manifest, write_json_atomic
from lyra.backup.materialize import check_files, check_schema, lay_out
from lyra.core.errors import LyraError


@dataclass(slots=True)
class BackupReport:
    """What :func:`verify_backup` found; ``ok`` only if nothing is wrong."""

    backup_id: str
    problems: list[str] = field(default_factory=list)
    entries: int = 0
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {"backup_id": self.backup_id, "ok": self.ok, "problems": self.problems,
                "entries": self.entries, "seconds": round(self.seconds, 3),
                "verified_ms": int(time.time() * 1000)}


def _hash_at(engine: Engine, seq: int) -> str | None:
    with engine.connect() as conn:
        h = conn.execute(sa.text("SELECT hash FROM events WHERE seq = :s"), {"s": seq}).scalar()
    return None if h is None else str(h)


def first_difference(a: Engine, b: Engine, upto: int) -> int:
    """The first seq (<= ``upto``) whose hash differs between two logs (binary search: each
    hash covers every entry before it)."""
    lo, hi = 1, upto
    while lo < hi:
        mid = (lo + hi) // 2
        if _hash_at(a, mid) == _hash_at(b, mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


def compare_with_current(m: Manifest, restored: Engine, current: Engine) -> list[str]:
    """Problems if the backup is not a prefix of the current log (another home, rollback, fork)."""
    with current.connect() as conn:
        row = conn.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).one_or_none()
    if row is None:
        return ["the current database has no event log head (not initialised?)"]
    cur_seq = int(row[0])
    if cur_seq == 0 or m.head.seq == 0:
        return []
    cur_first = _hash_at(current, 1)
    if m.chain_id and cur_first != m.chain_id:
        return [f"backup {m.id} is from another home: its log starts with entry hash "
                f"{m.chain_id[:12]}…, the current log with {str(cur_first)[:12]}…"]
    if cur_seq < m.head.seq:
        return [f"the current log ends at entry {cur_seq} but backup {m.id} holds entries up to "
                f"{m.head.seq}: the current log was rolled back (or the backup is from a fork)"]
    if _hash_at(current, m.head.seq) != m.head.hash:
        k = first_difference(restored, current, m.head.seq)
        return [f"backup {m.id} forks from the current log at entry {k}: entries from {k} on "
                f"differ (current head {cur_seq})"]
    return []


def verify_backup(folder: Path, *, current: Engine | None = None, scratch: Path | None = None,
                  record: bool = True) -> BackupReport:
    """Verify the backup in ``folder`` (see the module doc); ``current``: the home's database to
    compare chains with. Writes ``verified.json`` into the backup unless ``record`` is False."""
    t0 = time.perf_counter()
    try:
        m = read_manifest(folder)
    except LyraError as exc:
        return BackupReport(folder.name, [str(exc)])
    report = BackupReport(m.id)
    report.problems.extend(check_files(folder, m))
    schema = check_schema(m)
    if schema:
        report.problems.append(schema)
    if not report.problems:
        _restore_and_check(folder, m, report, current, scratch)
    report.seconds = time.perf_counter() - t0
    if record:
        write_json_atomic(folder / VERIFIED, json.dumps(report.to_dict(), indent=1) + "\n")
    return report


def _scratch_db_url(m: Manifest, current: Engine | None, home: Path) -> str | None:
    if m.backend == "sqlite":
        return None
    if current is None or current.url.get_backend_name() != "postgresql":
        return None  # lay_out names what is missing
    name = f"lyra_verify_{uuid.uuid4().hex[:12]}"
    return current.url.set(database=name).render_as_string(hide_password=False)


def _restore_and_check(folder: Path, m: Manifest, report: BackupReport, current: Engine | None,
                       scratch: Path | None) -> None:
    home = Path(tempfile.mkdtemp(prefix="lyra-verify-", dir=scratch))
    laid = None
    try:
        try:
            laid = lay_out(folder, m, home / "home", db_url=_scratch_db_url(m, current, home))
        except LyraError as exc:
            report.problems.append(f"the backup does not restore: {exc}")
            return
        if m.backend == "sqlite":
            bad = sqlite_integrity(Path(str(make_url(laid.db_url).database)))
            if bad:
                report.problems.append(f"db/lyra.db fails PRAGMA integrity_check: {'; '.join(bad[:3])}")
                return
        engine = laid.engine()
        try:
            audit = audit_verify(engine, laid.home / "audit" / "events.jsonl")
            report.entries = audit.entries
            if not audit.ok:
                report.problems.append(f"audit verify of the restored copy fails: {audit.first_bad}")
            with engine.connect() as conn:
                row = conn.execute(sa.text("SELECT seq, hash FROM audit_head WHERE id = 1")).one()
            got = (int(row[0]), str(row[1]))
            if got != (m.head.seq, m.head.hash):
                report.problems.append(
                    f"the manifest says head (entry {m.head.seq}, {m.head.hash[:12]}…) but the restored "
                    f"database's head is (entry {got[0]}, {got[1][:12]}…)")
            counts = count_rows(engine)
            diff = {t: (m.row_counts.get(t), n) for t, n in counts.items() if m.row_counts.get(t) != n}
            if diff:
                report.problems.append("row counts differ from the manifest (table: manifest, restored): "
                                       + ", ".join(f"{t}: {a}, {b}" for t, (a, b) in sorted(diff.items())))
            if current is not None:
                report.problems.extend(compare_with_current(m, engine, current))
        finally:
            engine.dispose()
    finally:
        if laid is not None:
            laid.discard()
        import shutil

        shutil.rmtree(home, ignore_errors=True)
