"""The control plane of a running session: who owns it, and how a person steers it.

A :class:`ControlPlane` belongs to one :class:`~lyra.session.runtime.Session`. It

- takes the session's **lease** when the run starts (a second owner is refused, naming the
  first) and fences every commit of the session's log with its epoch
  (:mod:`lyra.session.lease`);
- **polls** — heartbeat and lease renewal, the kill switch, operator commands, stop requests
  and SIGTERM/SIGINT — on wall-clock time (every ``POLL_INTERVAL_S``) in sessions a person
  watches (a paced replay, a live feed), and every 1,024 events (at most once per interval)
  in unpaced backtests;
- **paces** a paced replay itself: the wait for the next bar is cut into short slices with a
  poll between them, so a stop, a kill or a ticket is taken within a fraction of a second
  whatever the bar length, and a resumed run re-verifies its log without waiting at all.

Where a kill or a command was acted on is recorded in the session's own stream with the
event count (``session.kill``, ``session.command``), so a resumed run repeats it at the same
event and its log stays identical; *when* the poll ran (wall time) never enters the log.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.core.enums import OrderEventType
from lyra.core.errors import ValidationError
from lyra.core.orders import TRANSITIONS
from lyra.session import algo_runtime
from lyra.session.lease import LeaseLost, SessionLease
from lyra.store.tables import events

if TYPE_CHECKING:
    from lyra.session.runtime import Session

log = logging.getLogger(__name__)
E = OrderEventType

#: A paced session waiting for its next bar wakes up at least this often to poll (seconds).
SLICE_S = 0.2


class StopRun(Exception):
    """Raised out of the feed's pacing wait when the session must stop (internal)."""


def stream_head(engine: Engine, session_id: str) -> int:
    """The seq of the session's last own entry (what a resume re-verifies: not the operational
    entries other processes add, like command requests or risk state changes); 0 if none."""
    k = events.c.kind
    q = (sa.select(sa.func.max(events.c.seq))
         .where(events.c.session_id == session_id, sa.not_(k.like("command.%")),
                sa.or_(sa.not_(k.like("risk.%")), k == "risk.decision")))
    with engine.connect() as conn:
        return int(conn.execute(q).scalar() or 0)


class FeedSleep:
    """A paced feed's sleep, handed to the feed when it is built (``ReplayFeed(sleep=...)``):
    ``time.sleep`` until a run's control plane takes it over, so that stop, kill and operator
    commands are polled while the feed waits for its next event (no private attribute of the
    feed is touched)."""

    __slots__ = ("target",)

    def __init__(self) -> None:
        self.target: Callable[[float], None] = time.sleep

    def __call__(self, seconds: float) -> None:
        self.target(seconds)


class ControlPlane:
    """Lease, polls, pacing and signals of one session (see the module doc)."""

    def __init__(self, session: Session) -> None:
        self.s = session
        self.lease = SessionLease(session.engine, session.sid, ttl_s=session.config.lease_s)
        # The log as this process read it when it opened the session: if another process
        # wrote to it before we own the lease, what we read is stale (checked in acquire).
        self.mark = stream_head(session.engine, session.sid)
        self.kill = _kill_switch_for(session.risk)
        self.interval_s = 0.25
        self.next_poll = 0.0
        #: events processed so far (kept current by the generic loop, for polls between events)
        self.n = 0
        self.on_progress: Callable[[int], None] | None = None
        #: the signal that asked this run to stop (SIGTERM/SIGINT), if any
        self.signalled: int | None = None
        self._handlers: dict[int, Any] = {}
        self._keeper: _LeaseKeeper | None = None

    # ------------------------------------------------------------------ start and end
    @property
    def paced(self) -> bool:
        """A replay paced to wall time: a person is watching it, polls go by the clock."""
        from lyra.feeds.replay import ReplayFeed

        feed = self.s.feed
        return isinstance(feed, ReplayFeed) and feed.speed is not None

    def acquire(self) -> None:
        """Own the session: take its lease (``LeaseHeld`` names a live owner) and fence the log.
        Idempotent; :meth:`start` calls it."""
        if self.lease.held:
            return
        self.lease.acquire()
        s = self.s
        seen = max(self.mark, s.recorder.committed_seq)
        if stream_head(s.engine, s.sid) > seen:
            self.lease.release()
            raise ValidationError(
                "session_id", s.sid, "its log was written by another process while this one opened it",
                f"open it again: `lyra session resume {s.sid}`")
        s.log.fence = self.lease.fence

    def start(self, interval_s: float, on_progress: Callable[[int], None] | None) -> None:
        """Before the run: own the session, take the feed's pacing, catch SIGTERM/SIGINT."""
        self.acquire()
        self._keeper = _LeaseKeeper(self.lease)
        self.interval_s = interval_s
        self.on_progress = on_progress
        self.next_poll = time.monotonic() + interval_s
        if self.paced and self.s.feed_sleep is not None:
            self.s.feed_sleep.target = self.sleep
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._handlers[sig] = signal.signal(sig, self._on_signal)

    def finish(self) -> None:
        """After the run, however it ended: give back the signals, the pacing and the lease."""
        if self._keeper is not None:
            self._keeper.stop()
            self._keeper = None
        for sig, old in self._handlers.items():
            signal.signal(sig, old)
        self._handlers.clear()
        if self.s.feed_sleep is not None:
            self.s.feed_sleep.target = time.sleep
        self.s.log.fence = None
        try:
            self.lease.release()
        except Exception:  # ending must not fail on this: the lease then simply expires
            log.exception("could not release the lease of %s", self.s.sid)

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.signalled is not None:
            raise KeyboardInterrupt  # a second signal: stop now, without the clean ending
        self.signalled = signum
        log.warning("session %s: %s received, stopping at the next poll", self.s.sid,
                    signal.Signals(signum).name)

    # ------------------------------------------------------------------ waiting and polling
    def sleep(self, seconds: float) -> None:
        """The paced feed's wait for its next event: short slices, a poll whenever one is due.
        Raises :class:`StopRun` out of the feed when the session must stop."""
        if self.s.recorder.resuming:
            return  # re-verifying what the log already holds: no reason to wait for it
        end = time.monotonic() + seconds
        while True:
            self.tick()
            now = time.monotonic()
            if now >= end:
                return
            # Wake for the next poll on time (not a slice later), at least every SLICE_S.
            time.sleep(max(0.001, min(end - now, SLICE_S, self.next_poll - now)))

    def tick(self) -> None:
        """Poll if one is due (between events: after event ``self.n``)."""
        if self.signalled is not None:
            raise StopRun
        now = time.monotonic()
        if now < self.next_poll:
            return
        self.next_poll = now + self.interval_s
        if self.poll(self.n, self.s.clock.now_ms()):
            raise StopRun
        if self.on_progress is not None:
            self.on_progress(self.n)

    def poll(self, n: int, t: int) -> bool:
        """Heartbeat, lease, kill switch, operator commands; True if the session must stop."""
        s = self.s
        resuming = s.recorder.resuming
        if not resuming:
            s.recorder.commit()
        self.lease.renew()  # LeaseLost if another process took the session over
        s.registry.update(s.sid, heartbeat=True, data_ts=t, events_processed=n)
        if resuming:  # nothing new is decided while the log is re-verified
            return self.signalled is not None or s.registry.stop_requested(s.sid)
        if self.kill is not None:
            requests = self.kill.pending(s.sid)
            if requests:
                # The halt was written with the request: make risk see it now, not at its next
                # state poll, so no strategy order is approved after the kill is acted on.
                self.kill.store.refresh(force=True)
                for req in requests:
                    done = self.act_on_kill({"request_id": req.id, "flatten": req.flatten,
                                             "scope": req.scope, "actor": req.actor, "at_event": n}, n, t)
                    s.recorder.commit()
                    self.kill.acknowledge(req, s.sid, cancelled=done[0], flatten_orders=done[1])
                # A killed session stops once its cancels and flattening orders are done
                # (they still need market data to complete); `lyra session resume` after a re-arm.
                s._stop_when_idle = s._kill_pending = True
        s.commands.take(n, t)  # operator orders: after any kill, so a halt denies them
        if s._stop_when_idle and not s.working and s._flatten_after is None:
            return True  # killed, and nothing left to complete: stop now, not at the next bar
        return self.signalled is not None or s.registry.stop_requested(s.sid)

    # ------------------------------------------------------------------ the kill switch
    def act_on_kill(self, info: dict[str, Any], n: int, t: int) -> tuple[int, int]:
        """Cancel every working order and, if asked, flatten every position."""
        from lyra.risk._types import KillRequest
        from lyra.risk.engine import flatten_intents

        s = self.s
        with s.recorder.transaction() as tx:
            tx.append("session.kill", info, actor=s.actor, session_id=s.sid, ts=t)
        if s.algos is not None:
            s.algos.cancel_all("kill switch")  # no child after this; the working ones are cancelled below
        cancelled = 0
        for cid in sorted(s.working):
            order = s.ledger.state.orders[cid]
            if (order.status, E.REQUEST_CANCEL) not in TRANSITIONS:
                continue
            s.gateway.request_cancel(cid, t, "kill switch")
            cancelled += 1
        s._drain(t)
        if s.algos is not None:
            algo_runtime.pump(s, t)  # parents with nothing working finish now
        flat = 0
        if info.get("flatten"):
            req = KillRequest(int(info["request_id"]), str(info.get("scope", "")), True,
                              str(info.get("actor", "")), "", t)
            if s.working:
                # Orders being cancelled can still fill (the venue has not seen the cancel yet):
                # flatten what is left once every cancel has completed.
                s._flatten_after = req
                s._kill_pending = True
            else:
                intents = flatten_intents(s.holdings, s.instruments, req)
                if intents:
                    s._submit(intents, t)
                    flat = len(intents)
        s.killed = True
        return cancelled, flat

    def idle_after_kill(self, t: int) -> bool:
        """Killed and nothing working: flatten now if that was waiting for the cancels (a
        resumed run does it at the same event as the run it repeats); True when nothing is
        left working (a killed run may stop)."""
        s = self.s
        req, s._flatten_after = s._flatten_after, None
        s._kill_pending = s._stop_when_idle
        if req is None:
            return True
        from lyra.risk.engine import flatten_intents

        intents = flatten_intents(s.holdings, s.instruments, req)
        if intents:
            s._submit(intents, t)
        return not s.working


class _LeaseKeeper:
    """Renews the lease from a helper thread while the run lasts, so that a session whose feed
    is quiet (a live stream between trades) keeps its session; the polls renew it as well and
    are what notice a takeover. A paused (stopped) or killed process renews nothing: its lease
    runs out, and another process may take over."""

    def __init__(self, lease: SessionLease) -> None:
        self._lease = lease
        self._every = min(10.0, max(0.2, lease.ttl_ms / 3000))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{lease.session_id}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._every):
            if not self._lease.held:
                return
            try:
                self._lease.renew()
            except LeaseLost:
                return  # the run notices at its next commit or poll
            except Exception:  # the database may be back at the next try
                log.warning("could not renew the lease of %s", self._lease.session_id, exc_info=True)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30)


def _kill_switch_for(risk: Any) -> Any:
    """The kill switch on the risk engine's shared trading state, if it has one."""
    state = getattr(risk, "state", None)
    if state is None or not hasattr(state, "log"):
        return None
    from lyra.risk.killswitch import KillSwitch

    return KillSwitch(state)


__all__ = ["SLICE_S", "ControlPlane", "StopRun", "stream_head"]
