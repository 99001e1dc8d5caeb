"""Builders for tests and notebooks: drive a broker the way the session runtime does.

:class:`BrokerDriver` creates orders with deterministic client ids, applies ``SUBMIT``, hands
them to the broker with a (dummy) risk decision id, and applies every execution report to its
:class:`~lyra.core.orders.Order` through the core state machine, so an illegal report
sequence raises ``IllegalTransition`` at once.

>>> from lyra.core import ReplayClock
>>> from lyra.execution import PaperBroker
>>> clock = ReplayClock(0)
>>> d = BrokerDriver(PaperBroker.from_venue("binance", clock, {"USDT": 1000}), clock)
>>> _ = d.feed(book("binance:BTC/USDT", 1, [(100.0, 1.0)], [(101.0, 1.0)]))
>>> o = d.submit("binance:BTC/USDT", "buy", "0.1")
>>> _ = d.poll()
>>> o.status.value, o.avg_fill_price
('filled', Decimal('101.0'))
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from lyra.core.clock import ReplayClock
from lyra.core.enums import OrderEventType
from lyra.core.market import BookLevel, MarketEvent, OrderBookSnapshot
from lyra.core.orders import Order, OrderEvent, OrderIntent, client_order_id
from lyra.execution.broker import Broker, ExecutionReport


def book(instrument_id: str, ts: int, bids: list[tuple[float, float]],
         asks: list[tuple[float, float]]) -> OrderBookSnapshot:
    """An order-book snapshot from ``(price, size)`` pairs, best first."""
    return OrderBookSnapshot(instrument_id, ts, tuple(BookLevel(p, s) for p, s in bids),
                             tuple(BookLevel(p, s) for p, s in asks))


class BrokerDriver:
    """A minimal stand-in for the session: orders, submit, poll, apply (see the module doc)."""

    def __init__(self, broker: Broker, clock: ReplayClock, session: str = "t") -> None:
        self.broker = broker
        self.clock = clock
        self.session = session
        self.seq = 0
        self.orders: dict[str, Order] = {}
        self.reports: list[ExecutionReport] = []

    def submit(self, instrument_id: str, side: str, quantity: object, **intent: Any) -> Order:
        """Create, SUBMIT and send an order; ``intent`` holds the other OrderIntent fields."""
        self.seq += 1
        cid = client_order_id(self.session, self.seq)
        now = self.clock.now_ms()
        order = Order(cid, OrderIntent(instrument_id, side, Decimal(str(quantity)), **intent), now)  # type: ignore[arg-type]
        order.apply(OrderEvent(OrderEventType.SUBMIT, now))
        self.orders[cid] = order
        self.broker.submit(order, f"risk-{self.seq}")
        return order

    def cancel(self, order: Order) -> None:
        order.apply(OrderEvent(OrderEventType.REQUEST_CANCEL, self.clock.now_ms()))
        self.broker.cancel(order.client_order_id)

    def poll(self) -> list[ExecutionReport]:
        """Fetch reports and apply each to its order."""
        got = self.broker.poll_reports()
        for r in got:
            self.orders[r.client_order_id].apply(r.to_event())
        self.reports.extend(got)
        return got

    def at(self, ts: int) -> list[ExecutionReport]:
        """Move the clock to ``ts`` and poll."""
        self.clock.advance_to(ts)
        return self.poll()

    def feed(self, event: MarketEvent) -> list[ExecutionReport]:
        """Move the clock to the event (never back), hand it to the broker, poll."""
        if event.ts > self.clock.now_ms():
            self.clock.advance_to(event.ts)
        self.broker.on_market(event)
        return self.poll()

    @staticmethod
    def fills(order: Order) -> list[tuple[Decimal, Decimal]]:
        """``(quantity, price)`` of each fill the order has seen."""
        return [(e.fill.quantity, e.fill.price) for e in order.history if e.fill is not None]
