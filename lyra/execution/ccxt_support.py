"""Pieces of :class:`~lyra.execution.ccxt_broker.CcxtBroker` that need no broker state: the
retry policy, the shadow record of a sent order, how ccxt's errors are classed, and small
parsers of what a venue answers."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

import ccxt

from lyra.core.enums import OrderEventType, OrderStatus
from lyra.core.orders import Order
from lyra.core.values import ZERO
from lyra.execution.broker import OrderReport

E = OrderEventType
S = OrderStatus

#: errors after which the request may or may not have been executed: ask before re-sending
_AMBIGUOUS: tuple[type[Exception], ...] = (ccxt.RequestTimeout, ccxt.ExchangeNotAvailable, ccxt.NetworkError,
                                           ccxt.BadResponse)
#: errors that say the venue did not execute the request (it was refused at the door)
_NEVER_RECEIVED = "the venue never received the order (not found by client id)"
_NOT_EXECUTED: tuple[type[Exception], ...] = (ccxt.RateLimitExceeded, ccxt.DDoSProtection, ccxt.InvalidNonce)


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff (only for retryable errors)."""

    attempts: int = 4  #: tries in all, the first included
    base_delay_s: float = 0.2
    max_delay_s: float = 5.0
    #: an order not found by client id this long after its send never reached the venue: the
    #: broker sets the venue's receive window to it (where the venue has one), so a delayed
    #: request older than this is refused by the venue and can never land after a re-send
    settle_s: float = 5.0

    def delay(self, attempt: int, retry_after_s: float | None = None) -> float:
        d: float = min(self.max_delay_s, self.base_delay_s * 2.0 ** attempt)
        if retry_after_s is not None:
            d = max(d, min(retry_after_s, self.max_delay_s))
        return d


@dataclass
class _Tracked:
    order: Order  # our shadow copy: every report is applied to it first
    symbol: str
    sent_at: float  # monotonic time of the first send
    fill_ids: set[str] = field(default_factory=set)
    venue_filled: Decimal = ZERO  # the most the venue has said is filled
    venue_avg: Decimal | None = None


def _unchanged(raw: Any, o: Order) -> bool:
    """A listed open order that says what we already know (cheap check before parsing)."""
    try:
        return (o.status in (S.ACCEPTED, S.PARTIALLY_FILLED, S.PENDING_CANCEL)
                and Decimal(repr(raw.get("filled") or 0)) == o.filled_quantity)
    except (ArithmeticError, TypeError, ValueError):
        return False


def _entry_fill(raw: Any, order: Any) -> Any:
    """A fill in the answer to the order's own entry took liquidity (the order was the
    aggressor) and has the order's side. Venues (Binance ``FULL``) leave both out there; filling
    them in from the order is not a guess."""
    if not isinstance(raw, dict):
        return raw
    out = dict(raw)
    if out.get("takerOrMaker") is None:
        out["takerOrMaker"] = "taker"
    if out.get("side") is None and isinstance(order, dict):
        out["side"] = order.get("side")
    return out


def _retry_after(exchange: Any) -> float | None:
    """The venue's ``Retry-After`` (seconds) from the last response, if it sent one."""
    headers = getattr(exchange, "last_response_headers", None) or {}
    value = next((v for k, v in headers.items() if str(k).lower() == "retry-after"), None)
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _with_client_id(rep: OrderReport, cid: str) -> OrderReport:
    return replace(rep, client_order_id=cid)
