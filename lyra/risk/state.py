"""The shared trading state, persisted in the database and cached per process.

Several session processes share one database. A kill switch pulled anywhere must reach them
all quickly, yet a pre-trade check must not cost a database round-trip. So the store caches
each scope's row and re-reads only when

* the cached copy is older than ``poll_interval_ms`` of the store's **wall** clock (default
  250 ms; a replayed session's data clock plays no part) —
  :meth:`TradingStateStore.refresh` is called by the engine before every decision, so no
  order is approved on a copy older than that; and then
* a cheap version query (``SELECT scope, version``) says a row changed: only then are the
  changed rows read in full.

Every change (``set_state``, trips, kill requests, re-arms) is written together with its
event-log entry in one transaction, so the log and the table never disagree. A halted state
is a row in the database: it survives restarts until someone with the right role re-arms it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra.audit.events import EVENT_TYPES, KillSwitchPulled, KillSwitchRearmed, TradingStateChanged
from lyra.audit.log import EventLog, LogTransaction
from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.errors import ValidationError
from lyra.risk._types import (
    GLOBAL_SCOPE,
    BreakerTrip,
    ScopeState,
    TradingState,
    account_scope,
)
from lyra.store.tables import audit_head
from lyra.store.tables_risk import breaker_trips, trading_state

_NEVER = -(1 << 62)  # a cache never read: the next refresh reads


class TradingStateStore:
    """Trading states per scope (``global``, ``account:<id>``), cached with a version check.

    ``log`` is the event log every change is recorded in (its engine is the database).
    ``clock`` times the poll interval and stamps the changes (``now_ms``); it is the wall
    clock unless a test hands in a :class:`~lyra.core.clock.ManualClock`.
    """

    def __init__(
        self,
        log: EventLog,
        *,
        poll_interval_ms: int = 250,
        clock: Clock = WALL_CLOCK,
    ) -> None:
        if poll_interval_ms < 0:
            raise ValidationError("poll_interval_ms", poll_interval_ms, "must not be negative")
        self.log = log
        self.poll_interval_ms = poll_interval_ms
        self.clock = clock
        self._cache: dict[str, ScopeState] = {GLOBAL_SCOPE: ScopeState.default(GLOBAL_SCOPE)}
        self._read_at = _NEVER
        self._scopes: dict[str, str] = {}  # account id -> its scope string (hot path)
        self.reads = 0  #: full-row reads done (for tests and metrics)
        self.version_checks = 0  #: version queries done

    @property
    def engine(self) -> Engine:
        return self.log.engine

    # --------------------------------------------------------------------------- reading
    def watch(self, account_id: str) -> None:
        """Start caching an account's scope (the next refresh reads it)."""
        scope = account_scope(account_id)
        if scope not in self._cache:
            self._cache[scope] = ScopeState.default(scope)
            self._read_at = _NEVER

    def refresh(self, *, force: bool = False) -> bool:
        """Re-read changed scopes if the cache is older than the poll interval. True if read.

        Raises whatever the database raises: the engine turns that into a rejection.
        """
        now = round(self.clock.monotonic_s() * 1000)  # whole ms: the interval is exact
        if not force and now - self._read_at < self.poll_interval_ms:
            return False
        scopes = list(self._cache)
        with self.engine.connect() as conn:
            self.version_checks += 1
            rows = conn.execute(
                sa.select(trading_state.c.scope, trading_state.c.version).where(
                    trading_state.c.scope.in_(scopes)
                )
            ).all()
            changed = [s for s, v in rows if self._cache[s].version != v]
            if changed:
                self._load(conn, changed)
        self._read_at = now
        return bool(changed)

    def _load(self, conn: Connection, scopes: Iterable[str]) -> None:
        self.reads += 1
        for r in conn.execute(sa.select(trading_state).where(trading_state.c.scope.in_(list(scopes)))):
            self._cache[r.scope] = _row_state(r)

    def get(self, scope: str) -> ScopeState:
        """The cached state of ``scope`` (call :meth:`refresh` first for a fresh one)."""
        st = self._cache.get(scope)
        if st is None:
            self._cache[scope] = st = ScopeState.default(scope)
            self._read_at = _NEVER
        return st

    def _scope(self, account_id: str) -> str:
        s = self._scopes.get(account_id)
        if s is None:
            s = self._scopes[account_id] = account_scope(account_id)
        return s

    def effective(self, account_id: str) -> ScopeState:
        """The stricter of the global and the account's state (ties: the global one)."""
        g = self._cache[GLOBAL_SCOPE]
        a = self._cache.get(self._scope(account_id))
        if a is None or a.state.severity <= g.state.severity:
            return g
        return a

    def epoch(self, account_id: str) -> int:
        """Re-arms of global + account: a breaker trip from an older epoch is over."""
        a = self._cache.get(self._scope(account_id))
        return self._cache[GLOBAL_SCOPE].rearms + (a.rearms if a is not None else 0)

    def read_all(self) -> list[ScopeState]:
        """Every persisted scope, straight from the database (for status displays)."""
        with self.engine.connect() as conn:
            q = sa.select(trading_state).order_by(trading_state.c.scope)
            return [_row_state(r) for r in conn.execute(q)]

    # --------------------------------------------------------------------------- writing
    def set_state(
        self,
        scope: str,
        state: TradingState | str,
        *,
        actor: str,
        reason: str = "",
        session_id: str = "",
        kind: str = "risk.state_change",
        extra: dict[str, Any] | None = None,
        tx: LogTransaction | None = None,
        rearm: bool = False,
    ) -> ScopeState:
        """Persist a new state for ``scope`` and record ``kind`` in the event log, atomically.

        Pass ``tx`` to join a transaction of the caller (the kill switch does).
        """
        st = TradingState(state)
        _check_scope(scope)
        if not actor:
            raise ValidationError("actor", actor, "say who changes the trading state")
        if tx is None:
            with self.log.transaction() as own:
                new = self.set_state(scope, st, actor=actor, reason=reason, session_id=session_id,
                                     kind=kind, extra=extra, tx=own, rearm=rearm)
            self._cache[scope] = new  # committed: the cache may show it at once
            return new
        # Lock the chain head first (as the log's own append does): on PostgreSQL this
        # serialises writers before the read-modify-write of the state row below, even when
        # the row does not exist yet. SQLite's BEGIN IMMEDIATE already holds the write lock.
        tx.conn.execute(sa.select(audit_head.c.seq).where(audit_head.c.id == 1).with_for_update())
        ts = self.clock.now_ms()
        prev = _read_scope(tx.conn, scope, lock=True)
        new = ScopeState(scope, st, reason, actor, ts, prev.version + 1, prev.rearms + int(rearm))
        # The entry's type fixes its fields: ``extra`` must be exactly what ``kind`` adds.
        entry = _state_change_type(kind)(
            scope=scope, from_state=prev.state.value, to_state=st.value, reason=reason, actor=actor,
            version=new.version, **(extra or {}),
        )  # fmt: skip
        tx.append(kind, entry.to_payload(), actor=actor, session_id=session_id, ts=ts)
        values = {"state": st.value, "reason": reason, "actor": actor, "ts": ts,
                  "version": new.version, "rearms": new.rearms}
        if prev.version == 0:
            tx.conn.execute(trading_state.insert().values(scope=scope, **values))
        else:
            tx.conn.execute(trading_state.update().where(trading_state.c.scope == scope).values(**values))
        # Not committed yet (the caller's transaction): do not trust it in the cache, re-read
        # on the next refresh instead.
        self._read_at = _NEVER
        return new

    def record_trip(self, trip: BreakerTrip, *, session_id: str = "") -> None:
        """Record a breaker trip (table row + ``risk.breaker_trip`` event) in one transaction."""
        with self.log.transaction() as tx:
            tx.append("risk.breaker_trip", trip.to_payload(), actor="risk-engine",
                      session_id=session_id, ts=trip.ts)
            tx.conn.execute(breaker_trips.insert().values(
                account_id=trip.account_id, breaker=trip.breaker, instrument_id=trip.instrument_id,
                action=trip.action.value, reason=trip.reason, ts=trip.ts, until_ts=trip.until_ts,
                epoch=trip.epoch, session_id=session_id,
            ))  # fmt: skip

    def load_trips(self, account_id: str, now: int) -> list[BreakerTrip]:
        """Trips of ``account_id`` still in force at ``now`` (to restore after a restart)."""
        self.watch(account_id)
        self.refresh(force=True)
        epoch = self.epoch(account_id)
        q = sa.select(breaker_trips).where(
            breaker_trips.c.account_id == account_id,
            breaker_trips.c.epoch == epoch,
            sa.or_(breaker_trips.c.until_ts.is_(None), breaker_trips.c.until_ts > now),
        ).order_by(breaker_trips.c.id)
        with self.engine.connect() as conn:
            return [_row_trip(r) for r in conn.execute(q)]

    def recent_trips(self, limit: int = 20, account_id: str | None = None) -> list[BreakerTrip]:
        """The latest trips, newest first."""
        q = sa.select(breaker_trips).order_by(breaker_trips.c.id.desc()).limit(limit)
        if account_id is not None:
            q = q.where(breaker_trips.c.account_id == account_id)
        with self.engine.connect() as conn:
            return [_row_trip(r) for r in conn.execute(q)]


def _state_change_type(kind: str) -> type[TradingStateChanged | KillSwitchPulled | KillSwitchRearmed]:
    cls = EVENT_TYPES.get(kind)
    if cls not in (TradingStateChanged, KillSwitchPulled, KillSwitchRearmed):
        raise ValidationError("kind", kind, "not a trading-state entry",
                              "use risk.state_change, risk.kill_switch or risk.rearm")
    return cls


def _check_scope(scope: str) -> None:
    if scope == GLOBAL_SCOPE:
        return
    prefix, _, rest = scope.partition(":")
    if prefix != "account" or not rest or len(scope) > 128 or any(ord(c) < 32 for c in scope):
        raise ValidationError("scope", scope, "use 'global' or 'account:<id>'")


def _read_scope(conn: Connection, scope: str, *, lock: bool) -> ScopeState:
    q = sa.select(trading_state).where(trading_state.c.scope == scope)
    if lock:
        q = q.with_for_update()
    row = conn.execute(q).one_or_none()
    return ScopeState.default(scope) if row is None else _row_state(row)


def _row_state(r: Any) -> ScopeState:
    return ScopeState(r.scope, TradingState(r.state), r.reason, r.actor, int(r.ts), int(r.version),
                      int(r.rearms))


def _row_trip(r: Any) -> BreakerTrip:
    return BreakerTrip(r.breaker, r.account_id, r.instrument_id, TradingState(r.action), r.reason,
                       int(r.ts), None if r.until_ts is None else int(r.until_ts), int(r.epoch))
