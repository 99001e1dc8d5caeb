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
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lyra.audit.events import StrategyDenied
from lyra.core.orders import Fill, Order, OrderIntent, client_order_id
from lyra.core.values import ZERO
from lyra.execution.algos import ChildIntent, ParentIntent
from lyra.execution.broker import ExecutionReport
from lyra.execution.gateway import GateDecision, OrderDoor

if TYPE_CHECKING:
    from lyra.session.runtime import Session

log = logging.getLogger(__name__)

#: A strategy's orders denied this many times in a row on one instrument: the session records
#: it (``session.denials``) and stops sending that intent until the signal changes. The
#: default of the session config's ``denied_in_row_limit``.
DENIED_IN_ROW_LIMIT = 20

#: Tag prefixes of orders a person placed (ticket, rebalance): booked to the operator book.
OPERATOR_TAGS = ("manual:", "rebalance:")


def is_operator_tag(tag: str) -> bool:
    """True for an order a person placed (``manual:<user>``, ``rebalance:<user>``)."""
    return tag.startswith(OPERATOR_TAGS)


class OrderGateway:
    """The session's only path from an intent to an order (see the module doc)."""

    def __init__(self, session: Session) -> None:
        self.s = session
        ctx = session._risk_context
        #: risk and recording, shared with the router's desk (:mod:`lyra.execution.gateway`)
        self.door = OrderDoor(session.sid, session.actor, session.risk,
                              (lambda o: ctx(session, o)) if ctx is not None else None)
        #: the operator book: net quantity per instrument bought/sold by operator orders
        self.operator_holdings: dict[str, Decimal] = {}
        self._operator_orders: set[str] = set()
        #: consecutive denials of a strategy's orders before it is held back (``session.denials``)
        self.denial_limit = session.config.denied_in_row_limit
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
            with s.recorder.transaction() as tx:
                stored = self.door.record(tx, order, decision, t)
            s.result.orders += 1
            if own:
                self._count_denial(intent, cid, decision, t)
            if operator:
                self._operator_orders.add(cid)
            if book is not None:
                book.child_sent(intent, cid, stored.quantity, decision.approved, decision.reason)  # type: ignore[arg-type]
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
        self.door.risk = self.s.risk
        return self.door.risk_check(order, t)

    # ------------------------------------------------------------------ after submit
    def record_reports(self, reports: Sequence[ExecutionReport]) -> list[Order]:
        """Record the broker's reports in one transaction; the updated orders, in order."""
        s = self.s
        door = self.door
        with s.recorder.transaction() as tx:
            return [door.record_report(tx, r) for r in reports]

    def request_cancel(self, client_order_id: str, t: int, reason: str) -> None:
        """Record a cancel request for a working order and send it to the broker (the caller
        checked that the order may be cancelled)."""
        s = self.s
        with s.recorder.transaction() as tx:
            self.door.request_cancel(tx, client_order_id, t, reason)
        s.broker.cancel(client_order_id)

    def adopt(self, tx: Any, order: Order, t: int) -> Order:
        """Record an order found working at the venue on restart (live sessions), in ``tx``;
        its id is never handed out again."""
        stored = self.door.adopt(tx, order, t)
        tail = order.client_order_id.rsplit("-", 1)[-1]
        if tail.isdigit():
            self.s.seq = max(self.s.seq, int(tail))
        return stored

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


__all__ = ["DENIED_IN_ROW_LIMIT", "OPERATOR_TAGS", "GateDecision", "OrderGateway", "is_operator_tag",
           "operator_book"]
