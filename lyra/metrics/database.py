"""What a dead process cannot report, read from the database at each scrape.

A killed session stops answering ``/metrics``; Prometheus then sees its target down but not
*which session* stopped trading, nor whether the kill switch is still engaged. This collector,
served by ``lyra serve`` (and ``lyra metrics serve``), reads it from the database:

- every session the registry says is ``running``: up (its lease held by a live owner) or
  stale, heartbeat age, lease state and epoch, orders in unknown state;
- sessions by effective status; trading state per scope, open kill-switch requests, breaker
  trips still in force; the audit chain's head (seq, time, and whether the head row matches
  the last entry), the last full verification; notebook runs by outcome, schedules' next fire
  and lag; the metrics endpoints recorded.

A session killed on this host is stale at once (its lease names a pid that is gone), so it
shows as ``lyra_session_up 0`` at the next scrape; on another host, when its lease expires.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy.engine import Engine

from lyra.metrics.catalogue import BY_NAME
from lyra.session.lease import effective_status, read_leases
from lyra.store.tables import audit_head, events, orders
from lyra.store.tables_metrics import metrics_endpoints
from lyra.store.tables_ops import runs, schedules
from lyra.store.tables_risk import breaker_trips, kill_requests, trading_state
from lyra.store.tables_session import sessions

log = logging.getLogger(__name__)

_STATUSES = ("running", "stale", "stopped", "finished", "failed", "created")
_STATES = ("active", "reducing", "halted")


@dataclass(frozen=True, slots=True)
class VerifyOutcome:
    """The last full ``audit verify`` (run by :class:`lyra.metrics.serve.ServeMetrics`)."""

    ok: bool
    ts: float  #: wall clock, seconds
    problems: int


def _g(name: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, BY_NAME[name].help, labels=labels)


def _c(name: str, labels: list[str] | None = None) -> CounterMetricFamily:
    return CounterMetricFamily(name, BY_NAME[name].help, labels=labels)


class DatabaseCollector(Collector):
    """Collects the database-backed metrics (see the module doc). ``now_ms`` and ``host`` are
    injectable for tests; the defaults are the wall clock and this host."""

    def __init__(self, engine: Engine, *, now_ms: Callable[[], int] | None = None,
                 host: str | None = None) -> None:
        self.engine = engine
        self._now_ms = now_ms or (lambda: time.time_ns() // 1_000_000)
        self.host = host or socket.gethostname()
        #: set by whoever runs the full verification (lyra serve's metrics thread)
        self.verify: VerifyOutcome | None = None

    def describe(self) -> list[Any]:
        return []  # collected dynamically

    def collect(self) -> Iterator[Any]:
        """One consistent read of the database per scrape; ``lyra_db_up 0`` if it fails."""
        t0 = time.perf_counter()
        try:
            families = list(self._families())
            up = 1.0
        except Exception as exc:  # the exporter must answer even when the database does not
            log.warning("metrics: database collection failed: %s: %s", type(exc).__name__, exc)
            families = []
            up = 0.0
        yield from families
        g = _g("lyra_db_up")
        g.add_metric([], up)
        yield g
        d = _g("lyra_db_collect_duration_seconds")
        d.add_metric([], time.perf_counter() - t0)
        yield d

    def _families(self) -> Iterator[Any]:
        now = self._now_ms()
        with self.engine.connect() as conn:
            yield from self._sessions(conn, now)
            yield from self._risk(conn, now)
            yield from self._audit(conn)
            yield from self._runs(conn, now)
            m = _g("lyra_metrics_targets", ["kind"])
            for kind, n in conn.execute(sa.select(metrics_endpoints.c.kind, sa.func.count())
                                        .group_by(metrics_endpoints.c.kind)):
                m.add_metric([kind], n)
            yield m

    # ------------------------------------------------------------------ sessions
    def _sessions(self, conn: Any, now: int) -> Iterator[Any]:
        c = sessions.c
        rows = conn.execute(sa.select(c.session_id, c.status, c.heartbeat_ts)).all()
        leases = read_leases(self.engine)
        counts = dict.fromkeys(_STATUSES, 0)
        up = _g("lyra_session_up", ["session_id"])
        age = _g("lyra_session_heartbeat_age_seconds", ["session_id"])
        held = _g("lyra_session_lease_held", ["session_id"])
        epoch = _g("lyra_session_lease_epoch", ["session_id"])
        running: list[str] = []
        for sid, status, hb in rows:
            lease = leases.get(sid)
            eff = effective_status(status, lease, int(hb), now, self.host)
            counts[eff] = counts.get(eff, 0) + 1
            if status != "running":  # only sessions meant to be running get series of their own
                continue
            running.append(sid)
            up.add_metric([sid], 1.0 if eff == "running" else 0.0)
            age.add_metric([sid], max(0, now - int(hb)) / 1000)
            alive = lease is not None and lease.alive(now, host=self.host)
            held.add_metric([sid], 1.0 if alive else 0.0)
            epoch.add_metric([sid], float(lease.epoch if lease is not None else 0))
        st = _g("lyra_sessions", ["status"])
        for k, v in counts.items():
            st.add_metric([k], v)
        unknown = _g("lyra_session_orders_unknown", ["session_id"])
        if running:
            q = (sa.select(orders.c.session_id, sa.func.count())
                 .where(orders.c.session_id.in_(running), orders.c.status == "unknown")
                 .group_by(orders.c.session_id))
            found = dict(conn.execute(q).all())
            for sid in running:
                unknown.add_metric([sid], float(found.get(sid, 0)))
        yield from (up, age, held, epoch, st, unknown)

    # ------------------------------------------------------------------ risk
    def _risk(self, conn: Any, now: int) -> Iterator[Any]:
        ts = _g("lyra_trading_state", ["scope", "state"])
        rearms: dict[str, int] = {}
        seen_global = False
        for scope, state, n in conn.execute(sa.select(trading_state.c.scope, trading_state.c.state,
                                                      trading_state.c.rearms)):
            rearms[scope] = int(n)
            # Every scope that is not active (few), and the global one always: bounded series.
            if scope == "global" or state != "active":
                seen_global = seen_global or scope == "global"
                for s in _STATES:
                    ts.add_metric([scope, s], 1.0 if state == s else 0.0)
        if not seen_global:
            for s in _STATES:
                ts.add_metric(["global", s], 1.0 if s == "active" else 0.0)
        yield ts
        ks = _g("lyra_kill_switch_engaged", ["scope"])
        open_scopes = {scope for (scope,) in conn.execute(
            sa.select(kill_requests.c.scope).where(kill_requests.c.closed_ts.is_(None)).distinct())}
        for scope in sorted(open_scopes | {"global"}):
            ks.add_metric([scope], 1.0 if scope in open_scopes else 0.0)
        yield ks
        tripped: dict[str, int] = {}
        total = _c("lyra_breaker_trips", ["breaker"])
        g_rearms = rearms.get("global", 0)
        for breaker, account, until, ep in conn.execute(
                sa.select(breaker_trips.c.breaker, breaker_trips.c.account_id, breaker_trips.c.until_ts,
                          breaker_trips.c.epoch)):
            tripped.setdefault(breaker, 0)
            current = g_rearms + rearms.get(f"account:{account}", 0)
            if int(ep) == current and (until is None or int(until) > now):  # BreakerTrip.active
                tripped[breaker] += 1
        counts = dict(conn.execute(sa.select(breaker_trips.c.breaker, sa.func.count())
                                   .group_by(breaker_trips.c.breaker)).all())
        t = _g("lyra_breaker_tripped", ["breaker"])
        for b in sorted(tripped):
            t.add_metric([b], float(tripped[b]))
            total.add_metric([b], float(counts.get(b, 0)))
        yield t
        yield total

    # ------------------------------------------------------------------ audit
    def _audit(self, conn: Any) -> Iterator[Any]:
        head = conn.execute(sa.select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == 1)
                            ).one_or_none()
        last = conn.execute(sa.select(events.c.seq, events.c.ts, events.c.hash)
                            .order_by(events.c.seq.desc()).limit(1)).one_or_none()
        seq = _g("lyra_audit_head_seq")
        ts = _g("lyra_audit_head_timestamp_seconds")
        ok = _g("lyra_audit_head_consistent")
        head_seq = int(head.seq) if head is not None else -1
        seq.add_metric([], float(max(head_seq, 0)))
        if last is not None:
            ts.add_metric([], int(last.ts) / 1000)
            consistent = head is not None and head_seq == int(last.seq) and head.hash == last.hash
        else:
            consistent = head is not None and head_seq == 0
        ok.add_metric([], 1.0 if consistent else 0.0)
        yield from (seq, ts, ok)
        v = self.verify
        vok = _g("lyra_audit_verify_ok")
        vts = _g("lyra_audit_verify_timestamp_seconds")
        if v is not None:
            vok.add_metric([], 1.0 if v.ok else 0.0)
            vts.add_metric([], v.ts)
        yield from (vok, vts)

    # ------------------------------------------------------------------ runs and schedules
    def _runs(self, conn: Any, now: int) -> Iterator[Any]:
        ended = _c("lyra_runs", ["status", "schedule"])
        running = 0
        for status, sched, n in conn.execute(
                sa.select(runs.c.status, runs.c.schedule_name, sa.func.count())
                .group_by(runs.c.status, runs.c.schedule_name)):
            if status == "running":
                running += int(n)
            else:
                ended.add_metric([status, sched or ""], float(n))
        yield ended
        r = _g("lyra_runs_running")
        r.add_metric([], float(running))
        yield r
        dur = _g("lyra_run_duration_seconds", ["schedule"])
        last_id = (sa.select(runs.c.schedule_name, sa.func.max(runs.c.ended_ts).label("ended"))
                   .where(runs.c.ended_ts.is_not(None), runs.c.schedule_name.is_not(None))
                   .group_by(runs.c.schedule_name).subquery())
        q = (sa.select(runs.c.schedule_name, runs.c.started_ts, runs.c.ended_ts)
             .join(last_id, sa.and_(runs.c.schedule_name == last_id.c.schedule_name,
                                    runs.c.ended_ts == last_id.c.ended)))
        done: set[str] = set()
        for sched, started, end in conn.execute(q):
            if sched in done:
                continue
            done.add(sched)
            dur.add_metric([sched], max(0, int(end) - int(started)) / 1000)
        yield dur
        nxt = _g("lyra_schedule_next_fire_timestamp_seconds", ["schedule"])
        lag = _g("lyra_schedule_lag_seconds", ["schedule"])
        for name, next_ts in conn.execute(sa.select(schedules.c.name, schedules.c.next_ts)
                                          .where(sa.not_(schedules.c.paused))):
            nxt.add_metric([name], int(next_ts) / 1000)
            lag.add_metric([name], max(0, now - int(next_ts)) / 1000)
        yield nxt
        yield lag


__all__ = ["DatabaseCollector", "VerifyOutcome"]
