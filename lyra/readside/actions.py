"""The few things a dashboard may *write*, each permission-checked and through the same path
as everything else:

* :func:`pull_kill_switch` — :class:`lyra.risk.killswitch.KillSwitch.pull` (records who).
* :class:`ManualDesk` — the order ticket: :meth:`ManualDesk.submit` and :meth:`ManualDesk.cancel`
  queue a command for a *running* session (:class:`lyra.session.commands.CommandQueue`); the
  session takes it at its heartbeat and executes it like its strategy's orders: risk
  (``risk.decision``), the ledger, its broker (paper or live). The returned
  :class:`~lyra.session.commands.Command` is pending; poll :meth:`ManualDesk.command` for the
  outcome (``sent to session X: order <cid> accepted`` / ``denied by risk: ...``).
* :meth:`ManualDesk.submit_rebalance` (the rebalancing page) still records risk-checked orders
  for the ``manual`` account, which no broker executes, and :meth:`ManualDesk.cancel_manual`
  cancels those. That is the only use of the ``manual`` pseudo-session left.

Every function takes the :class:`~lyra.auth.permissions.Principal` and checks it again (the
app also hides the controls from roles that may not use them).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit import EventLog, Ledger
from lyra.auth.permissions import Action, Principal
from lyra.core.clock import WallClock
from lyra.core.enums import OrderEventType, OrderStatus, OrderType, Side
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.orders import Order, OrderEvent, OrderIntent, client_order_id
from lyra.core.values import to_decimal
from lyra.risk._types import KillRequest
from lyra.session.commands import Command, CommandQueue
from lyra.store.tables import orders

MANUAL_SESSION = "manual"


def pull_kill_switch(
    engine: Engine,
    principal: Principal,
    *,
    session_id: str | None,
    flatten: bool,
    reason: str,
    jsonl_path: Path | None = None,
) -> KillRequest:
    """Halt ``session_id`` (None: everything) as ``principal``; sessions cancel (and flatten)."""
    from lyra.risk.killswitch import KillSwitch
    from lyra.risk.state import TradingStateStore

    principal.require(Action.PULL_KILL_SWITCH)
    if not reason.strip():
        raise ValidationError("reason", reason, "say why the kill switch is pulled")
    store = TradingStateStore(EventLog(engine, jsonl_path))
    return KillSwitch(store).pull(
        session_id=session_id,
        flatten=flatten,
        actor=f"{principal.subject} ({principal.role.value})",
        reason=reason.strip(),
    )


class ManualDesk:
    """Orders typed into the trading dashboard, executed by a running session
    (``session_id``: the default target; each call may name another)."""

    def __init__(
        self,
        engine: Engine,
        instruments: dict[str, Instrument],
        *,
        session_id: str | None = None,
        jsonl_path: Path | None = None,
        equity: Decimal = Decimal(0),
        risk: dict[str, object] | None = None,
    ) -> None:
        from lyra.risk.config import RiskConfig
        from lyra.risk.engine import RiskEngine
        from lyra.risk.state import TradingStateStore

        self.engine = engine
        self.instruments = instruments
        self.session_id = session_id
        self.commands = CommandQueue(engine, jsonl_path)
        self.clock = WallClock()
        self.log = EventLog(engine, jsonl_path, clock=self.clock)
        self.equity = equity
        currency = next(iter(instruments.values())).quote if instruments else "USD"
        cfg = RiskConfig.from_dict({"currency": currency, **(risk or {})})
        self.risk = RiskEngine(
            cfg,
            TradingStateStore(self.log),
            clock=self.clock,
            account_id=MANUAL_SESSION,
            session_id=MANUAL_SESSION,
        )

    def _next_id(self) -> str:
        with self.engine.connect() as conn:
            n = conn.execute(
                sa.select(sa.func.count()).select_from(orders).where(orders.c.session_id == MANUAL_SESSION)
            ).scalar_one()
        return client_order_id(MANUAL_SESSION, int(n) + 1)

    def _target(self, session_id: str | None) -> str:
        sid = session_id or self.session_id
        if not sid:
            raise ValidationError("session_id", sid, "no session to send it to", "pick a running session")
        return sid

    def submit(
        self,
        principal: Principal,
        *,
        instrument_id: str,
        side: str,
        quantity: Decimal | str,
        limit_price: Decimal | str | None,
        mark: Decimal | None = None,
        session_id: str | None = None,
        reason: str = "order ticket",
    ) -> Command:
        """Send a market (no ``limit_price``) or limit order to the running session; returns
        the pending command (``mark`` is not used any more: the session's risk check uses
        the session's own marks)."""
        principal.require(Action.PLACE_ORDER)
        if side not in ("buy", "sell"):
            raise ValidationError("side", side, "must be buy or sell")
        qty = to_decimal(quantity, "quantity")
        otype = OrderType.MARKET if limit_price in (None, "") else OrderType.LIMIT
        lp = None if otype is OrderType.MARKET else to_decimal(limit_price, "limit_price")
        intent = OrderIntent(instrument_id, Side(side), qty, otype, lp)
        return self.commands.submit_order(self._target(session_id), intent, principal, reason)

    def cancel(
        self, principal: Principal, cid: str, *, session_id: str | None = None, reason: str = "order ticket"
    ) -> Command:
        """Ask the running session to cancel its working order ``cid``; returns the pending command."""
        principal.require(Action.CANCEL_ORDER)
        return self.commands.cancel_order(self._target(session_id), cid, principal, reason)

    def command(self, command_id: int) -> Command | None:
        """A command as it is now (poll it until ``finished`` for the session's answer)."""
        return self.commands.get(command_id)

    def submit_rebalance(
        self, principal: Principal, trades: list[tuple[str, str, Decimal]], marks: dict[str, Decimal]
    ) -> list[tuple[Order, str]]:
        """Risk-check and record each ``(instrument_id, side, quantity)`` market order of a
        rebalance (``submit_rebalance`` permission); one risk decision per order."""
        principal.require(Action.SUBMIT_REBALANCE)
        return [
            self._record(principal, iid, side, qty, None, marks.get(iid, Decimal(0)), "rebalance")
            for iid, side, qty in trades
        ]

    def _record(
        self,
        principal: Principal,
        instrument_id: str,
        side: str,
        quantity: Decimal | str,
        limit_price: Decimal | str | None,
        mark: Decimal,
        why: str,
    ) -> tuple[Order, str]:
        from lyra.risk.engine import RiskContext

        inst = self.instruments.get(instrument_id)
        if inst is None:
            raise ValidationError(
                "instrument", instrument_id, "unknown instrument", ", ".join(sorted(self.instruments))
            )
        if side not in ("buy", "sell"):
            raise ValidationError("side", side, "must be buy or sell")
        if mark <= 0:
            raise ValidationError("mark", mark, "no market price for this instrument yet")
        otype = OrderType.MARKET if limit_price in (None, "") else OrderType.LIMIT
        lp = None if otype is OrderType.MARKET else Decimal(str(limit_price))
        intent = OrderIntent(
            instrument_id, Side(side), Decimal(str(quantity)), otype, lp, tag=f"{why}:{principal.subject}"
        )
        now = self.clock.now_ms()
        cid = self._next_id()
        order = Order(cid, intent, created_ts=now)
        ledger = Ledger(self.log, session_id=MANUAL_SESSION)
        held = {iid: p.quantity for (_s, iid), p in ledger.state.positions.items()}
        open_orders = [o for o in ledger.state.orders.values() if not o.status.is_terminal]
        ctx = RiskContext(
            account_id=MANUAL_SESSION,
            positions=held,
            marks={instrument_id: mark},
            equity=self.equity,
            balances={inst.quote: self.equity},
            open_orders=open_orders,
            instruments=self.instruments,
            now=now,
            last_md_ts={instrument_id: now},
        )
        d = self.risk.check(order, ctx)
        actor = f"user:{principal.subject}"
        with ledger.transaction() as tx:
            tx.append("risk.decision", d.to_payload(), actor="risk", session_id=MANUAL_SESSION, ts=now)
            tx.create_order(MANUAL_SESSION, order, actor=actor)
            ev = (
                OrderEvent(OrderEventType.SUBMIT, now)
                if d.approved
                else OrderEvent(OrderEventType.DENY, now, reason=d.reason)
            )
            stored = tx.order_event(MANUAL_SESSION, cid, ev, actor=actor)
        return stored, d.reason

    def cancel_manual(self, principal: Principal, cid: str) -> Order:
        """Cancel an open order of the ``manual`` account (a rebalance order: no venue holds
        it, the cancel completes at once)."""
        principal.require(Action.CANCEL_ORDER)
        ledger = Ledger(self.log, session_id=MANUAL_SESSION)
        order = ledger.state.orders.get(cid)
        if order is None:
            raise ValidationError(
                "client_order_id",
                cid,
                "not an order of the manual account",
                "cancel a running session's order with ManualDesk.cancel",
            )
        if order.status.is_terminal:
            raise ValidationError("client_order_id", cid, f"is already {order.status.value}")
        now = self.clock.now_ms()
        actor = f"user:{principal.subject}"
        with ledger.transaction() as tx:
            tx.order_event(MANUAL_SESSION, cid, OrderEvent(OrderEventType.REQUEST_CANCEL, now), actor=actor)
            out = tx.order_event(
                MANUAL_SESSION,
                cid,
                OrderEvent(OrderEventType.CANCEL, now, reason="manual desk: no venue attached"),
                actor=actor,
            )
        assert out.status is OrderStatus.CANCELLED
        return out


__all__ = ["MANUAL_SESSION", "ManualDesk", "pull_kill_switch"]
