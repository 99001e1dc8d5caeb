"""Order, fill and risk-decision events: ``order.created``, one type per ``order.<event>``
transition (the kinds :class:`~lyra.core.enums.OrderEventType` names), and ``risk.decision``.

These are the entries the projections (orders, fills, positions) are rebuilt from, so each
converts to and from the domain objects: :meth:`OrderCreated.from_order` /
:meth:`OrderCreated.to_order`, :func:`order_transition` / :meth:`OrderTransition.to_event`,
:meth:`FillRecord.from_fill` / :meth:`FillRecord.to_fill`.

Their ``to_payload`` is written out by hand (they are on every order's path); a unit test
checks each against the generic one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from types import MappingProxyType
from typing import Any, ClassVar

from lyra.audit._payload import Event, Payload, optional
from lyra.core.enums import Liquidity, OrderEventType, OrderType, Side, TimeInForce
from lyra.core.errors import ValidationError
from lyra.core.orders import Fill, Order, OrderEvent, OrderIntent

E = OrderEventType


def _dec(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


@dataclass(frozen=True, slots=True, kw_only=True)
class FillRecord(Payload):
    """One execution, as the ``fill`` of an ``order.fill``/``order.partial_fill`` entry."""

    fill_id: str
    client_order_id: str
    instrument_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts: int  #: ms UTC

    @classmethod
    def from_fill(cls, f: Fill) -> FillRecord:
        return cls(fill_id=f.fill_id, client_order_id=f.client_order_id, instrument_id=f.instrument_id,
                   side=f.side, quantity=f.quantity, price=f.price, fee=f.fee, fee_currency=f.fee_currency,
                   liquidity=f.liquidity, ts=f.ts)

    def to_fill(self) -> Fill:
        return Fill(self.fill_id, self.client_order_id, self.instrument_id, self.side, self.quantity,
                    self.price, self.fee, self.fee_currency, self.liquidity, self.ts)

    def to_payload(self) -> dict[str, Any]:
        return {"fill_id": self.fill_id, "client_order_id": self.client_order_id,
                "instrument_id": self.instrument_id, "side": self.side.value, "quantity": str(self.quantity),
                "price": str(self.price), "fee": str(self.fee), "fee_currency": self.fee_currency,
                "liquidity": self.liquidity.value, "ts": self.ts}


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCreated(Event):
    """``order.created``: a new order (state ``initialized``), before risk's verdict is applied."""

    KIND: ClassVar[str] = "order.created"
    client_order_id: str
    instrument_id: str
    side: Side
    order_type: OrderType
    quantity: Decimal
    limit_price: Decimal | None
    stop_price: Decimal | None
    time_in_force: TimeInForce
    post_only: bool
    reduce_only: bool
    tag: str  #: who or what made it ("manual:<user>", "route:<account>", a strategy's tag...)
    created_ts: int  #: ms UTC

    @classmethod
    def from_order(cls, order: Order) -> OrderCreated:
        i = order.intent
        return cls(client_order_id=order.client_order_id, instrument_id=i.instrument_id, side=i.side,
                   order_type=i.order_type, quantity=i.quantity, limit_price=i.limit_price,
                   stop_price=i.stop_price, time_in_force=i.time_in_force, post_only=i.post_only,
                   reduce_only=i.reduce_only, tag=i.tag, created_ts=order.created_ts)

    def to_intent(self) -> OrderIntent:
        """The order's intent (validated again: raises ``InvalidOrder``)."""
        return OrderIntent(self.instrument_id, self.side, self.quantity, self.order_type, self.limit_price,
                           self.stop_price, self.time_in_force, self.post_only, self.reduce_only, self.tag)

    def to_order(self) -> Order:
        """A fresh :class:`~lyra.core.orders.Order` in state ``initialized``."""
        return Order(self.client_order_id, self.to_intent(), self.created_ts)

    def to_payload(self) -> dict[str, Any]:
        return {"client_order_id": self.client_order_id, "instrument_id": self.instrument_id,
                "side": self.side.value, "order_type": self.order_type.value, "quantity": str(self.quantity),
                "limit_price": _dec(self.limit_price), "stop_price": _dec(self.stop_price),
                "time_in_force": self.time_in_force.value, "post_only": self.post_only,
                "reduce_only": self.reduce_only, "tag": self.tag, "created_ts": self.created_ts}


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderTransition(Event):
    """An ``order.<event>`` entry: something happened to an order. ``reason`` and
    ``venue_order_id`` are left out of the payload when empty; only the two fill kinds carry
    a ``fill``. One subclass per :class:`~lyra.core.enums.OrderEventType`."""

    EVENT: ClassVar[OrderEventType]
    client_order_id: str
    ts: int  #: ms UTC
    reason: str = optional("")
    venue_order_id: str = optional("")

    @property
    def fill_record(self) -> FillRecord | None:
        """The fill of a fill kind, else None."""
        return None

    def to_event(self) -> OrderEvent:
        """The :class:`~lyra.core.orders.OrderEvent` to ``apply`` to the order."""
        f = self.fill_record
        return OrderEvent(self.EVENT, self.ts, None if f is None else f.to_fill(), self.reason,
                          self.venue_order_id)

    def to_payload(self) -> dict[str, Any]:
        d: dict[str, Any] = {"client_order_id": self.client_order_id, "ts": self.ts}
        if self.reason:
            d["reason"] = self.reason
        if self.venue_order_id:
            d["venue_order_id"] = self.venue_order_id
        f = self.fill_record
        if f is not None:
            d["fill"] = f.to_payload()
        return d


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderDenied(OrderTransition):
    """``order.deny``: pre-trade risk said no (``reason``); the order never reached a broker."""

    KIND = "order.deny"
    EVENT = E.DENY


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderSubmitted(OrderTransition):
    """``order.submit``: recorded as handed to the broker (after an approving ``risk.decision``)."""

    KIND = "order.submit"
    EVENT = E.SUBMIT


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderAccepted(OrderTransition):
    """``order.accept``: the venue acknowledged the order."""

    KIND = "order.accept"
    EVENT = E.ACCEPT


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderRejected(OrderTransition):
    """``order.reject``: the venue refused the order (``reason``)."""

    KIND = "order.reject"
    EVENT = E.REJECT


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderPartiallyFilled(OrderTransition):
    """``order.partial_fill``: a fill that leaves quantity open."""

    KIND = "order.partial_fill"
    EVENT = E.PARTIAL_FILL
    fill: FillRecord

    @property
    def fill_record(self) -> FillRecord | None:
        return self.fill


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderFilled(OrderTransition):
    """``order.fill``: the fill that completes the order."""

    KIND = "order.fill"
    EVENT = E.FILL
    fill: FillRecord

    @property
    def fill_record(self) -> FillRecord | None:
        return self.fill


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelRequested(OrderTransition):
    """``order.request_cancel``: we asked for a cancel (``reason``: who and why)."""

    KIND = "order.request_cancel"
    EVENT = E.REQUEST_CANCEL


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelled(OrderTransition):
    """``order.cancel``: the venue confirmed the cancel (or cancelled on its own)."""

    KIND = "order.cancel"
    EVENT = E.CANCEL


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderCancelRejected(OrderTransition):
    """``order.cancel_reject``: the cancel failed (too late, unknown at the venue)."""

    KIND = "order.cancel_reject"
    EVENT = E.CANCEL_REJECT


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderExpired(OrderTransition):
    """``order.expire``: the time in force ran out."""

    KIND = "order.expire"
    EVENT = E.EXPIRE


@dataclass(frozen=True, slots=True, kw_only=True)
class OrderTrackingLost(OrderTransition):
    """``order.lose_track``: a timeout left the order's state unknown until reconciled."""

    KIND = "order.lose_track"
    EVENT = E.LOSE_TRACK


#: The transition type of each order event.
ORDER_TRANSITIONS: Mapping[OrderEventType, type[OrderTransition]] = MappingProxyType({
    c.EVENT: c for c in (OrderDenied, OrderSubmitted, OrderAccepted, OrderRejected, OrderPartiallyFilled,
                         OrderFilled, OrderCancelRequested, OrderCancelled, OrderCancelRejected, OrderExpired,
                         OrderTrackingLost)
})
_WITH_FILL = (E.FILL, E.PARTIAL_FILL)


def order_transition(client_order_id: str, event: OrderEvent) -> OrderTransition:
    """The log entry of ``event`` happening to order ``client_order_id``."""
    cls = ORDER_TRANSITIONS[event.type]
    if event.type in _WITH_FILL:
        if event.fill is None:
            raise ValidationError("event.fill", None, f"{event.type.value} needs a fill")
        return cls(client_order_id=client_order_id, ts=event.ts, reason=event.reason,  # type: ignore[call-arg]
                   venue_order_id=event.venue_order_id, fill=FillRecord.from_fill(event.fill))
    if event.fill is not None:
        raise ValidationError("event.fill", event.fill.fill_id, f"a {event.type.value} event carries no fill")
    return cls(client_order_id=client_order_id, ts=event.ts, reason=event.reason,
               venue_order_id=event.venue_order_id)


@dataclass(frozen=True, slots=True, kw_only=True)
class RiskDecided(Event):
    """``risk.decision``: pre-trade risk's verdict on one order, recorded with (and before) its
    ``order.created``.

    Three writers record it today, in three shapes; this type is their union (fields absent
    from a shape read as None and are left out again when writing):

    * the session runtime (``lyra.session.runtime``: strategies, execution-algorithm children,
      operator tickets) and ``lyra.testing.serving``: ``decision_id``, ``client_order_id``,
      ``approved``, ``reason``, ``check``, ``quantity``;
    * the dashboards' manual desk (``lyra.readside.actions``, rebalances) and the smart-order
      router's desk (``lyra.execution.routed_desk``) with a real ``RiskEngine``: its
      ``RiskDecision.to_payload()`` -- the six above plus ``account_id``, ``instrument_id``,
      ``requested_quantity``, ``state`` and ``ts``;
    * the router's desk with a risk object that has no ``to_payload``: only
      ``decision_id``, ``client_order_id``, ``approved``, ``reason``.

    The order gateway is to make them one shape (the engine's).
    """

    KIND: ClassVar[str] = "risk.decision"
    decision_id: str  #: "rd-" + client_order_id
    client_order_id: str
    approved: bool
    reason: str  #: why it was denied or resized; "" for a plain approval
    check: str | None = optional()  #: the check that decided ("" when all passed unchanged)
    #: approved: what may be sent; denied: the order's
    quantity: Decimal | None = optional()  # noqa: RUF009 - a field specifier, not a shared value
    account_id: str | None = optional()
    instrument_id: str | None = optional()
    requested_quantity: Decimal | None = optional()  # noqa: RUF009 - as above
    state: str | None = optional()  #: the trading state then: active, reducing, halted
    ts: int | None = optional()  #: ms UTC, the session's clock

    @property
    def resized(self) -> bool:
        """Approved for less than was asked (known only where the shape says what was asked)."""
        rq = self.requested_quantity
        return self.approved and rq is not None and self.quantity is not None and self.quantity != rq

    def to_payload(self) -> dict[str, Any]:
        d: dict[str, Any] = {"decision_id": self.decision_id, "client_order_id": self.client_order_id,
                             "approved": self.approved, "reason": self.reason}
        for k in ("check", "account_id", "instrument_id", "state", "ts"):
            v = getattr(self, k)
            if v is not None:
                d[k] = v
        if self.quantity is not None:
            d["quantity"] = str(self.quantity)
        if self.requested_quantity is not None:
            d["requested_quantity"] = str(self.requested_quantity)
        return d
