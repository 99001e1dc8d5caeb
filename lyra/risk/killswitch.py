"""The kill switch: halt one account/session or everything, cancel, optionally flatten.

Pulling it (``KillSwitch.pull`` or ``lyra kill``) does, in one database transaction:

1. sets the scope's trading state to HALTED (every engine sharing the database sees it within
   its poll interval and approves nothing more — except, if configured, the flattening below);
2. writes a ``kill_requests`` row that running sessions act on: cancel every open order and,
   if ``flatten``, send reduce-only market orders closing every position
   (:func:`lyra.risk.engine.flatten_intents`);
3. appends ``risk.kill_switch`` to the event log, with who pulled it and why.

A session polls :meth:`KillSwitch.pending` (one indexed query; call it when the engine says
HALTED, or on a timer), acts, then :meth:`KillSwitch.acknowledge` s the request.

Re-arming (``lyra risk rearm``) needs a role allowed to (``Action.REARM_KILL_SWITCH``:
risk_manager or admin). It sets ACTIVE, closes the scope's open requests, ends the scope's
breaker trips (a new epoch) and appends ``risk.rearm``. A HALTED state survives restarts
until then.
"""

from __future__ import annotations

import sqlalchemy as sa

from lyra.audit.events import KillAcknowledged
from lyra.auth.permissions import Action, Role, require
from lyra.core.errors import ValidationError
from lyra.risk._types import GLOBAL_SCOPE, KillRequest, ScopeState, TradingState, account_scope
from lyra.risk.state import TradingStateStore
from lyra.store.tables_risk import kill_acks, kill_requests


class KillSwitch:
    """Pull, poll, acknowledge and re-arm the kill switch, on a :class:`TradingStateStore`."""

    def __init__(self, store: TradingStateStore) -> None:
        self.store = store

    @staticmethod
    def scope_for(session_id: str | None) -> str:
        """``None`` → every session (``global``); else that session's account scope."""
        return GLOBAL_SCOPE if session_id is None else account_scope(session_id)

    def pull(self, *, session_id: str | None = None, flatten: bool = False, actor: str,
             reason: str = "") -> KillRequest:
        """Halt ``session_id`` (None: everything), ask sessions to cancel (and flatten)."""
        if not actor or not actor.strip():
            raise ValidationError("actor", actor, "say who pulls the kill switch", "--actor NAME")
        scope = self.scope_for(session_id)
        ts = self.store.clock.now_ms()
        with self.store.log.transaction() as tx:
            res = tx.conn.execute(kill_requests.insert().values(
                scope=scope, flatten=flatten, actor=actor, reason=reason, ts=ts, closed_ts=None,
            ))  # fmt: skip
            pk = res.inserted_primary_key
            assert pk is not None
            rid = int(pk[0])
            self.store.set_state(
                scope, TradingState.HALTED, actor=actor, reason=f"kill switch: {reason}".rstrip(": "),
                session_id=session_id or "", kind="risk.kill_switch",
                extra={"request_id": rid, "flatten": flatten, "cancel_open_orders": True}, tx=tx,
            )
        return KillRequest(rid, scope, flatten, actor, reason, ts)

    def pending(self, session_id: str, account_id: str | None = None) -> list[KillRequest]:
        """Open requests for this session's account (or global) it has not acknowledged."""
        scopes = [GLOBAL_SCOPE, account_scope(account_id or session_id)]
        acked = sa.select(kill_acks.c.request_id).where(kill_acks.c.session_id == session_id)
        q = (
            sa.select(kill_requests)
            .where(kill_requests.c.closed_ts.is_(None), kill_requests.c.scope.in_(scopes),
                   kill_requests.c.id.not_in(acked))
            .order_by(kill_requests.c.id)
        )
        with self.store.engine.connect() as conn:
            return [KillRequest(int(r.id), r.scope, bool(r.flatten), r.actor, r.reason, int(r.ts))
                    for r in conn.execute(q)]

    def acknowledge(self, request: KillRequest, session_id: str, *, cancelled: int,
                    flatten_orders: int) -> None:
        """Record that ``session_id`` cancelled its orders (and sent the flattening) for ``request``."""
        ts = self.store.clock.now_ms()
        with self.store.log.transaction() as tx:
            ack = KillAcknowledged(request_id=request.id, scope=request.scope, cancelled=cancelled,
                                   flatten_orders=flatten_orders)
            tx.append(ack.KIND, ack.to_payload(), actor=f"session:{session_id}", session_id=session_id, ts=ts)
            tx.conn.execute(kill_acks.insert().values(request_id=request.id, session_id=session_id, ts=ts,
                                                      cancelled=cancelled, flatten_orders=flatten_orders))

    def rearm(self, *, session_id: str | None = None, actor: str, role: Role | str,
              reason: str = "") -> ScopeState:
        """Set ACTIVE again. Raises ``PermissionDenied`` unless ``role`` may re-arm."""
        require(role, Action.REARM_KILL_SWITCH)
        if not actor or not actor.strip():
            raise ValidationError("actor", actor, "say who re-arms", "--actor NAME")
        scope = self.scope_for(session_id)
        with self.store.log.transaction() as tx:
            st = self.store.set_state(scope, TradingState.ACTIVE, actor=actor, reason=reason,
                                      session_id=session_id or "", kind="risk.rearm",
                                      extra={"role": str(Role(role).value)}, tx=tx, rearm=True)
            tx.conn.execute(kill_requests.update()
                            .where(kill_requests.c.scope == scope, kill_requests.c.closed_ts.is_(None))
                            .values(closed_ts=st.ts))
        return st

    def requests(self, limit: int = 20) -> list[tuple[KillRequest, bool, int]]:
        """The latest requests, newest first: (request, still open, sessions that acknowledged)."""
        n_acks = (sa.select(sa.func.count()).select_from(kill_acks)
                  .where(kill_acks.c.request_id == kill_requests.c.id).scalar_subquery())
        q = sa.select(kill_requests, n_acks.label("acks")).order_by(kill_requests.c.id.desc()).limit(limit)
        with self.store.engine.connect() as conn:
            return [(KillRequest(int(r.id), r.scope, bool(r.flatten), r.actor, r.reason, int(r.ts)),
                     r.closed_ts is None, int(r.acks)) for r in conn.execute(q)]
