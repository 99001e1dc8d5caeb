"""The event log: append-only, hash-chained, mirrored to a JSON-lines file.

Appends happen inside a :class:`LogTransaction`, together with the projection updates they
explain, so the log and the projections can never disagree::

    log = EventLog(engine, jsonl_path)
    with log.transaction() as tx:
        tx.append("order.submit", {"client_order_id": "s1-00000001"}, actor="session:s1")
        tx.conn.execute(...)   # projection rows, same transaction

After the database commit the entries are appended to the mirror file (under a file lock, in
sequence order). If the process dies between the two, the file lags; the next ``EventLog``
opened on it catches the file up from the database before appending anything else.
"""

from __future__ import annotations

import fcntl
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra.audit.chain import EventRecord, canonical_json, entry_hash
from lyra.core.clock import Clock, WallClock
from lyra.core.errors import IntegrityError, ValidationError
from lyra.store.engine import writer
from lyra.store.tables import audit_head, events

_MAX_KIND = 64
_MAX_ACTOR = 128


class LogTransaction:
    """A database transaction that can append events. Use via ``EventLog.transaction()``."""

    def __init__(self, log: EventLog, conn: Connection) -> None:
        self._log = log
        self.conn = conn
        self._head: tuple[int, str] | None = None
        self._rows: list[tuple[Any, ...]] = []
        self.records: list[EventRecord] = []

    def _load_head(self) -> tuple[int, str]:
        if self._head is None:
            # FOR UPDATE serialises appenders on PostgreSQL; SQLite's BEGIN IMMEDIATE already
            # holds the database write lock.
            row = self.conn.execute(
                sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1).with_for_update()
            ).one_or_none()
            if row is None:
                raise IntegrityError("event log head row is missing: the database is not initialised")
            self._head = (int(row.seq), str(row.hash))
        return self._head

    def append(self, kind: str, payload: Any, *, actor: str = "system", session_id: str = "",
               ts: int | None = None) -> EventRecord:
        """Append one entry; it is durable when the transaction commits."""
        return self.append_many([(kind, payload, actor, session_id, ts)])[0]

    def append_many(
        self, entries: list[tuple[str, Any, str, str, int | None]]
    ) -> list[EventRecord]:
        """Append ``(kind, payload, actor, session_id, ts)`` tuples in one batch insert."""
        seq, prev = self._load_head()
        rows: list[tuple[Any, ...]] = []
        out: list[EventRecord] = []
        now = self._log.clock.now_ms()
        checked = self._log._checked_names
        for kind, payload, actor, session_id, ts in entries:
            if (kind, actor, session_id) not in checked:
                _check_names(kind, actor, session_id)
                if len(checked) < 10_000:
                    checked.add((kind, actor, session_id))
            text = payload if isinstance(payload, str) and _is_json_text(payload) else canonical_json(payload)
            seq += 1
            t = now if ts is None else int(ts)
            h = entry_hash(seq, t, actor, kind, session_id, text, prev)
            rec = EventRecord(seq, t, actor, kind, session_id, text, prev, h)
            rows.append((seq, t, actor, kind, session_id, text, prev, h))
            out.append(rec)
            prev = h
        if rows:
            # Written in one executemany at flush(): per-statement overhead dominates otherwise.
            self._rows.extend(rows)
            self._head = (seq, prev)
            self.records.extend(out)
        return out

    def flush(self) -> None:
        """Write the buffered entries and move the chain head (called before commit)."""
        if not self._rows:
            return
        assert self._head is not None
        if self._log.fence is not None:
            # The writer's ownership check (a session's lease epoch), in this same transaction:
            # if it raises, the transaction rolls back and nothing of it is written.
            self._log.fence(self.conn)
        # The driver's executemany directly: SQLAlchemy's per-row parameter processing costs
        # more than the insert itself at these batch sizes.
        sql = _INSERT_QMARK if self.conn.dialect.paramstyle == "qmark" else _INSERT_FORMAT
        self.conn.exec_driver_sql(sql, self._rows)
        seq, h = self._head
        self.conn.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=seq, hash=h))
        self._rows = []


_INSERT_COLUMNS = "INSERT INTO events (seq, ts, actor, kind, session_id, payload, prev_hash, hash) VALUES "
_INSERT_QMARK = _INSERT_COLUMNS + "(?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_FORMAT = _INSERT_COLUMNS + "(%s, %s, %s, %s, %s, %s, %s, %s)"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _check_names(kind: str, actor: str, session_id: str) -> None:
    if not kind or len(kind) > _MAX_KIND:
        raise ValidationError("kind", kind, f"must be 1..{_MAX_KIND} characters")
    if not actor or len(actor) > _MAX_ACTOR:
        raise ValidationError("actor", actor, f"must be 1..{_MAX_ACTOR} characters")
    for name, v in (("kind", kind), ("actor", actor), ("session_id", session_id)):
        if _CONTROL.search(v):
            raise ValidationError(name, v, "must not contain control characters")


def _is_json_text(s: str) -> bool:
    # A str payload is taken as already-canonical JSON only if it looks like an object.
    return s.startswith("{") and s.endswith("}")


class EventLog:
    """Append-only, hash-chained event log in the database, mirrored to a JSON-lines file."""

    def __init__(self, engine: Engine, jsonl_path: Path | None = None, clock: Clock | None = None) -> None:
        self.engine = engine
        self.jsonl_path = jsonl_path
        self.clock: Clock = clock or WallClock()
        #: Called with the connection before each commit that appends entries (after the chain
        #: head is locked); raises to refuse the commit. A session sets its lease's fence here.
        self.fence: Callable[[Connection], None] | None = None
        self._checked_names: set[tuple[str, str, str]] = set()
        self._file_size = -1  # size after our last write: if unchanged, no catch-up needed
        self._file_last_seq = -1
        if jsonl_path is not None:
            jsonl_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            jsonl_path.touch(mode=0o600, exist_ok=True)  # owner-only when we create it
            self.sync_file()

    @contextmanager
    def transaction(self) -> Iterator[LogTransaction]:
        """A transaction to append entries (and update projections) atomically."""
        with writer(self.engine).begin() as conn:
            tx = LogTransaction(self, conn)
            yield tx
            tx.flush()
        if tx.records and self.jsonl_path is not None:
            self._mirror(tx.records)

    def mirror(self, records: list[EventRecord]) -> None:
        """Append committed ``records`` to the JSON-lines mirror (for callers that commit
        themselves, like :class:`lyra.audit.ledger.GroupCommit`)."""
        if records and self.jsonl_path is not None:
            self._mirror(records)

    def append(self, kind: str, payload: Any, *, actor: str = "system", session_id: str = "",
               ts: int | None = None) -> EventRecord:
        """Append one entry in its own transaction."""
        with self.transaction() as tx:
            return tx.append(kind, payload, actor=actor, session_id=session_id, ts=ts)

    def head(self) -> tuple[int, str]:
        """(last sequence number, its hash)."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
            return int(row.seq), str(row.hash)

    def read(self, *, until_ts: int | None = None, after_seq: int = 0, kinds: tuple[str, ...] = (),
             session_id: str | None = None, batch: int = 10_000) -> Iterator[EventRecord]:
        """Entries in sequence order, optionally up to a time, after a seq, of some kinds."""
        q = sa.select(events).where(events.c.seq > after_seq).order_by(events.c.seq)
        if until_ts is not None:
            q = q.where(events.c.ts <= until_ts)
        if kinds:
            q = q.where(events.c.kind.in_(kinds))
        if session_id is not None:
            q = q.where(events.c.session_id == session_id)
        # Closing the result closes PostgreSQL's server-side cursor also when the caller stops
        # early (breaks out of its loop, or drops the iterator after next()).
        with self.engine.connect() as conn, conn.execution_options(yield_per=batch).execute(q) as result:
            for r in result:
                yield EventRecord(r.seq, r.ts, r.actor, r.kind, r.session_id, r.payload, r.prev_hash, r.hash)

    # The JSON-lines mirror ------------------------------------------------------------------
    def _mirror(self, records: list[EventRecord]) -> None:
        assert self.jsonl_path is not None
        with open(self.jsonl_path, "a+", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                size = os.fstat(f.fileno()).st_size
                if size != self._file_size:
                    self._file_last_seq = _last_seq_in_file(self.jsonl_path)
                first = records[0].seq
                if self._file_last_seq >= records[-1].seq:
                    return  # another process already mirrored these (catch-up)
                if self._file_last_seq != first - 1:
                    # Other writers' entries (or a crash's) are missing in between: copy them
                    # from the database so the file stays in sequence order.
                    lines = [r.jsonl_line() for r in self.read(after_seq=self._file_last_seq)
                             if r.seq <= records[-1].seq]
                else:
                    lines = [r.jsonl_line() for r in records]
                f.write("".join(lines))
                f.flush()
                os.fsync(f.fileno())
                self._file_size = os.fstat(f.fileno()).st_size
                self._file_last_seq = records[-1].seq
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)

    def sync_file(self) -> int:
        """Append to the mirror file whatever committed entries it lacks; returns how many."""
        if self.jsonl_path is None:
            return 0
        seq, _ = self.head()
        self.jsonl_path.touch(mode=0o600, exist_ok=True)
        with open(self.jsonl_path, "a", encoding="utf-8") as f:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX)
            try:
                last = _last_seq_in_file(self.jsonl_path)
                n = 0
                if last < seq:
                    buf: list[str] = []
                    for r in self.read(after_seq=max(last, 0)):
                        buf.append(r.jsonl_line())
                        n += 1
                        if len(buf) >= 10_000:
                            f.write("".join(buf))
                            buf.clear()
                    f.write("".join(buf))
                    f.flush()
                    os.fsync(f.fileno())
                self._file_size = os.fstat(f.fileno()).st_size
                self._file_last_seq = max(last, seq)
                return n
            finally:
                fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def _last_seq_in_file(path: Path) -> int:
    """The seq of the last complete line of the mirror file (0 if empty).

    A torn last line (the process died mid-write) was never a durable entry: it is cut off so
    that the next append starts on a line of its own. The database still has the entry and
    the catch-up rewrites it.
    """
    try:
        f = open(path, "r+b")  # noqa: SIM115 - closed below
    except FileNotFoundError:
        return 0
    with f:
        end = f.seek(0, os.SEEK_END)
        if end == 0:
            return 0
        pos = end
        tail = b""
        while True:
            pos = max(0, pos - 65536)
            f.seek(pos)
            tail = f.read(end - pos)
            cut = tail.rfind(b"\n")
            if cut >= 0 or pos == 0:
                break
        if cut < 0:
            f.truncate(0)
            return 0
        if cut != len(tail) - 1:
            f.truncate(pos + cut + 1)
            tail = tail[: cut + 1]
        start = tail.rfind(b"\n", 0, len(tail) - 1)
        while start < 0 and pos > 0:
            pos = max(0, pos - 1_048_576)
            f.seek(pos)
            tail = f.read(end - pos)
            tail = tail[: tail.rfind(b"\n") + 1]
            start = tail.rfind(b"\n", 0, len(tail) - 1)
        last = tail[start + 1 : -1]
    if not last.startswith(b'{"seq":'):
        raise IntegrityError(f"{path}: last line is not an event entry; run `lyra audit verify`")
    return int(last[7 : last.index(b",")])
