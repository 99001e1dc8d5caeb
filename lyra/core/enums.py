"""Enumerations of the trading domain. Each is defined once, here."""

from __future__ import annotations

from enum import StrEnum


class Side(StrEnum):
    """Direction of an order or fill."""

    BUY = "buy"  #: acquire the base asset
    SELL = "sell"  #: dispose of the base asset

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @property
    def opposite(self) -> Side:
        return Side.SELL if self is Side.BUY else Side.BUY


class OrderType(StrEnum):
    """How an order is priced."""

    MARKET = "market"  #: take whatever liquidity is there
    LIMIT = "limit"  #: at the limit price or better
    STOP_MARKET = "stop_market"  #: becomes a market order when the stop price trades
    STOP_LIMIT = "stop_limit"  #: becomes a limit order when the stop price trades


class TimeInForce(StrEnum):
    """How long an order may rest."""

    GTC = "gtc"  #: good till cancelled
    IOC = "ioc"  #: immediate or cancel: fill what you can now, cancel the rest
    FOK = "fok"  #: fill or kill: all now or nothing


class Liquidity(StrEnum):
    """Whether a fill added or removed liquidity (decides the fee rate)."""

    MAKER = "maker"  #: rested on the book
    TAKER = "taker"  #: crossed the spread


class OrderStatus(StrEnum):
    """Where an order is in its lifecycle (see ``lyra.core.orders.TRANSITIONS``)."""

    INITIALIZED = "initialized"  #: created, not yet through risk
    DENIED = "denied"  #: refused by pre-trade risk; never reached a broker
    SUBMITTED = "submitted"  #: sent to the broker, no answer yet
    ACCEPTED = "accepted"  #: the venue has it working
    PARTIALLY_FILLED = "partially_filled"  #: some quantity filled, the rest working
    PENDING_CANCEL = "pending_cancel"  #: cancel requested, not yet confirmed
    FILLED = "filled"  #: completely filled (terminal)
    CANCELLED = "cancelled"  #: cancelled by us or the venue (terminal)
    REJECTED = "rejected"  #: refused by the venue (terminal)
    EXPIRED = "expired"  #: time in force ran out (terminal)
    UNKNOWN = "unknown"  #: we cannot tell (a timeout); reconciliation must resolve it

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL

    @property
    def is_open(self) -> bool:
        return self in _OPEN


_TERMINAL = frozenset(
    {
        OrderStatus.DENIED,
        OrderStatus.FILLED,
        OrderStatus.CANCELLED,
        OrderStatus.REJECTED,
        OrderStatus.EXPIRED,
    }
)
_OPEN = frozenset(
    {
        OrderStatus.SUBMITTED,
        OrderStatus.ACCEPTED,
        OrderStatus.PARTIALLY_FILLED,
        OrderStatus.PENDING_CANCEL,
        OrderStatus.UNKNOWN,
    }
)


class OrderEventType(StrEnum):
    """What can happen to an order."""

    DENY = "deny"  #: pre-trade risk said no
    SUBMIT = "submit"  #: handed to the broker
    ACCEPT = "accept"  #: the venue acknowledged it
    REJECT = "reject"  #: the venue refused it
    PARTIAL_FILL = "partial_fill"  #: a fill that leaves quantity open
    FILL = "fill"  #: the fill that completes the order
    REQUEST_CANCEL = "request_cancel"  #: we asked to cancel
    CANCEL = "cancel"  #: the venue confirmed the cancel
    CANCEL_REJECT = "cancel_reject"  #: the cancel failed (too late, unknown)
    EXPIRE = "expire"  #: time in force ran out
    LOSE_TRACK = "lose_track"  #: a timeout left the order's state unknown
