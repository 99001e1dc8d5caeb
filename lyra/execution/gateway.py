"""The order gateway's door: the only code that writes orders and risk decisions to the log.

Every order in Lyra enters through an :class:`OrderDoor` -- a session's strategy, its
execution algorithms' children, an operator's ticket or rebalance and a kill switch's
flattening through the session's :class:`lyra.session.gateway.OrderGateway` (which adds the
session's ids, resume and books), the smart-order router's children through
:class:`lyra.execution.routed_desk.RoutedDesk`. The door

* asks risk once and turns whatever it answers into one :class:`GateDecision` whose payload
  is always the ``risk.decision`` shape of the event catalogue
  (:class:`lyra.audit.events.RiskDecided`, 11 fields); a failing check rejects, never approves;
* records ``risk.decision`` + ``order.created`` + ``order.submit`` (or ``order.deny``) in the
  caller's one ledger transaction;
* records what happens to an order afterwards: the broker's reports, cancel requests, an
  order adopted from a venue on restart.

It holds the ledger's :class:`~lyra.audit.ledger.OrderPen`: the ledger refuses ``order.*`` and
``risk.decision`` entries from anyone else.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any, Protocol

from lyra.audit.events import RiskDecided
from lyra.audit.ledger import issue_order_pen
from lyra.core.enums import OrderEventType
from lyra.core.errors import ConfigError
from lyra.core.orders import Order, OrderEvent, OrderIntent
from lyra.core.values import to_decimal
from lyra.execution.broker import ExecutionReport

log = logging.getLogger(__name__)
E = OrderEventType


class RiskGate(Protocol):
    """What the door needs from risk (``lyra.risk.RiskEngine``): a decision for an order. The
    engine's decisions have ``to_event()``; a plain gate's ``decision_id``, ``approved``,
    ``reason``, ``quantity`` (and optionally ``check``) are filled into the same shape."""

    def check(self, order: Order, ctx: Any) -> Any: ...


class OrderWriter(Protocol):
    """A ledger transaction, or a session's resume verifier standing in for one."""

    def append(self, kind: str, payload: Any, *, actor: str = ..., session_id: str = ...,
               ts: int | None = ..., pen: Any = ...) -> Any: ...

    def create_order(self, session_id: str, order: Order, *, actor: str = ..., pen: Any = ...) -> Order: ...

    def order_event(self, session_id: str, client_order_id: str, event: OrderEvent, *, actor: str = ...,
                    pen: Any = ...) -> Order: ...


@dataclass(frozen=True, slots=True)
class GateDecision:
    """One risk decision as the gateway records it: the ``risk.decision`` payload (always the
    catalogue's 11-field shape) and the fields the gateway acts on."""

    payload: dict[str, Any]
    approved: bool
    reason: str
    quantity: Decimal
    decision_id: str

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> GateDecision:
        """A logged ``risk.decision`` payload (a resumed run keeps what was decided then)."""
        return cls(dict(p), bool(p["approved"]), str(p["reason"]), Decimal(p["quantity"]),
                   str(p["decision_id"]))


class OrderDoor:
    """Risk-checks and records orders for one account (a session, the router's account)."""

    def __init__(self, account_id: str, actor: str, risk: RiskGate | None,
                 context: Callable[[Order], Any] | None = None) -> None:
        self.account_id = account_id
        self.actor = actor
        self.risk = risk
        self.context = context
        self._pen = issue_order_pen(f"gateway:{account_id}")

    # ------------------------------------------------------------------ risk
    def risk_check(self, order: Order, t: int) -> GateDecision:
        """Ask risk once; a failing check rejects, never approves."""
        cid = order.client_order_id
        if self.risk is None:
            raise ConfigError("risk", None, "an order needs a risk engine: nothing bypasses risk")
        try:
            d = self.risk.check(order, self.context(order) if self.context is not None else None)
            to_event = getattr(d, "to_event", None)  # the engine's RiskDecision knows its shape
            if to_event is not None:
                ev: RiskDecided = to_event()
            else:  # a plain risk gate: the same shape, filled in here
                ev = self._event(order, t, str(d.decision_id), bool(d.approved), str(d.reason),
                                 str(getattr(d, "check", "")), to_decimal(d.quantity))
        except Exception as exc:  # a failing check must reject, never approve
            log.exception("risk check failed for %s", cid)
            ev = self._event(order, t, f"rd-{cid}", False, f"risk engine error: {type(exc).__name__}: {exc}",
                             "engine", order.quantity)
        return GateDecision(ev.to_payload(), ev.approved, ev.reason,
                            ev.quantity if ev.quantity is not None else order.quantity, ev.decision_id)

    def _event(self, order: Order, t: int, decision_id: str, approved: bool, reason: str, check: str,
               quantity: Decimal) -> RiskDecided:
        return RiskDecided(decision_id=decision_id, client_order_id=order.client_order_id, approved=approved,
                           reason=reason, check=check, quantity=quantity, account_id=self.account_id,
                           instrument_id=order.instrument_id, requested_quantity=order.quantity,
                           state="active", ts=t)

    # ------------------------------------------------------------------ recording
    def record(self, tx: OrderWriter, order: Order, decision: GateDecision, t: int) -> Order:
        """Record ``decision`` and ``order`` (resized to what risk approved) in ``tx``: the
        ledger's copy, SUBMITTED (send it) or DENIED."""
        if decision.approved and decision.quantity != order.quantity:  # risk may shrink, never grow
            order = Order(order.client_order_id, resized(order.intent, decision.quantity),
                          created_ts=order.created_ts)
        aid, cid, pen = self.account_id, order.client_order_id, self._pen
        tx.append("risk.decision", decision.payload, actor="risk", session_id=aid, ts=t, pen=pen)
        stored = tx.create_order(aid, order, actor=self.actor, pen=pen)
        if decision.approved:
            return tx.order_event(aid, cid, OrderEvent(E.SUBMIT, t), actor=self.actor, pen=pen)
        tx.order_event(aid, cid, OrderEvent(E.DENY, t, reason=decision.reason), actor=self.actor, pen=pen)
        return stored

    def record_report(self, tx: OrderWriter, report: ExecutionReport) -> Order:
        """Record one broker report (accept, fill, cancel...); returns the updated order."""
        return tx.order_event(self.account_id, report.client_order_id, report.to_event(), actor=self.actor,
                              pen=self._pen)

    def request_cancel(self, tx: OrderWriter, client_order_id: str, t: int, reason: str) -> Order:
        """Record a cancel request (the caller then asks the broker)."""
        ev = OrderEvent(E.REQUEST_CANCEL, t, reason=reason)
        return tx.order_event(self.account_id, client_order_id, ev, actor=self.actor, pen=self._pen)

    def cancel_without_venue(self, tx: OrderWriter, client_order_id: str, t: int, reason: str) -> Order:
        """Cancel an order no venue holds (the ``manual`` pseudo-account of older versions):
        the request and its completion at once."""
        self.request_cancel(tx, client_order_id, t, "")
        return tx.order_event(self.account_id, client_order_id, OrderEvent(E.CANCEL, t, reason=reason),
                              actor=self.actor, pen=self._pen)

    def adopt(self, tx: OrderWriter, order: Order, t: int) -> Order:
        """Record an order found working at a venue on restart that the log never saw (its
        intent was decided by a run that died before logging it): created + submitted, no new
        risk decision; returns the ledger's copy."""
        aid, pen = self.account_id, self._pen
        tx.create_order(aid, order, actor=self.actor, pen=pen)
        return tx.order_event(aid, order.client_order_id, OrderEvent(E.SUBMIT, t), actor=self.actor, pen=pen)


def resized(intent: OrderIntent, quantity: Decimal) -> OrderIntent:
    """``intent`` for ``quantity`` (risk resized it)."""
    return replace(intent, quantity=quantity)


__all__ = ["GateDecision", "OrderDoor", "OrderWriter", "RiskGate", "resized"]
