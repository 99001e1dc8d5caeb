"""The broker protocol: what a session may ask of a venue, paper or live.

The session never branches on the mode: :class:`~lyra.execution.paper.PaperBroker` and the
live ccxt broker both satisfy :class:`Broker`. The contract:

1. The session creates an :class:`~lyra.core.orders.Order`, gets a risk decision, applies
   ``SUBMIT`` to the order (recording it in its log), then calls ``submit(order, decision_id)``.
   A broker refuses an order without a decision id (:class:`MissingRiskDecision`): this is
   where "nothing bypasses risk" is enforced.
2. Everything the venue does to the order comes back as :class:`ExecutionReport` s from
   ``poll_reports()``, in order. The session applies each one to its order with
   ``order.apply(report.to_event())``; every sequence a broker emits is legal under
   :data:`lyra.core.orders.TRANSITIONS` as long as the session applies ``REQUEST_CANCEL``
   before calling ``cancel`` and only for orders it has seen accepted.
3. After a restart, ``get_order(client_order_id)``, ``open_orders()`` and
   ``fills_since(ts)`` tell the session what the venue knows, so it neither re-sends nor
   forgets an order.

What a venue supports is data (:class:`BrokerCapabilities`), not a test of its name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Protocol, runtime_checkable

from lyra.core.enums import OrderEventType, OrderStatus, OrderType, Side, TimeInForce
from lyra.core.errors import InvalidOrder, RiskRejected, ValidationError
from lyra.core.market import MarketEvent
from lyra.core.orders import Fill, Order, OrderEvent, OrderIntent
from lyra.core.values import ZERO


class MissingRiskDecision(RiskRejected):
    """An order reached a broker without a recorded risk decision id."""

    def __init__(self, client_order_id: str) -> None:
        super().__init__(
            f"order {client_order_id}: no risk decision id; every order must pass pre-trade risk "
            "and carry the id of the recorded decision"
        )


class DuplicateOrder(InvalidOrder):
    """A client order id the broker has already seen (never send an order twice)."""


class UnknownOrder(ValidationError):
    """A client order id the broker has never seen (e.g. a cancel of an unknown id)."""


@dataclass(frozen=True, slots=True)
class ExecutionReport:
    """Something the venue did to an order, as the session receives it.

    ``type`` is one of ACCEPT, REJECT, PARTIAL_FILL, FILL, CANCEL, CANCEL_REJECT, EXPIRE.
    ``ts`` is the venue's time of the event (ms UTC); ``fill`` is set for fills;
    ``reason`` says why for rejects, cancels and expiries.
    """

    client_order_id: str
    type: OrderEventType
    ts: int
    fill: Fill | None = None
    reason: str = ""
    venue_order_id: str = ""

    def to_event(self) -> OrderEvent:
        """The :class:`OrderEvent` to ``apply`` to the session's order."""
        return OrderEvent(self.type, self.ts, self.fill, self.reason, self.venue_order_id)


@dataclass(frozen=True, slots=True)
class OrderReport:
    """The venue's view of one order (for queries and reconciliation)."""

    client_order_id: str
    venue_order_id: str
    instrument_id: str
    side: Side
    order_type: OrderType
    time_in_force: TimeInForce
    quantity: Decimal
    filled_quantity: Decimal
    avg_price: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    status: OrderStatus
    fees: Decimal
    decision_id: str
    ts: int
    reason: str = ""

    @property
    def remaining(self) -> Decimal:
        return self.quantity - self.filled_quantity


@dataclass(frozen=True, slots=True)
class Balance:
    """One asset's balance: ``free`` to spend, ``locked`` by open orders."""

    asset: str
    free: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked


@dataclass(frozen=True, slots=True)
class BrokerCapabilities:
    """What a broker (venue) supports, as data. Ask :meth:`unsupported` instead of the venue name."""

    order_types: frozenset[OrderType] = frozenset(OrderType)
    time_in_force: frozenset[TimeInForce] = frozenset(TimeInForce)
    post_only: bool = True
    reduce_only: bool = True
    #: ``fills_since`` can be answered (needed for reconciliation after a restart)
    fill_history: bool = True

    def unsupported(self, intent: OrderIntent) -> str:
        """Why this broker cannot take ``intent``, or ``""`` if it can."""
        if intent.order_type not in self.order_types:
            return f"order type {intent.order_type.value} is not supported"
        if intent.time_in_force not in self.time_in_force:
            return f"time in force {intent.time_in_force.value} is not supported"
        if intent.post_only and not self.post_only:
            return "post-only orders are not supported"
        if intent.reduce_only and not self.reduce_only:
            return "reduce-only orders are not supported"
        return ""


@runtime_checkable
class Broker(Protocol):
    """What a session needs from a venue. Paper and live brokers both implement it."""

    @property
    def capabilities(self) -> BrokerCapabilities: ...

    def submit(self, order: Order, decision_id: str) -> None:
        """Send ``order`` (already in state SUBMITTED). Raises :class:`MissingRiskDecision`
        without a decision id and :class:`DuplicateOrder` for a client id already sent.
        Everything else (bad precision, funds, ...) comes back as a REJECT report."""
        ...

    def cancel(self, client_order_id: str) -> None:
        """Ask the venue to cancel. Raises :class:`UnknownOrder` for an id never submitted.
        The answer (CANCEL, or nothing if the order finished first) comes as a report."""
        ...

    def open_orders(self) -> list[OrderReport]:
        """Orders the venue has working (or that are on their way to it)."""
        ...

    def get_order(self, client_order_id: str) -> OrderReport | None:
        """The venue's view of one order by client id, ``None`` if it never saw it."""
        ...

    def fills_since(self, since_ts: int) -> list[Fill]:
        """Fills with ``ts >= since_ts``, oldest first (inclusive, like ccxt's ``since``;
        deduplicate by ``fill_id``)."""
        ...

    def balances(self) -> Mapping[str, Balance]:
        """Balances per asset."""
        ...

    def poll_reports(self) -> list[ExecutionReport]:
        """Reports that have reached us since the last poll, in the order they happened."""
        ...

    def on_market(self, event: MarketEvent) -> None:
        """Market data as the session sees it (the paper broker matches on it; a live
        broker may ignore it)."""
        ...
