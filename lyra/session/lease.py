"""Sessions own themselves: one process at a time holds a session's lease.

A lease is a row of ``session_leases``: the owner (pid, host), an **epoch** and an expiry on
the wall clock. A session takes it when it starts or resumes, renews it with its heartbeat and
gives it back when it ends::

    lease = SessionLease(engine, "paper1", ttl_s=30)
    lease.acquire()            # LeaseHeld if another live process owns paper1
    log.fence = lease.fence    # every commit of the session's entries checks the epoch
    ...
    lease.renew()              # at each heartbeat; LeaseLost if another process took over
    lease.release()            # at the end: the next `lyra session resume` takes it at once

**Taking over.** A lease can be taken (epoch + 1) when it expired, or — on the same host — when
its owner's process is gone (killed, crashed): a dead session is resumed at once, a live one is
refused with who owns it. A paused owner (stopped, swapped out) whose lease expired is replaced;
when it wakes, its next commit fails on the **fence** (``UPDATE ... WHERE epoch = mine`` in the
same transaction as the entries, which must match one row), so it writes nothing and stops.

**Status.** A registry row that says ``running`` is shown ``stale`` unless its lease is alive
(:func:`effective_status`); dashboards never open on a stale session by default.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from lyra.core.clock import Clock, WallClock
from lyra.core.errors import ValidationError
from lyra.store.engine import writer
from lyra.store.tables_session import session_leases as sl

#: How long a lease lasts without a heartbeat (seconds). Sessions renew it ~4 times a second.
DEFAULT_TTL_S = 30.0
#: A ``running`` session with no lease row (registered by hand, or before leases existed) is
#: judged by its heartbeat instead: older than this, it is stale (wall clock, ms).
LEGACY_STALE_MS = 30_000


def _fmt(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host (a zombie — killed, not yet reaped — is dead)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            state = f.read().rsplit(b")", 1)[1].split()[0]
        return state not in (b"Z", b"X")
    except (OSError, IndexError):
        return True  # no /proc (not Linux): the signal test is all we have


@dataclass(frozen=True, slots=True)
class LeaseInfo:
    """One row of ``session_leases``."""

    session_id: str
    epoch: int
    pid: int
    host: str
    acquired_ts: int  #: wall clock, ms
    renewed_ts: int  #: wall clock, ms
    expires_ts: int  #: wall clock, ms

    def alive(self, now_ms: int, *, host: str | None = None) -> bool:
        """Held: not expired and, when ``host`` is this host and the owner ran here, its process
        still exists (a killed owner frees its session at once instead of after the expiry)."""
        if self.epoch <= 0 or self.expires_ts <= now_ms:
            return False
        return not (host is not None and self.host == host and not pid_alive(self.pid))

    def free_because(self, now_ms: int, *, host: str) -> str:
        """Why this lease is not held (``""`` if it is): ``released``, ``owner process gone``
        (it ran on ``host`` and its process no longer exists) or ``lease expired``."""
        if self.epoch <= 0:
            return "never held"
        if self.expires_ts <= now_ms:
            return "released" if self.expires_ts == self.renewed_ts else "lease expired"
        if self.host == host and not pid_alive(self.pid):
            return "owner process gone"
        return ""

    def describe(self) -> str:
        """``pid 4242 on host box1 (epoch 3, lease until 2026-01-02 10:00:30 UTC)``."""
        return (f"pid {self.pid} on host {self.host} (epoch {self.epoch}, "
                f"lease until {_fmt(self.expires_ts)})")


class LeaseHeld(ValidationError):
    """Another live process owns the session: refused, nothing written."""

    def __init__(self, lease: LeaseInfo) -> None:
        self.lease = lease
        sid = lease.session_id
        super().__init__(
            "session_id", sid, f"is running in another process: {lease.describe()}",
            f"stop it first with `lyra session stop {sid}`; if that process is gone, its lease "
            f"expires at {_fmt(lease.expires_ts)} and `lyra session resume {sid}` takes over then")


class LeaseLost(ValidationError):
    """This process's epoch is no longer the session's: another owner took over. Nothing of
    the refused commit was written; the process must stop."""

    def __init__(self, session_id: str, epoch: int, current: LeaseInfo | None) -> None:
        self.session_id = session_id
        self.epoch = epoch
        self.current = current
        now = "no lease" if current is None else f"epoch {current.epoch}, held by {current.describe()}"
        super().__init__(
            "epoch", epoch, f"session {session_id} moved to {now}: this process is no longer its owner",
            f"nothing was written; see `lyra session status {session_id}`")


def _row(r: Any) -> LeaseInfo:
    return LeaseInfo(r.session_id, int(r.epoch), int(r.owner_pid), r.owner_host, int(r.acquired_ts),
                     int(r.renewed_ts), int(r.expires_ts))


def read_lease(bind: Engine | Connection, session_id: str) -> LeaseInfo | None:
    """The lease row of ``session_id`` (None if it never had one)."""
    q = sa.select(sl).where(sl.c.session_id == session_id)
    if isinstance(bind, Engine):
        with bind.connect() as conn:
            r = conn.execute(q).one_or_none()
    else:
        r = bind.execute(q).one_or_none()
    return None if r is None else _row(r)


def read_leases(engine: Engine) -> dict[str, LeaseInfo]:
    """Every lease row, by session id."""
    with engine.connect() as conn:
        return {r.session_id: _row(r) for r in conn.execute(sa.select(sl))}


def effective_status(status: str, lease: LeaseInfo | None, heartbeat_ts: int, now_ms: int,
                     host: str | None = None) -> str:
    """What a person should be told: ``running`` only with a live lease; a running session
    whose owner is gone is ``stale``. Other statuses (stopped, finished, failed) are as recorded.
    ``host``: this host's name, to see at once that an owner here died (default: this host)."""
    if status != "running":
        return status
    if lease is None:
        return "running" if now_ms - heartbeat_ts <= LEGACY_STALE_MS else "stale"
    return "running" if lease.alive(now_ms, host=socket.gethostname() if host is None else host) else "stale"


def stale_reason(lease: LeaseInfo | None, heartbeat_ts: int, now_ms: int) -> str:
    """Why a ``running`` session is shown stale, for error messages."""
    if lease is None:
        return f"its last heartbeat was {(now_ms - heartbeat_ts) // 1000} s ago and it holds no lease"
    if lease.expires_ts <= now_ms:
        return (f"its owner (pid {lease.pid} on host {lease.host}) let its lease expire at "
                f"{_fmt(lease.expires_ts)}")
    return f"its owner (pid {lease.pid} on host {lease.host}) is gone"


def session_statuses(engine: Engine, rows: Sequence[Mapping[str, Any]], now_ms: int | None = None
                     ) -> dict[str, str]:
    """Effective status of registry rows (``session_id``, ``status``, ``heartbeat_ts``)."""
    now = WallClock().now_ms() if now_ms is None else now_ms
    leases = read_leases(engine)
    host = socket.gethostname()
    return {r["session_id"]: effective_status(r["status"], leases.get(r["session_id"]),
                                              int(r["heartbeat_ts"]), now, host) for r in rows}


class SessionLease:
    """This process's claim on one session. ``pid``/``host``/``clock`` are injectable (tests)."""

    def __init__(self, engine: Engine, session_id: str, *, ttl_s: float = DEFAULT_TTL_S,
                 clock: Clock | None = None, pid: int | None = None, host: str | None = None) -> None:
        if not ttl_s > 0:
            raise ValidationError("lease_s", ttl_s, "must be a positive number of seconds")
        self.engine = engine
        self.session_id = session_id
        self.ttl_ms = int(ttl_s * 1000)
        self.clock: Clock = clock or WallClock()
        self.pid = os.getpid() if pid is None else pid
        self.host = socket.gethostname() if host is None else host
        #: the epoch this process holds (None: not acquired, or released)
        self.epoch: int | None = None
        self.lost = False
        #: called once, from whichever thread's commit or renewal noticed, when another process
        #: took the session over (the CLI makes the process exit: ``lyra.session.standby``)
        self.on_lost: Callable[[LeaseLost], None] | None = None

    @property
    def held(self) -> bool:
        return self.epoch is not None and not self.lost

    def check_free(self) -> None:
        """Raise :class:`LeaseHeld` if another live process owns the session (nothing written)."""
        cur = read_lease(self.engine, self.session_id)
        if cur is not None and cur.alive(self.clock.now_ms(), host=self.host) and not self._mine(cur):
            raise LeaseHeld(cur)

    def _mine(self, cur: LeaseInfo) -> bool:
        return (self.epoch is not None and cur.epoch == self.epoch
                and (cur.pid, cur.host) == (self.pid, self.host))

    def acquire(self) -> LeaseInfo:
        """Take the session (a new epoch), or raise :class:`LeaseHeld` naming the live owner."""
        now = self.clock.now_ms()
        with writer(self.engine).begin() as conn:
            # A placeholder row first, so that two first-time owners serialise on it.
            ins: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(sl)
            conn.execute(ins.values(session_id=self.session_id, epoch=0, owner_pid=0, owner_host="",
                                    acquired_ts=0, renewed_ts=0, expires_ts=0)
                         .on_conflict_do_nothing(index_elements=["session_id"]))
            r = conn.execute(sa.select(sl).where(sl.c.session_id == self.session_id).with_for_update()).one()
            cur = _row(r)
            if self._mine(cur) and cur.expires_ts > now:
                return cur
            if cur.alive(now, host=self.host):
                raise LeaseHeld(cur)
            epoch = cur.epoch + 1
            conn.execute(sl.update().where(sl.c.session_id == self.session_id, sl.c.epoch == cur.epoch)
                         .values(epoch=epoch, owner_pid=self.pid, owner_host=self.host, acquired_ts=now,
                                 renewed_ts=now, expires_ts=now + self.ttl_ms))
        self.epoch = epoch
        self.lost = False
        return LeaseInfo(self.session_id, epoch, self.pid, self.host, now, now, now + self.ttl_ms)

    def fence(self, conn: Connection) -> None:
        """Inside a writing transaction: check that this process still holds its epoch (and
        extend the lease). Raises :class:`LeaseLost` — the caller's transaction must roll back."""
        if self.epoch is None:
            raise LeaseLost(self.session_id, 0, read_lease(conn, self.session_id))
        now = self.clock.now_ms()
        n = conn.execute(sl.update().where(sl.c.session_id == self.session_id, sl.c.epoch == self.epoch)
                         .values(renewed_ts=now, expires_ts=now + self.ttl_ms)).rowcount
        if n != 1:
            first, self.lost = not self.lost, True
            exc = LeaseLost(self.session_id, self.epoch, read_lease(conn, self.session_id))
            if first and self.on_lost is not None:
                try:
                    self.on_lost(exc)
                except Exception:  # a notification must not hide the refusal itself
                    logging.getLogger(__name__).exception("on_lost of %s failed", self.session_id)
            raise exc

    def renew(self) -> None:
        """Extend the lease (with the heartbeat); :class:`LeaseLost` if another owner took over."""
        with writer(self.engine).begin() as conn:
            self.fence(conn)

    def release(self) -> None:
        """Give the session back (it ended): the next start or resume takes it at once. A lease
        already lost is left to its new owner."""
        if self.epoch is None or self.lost:
            return
        now = self.clock.now_ms()
        with self.engine.begin() as conn:
            conn.execute(sl.update().where(sl.c.session_id == self.session_id, sl.c.epoch == self.epoch)
                         .values(renewed_ts=now, expires_ts=now))
        self.epoch = None


__all__ = ["DEFAULT_TTL_S", "LeaseHeld", "LeaseInfo", "LeaseLost", "SessionLease", "effective_status",
           "pid_alive", "read_lease", "read_leases", "session_statuses", "stale_reason"]
