"""The few things a dashboard may *write*, each permission-checked and through the same path
as everything else:

* :func:`pull_kill_switch` — :class:`lyra.risk.killswitch.KillSwitch.pull` (records who).
* :func:`rearm_kill_switch` — :class:`lyra.risk.killswitch.KillSwitch.rearm` as the signed-in
  person (``rearm_kill_switch`` permission: risk_manager, admin), their role from the session.
* :class:`ManualDesk` — the order ticket: :meth:`ManualDesk.submit` and :meth:`ManualDesk.cancel`
  queue a command for a *running* session (:class:`lyra.session.commands.CommandQueue`); the
  session takes it at its heartbeat and executes it like its strategy's orders: risk
  (``risk.decision``), the ledger, its broker (paper or live). The returned
  :class:`~lyra.session.commands.Command` is pending; poll :meth:`ManualDesk.command` for the
  outcome (``sent to session X: order <cid> accepted`` / ``denied by risk: ...``).
* :meth:`ManualDesk.rebalance` (the rebalancing page) queues a ``rebalance`` command the same
  way: the running session sizes the orders net of costs and sends them through its order
  gateway (risk with cash checked, ledger, broker). :meth:`ManualDesk.cancel_manual` only
  cancels orders older versions left on the ``manual`` pseudo-account.

Every function takes the :class:`~lyra.auth.permissions.Principal` and checks it again (the
app also hides the controls from roles that may not use them).
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from sqlalchemy.engine import Engine

from lyra.audit import EventLog, Ledger
from lyra.auth.permissions import Action, Principal
from lyra.core.clock import WallClock
from lyra.core.enums import OrderStatus, OrderType, Side
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.orders import Order, OrderIntent
from lyra.core.values import to_decimal
from lyra.execution.gateway import OrderDoor
from lyra.risk._types import KillRequest, ScopeState
from lyra.session.commands import Command, CommandQueue

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


def rearm_kill_switch(
    engine: Engine,
    principal: Principal,
    *,
    session_id: str | None,
    reason: str,
    jsonl_path: Path | None = None,
) -> ScopeState:
    """Set ``session_id`` (None: the global switch) active again as ``principal``."""
    from lyra.risk.killswitch import KillSwitch
    from lyra.risk.state import TradingStateStore

    principal.require(Action.REARM_KILL_SWITCH)
    if not reason.strip():
        raise ValidationError("reason", reason, "say why trading may resume")
    store = TradingStateStore(EventLog(engine, jsonl_path))
    return KillSwitch(store).rearm(
        session_id=session_id,
        actor=f"{principal.subject} ({principal.role.value})",
        role=principal.role,
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
        self.engine = engine
        self.instruments = instruments
        self.session_id = session_id
        self.commands = CommandQueue(engine, jsonl_path)
        self.clock = WallClock()
        self.log = EventLog(engine, jsonl_path, clock=self.clock)
        self.equity = equity
        self.risk = risk  # kept for callers; the session's own risk engine decides

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

    def rebalance(
        self,
        principal: Principal,
        weights: dict[str, Decimal | str | float],
        *,
        session_id: str | None = None,
        reason: str = "rebalance",
    ) -> Command:
        """Ask the running session to rebalance to target ``weights`` (instrument id ->
        fraction of equity, sum <= 1; ``submit_rebalance`` permission). The session sizes the
        orders net of fees and slippage, sends them through risk (cash checked) and its broker,
        and books them to its operator book; poll :meth:`command` for the outcome. Bad weights
        are refused at once, naming the field and the value; nothing is written."""
        principal.require(Action.SUBMIT_REBALANCE)
        clean = {k: str(v) for k, v in weights.items()}
        return self.commands.submit_rebalance(self._target(session_id), clean, principal, reason)

    def cancel_manual(self, principal: Principal, cid: str) -> Order:
        """Cancel an open order of the ``manual`` account, which older versions recorded for
        rebalances without any venue (no venue holds it: the cancel completes at once).
        Nothing records new ``manual`` orders any more: rebalances are session commands."""
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
        door = OrderDoor(MANUAL_SESSION, f"user:{principal.subject}", None)  # the gateway's door
        with ledger.transaction() as tx:
            out = door.cancel_without_venue(tx, cid, now, "manual desk: no venue attached")
        assert out.status is OrderStatus.CANCELLED
        return out


__all__ = ["MANUAL_SESSION", "ManualDesk", "pull_kill_switch", "rearm_kill_switch"]
