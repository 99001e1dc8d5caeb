"""``lyra audit verify``: check the whole hash chain and compare the mirror file with it.

The mirror (a JSON-lines copy of the log) is written after each database commit, so a crash
or a full disk can leave it **behind**: its last entries missing, or its last line torn (a
prefix of the true line, with no newline). That incomplete tail is reported apart from
tampering (:attr:`VerifyReport.incomplete_tail`); :func:`repair` completes it from the
database — never the other way. Anything else (an edited, missing, reordered or extra line, a
broken chain in the database) is tampering or damage, and ``repair`` refuses to touch it.

A mirror cut short by hand looks exactly like a crash's; the report says how many entries the
mirror does not corroborate, so a large number deserves a look before ``lyra audit repair``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.chain import GENESIS_HASH, entry_hash, jsonl_line
from lyra.store.tables import audit_head

_MAX_PROBLEMS = 20


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, at one entry."""

    seq: int
    where: str  # "database" or "file"
    what: str
    #: True for the mirror's incomplete tail (behind the database, torn last line): what a
    #: crash leaves, repaired by :func:`repair`; False for tampering or damage
    tail: bool = False

    def __str__(self) -> str:
        return f"{self.where} entry {self.seq}: {self.what}"


@dataclass(slots=True)
class VerifyReport:
    """What ``verify`` found. ``ok`` is True only if nothing is wrong anywhere."""

    entries: int = 0
    file_entries: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def first_bad(self) -> Problem | None:
        return self.problems[0] if self.problems else None

    @property
    def tampered(self) -> bool:
        """True if anything is wrong beyond the mirror's incomplete tail."""
        return any(not p.tail for p in self.problems)

    @property
    def incomplete_tail(self) -> bool:
        """True if the only problem is the mirror's incomplete tail (a crash, a full disk)."""
        return bool(self.problems) and not self.tampered

    @property
    def tail_problem(self) -> Problem | None:
        return next((p for p in self.problems if p.tail), None)

    def add(self, seq: int, where: str, what: str, *, tail: bool = False) -> None:
        if len(self.problems) < _MAX_PROBLEMS:
            self.problems.append(Problem(seq, where, what, tail))


def _db_rows(engine: Engine, batch: int = 20_000, lo: int | None = None,
             hi: int | None = None) -> Iterator[tuple[Any, ...]]:
    # The raw DBAPI cursor: verifying a million entries is dominated by per-row overhead.
    sql = "SELECT seq, ts, actor, kind, session_id, payload, prev_hash, hash FROM events"
    if lo is not None and hi is not None:
        sql += f" WHERE seq >= {int(lo)} AND seq <= {int(hi)}"
    sql += " ORDER BY seq"
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        cur = raw.cursor()
        try:
            cur.execute(sql)
            while True:
                rows = cur.fetchmany(batch)
                if not rows:
                    break
                yield from rows
        finally:
            cur.close()


def verify(engine: Engine, jsonl_path: Path | None = None, *, workers: int | None = None) -> VerifyReport:
    """Check every entry's hash and link, the chain head, and (if given) the mirror file.

    Finds an edited entry (hash mismatch), a deleted entry (a gap in sequence numbers and a
    broken link), reordered entries (hash mismatch: the sequence number is hashed), a
    truncated tail (the head row disagrees) and any difference between database and file.

    Large logs are checked in parallel chunks (one process per core); if any chunk finds
    anything, the whole log is re-checked serially so the report names the first bad entry.
    """
    from lyra.audit.parallel import verify_parallel

    fast = verify_parallel(engine, jsonl_path, workers=workers)
    if fast is not None:
        return fast
    return verify_serial(engine, jsonl_path)


def verify_serial(engine: Engine, jsonl_path: Path | None = None) -> VerifyReport:
    """Single-process :func:`verify` that reports every problem it meets, in order."""
    report = VerifyReport()
    expected_seq = 1
    prev = GENESIS_HASH
    f = open(jsonl_path, encoding="utf-8") if jsonl_path is not None and jsonl_path.exists() else None  # noqa: SIM115
    file_done = f is None
    tail_from: int | None = None
    torn = False
    try:
        for seq, ts, actor, kind, session_id, payload, prev_hash, h in _db_rows(engine):
            report.entries += 1
            if seq != expected_seq:
                if seq > expected_seq:
                    report.add(expected_seq, "database",
                               f"missing (deleted?): next entry found is {seq}")
                else:
                    report.add(seq, "database", f"out of order: expected {expected_seq}")
            if prev_hash != prev:
                report.add(seq, "database", "broken link: prev_hash does not match the entry before")
            calc = entry_hash(seq, ts, actor, kind, session_id, payload, prev_hash)
            if calc != h:
                report.add(seq, "database", "content does not match its hash (edited or reordered)")
            prev = h
            expected_seq = seq + 1
            if not file_done:
                assert f is not None
                line = f.readline()
                expected_line = jsonl_line(seq, ts, actor, kind, session_id, payload, prev_hash, h)
                if not line or (not line.endswith("\n") and expected_line.startswith(line)):
                    # The file stops here: nothing after it, or a torn prefix of this very
                    # entry (a write cut short). What a crash leaves; counted at the end.
                    file_done = True
                    tail_from, torn = seq, bool(line)
                    continue
                report.file_entries += 1
                if line != expected_line:
                    report.add(seq, "file", _describe_file_difference(line, seq))
        if tail_from is not None:
            behind = expected_seq - tail_from
            report.add(tail_from, "file",
                       f"incomplete tail: the mirror is behind the database by {behind} "
                       f"entr{'y' if behind == 1 else 'ies'} (from entry {tail_from})"
                       + ("; its last line is torn" if torn else "")
                       + "; run `lyra audit repair`", tail=True)
        if f is not None and not file_done:
            extra = f.readline()
            if extra:
                report.file_entries += 1
                report.add(_seq_of(extra), "file", "extra entry not in the database")
        with engine.connect() as conn:
            head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one_or_none()
        if head is None:
            report.add(0, "database", "chain head row is missing")
        elif (int(head.seq), str(head.hash)) != (expected_seq - 1, prev):
            report.add(int(head.seq), "database",
                       f"chain head says entry {head.seq} but the last entry is {expected_seq - 1} "
                       "(tail deleted?)")
        if jsonl_path is not None and f is None and report.entries:
            report.add(1, "file", f"mirror file {jsonl_path} does not exist")
    finally:
        if f is not None:
            f.close()
    return report


def _seq_of(line: str) -> int:
    try:
        return int(json.loads(line)["seq"])
    except (ValueError, KeyError, TypeError):
        return -1


def _describe_file_difference(line: str, seq: int) -> str:
    try:
        d = json.loads(line)
    except ValueError:
        return "line is not valid JSON"
    if not isinstance(d, dict):
        return "line is not an entry"
    if d.get("seq") != seq:
        return f"file has entry {d.get('seq')} where the database has {seq} (deleted or reordered)"
    changed = [k for k in ("ts", "actor", "kind", "session_id", "payload", "prev_hash", "hash") if k in d]
    return "differs from the database (edited): check fields " + ", ".join(changed)


@dataclass(frozen=True, slots=True)
class RepairResult:
    """What :func:`repair` did: entries appended to the mirror, and whether a torn line was cut."""

    appended: int
    torn_line_cut: bool
    entries: int


def repair(engine: Engine, jsonl_path: Path) -> RepairResult:
    """Complete the mirror's incomplete tail from the database (never the other way).

    Refuses (:class:`~lyra.core.errors.IntegrityError`, naming the first bad entry) when the
    log shows anything but an incomplete tail: tampering is for a person to look at, and
    rewriting the mirror from a forged database would hide it.
    """
    from lyra.audit.log import EventLog
    from lyra.core.errors import IntegrityError

    report = verify_serial(engine, jsonl_path)
    if report.ok:
        return RepairResult(0, False, report.entries)
    if report.tampered:
        raise IntegrityError(f"refusing to repair: {report.first_bad} (more than an incomplete "
                             "tail: tampering or damage; `lyra audit verify` lists it)")
    tail = report.tail_problem
    torn = tail is not None and "torn" in tail.what
    # Opening the log runs its catch-up: it cuts a torn last line and appends what the file
    # lacks, under the mirror's file lock, so a writer running meanwhile cannot interleave.
    EventLog(engine, jsonl_path)
    after = verify_serial(engine, jsonl_path)
    if not after.ok:
        raise IntegrityError(f"repair did not complete the mirror: {after.first_bad}")
    return RepairResult(after.entries - (tail.seq - 1 if tail else after.entries), torn, after.entries)
