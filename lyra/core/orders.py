"""Orders and their lifecycle.

An order changes only through :meth:`Order.apply`, which looks the (state, event) pair up in
:data:`TRANSITIONS`, raises :class:`~lyra.core.errors.IllegalTransition` if it is not there,
and records the event only after the transition succeeded.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

from lyra.core.enums import (
    Liquidity,
    OrderEventType,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from lyra.core.errors import IllegalTransition, InvalidOrder, ValidationError
from lyra.core.values import ZERO, to_decimal

S = OrderStatus
E = OrderEventType

#: The whole lifecycle: {(state, event): next state}. Anything else is illegal.
TRANSITIONS: dict[tuple[OrderStatus, OrderEventType], OrderStatus] = {
    (S.INITIALIZED, E.DENY): S.DENIED,
    (S.INITIALIZED, E.SUBMIT): S.SUBMITTED,
    (S.SUBMITTED, E.ACCEPT): S.ACCEPTED,
    (S.SUBMITTED, E.REJECT): S.REJECTED,
    # A marketable order can fill before its acknowledgement arrives.
    (S.SUBMITTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.SUBMITTED, E.FILL): S.FILLED,
    (S.SUBMITTED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    # IOC/FOK remainders are cancelled by the venue without an accept in between.
    (S.SUBMITTED, E.CANCEL): S.CANCELLED,
    (S.SUBMITTED, E.EXPIRE): S.EXPIRED,
    # A timeout: the venue may or may not have the order. Reconciliation resolves it.
    (S.SUBMITTED, E.LOSE_TRACK): S.UNKNOWN,
    (S.ACCEPTED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.ACCEPTED, E.FILL): S.FILLED,
    (S.ACCEPTED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.ACCEPTED, E.CANCEL): S.CANCELLED,  # cancelled by the venue (e.g. self-trade prevention)
    (S.ACCEPTED, E.EXPIRE): S.EXPIRED,
    (S.ACCEPTED, E.LOSE_TRACK): S.UNKNOWN,
    (S.PARTIALLY_FILLED, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.PARTIALLY_FILLED, E.FILL): S.FILLED,
    (S.PARTIALLY_FILLED, E.REQUEST_CANCEL): S.PENDING_CANCEL,
    (S.PARTIALLY_FILLED, E.CANCEL): S.CANCELLED,
    (S.PARTIALLY_FILLED, E.EXPIRE): S.EXPIRED,
    (S.PARTIALLY_FILLED, E.LOSE_TRACK): S.UNKNOWN,
    # Fills keep arriving while a cancel is in flight: the venue matched before it saw it.
    (S.PENDING_CANCEL, E.PARTIAL_FILL): S.PENDING_CANCEL,
    (S.PENDING_CANCEL, E.FILL): S.FILLED,
    (S.PENDING_CANCEL, E.CANCEL): S.CANCELLED,
    # The venue's acknowledgement of an order we asked to cancel before it answered: the
    # cancel is still on its way, so the order stays pending cancel.
    (S.PENDING_CANCEL, E.ACCEPT): S.PENDING_CANCEL,
    # The cancel failed (already gone, or too late): back to working. ``apply`` picks
    # PARTIALLY_FILLED instead of ACCEPTED when something has filled.
    (S.PENDING_CANCEL, E.CANCEL_REJECT): S.ACCEPTED,
    (S.PENDING_CANCEL, E.EXPIRE): S.EXPIRED,
    # A cancel requested before the venue answered the order, which it then refuses.
    (S.PENDING_CANCEL, E.REJECT): S.REJECTED,
    (S.PENDING_CANCEL, E.LOSE_TRACK): S.UNKNOWN,
    # Reconciliation tells us what really happened to an order we lost track of.
    (S.UNKNOWN, E.ACCEPT): S.ACCEPTED,
    (S.UNKNOWN, E.PARTIAL_FILL): S.PARTIALLY_FILLED,
    (S.UNKNOWN, E.FILL): S.FILLED,
    (S.UNKNOWN, E.CANCEL): S.CANCELLED,
    (S.UNKNOWN, E.REJECT): S.REJECTED,
    (S.UNKNOWN, E.EXPIRE): S.EXPIRED,
    # A fill executed before the cancel but reported after it. It is real money, so it is
    # recorded; the order stays cancelled unless the fill completes it.
    (S.CANCELLED, E.PARTIAL_FILL): S.CANCELLED,
    (S.CANCELLED, E.FILL): S.FILLED,
}


@dataclass(frozen=True, slots=True)
class Fill:
    """One execution of (part of) an order. Money fields are exact ``Decimal``."""

    fill_id: str
    client_order_id: str
    instrument_id: str
    side: Side
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    liquidity: Liquidity
    ts: int

    def __post_init__(self) -> None:
        q = to_decimal(self.quantity, "fill.quantity")
        p = to_decimal(self.price, "fill.price")
        f = to_decimal(self.fee, "fill.fee")
        if q <= 0:
            raise ValidationError("fill.quantity", q, "must be positive")
        if p <= 0:
            raise ValidationError("fill.price", p, "must be positive")
        object.__setattr__(self, "quantity", q)
        object.__setattr__(self, "price", p)
        object.__setattr__(self, "fee", f)
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "liquidity", Liquidity(self.liquidity))

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """What a strategy wants: an order before risk and before it has an id."""

    instrument_id: str
    side: Side
    quantity: Decimal
    order_type: OrderType = OrderType.MARKET
    limit_price: Decimal | None = None
    stop_price: Decimal | None = None
    time_in_force: TimeInForce = TimeInForce.GTC
    post_only: bool = False
    reduce_only: bool = False
    tag: str = ""

    def __post_init__(self) -> None:
        q = to_decimal(self.quantity, "quantity")
        if q <= 0:
            raise InvalidOrder("quantity", self.quantity, "must be positive")
        object.__setattr__(self, "quantity", q)
        object.__setattr__(self, "side", Side(self.side))
        object.__setattr__(self, "order_type", OrderType(self.order_type))
        object.__setattr__(self, "time_in_force", TimeInForce(self.time_in_force))
        ot = self.order_type
        if ot in (OrderType.LIMIT, OrderType.STOP_LIMIT):
            if self.limit_price is None:
                raise InvalidOrder("limit_price", None, f"required for {ot.value} orders")
            lp = to_decimal(self.limit_price, "limit_price")
            if lp <= 0:
                raise InvalidOrder("limit_price", lp, "must be positive")
            object.__setattr__(self, "limit_price", lp)
        elif self.limit_price is not None:
            raise InvalidOrder("limit_price", self.limit_price, f"not allowed for {ot.value} orders")
        if ot in (OrderType.STOP_MARKET, OrderType.STOP_LIMIT):
            if self.stop_price is None:
                raise InvalidOrder("stop_price", None, f"required for {ot.value} orders")
            sp = to_decimal(self.stop_price, "stop_price")
            if sp <= 0:
                raise InvalidOrder("stop_price", sp, "must be positive")
            object.__setattr__(self, "stop_price", sp)
        elif self.stop_price is not None:
            raise InvalidOrder("stop_price", self.stop_price, f"not allowed for {ot.value} orders")
        if self.post_only and ot is not OrderType.LIMIT:
            raise InvalidOrder("post_only", True, "only limit orders can be post-only")
        if self.post_only and self.time_in_force is not TimeInForce.GTC:
            raise InvalidOrder("post_only", True, "post-only orders must be GTC")


@dataclass(frozen=True, slots=True)
class OrderEvent:
    """Something that happened to an order, as recorded in its history."""

    type: OrderEventType
    ts: int
    fill: Fill | None = None
    reason: str = ""
    venue_order_id: str = ""


@dataclass(slots=True)
class Order:
    """An order with an id, its state and its history. Change it only through ``apply``."""

    client_order_id: str
    intent: OrderIntent
    created_ts: int
    status: OrderStatus = OrderStatus.INITIALIZED
    filled_quantity: Decimal = ZERO
    filled_notional: Decimal = ZERO
    fees: Decimal = ZERO
    venue_order_id: str = ""
    history: list[OrderEvent] = field(default_factory=list)

    @property
    def instrument_id(self) -> str:
        return self.intent.instrument_id

    @property
    def side(self) -> Side:
        return self.intent.side

    @property
    def quantity(self) -> Decimal:
        return self.intent.quantity

    @property
    def remaining(self) -> Decimal:
        return self.intent.quantity - self.filled_quantity

    @property
    def avg_fill_price(self) -> Decimal | None:
        if self.filled_quantity == 0:
            return None
        return self.filled_notional / self.filled_quantity

    def fill_event_type(self, quantity: Decimal) -> OrderEventType:
        """FILL if ``quantity`` completes the order, PARTIAL_FILL otherwise."""
        return E.FILL if quantity == self.remaining else E.PARTIAL_FILL

    def apply(self, event: OrderEvent) -> OrderStatus:
        """Move the order through its lifecycle; raise ``IllegalTransition`` if not allowed."""
        nxt = TRANSITIONS.get((self.status, event.type))
        if nxt is None:
            raise IllegalTransition(self.client_order_id, self.status.value, event.type.value)
        if event.type in (E.FILL, E.PARTIAL_FILL):
            f = event.fill
            if f is None:
                raise ValidationError("event.fill", None, f"{event.type.value} needs a fill")
            if f.client_order_id != self.client_order_id:
                raise ValidationError("fill.client_order_id", f.client_order_id, "not this order")
            if f.quantity > self.remaining:
                raise ValidationError(
                    "fill.quantity", f.quantity, f"overfills order {self.client_order_id}",
                    f"only {self.remaining} remains",
                )
            completes = f.quantity == self.remaining
            if completes != (event.type is E.FILL):
                raise ValidationError(
                    "event.type", event.type.value,
                    "FILL must complete the order and PARTIAL_FILL must not",
                )
            self.filled_quantity += f.quantity
            self.filled_notional += f.quantity * f.price
            self.fees += f.fee
        elif event.type is E.CANCEL_REJECT and self.filled_quantity > 0:
            nxt = S.PARTIALLY_FILLED
        if event.venue_order_id:
            self.venue_order_id = event.venue_order_id
        self.status = nxt
        self.history.append(event)
        return nxt


def client_order_id(session_id: str, sequence: int) -> str:
    """The deterministic client order id of the ``sequence``-th order of a session.

    Deterministic ids let a restarted session recognise its own orders at the venue.
    """
    if not session_id or not session_id.replace("-", "").replace("_", "").isalnum():
        raise ValidationError("session_id", session_id, "use letters, digits, '-' and '_'")
    if sequence < 0:
        raise ValidationError("sequence", sequence, "must not be negative")
    return f"{session_id}-{sequence:08d}"
