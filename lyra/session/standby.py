"""A hot standby for a running session: ``lyra session standby ID``.

A standby is a second process (on the same host or another one sharing the database) that
waits on a running session's lease (:mod:`lyra.session.lease`). While the owner renews its
lease the standby only watches. When the lease runs out (the owner's host died, or the owner
is paused) — or, on the same host, as soon as the owner's process is gone — the standby

1. takes the lease with a new epoch (``SessionLease.acquire``: atomic, so of two standbys
   only one wins; the other goes on waiting, now on the new owner);
2. records ``session.failover`` with the old owner (pid, host, epoch) and the new one, fenced
   by its new epoch;
3. resumes the session from its log exactly as ``lyra session resume`` does (a paper session
   re-runs and re-verifies its history; a live one rebuilds from the log and reconciles with
   the venue), holding the lease it took — nobody can slip in between.

The old owner, if it wakes up (``SIGCONT`` after ``SIGSTOP``), is fenced: its next commit or
renewal fails (``LeaseLost``) and writes nothing. :func:`exit_when_lost` makes sure it then
also *exits* — with a line saying who took over — even if it is blocked somewhere (a quiet
live feed) and never reaches its next poll::

    cfg = check_standby(engine, "paper1")          # ConfigError: no such session, finished...
    got = wait_for_takeover(engine, "paper1", poll_s=0.25)
    if isinstance(got, Takeover):
        ...  # run the session with got.lease (lyra.session.cli.run_session(cfg, lease=got.lease))

A standby never takes over a session that ended (finished, stopped on request, failed): the
owner writes its final status before it gives its lease back, so a released lease is always
seen together with that status, and the standby stands down with a line saying so.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from lyra.audit.log import EventLog
from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.errors import ConfigError
from lyra.session.config import SessionConfig
from lyra.session.lease import LeaseHeld, LeaseInfo, LeaseLost, SessionLease, read_lease
from lyra.session.registry import SessionRegistry

log = logging.getLogger(__name__)

#: Default seconds between two looks at the owner's lease.
DEFAULT_POLL_S = 0.25
#: A process that lost its session exits by itself after this long if it has not stopped.
LOST_GRACE_S = 10.0
#: Exit status of a process that lost its session and had to be made to exit.
EXIT_LOST = 3


@dataclass(frozen=True, slots=True)
class Takeover:
    """What a standby did when it took a session over."""

    session_id: str
    lease: SessionLease  #: held, new epoch: hand it to the session that resumes
    old: LeaseInfo | None  #: the previous owner's lease (None: it never had one)
    reason: str  #: "owner process gone", "lease expired", ...
    waited_s: float
    failover_seq: int  #: the ``session.failover`` entry
    failover_ts: int  #: its wall time (ms): the standby's first write


@dataclass(frozen=True, slots=True)
class StoodDown:
    """The session ended while the standby waited: nothing to take over."""

    session_id: str
    status: str  #: finished / stopped / failed
    error: str


def check_standby(engine: Engine, session_id: str) -> SessionConfig:
    """The config of ``session_id`` if a standby makes sense for it, else :class:`ConfigError`
    naming the session and why (nothing is written): no such session, or one that already
    ended (finished, stopped, failed: ``lyra session resume`` runs it again)."""
    row = SessionRegistry(engine).get(session_id)
    if row is None:
        raise ConfigError("session_id", session_id, "no such session: nothing to stand by for",
                          "see `lyra session status`; start it first with `lyra session start`")
    status = str(row["status"])
    if status != "running":
        raise ConfigError("session_id", session_id, f"is {status}: a standby waits on a running session's "
                          "owner, and this one has none", f"`lyra session resume {session_id}` runs it again")
    return SessionConfig(**json.loads(row["config"]))


def wait_for_takeover(engine: Engine, session_id: str, *, poll_s: float = DEFAULT_POLL_S,
                      lease_s: float | None = None, timeout_s: float | None = None,
                      jsonl_path: Path | None = None, clock: Clock = WALL_CLOCK,
                      sleep: Callable[[float], None] = time.sleep,
                      say: Callable[[str], None] = log.info) -> Takeover | StoodDown | None:
    """Wait until ``session_id``'s owner is gone, then take it over (see the module doc).
    Returns the :class:`Takeover`, a :class:`StoodDown` if the session ended meanwhile, or
    None after ``timeout_s`` (None: wait for ever). ``lease_s``: the new owner's lease length
    (default: the session's ``lease_s``). Raises ConfigError if the session disappears."""
    if not poll_s > 0:
        raise ConfigError("poll", poll_s, "must be a positive number of seconds")
    reg = SessionRegistry(engine)
    host, pid = socket.gethostname(), os.getpid()
    t0 = time.monotonic()
    last_owner: tuple[int, str, int] | None = None
    while True:
        # The lease first, then the status: an owner that ends writes its status before it
        # releases its lease, so a free lease read first is never paired with a stale status.
        cur = read_lease(engine, session_id)
        now = clock.now_ms()
        held = cur is not None and cur.alive(now, host=host)
        row = reg.get(session_id)
        if row is None:
            raise ConfigError("session_id", session_id, "was deleted while the standby waited")
        if row["status"] != "running" and not held:
            return StoodDown(session_id, str(row["status"]), str(row["error"] or ""))
        if held:
            assert cur is not None
            owner = (cur.pid, cur.host, cur.epoch)
            if owner != last_owner:
                say(f"standby for {session_id}: owner is {cur.describe()}; waiting")
                last_owner = owner
        else:
            got = _try_take(engine, session_id, cur, now, lease_s or _config_lease(row), jsonl_path,
                            clock, host, pid, time.monotonic() - t0, reg)
            if isinstance(got, (Takeover, StoodDown)):
                return got
        if timeout_s is not None and time.monotonic() - t0 >= timeout_s:
            return None
        sleep(poll_s)


def _config_lease(row: dict[str, Any]) -> float:
    return float(json.loads(row["config"]).get("lease_s", 30.0))


def _try_take(engine: Engine, sid: str, cur: LeaseInfo | None, now: int, lease_s: float,
              jsonl_path: Path | None, clock: Clock, host: str, pid: int, waited_s: float,
              reg: SessionRegistry) -> Takeover | StoodDown | None:
    """Take the free lease and record the failover; None if another process was faster."""
    reason = "no lease" if cur is None else cur.free_because(now, host=host) or "lease free"
    lease = SessionLease(engine, sid, ttl_s=lease_s, clock=clock)
    try:
        mine = lease.acquire()
    except LeaseHeld:
        return None  # another standby (or a resume) won: wait on it now
    row = reg.get(sid)
    if row is None or row["status"] != "running":  # it ended just before we took it
        lease.release()
        return StoodDown(sid, "deleted" if row is None else str(row["status"]),
                         "" if row is None else str(row["error"] or ""))
    payload = {"reason": reason, "old_pid": cur.pid if cur else 0, "old_host": cur.host if cur else "",
               "old_epoch": cur.epoch if cur else 0, "old_expires_ts": cur.expires_ts if cur else 0,
               "new_pid": pid, "new_host": host, "new_epoch": mine.epoch, "waited_ms": int(waited_s * 1000)}
    elog = EventLog(engine, jsonl_path, clock=clock)
    elog.fence = lease.fence  # written as the new owner, or not at all
    ts = clock.now_ms()
    try:
        rec = elog.append("session.failover", payload, actor=f"standby:{host}:{pid}", session_id=sid, ts=ts)
    except LeaseLost:
        return None
    return Takeover(sid, lease, cur, reason, waited_s, rec.seq, ts)


def adopt_lease(session: Any, lease: SessionLease) -> None:
    """Hand ``session`` (opened after the takeover) the lease the standby holds: its run then
    owns the session without acquiring it again (no window for another process), and every
    commit of its log is fenced by that epoch."""
    if not lease.held:
        raise LeaseLost(lease.session_id, lease.epoch or 0, read_lease(lease.engine, lease.session_id))
    session.control.lease = lease
    session.log.fence = lease.fence


class LeaseRenewer:
    """Keeps a freshly taken lease alive (a helper thread) until the resumed session's own
    control plane takes over its renewal: opening a session re-reads its log, which can take
    longer than a short lease."""

    def __init__(self, lease: SessionLease) -> None:
        self._lease = lease
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"standby-{lease.session_id}")
        self._thread.start()

    def _run(self) -> None:
        every = min(10.0, max(0.2, self._lease.ttl_ms / 3000))
        while not self._stop.wait(every):
            if not self._lease.held:
                return
            try:
                self._lease.renew()
            except LeaseLost:
                return
            except Exception:  # the database may be back at the next try
                log.warning("could not renew the lease of %s", self._lease.session_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def exit_when_lost(session_id: str, *, grace_s: float = LOST_GRACE_S,
                   say: Callable[[str], None] | None = None) -> Callable[[LeaseLost], None]:
    """A :attr:`SessionLease.on_lost` for a session's process: say at once that another
    process took the session over (and that this one writes nothing more), then — if the
    process is still alive ``grace_s`` later because its main thread is blocked (a quiet live
    feed never reaches its next poll) — exit with status :data:`EXIT_LOST`. Normally the run
    stops sooner on the fence's ``LeaseLost`` and the command exits with status 2."""

    def emit(text: str) -> None:
        if say is not None:
            say(text)
        else:
            print(text, file=sys.stderr, flush=True)

    def on_lost(exc: LeaseLost) -> None:
        cur = exc.current
        who = "nobody" if cur is None else f"pid {cur.pid} on host {cur.host} (epoch {cur.epoch})"
        emit(f"session {session_id}: taken over by {who}; this process (epoch {exc.epoch}) is fenced, "
             "writes nothing more and stops")

        def last_resort() -> None:
            emit(f"session {session_id}: still running {grace_s:g} s after losing it to {who}; exiting now "
                 f"(status {EXIT_LOST})")
            os._exit(EXIT_LOST)

        timer = threading.Timer(grace_s, last_resort)
        timer.daemon = True
        timer.start()

    return on_lost


def warm_up() -> None:
    """Import what resuming a session needs while the owner is still alive, so the takeover
    does not wait for imports."""
    import lyra.execution.paper
    import lyra.feeds.replay
    import lyra.risk.engine
    import lyra.session.factory
    import lyra.session.runtime  # noqa: F401


__all__ = ["DEFAULT_POLL_S", "EXIT_LOST", "LOST_GRACE_S", "LeaseRenewer", "StoodDown", "Takeover",
           "adopt_lease", "check_standby", "exit_when_lost", "wait_for_takeover", "warm_up"]
