"""What each venue's raw answers mean, as data, and the strict number parser for them.

ccxt's unified order structure loses information Lyra needs. Its ``status`` folds several
venue states into one (Bybit's ``PartiallyFilledCanceled`` becomes ``closed``, Coinbase's
``EXPIRED`` and ``FAILED`` become ``canceled``), and its ``clientOrderId`` is not always ours
(on a Binance cancel it is the id of the *cancel request*; on Kraken it falls back to the
integer ``userref``). The raw venue payload is still there, in ccxt's ``info``. This module
says, per venue, where to look in it and what each raw value means. Code reads
:data:`VENUE_SHAPES`; it never tests a venue's name.

A raw value that is not in a table is not guessed at: the mappers in
:mod:`lyra.execution.venue_reports` raise :class:`UnknownVenueShape`, so a new venue state
is added here on purpose, with a test, rather than slipping through as something else.

>>> parse_decimal("1e-05", "amount", "binance order 1")
Decimal('0.00001')
>>> VENUE_SHAPES["bybit"].statuses["PartiallyFilledCanceled"]
'canceled'
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from lyra.core.enums import TimeInForce
from lyra.core.errors import ValidationError

#: ccxt's unified order statuses. They double as the "families" the raw tables map into:
#: ``open`` working at the venue, ``closed`` done (completely filled), ``canceled``,
#: ``expired`` (time in force ran out), ``rejected`` (the venue refused it).
FAMILIES: frozenset[str] = frozenset({"open", "closed", "canceled", "expired", "rejected"})


class UnknownVenueShape(ValidationError):
    """A venue answer we do not understand: an unknown status or order kind, a missing
    required field, numbers that contradict each other. Never guessed at.

    ``venue`` names the venue, ``what`` says what is wrong (and where), ``raw`` is the payload
    as received (ccxt's structure, its ``info`` inside), to log and to add to a test.
    """

    def __init__(self, venue: str, what: str, raw: Any = None) -> None:
        super().__init__(f"{venue} response", _short(raw), what)
        self.venue = venue
        self.what = what
        self.raw = raw
        self.args = (what if what.startswith(f"{venue} ") else f"{venue}: {what}",)


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 200 else text[:197] + "..."


def parse_decimal(value: object, field: str, where: str) -> Decimal:
    """A venue number as an exact ``Decimal``.

    Accepts ``int``, ``Decimal``, ``str`` (exponents too: ``"1e-05"``, ``"1.5E+3"``) and
    ``float`` (through its shortest ``repr``, so ``0.1`` is ``Decimal("0.1")``). Refuses
    ``None``, ``""``, booleans, NaN, infinities, ``"1_000"`` and anything else with a
    :class:`~lyra.core.errors.ValidationError` naming ``where`` and ``field``, e.g.
    ``"binance order 123: amount"``. Positive exponents are written out (``"1.5E+3"`` gives
    ``Decimal("1500")``) so the value prints and compares as a plain number.
    """
    name = f"{where}: {field}" if where else field
    if value is None:
        raise ValidationError(name, value, "missing")
    if isinstance(value, bool):
        raise ValidationError(name, value, "a boolean is not a number")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(name, value, "not a finite number")
        d = Decimal(repr(value))
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValidationError(name, value, "empty")
        if "_" in text:  # Decimal() accepts "1_000"; no venue writes numbers that way
            raise ValidationError(name, value, "not a number")
        try:
            d = Decimal(text)
        except InvalidOperation:
            raise ValidationError(name, value, "not a number") from None
    else:
        raise ValidationError(name, value, f"cannot read a {type(value).__name__} as a number")
    if not d.is_finite():
        raise ValidationError(name, value, "not a finite number")
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        d = d.quantize(Decimal(1))
    return d


def parse_optional_decimal(value: object, field: str, where: str) -> Decimal | None:
    """Like :func:`parse_decimal`, but ``None`` and ``""`` (a field the venue left empty)
    give ``None``. Everything else is as strict."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_decimal(value, field, where)


@dataclass(frozen=True, slots=True)
class VenueShape:
    """Where one venue's raw payload (ccxt's ``info``) says what ccxt's unified fields lose."""

    #: raw keys holding the order status (REST and websocket spellings); the first present wins.
    #: In every key list a dot reads a nested object (``descr.ordertype``).
    status_fields: tuple[str, ...]
    #: raw status -> family (one of :data:`FAMILIES`); anything else is an unknown shape
    statuses: Mapping[str, str]
    #: raw keys holding our client order id on orders and trades, most authoritative first
    client_id_fields: tuple[str, ...]
    #: whether ccxt's unified ``clientOrderId`` may be used when no raw field has one
    trust_ccxt_client_id: bool = True
    #: raw keys naming the order kind (``type``, ``stopOrderType``, ``descr.ordertype``)
    kind_fields: tuple[str, ...] = ()
    #: raw kinds Lyra has no order type for (take-profit, trailing stop, OCO, algos);
    #: ccxt flattens several of them into ``market``/``limit``
    unsupported_kinds: frozenset[str] = frozenset()
    #: raw kinds that are stop orders: they must come with a trigger price
    stop_kinds: frozenset[str] = frozenset()
    #: raw keys explaining a cancel, reject or expiry, joined in this order
    reason_fields: tuple[str, ...] = ()
    #: reason values that explain nothing
    reason_placeholders: frozenset[str] = frozenset()
    #: a fixed reason for raw statuses that carry one (self-trade prevention, MMP...)
    status_reasons: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    #: the currency of an order's total fee when ccxt leaves it out: ``"quote"`` where the
    #: venue's API documents order fees in the quote currency, ``None`` to leave it unknown
    order_fee_currency: str | None = None
    #: what a missing time in force means on this venue (its documented default)
    default_time_in_force: TimeInForce = TimeInForce.GTC


def _ro(d: dict[str, str]) -> Mapping[str, str]:
    return MappingProxyType(d)


VENUE_SHAPES: Mapping[str, VenueShape] = MappingProxyType({
    # REST order: status, type, clientOrderId / origClientOrderId (cancel answers).
    # Websocket executionReport: X (status), o (type), c (client id), C (original client id
    # on cancels). On a cancel, clientOrderId / c is the id of the cancel request itself.
    "binance": VenueShape(
        status_fields=("status", "X"),
        statuses=_ro({
            "NEW": "open",
            "PENDING_NEW": "open",
            "PARTIALLY_FILLED": "open",
            # a cancel in flight is still a working order (fills may come); the session's
            # own REQUEST_CANCEL is what puts Lyra's order in PENDING_CANCEL
            "PENDING_CANCEL": "open",
            "FILLED": "closed",
            "CANCELED": "canceled",
            "REJECTED": "rejected",
            "EXPIRED": "expired",
            # expired by self-trade prevention: the venue cancelled it, no time in force ran out
            "EXPIRED_IN_MATCH": "canceled",
        }),
        client_id_fields=("origClientOrderId", "C", "clientOrderId", "c"),
        kind_fields=("type", "o", "origType"),
        unsupported_kinds=frozenset({
            "TAKE_PROFIT", "TAKE_PROFIT_LIMIT", "TAKE_PROFIT_MARKET", "TRAILING_STOP_MARKET",
        }),
        stop_kinds=frozenset({"STOP_LOSS", "STOP_LOSS_LIMIT", "STOP", "STOP_MARKET"}),
        status_reasons=_ro({"EXPIRED_IN_MATCH": "self-trade prevention"}),
    ),
    # V5 order: orderStatus, orderType + stopOrderType, orderLinkId, rejectReason, cancelType.
    "bybit": VenueShape(
        status_fields=("orderStatus",),
        statuses=_ro({
            "Created": "open",
            "New": "open",
            "PartiallyFilled": "open",
            "Untriggered": "open",  # a conditional order waiting for its trigger
            "Triggered": "open",
            "Active": "open",
            "PendingCancel": "open",
            "Filled": "closed",
            "Cancelled": "canceled",
            "PartiallyFilledCanceled": "canceled",  # ccxt says "closed"
            "Deactivated": "canceled",  # a conditional order cancelled before it triggered
            "Rejected": "rejected",
        }),
        client_id_fields=("orderLinkId",),
        kind_fields=("stopOrderType",),
        unsupported_kinds=frozenset({
            "TakeProfit", "PartialTakeProfit", "TrailingStop", "tpslOrder", "OcoOrder",
            "MmRateClose", "BidirectionalTpslOrder",
        }),
        stop_kinds=frozenset({"Stop", "StopLoss", "PartialStopLoss"}),
        reason_fields=("rejectReason", "cancelType"),
        reason_placeholders=frozenset({"", "EC_NoError", "UNKNOWN"}),
        status_reasons=_ro({"Deactivated": "conditional order deactivated"}),
    ),
    # V5 order: state, ordType, clOrdId, cancelSource / cancelSourceReason.
    "okx": VenueShape(
        status_fields=("state",),
        statuses=_ro({
            "live": "open",
            "partially_filled": "open",
            "filled": "closed",
            "canceled": "canceled",
            "mmp_canceled": "canceled",
        }),
        client_id_fields=("clOrdId",),
        kind_fields=("ordType",),
        unsupported_kinds=frozenset({
            "conditional", "oco", "trigger", "move_order_stop", "iceberg", "twap", "chase",
            "optimal_limit_ioc", "mmp", "mmp_and_post_only", "elp",
        }),
        reason_fields=("cancelSourceReason",),
        reason_placeholders=frozenset({""}),
        status_reasons=_ro({"mmp_canceled": "market maker protection"}),
    ),
    # REST QueryOrders/OpenOrders/ClosedOrders: status, descr.ordertype (read through ccxt),
    # cl_ord_id, reason. Websocket v2 executions: order_status. ``userref`` is an integer tag,
    # not a client order id (ccxt falls back to it, and "0" means none), so ccxt's
    # clientOrderId is not used.
    "kraken": VenueShape(
        status_fields=("status", "order_status"),
        statuses=_ro({
            "pending": "open",
            "pending_new": "open",
            "new": "open",
            "open": "open",
            "partially_filled": "open",
            "closed": "closed",
            "filled": "closed",
            "canceled": "canceled",
            "expired": "expired",
        }),
        client_id_fields=("cl_ord_id",),
        trust_ccxt_client_id=False,
        kind_fields=("descr.ordertype", "order_type"),
        unsupported_kinds=frozenset({
            "take-profit", "take-profit-limit", "trailing-stop", "trailing-stop-limit",
            "settle-position", "iceberg",
        }),
        stop_kinds=frozenset({"stop-loss", "stop-loss-limit"}),
        reason_fields=("reason",),
        reason_placeholders=frozenset({""}),
        # Kraken documents an order's ``fee`` as "total fee (quote currency)"
        order_fee_currency="quote",
    ),
    # Advanced Trade v3 order: status, order_type, client_order_id, reject_reason/messages.
    "coinbase": VenueShape(
        status_fields=("status",),
        statuses=_ro({
            "PENDING": "open",
            "QUEUED": "open",
            "OPEN": "open",
            "CANCEL_QUEUED": "open",
            "FILLED": "closed",
            "CANCELLED": "canceled",
            "EXPIRED": "expired",  # ccxt says "canceled"
            "FAILED": "rejected",  # ccxt says "canceled"
        }),
        client_id_fields=("client_order_id",),
        kind_fields=("order_type",),
        unsupported_kinds=frozenset({"BRACKET", "TAKE_PROFIT_STOP_LOSS", "TWAP", "SCALED"}),
        stop_kinds=frozenset({"STOP", "STOP_LIMIT"}),
        reason_fields=("reject_reason", "reject_message", "cancel_message"),
        reason_placeholders=frozenset({"", "REJECT_REASON_UNSPECIFIED", "UNKNOWN_REJECT_REASON"}),
        # Advanced Trade charges and reports order fees (total_fees) in the quote currency
        order_fee_currency="quote",
    ),
})
"""Per-venue raw-payload knowledge, keyed by Lyra venue name (the ccxt id)."""


#: Where our tables knowingly differ from ccxt's own ``parse_order_status`` (tested):
#: (venue, raw status) -> what ccxt says.
CCXT_STATUS_DIFFERENCES: Mapping[tuple[str, str], str | None] = MappingProxyType({
    ("binance", "PENDING_NEW"): "PENDING_NEW",  # ccxt leaves it unmapped
    ("binance", "PENDING_CANCEL"): "canceling",  # not a unified status
    ("binance", "EXPIRED_IN_MATCH"): "expired",
    ("bybit", "PartiallyFilledCanceled"): "closed",
    ("coinbase", "PENDING"): "PENDING",
    ("coinbase", "QUEUED"): "QUEUED",
    ("coinbase", "CANCEL_QUEUED"): "CANCEL_QUEUED",
    ("coinbase", "EXPIRED"): "canceled",
    ("coinbase", "FAILED"): "canceled",
})


def _symbol(instrument: str) -> str:
    head, sep, rest = instrument.partition(":")
    return rest if sep and "/" not in head else instrument


def accounting_currency(instrument: str) -> str:
    """The currency an instrument's money is counted in: the quote for spot, the settlement
    currency for derivatives. Takes an instrument id (``"okx:BTC/USDT:USDT"``) or a symbol.

    >>> accounting_currency("binance:BTC/USDT"), accounting_currency("okx:BTC/USD:BTC")
    ('USDT', 'BTC')
    """
    quote, _, settle = _symbol(instrument).partition("/")[2].partition(":")
    return settle or quote


def is_derivative(instrument: str) -> bool:
    """True for a ccxt derivative symbol (``BASE/QUOTE:SETTLE``): amounts are contracts."""
    return ":" in _symbol(instrument)


def raw_field(info: Any, key: str) -> Any:
    """``info[key]``, following dots into nested objects; ``None`` when absent."""
    value = info
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def first_raw(info: Any, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that ``info`` holds as a non-empty value, as a string."""
    for key in keys:
        value = raw_field(info, key)
        if value is not None and not isinstance(value, (dict, list)) and str(value).strip():
            return str(value).strip()
    return None


def venue_shape(venue: str) -> VenueShape:
    """The raw-payload tables of ``venue``; :class:`UnknownVenueShape` for a venue without any."""
    try:
        return VENUE_SHAPES[venue]
    except KeyError:
        raise UnknownVenueShape(
            venue, f"no raw-payload tables for this venue (known: {', '.join(sorted(VENUE_SHAPES))})"
        ) from None
