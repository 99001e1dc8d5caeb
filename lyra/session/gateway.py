"""The order gateway: the one place in a session where an intent becomes an order.

Every order a session sends -- its strategy's, an execution algorithm's children, an
operator's ticket or rebalance (:mod:`lyra.session.commands`), a kill switch's flattening --
passes :meth:`OrderGateway.submit`, which

1. gives it the next client order id (``<session>-<sequence>``: deterministic, so a resumed
   run names its orders exactly as the first run did);
2. asks risk once and keeps one decision (while resuming, the logged decision stands: the
   kill switch may have been pulled since, what was decided then is the truth);
3. records ``risk.decision`` + ``order.created`` + ``order.submit`` (or ``order.deny``) in
   one ledger transaction, the decision always in one shape (the risk engine's
   :meth:`lyra.risk.engine.RiskDecision.to_payload`, 11 fields);
4. commits before sending where the broker outlives the process (write-ahead, live venues);
5. hands it to the broker and drains the broker's reports into the log and the books.

Operator orders (tagged ``manual:<user>`` or ``rebalance:<user>``) are booked to the
session's *operator book* (:attr:`OrderGateway.operator_holdings`): the strategy's idea of
its position follows only its own fills, never the operator's.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lyra.audit.events import RiskDecided, StrategyDenied
from lyra.core.enums import OrderEventType
from lyra.core.errors import ConfigError
from lyra.core.orders import Fill, Order, OrderEvent, OrderIntent, client_order_id
from lyra.core.values import ZERO, to_decimal
from lyra.execution.algos import ChildIntent, ParentIntent

if TYPE_CHECKING:
    from lyra.session.runtime import Session

log = logging.getLogger(__name__)
E = OrderEventType

#: A strategy's orders denied this many times in a row on one instrument: the session records
#: it (``session.denials``) and stops sending that intent until the signal changes.
DENIED_IN_ROW_LIMIT = 20

#: Tag prefixes of orders a person placed (ticket, rebalance): booked to the operator book.
OPERATOR_TAGS = ("manual:", "rebalance:")


def is_operator_tag(tag: str) -> bool:
    """True for an order a person placed (``manual:<user>``, ``rebalance:<user>``)."""
    return tag.startswith(OPERATOR_TAGS)


@dataclass(frozen=True, slots=True)
class GateDecision:
    """One risk decision as the gateway records it: the ``risk.decision`` payload (always the
    engine's 11-field shape) and the fields the gateway acts on."""

    payload: dict[str, Any]
    approved: bool
    reason: str
    quantity: Decimal
    decision_id: str

    @classmethod
    def from_payload(cls, p: Mapping[str, Any]) -> GateDecision:
        return cls(dict(p), bool(p["approved"]), str(p["reason"]), Decimal(p["quantity"]),
                   str(p["decision_id"]))


class OrderGateway:
    """The session's only path from an intent to an order (see the module doc)."""

    def __init__(self, session: Session) -> None:
        self.s = session
        #: the operator book: net quantity per instrument bought/sold by operator orders
        self.operator_holdings: dict[str, Decimal] = {}
        self._operator_orders: set[str] = set()
        #: consecutive denials of a strategy's orders before it is held back (``session.denials``)
        self.denial_limit = DENIED_IN_ROW_LIMIT
        self._denied_in_row: dict[str, int] = {}
        self._held: dict[str, Any] = {}  # instrument -> the side no longer sent

    # ------------------------------------------------------------------ ids
    def next_client_id(self) -> str:
        """The id the next order will get (does not take it)."""
        return client_order_id(self.s.sid, self.s.seq + 1)

    # ------------------------------------------------------------------ submit
    def submit(self, intents: Sequence[OrderIntent | ParentIntent], t: int) -> None:
        """Risk-check, record and send ``intents`` (parents start their algorithm here)."""
        from lyra.session import algo_runtime  # here: algo_runtime imports the session's types

        s = self.s
        for intent in intents:
            book = None
            if type(intent) is not OrderIntent:  # algorithms: parents start here, children go on
                if isinstance(intent, ParentIntent):
                    algo_runtime.start_parent(s, intent, t)
                    continue
                if isinstance(intent, ChildIntent):
                    book = s.algos
            operator = bool(intent.tag) and is_operator_tag(intent.tag)
            own = book is None and not operator  # the strategy's own order
            if own and self._held:
                held = self._held.get(intent.instrument_id)
                if held is intent.side:  # the same intent again: not sent, the strategy keeps wanting it
                    s._sync_strategy(intent.instrument_id)
                    continue
                if held is not None:  # the signal changed: send again
                    del self._held[intent.instrument_id]
            s.seq += 1
            cid = client_order_id(s.sid, s.seq)
            order = Order(cid, intent, created_ts=t)
            decision = self.decide(order, t)
            if decision.approved and decision.quantity != intent.quantity:
                order = Order(cid, _resized(intent, decision.quantity), created_ts=t)
            with s.recorder.transaction() as tx:
                tx.append("risk.decision", decision.payload, actor="risk", session_id=s.sid, ts=t)
                tx.create_order(s.sid, order, actor=s.actor)
                if decision.approved:
                    stored = tx.order_event(s.sid, cid, OrderEvent(E.SUBMIT, t), actor=s.actor)
                else:
                    tx.order_event(s.sid, cid, OrderEvent(E.DENY, t, reason=decision.reason), actor=s.actor)
            s.result.orders += 1
            if own:
                self._count_denial(intent, cid, decision, t)
            if operator:
                self._operator_orders.add(cid)
            if book is not None:
                book.child_sent(intent, cid, order.quantity, decision.approved, decision.reason)  # type: ignore[arg-type]
            if not decision.approved:
                s.result.denied += 1
                if not operator:  # an operator's denied order says nothing about the strategy
                    s._sync_strategy(intent.instrument_id)
                continue
            s.working.add(cid)
            if s._write_ahead:
                # A real venue outlives us: the order must be on record before it is sent.
                s.recorder.commit()
            s.broker.submit(stored, decision.decision_id)
        s._drain(t)
        if s.algos is not None and s.algos.dirty:
            algo_runtime.pump(s, t)

    def _count_denial(self, intent: OrderIntent, cid: str, decision: GateDecision, t: int) -> None:
        iid = intent.instrument_id
        if decision.approved:
            self._denied_in_row.pop(iid, None)
            return
        n = self._denied_in_row[iid] = self._denied_in_row.get(iid, 0) + 1
        if n < self.denial_limit:
            return
        self._denied_in_row.pop(iid, None)
        self._held[iid] = intent.side
        s = self.s
        ev = StrategyDenied(instrument_id=iid, side=intent.side.value, count=n, reason=decision.reason,
                            client_order_id=cid)
        log.warning("session %s: %d %s orders on %s denied in a row (%s); holding that intent back",
                    s.sid, n, intent.side.value, iid, decision.reason)
        with s.recorder.transaction() as tx:
            tx.append(ev.KIND, ev.to_payload(), actor=s.actor, session_id=s.sid, ts=t)

    # ------------------------------------------------------------------ risk
    def decide(self, order: Order, t: int) -> GateDecision:
        """The risk decision for ``order``. While resuming, the logged decision is the truth."""
        s = self.s
        live = self.risk_check(order, t)
        if s.recorder.resuming and s.recorder.peek_kind() == "risk.decision":
            p = s.recorder.expected[0].data()
            if p.get("client_order_id") == order.client_order_id:
                return GateDecision.from_payload(p)
        return live

    def risk_check(self, order: Order, t: int) -> GateDecision:
        """Ask the session's risk engine once; a failing check rejects, never approves."""
        s = self.s
        cid = order.client_order_id
        if s.risk is None:
            raise ConfigError("risk", None, "a session needs a risk engine: nothing bypasses risk")
        try:
            ctx = s._risk_context(s, order) if s._risk_context else None
            d = s.risk.check(order, ctx)
            if hasattr(d, "to_event"):
                ev = d.to_event()
            else:  # a plain risk gate: the same shape, filled in from the session
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
                           reason=reason, check=check, quantity=quantity, account_id=self.s.sid,
                           instrument_id=order.instrument_id, requested_quantity=order.quantity,
                           state="active", ts=t)

    # ------------------------------------------------------------------ books
    def book_fill(self, f: Fill) -> None:
        """Book a fill: the session's portfolio, and the operator book for operator orders."""
        if f.client_order_id in self._operator_orders:
            signed = f.quantity if f.side.value == "buy" else -f.quantity
            book = self.operator_holdings
            book[f.instrument_id] = book.get(f.instrument_id, ZERO) + signed

    def know_orders(self, orders: Iterable[Order]) -> None:
        """Orders of this session already on record (a live session restarting from its log):
        the operator's join the operator book, so their fills booked again land there."""
        for o in orders:
            if is_operator_tag(o.intent.tag):
                self._operator_orders.add(o.client_order_id)

    def strategy_quantity(self, instrument_id: str) -> Decimal:
        """The strategy's own position: total holdings minus the operator book."""
        return self.s.holdings.get(instrument_id, ZERO) - self.operator_holdings.get(instrument_id, ZERO)

    def is_operator_order(self, client_order_id: str) -> bool:
        """True if ``client_order_id`` was placed by a person (ticket, rebalance)."""
        return client_order_id in self._operator_orders


def operator_book(records: Iterable[Any]) -> tuple[dict[str, Decimal], dict[str, Decimal]]:
    """(strategy, operator) net filled quantity per instrument, from a session's log records
    (``EventLog.read(session_id=...)``): orders tagged ``manual:``/``rebalance:`` are the
    operator's, every other order the strategy's."""
    tags: dict[str, str] = {}
    books: tuple[dict[str, Decimal], dict[str, Decimal]] = ({}, {})
    for r in records:
        if r.kind == "order.created":
            d = r.data()
            tags[d["client_order_id"]] = d.get("tag") or ""
        elif r.kind in ("order.fill", "order.partial_fill"):
            f = r.data()["fill"]
            book = books[is_operator_tag(tags.get(f["client_order_id"], ""))]
            q = Decimal(f["quantity"]) * (1 if f["side"] == "buy" else -1)
            book[f["instrument_id"]] = book.get(f["instrument_id"], ZERO) + q
    return books


def _resized(intent: OrderIntent, qty: Decimal) -> OrderIntent:
    return OrderIntent(intent.instrument_id, intent.side, qty, intent.order_type, intent.limit_price,
                       intent.stop_price, intent.time_in_force, intent.post_only, intent.reduce_only,
                       intent.tag)


__all__ = ["DENIED_IN_ROW_LIMIT", "OPERATOR_TAGS", "GateDecision", "OrderGateway", "is_operator_tag",
           "operator_book"]
