"""A smart-routed order across several live venues, recorded and risk-checked.

:func:`~lyra.execution.routing.execute_route` decides the split; this desk connects it to the
real world: it reads each venue's book through ccxt, sends every child through the order
gateway's door (:class:`lyra.execution.gateway.OrderDoor`: **pre-trade risk**, the one
``risk.decision`` shape, the one recording path) and then the venue's
:class:`~lyra.execution.ccxt_broker.CcxtBroker` (write-ahead: the child is in the log before
it is sent), waits for the IOC child to finish, and records the
routing decision (books seen, split, expected price: ``route.decision``) and its outcome
(achieved vs expected, per child: ``route.completed``) in the event log. With a broker and
a ccxt client per live venue (the tests use the fake exchange), so not run as a doctest::

    desk = RoutedDesk({"binance": VenueLink(broker_a, ex_a, inst_a),
                       "kraken": VenueLink(broker_b, ex_b, inst_b)}, ledger=ledger,
                      risk=engine, risk_context=ctx_fn, account_id="router")
    result = desk.route(Side.BUY, Decimal("2500"))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lyra.audit.events import RouteCompleted, RouteDecided
from lyra.audit.ledger import Ledger
from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.enums import Side
from lyra.core.errors import RiskRejected, ValidationError
from lyra.core.instrument import Instrument
from lyra.core.orders import Fill, Order, OrderIntent, client_order_id
from lyra.execution.ccxt_broker import CcxtBroker
from lyra.execution.gateway import OrderDoor
from lyra.execution.routing import VenueQuote
from lyra.execution.routing_exec import RouteResult, execute_route, planner


@dataclass(frozen=True)
class VenueLink:
    """One venue the desk routes to: its broker, the ccxt client to read its book, the
    instrument (tick, lot, minimums, taker fee) as traded there."""

    broker: CcxtBroker
    exchange: Any
    instrument: Instrument
    depth: int = 50


class RoutedDesk:
    """Routes parent orders across :class:`VenueLink` s; every child passes ``risk``.
    ``clock`` stamps the children and their log entries; ``wait_s`` is a real wait (seconds)
    for a child's final report from its venue."""

    def __init__(self, venues: Mapping[str, VenueLink], *, ledger: Ledger, risk: Any,
                 risk_context: Callable[[Order], Any], account_id: str, actor: str = "router",
                 wait_s: float = 5.0, clock: Clock = WALL_CLOCK) -> None:
        if not venues:
            raise ValidationError("venues", {}, "give at least one venue")
        self.venues = dict(venues)
        self.ledger = ledger
        self.risk = risk
        self.risk_context = risk_context
        #: the order gateway's door: risk once, one risk.decision shape, the ledger's one pen
        self.door = OrderDoor(account_id, actor, risk, risk_context)
        self.account_id = account_id
        self.actor = actor
        self.wait_s = wait_s
        self.clock = clock
        st = ledger.state
        mine = [c for c, s in st.order_sessions.items() if s == account_id]
        self.seq = max((int(c.rsplit("-", 1)[1]) for c in mine if c.rsplit("-", 1)[1].isdigit()), default=0)

    def quotes(self) -> list[VenueQuote]:
        """Every venue's book now, as the router sees it."""
        out = []
        for name, v in self.venues.items():
            ob = v.exchange.fetch_order_book(v.instrument.symbol, v.depth)
            out.append(VenueQuote.from_ccxt_order_book(ob, v.instrument, venue=name))
        return out

    def route(self, side: Side, quantity: Decimal, *, limit_price: Decimal | None = None,
              max_rounds: int = 3) -> RouteResult:
        """Split ``quantity`` across the venues for the best price net of taker fees, send the
        children (IOC, through risk), re-route what did not fill; everything recorded."""
        plan_fn = planner(side, limit_price=limit_price)
        decisions: list[dict[str, Any]] = []

        def plan_and_record(qty: Decimal, quotes: Any) -> Any:
            plan = plan_fn(qty, quotes)
            decisions.append(plan.to_record())
            record = {"account_id": self.account_id, "round": len(decisions), **plan.to_record()}
            entry = RouteDecided.from_payload(record)  # the catalogue's shape, checked
            with self.ledger.transaction() as tx:
                tx.append(entry.KIND, entry.to_payload(), actor=self.actor, session_id=self.account_id)
            return plan

        result = execute_route(plan_and_record, self._send_child, self.quotes, quantity=quantity,
                               max_rounds=max_rounds, tag=f"route:{self.account_id}")
        done = RouteCompleted.from_payload({"account_id": self.account_id, **result.to_record()})
        with self.ledger.transaction() as tx:
            tx.append(done.KIND, done.to_payload(), actor=self.actor, session_id=self.account_id)
        return result

    def _send_child(self, venue_name: str, intent: OrderIntent) -> list[Fill]:
        link = self.venues[venue_name]
        intent = OrderIntent(link.instrument.id, intent.side, intent.quantity, intent.order_type,
                             intent.limit_price, intent.stop_price, intent.time_in_force, tag=intent.tag)
        self.seq += 1
        cid = client_order_id(self.account_id, self.seq)
        now = self.clock.now_ms()
        door = self.door
        # The gateway's door: one risk.decision shape, decision + order recorded together and
        # committed before anything is sent (a venue outlives us: write-ahead).
        decision = door.risk_check(Order(cid, intent, created_ts=now), now)
        with self.ledger.transaction() as tx:
            order = door.record(tx, Order(cid, intent, created_ts=now), decision, now)
        if not decision.approved:
            raise RiskRejected(f"child {cid} on {venue_name}: {decision.reason}")
        link.broker.submit(order, decision.decision_id)
        fills: list[Fill] = []
        deadline = time.monotonic() + self.wait_s
        while True:
            reports = link.broker.poll_reports()
            if reports:
                with self.ledger.transaction() as tx:
                    for r in reports:
                        door.record_report(tx, r)
                        if r.fill is not None and r.client_order_id == cid:
                            fills.append(r.fill)
            current = self.ledger.state.orders[cid]
            if current.status.is_terminal or time.monotonic() > deadline:
                return fills
            time.sleep(0.01)
