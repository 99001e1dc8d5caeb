"""ccxt's unified answers as Lyra's domain types, strictly.

Everything a live broker learns from a venue passes through here: orders become
:class:`~lyra.execution.broker.OrderReport`, trades become :class:`~lyra.core.orders.Fill`,
balances become :class:`~lyra.execution.broker.Balance`. What the venue says is checked, not
trusted: an unknown status or order kind, a missing field, a number that is not a number or
numbers that contradict each other raise :class:`UnknownVenueShape` with the raw payload
attached. Nothing is guessed. What each venue's raw payload means is data, in
the venue registry (:attr:`lyra.venues.Venue.shape`).

The rules, in one place:

- **Status.** The venue's raw status (in ccxt's ``info``) is read first through the venue's
  table, because ccxt's unified ``status`` folds distinct states together (Bybit
  ``PartiallyFilledCanceled`` is ``closed`` to ccxt, Coinbase ``EXPIRED`` and ``FAILED`` are
  ``canceled``). Where the payload has no raw status (a shape the table does not cover),
  ccxt's unified ``status`` is used. Either way the family combines with the filled quantity:
  ``open`` + nothing filled is ACCEPTED, ``open`` + some filled PARTIALLY_FILLED, ``closed``
  FILLED, ``canceled`` CANCELLED (also when partly filled), ``expired`` EXPIRED, ``rejected``
  REJECTED. A venue-side cancel in flight is still a working order. A rejection *after* part
  of the order filled is reported CANCELLED with the venue's reason: Lyra's REJECTED means
  "never worked", and its state machine has no REJECT after a fill. Contradictions ("open"
  with nothing left, "closed" with quantity left, "canceled" yet complete) are unknown shapes.
- **Quantities** are ccxt's: base units for spot; contracts for derivatives.
  ``filled`` may exceed ``amount`` by one unit in the last decimal place (then it is read as
  complete), never more.
- **Order type** from ccxt's ``type`` (``market``/``limit``) and ``triggerPrice``: a trigger
  makes it STOP_MARKET / STOP_LIMIT. Take-profit prices, attached stop-losses, trailing stops
  and the venue's algo kinds are refused: Lyra has no such orders, and calling a take-profit
  a stop would trigger it on the wrong side of the market.
- **Fees.** An order's fees are split by currency (:func:`order_fees`). ``OrderReport.fees``
  carries only those in the instrument's accounting currency (the quote; the settlement
  currency for derivatives); fees in other currencies (BNB, the base asset) are never added
  to it and are listed by :func:`order_fees`. Where the order structure carries no fee at all
  (Binance reports fees on trades only) it is 0. A :class:`Fill` keeps its fee in its own
  currency.
- **Liquidity.** A fill without ccxt's ``takerOrMaker`` is refused: ccxt reads the flag from
  every venue here that sends it, so missing means the venue did not say, and the fee rate
  follows from it.
- **Client order ids** come from the venue's raw fields first (on a Binance cancel answer
  ccxt's ``clientOrderId`` is the cancel request's id; on Kraken it is the integer
  ``userref``), then from ccxt. ``""`` means the venue knows no client id for it.

Use ``exchange.number = str`` on the ccxt exchange to keep the venue's digits exactly; floats
are also accepted (read through their shortest ``repr``).

>>> import ccxt
>>> from lyra.execution.markets import load_markets
>>> ex = ccxt.kraken()
>>> _ = ex.set_markets(list(load_markets("kraken").values()))
>>> raw = {"id": "OR6EGN-KQSEG-AMI6CL", "userref": 0, "status": "open", "opentm": 1705259439.5638,
...        "descr": {"pair": "LTCUSDT", "type": "buy", "ordertype": "limit", "price": "50.00",
...                  "order": "buy 0.10000000 LTCUSDT @ limit 50.00"},
...        "vol": "0.10000000", "vol_exec": "0.00000000", "cost": "0", "fee": "0", "oflags": "fciq"}
>>> report = order_report(ex.parse_order(raw), "kraken")
>>> report.instrument_id, report.status.value, report.quantity, report.limit_price
('kraken:LTC/USDT', 'accepted', Decimal('0.1'), Decimal('50.0'))
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any, NoReturn

from lyra.core.enums import Liquidity, OrderStatus, OrderType, Side, TimeInForce
from lyra.core.orders import Fill
from lyra.core.values import ZERO
from lyra.execution.broker import OrderReport
from lyra.execution.venue_balances import balances_from_ccxt, debts_from_ccxt
from lyra.execution.venue_sequences import (
    OrderedUpdates,
    dedupe_fills,
    dedupe_orders,
    execution_reports,
    is_forward,
    order_updates_in_order,
)
from lyra.execution.venue_shapes import (
    UnknownVenueShape,
    accounting_currency,
    first_raw,
    is_derivative,
    parse_decimal,
    parse_optional_decimal,
    venue_shape,
)
from lyra.venues import FAMILIES, VenueShape

__all__ = [
    "FeeBreakdown",
    "OrderedUpdates",
    "UnknownVenueShape",
    "accounting_currency",
    "balances_from_ccxt",
    "debts_from_ccxt",
    "dedupe_fills",
    "dedupe_orders",
    "execution_reports",
    "fill_from_trade",
    "is_forward",
    "order_fees",
    "order_report",
    "order_status",
    "order_updates_in_order",
    "parse_decimal",
    "parse_optional_decimal",
    "venue_ids",
]

_TIME_IN_FORCE: Mapping[str, TimeInForce] = MappingProxyType({
    "GTC": TimeInForce.GTC,
    "IOC": TimeInForce.IOC,
    "FOK": TimeInForce.FOK,
    # post-only orders rest until cancelled; Lyra carries post-only on the intent, as GTC
    "PO": TimeInForce.GTC,
})


class _Reader:
    """One ccxt structure; every failure raises :class:`UnknownVenueShape` with it attached."""

    __slots__ = ("data", "info", "venue", "where")

    def __init__(self, data: Any, venue: str, kind: str) -> None:
        self.venue = venue
        if not isinstance(data, Mapping):
            raise UnknownVenueShape(venue, f"{kind}: expected a ccxt {kind} structure (a dict), "
                                           f"got {type(data).__name__}", data)
        self.data = data
        info = data.get("info")
        self.info: Mapping[str, Any] = info if isinstance(info, Mapping) else {}
        ident = data.get("id")
        self.where = f"{venue} {kind} {ident}" if ident not in (None, "") else f"{venue} {kind}"

    def fail(self, what: str) -> NoReturn:
        raise UnknownVenueShape(self.venue, f"{self.where}: {what}", self.data)

    def parse(self, value: Any, name: str) -> Decimal:
        """A required number; a missing or bad one is an unknown shape."""
        try:
            return parse_decimal(value, name, self.where)
        except ValueError as exc:
            self.fail(f"{name}: {getattr(exc, 'problem', exc)} ({value!r})")

    def parse_opt(self, value: Any, name: str) -> Decimal | None:
        try:
            return parse_optional_decimal(value, name, self.where)
        except ValueError as exc:
            self.fail(f"{name}: {getattr(exc, 'problem', exc)} ({value!r})")

    def num(self, key: str) -> Decimal:
        return self.parse(self.data.get(key), key)

    def opt(self, key: str) -> Decimal | None:
        return self.parse_opt(self.data.get(key), key)

    def positive(self, key: str) -> Decimal:
        d = self.num(key)
        if d <= 0:
            self.fail(f"{key} must be positive, got {d}")
        return d

    def text(self, key: str) -> str:
        value = self.data.get(key)
        if value is None or isinstance(value, bool) or not str(value).strip():
            self.fail(f"{key}: missing")
        return str(value).strip()

    def side(self) -> Side:
        value = self.data.get("side")
        if value not in ("buy", "sell"):
            self.fail(f"side {value!r} is neither 'buy' nor 'sell'")
        return Side(value)

    def instrument(self, instrument_id: str | None = None) -> str:
        if instrument_id:
            return instrument_id
        symbol = self.data.get("symbol")
        if not isinstance(symbol, str) or "/" not in symbol:
            # ccxt echoes the venue's market id when the market is not loaded: base and
            # quote (and so the fee currency) are then unknown
            self.fail(f"symbol {symbol!r} is not a unified symbol (load the venue's markets)")
        return f"{self.venue}:{symbol}"

    def ts(self, *keys: str) -> int:
        values = [self.data.get(k) for k in keys]
        found = [v for v in values if isinstance(v, int) and not isinstance(v, bool) and v > 0]
        if not found:
            self.fail(f"no timestamp (looked at {', '.join(keys)})")
        return max(found)


def _ulp(*values: Decimal) -> Decimal:
    """One unit in the last decimal place of the most precise of ``values``."""
    exps = [e for v in values if isinstance(e := v.as_tuple().exponent, int)]
    return Decimal(1).scaleb(min(exps)) if exps else ZERO


# ---------------------------------------------------------------------------- status
def _family(r: _Reader, shape: VenueShape) -> tuple[str, str | None]:
    """(family, raw status) of an order: the raw status through the venue's table first."""
    raw = first_raw(r.info, shape.status_fields)
    if raw is not None:
        family = shape.statuses.get(raw)
        if family is None:
            r.fail(f"unknown order status {raw!r} (known: {', '.join(sorted(shape.statuses))})")
        return family, raw
    status = r.data.get("status")
    unified = "canceled" if status == "cancelled" else status
    if unified not in FAMILIES:
        r.fail(f"no order status we know: ccxt says {status!r} and the payload has none of "
               f"{', '.join(shape.status_fields)}")
    return str(unified), None


def _quantities(r: _Reader) -> tuple[Decimal, Decimal]:
    """(amount, filled), checked: amount > 0, 0 <= filled <= amount (one last-place unit over
    is read as complete)."""
    amount = r.positive("amount")
    filled = r.num("filled")
    if filled < 0:
        r.fail(f"filled {filled} is negative")
    if filled > amount:
        if filled - amount > _ulp(amount, filled):
            r.fail(f"filled {filled} exceeds the amount {amount}")
        filled = amount
    return amount, filled


def _status(r: _Reader, shape: VenueShape) -> tuple[OrderStatus, str, Decimal, Decimal]:
    """Lyra's status, for closing states a reason, and the checked (amount, filled)."""
    family, raw = _family(r, shape)
    amount, filled = _quantities(r)
    said = f"{raw!r}" if raw is not None else f"{family!r}"
    complete = filled == amount
    if family == "open":
        if complete:
            r.fail(f"status {said} (working) but all {amount} is filled")
        remaining = r.opt("remaining")
        if remaining is not None and abs(filled + remaining - amount) > _ulp(amount, filled, remaining):
            r.fail(f"filled {filled} + remaining {remaining} != amount {amount}")
        return (OrderStatus.PARTIALLY_FILLED if filled > 0 else OrderStatus.ACCEPTED), "", amount, filled
    if family == "closed":
        if not complete:
            r.fail(f"status {said} (done) but only {filled} of {amount} filled, and the venue "
                   "does not say what happened to the rest")
        return OrderStatus.FILLED, "", amount, filled
    if complete:
        r.fail(f"status {said} but all {amount} is filled")
    note = shape.status_reasons.get(raw, "") if raw is not None else ""
    if family == "canceled":
        return OrderStatus.CANCELLED, note, amount, filled
    if family == "expired":
        return OrderStatus.EXPIRED, note, amount, filled
    # rejected
    if filled > 0:
        note = f"rejected after {filled} filled" + (f": {note}" if note else "")
        return OrderStatus.CANCELLED, note, amount, filled
    return OrderStatus.REJECTED, note, amount, filled


def order_status(ccxt_order: Mapping[str, Any], venue: str) -> OrderStatus:
    """Lyra's :class:`OrderStatus` of a ccxt order structure (see the module's rules).

    Raises :class:`UnknownVenueShape` for a status the venue's table does not know, missing
    ``amount``/``filled``, or a status that contradicts the quantities."""
    shape = venue_shape(venue)
    r = _Reader(ccxt_order, venue, "order")
    return _status(r, shape)[0]


# ---------------------------------------------------------------------------- orders
def _client_id(data: Mapping[str, Any], info: Mapping[str, Any], shape: VenueShape) -> str:
    raw = first_raw(info, shape.client_id_fields)
    if raw is not None:
        return raw
    if shape.trust_ccxt_client_id:
        value = data.get("clientOrderId")
        if value is not None and str(value).strip():
            return str(value).strip()
    return ""


def venue_ids(ccxt_order: Mapping[str, Any], venue: str) -> tuple[str, str]:
    """``(venue order id, client order id)`` of any order answer, ``""`` for what it lacks.

    Never raises for a missing field: a create-order acknowledgement (Bybit, OKX: ids only)
    is not an order report, but its ids are what the broker needs to track the order."""
    shape = venue_shape(venue)
    if not isinstance(ccxt_order, Mapping):
        raise UnknownVenueShape(venue, "order: expected a ccxt order structure (a dict)", ccxt_order)
    info = ccxt_order.get("info")
    info = info if isinstance(info, Mapping) else {}
    vid = ccxt_order.get("id")
    return (str(vid).strip() if vid is not None else ""), _client_id(ccxt_order, info, shape)


def _trigger(r: _Reader, key: str) -> Decimal | None:
    """A trigger-like price; 0 means none (venues write 0 for "not set")."""
    d = r.opt(key)
    if d is None or d == 0:
        return None
    if d < 0:
        r.fail(f"{key} {d} is negative")
    return d


def _order_type(r: _Reader, shape: VenueShape) -> tuple[OrderType, Decimal | None]:
    kind = first_raw(r.info, shape.kind_fields)
    if kind is not None and kind in shape.unsupported_kinds:
        r.fail(f"a {kind!r} order: Lyra has no such order type")
    unified = r.data.get("type")
    if unified not in ("market", "limit"):
        r.fail(f"order type {unified!r} (raw {kind!r}): Lyra knows market, limit and their stop forms")
    trigger = _trigger(r, "triggerPrice") or _trigger(r, "stopPrice")
    take_profit = _trigger(r, "takeProfitPrice")
    stop_loss = _trigger(r, "stopLossPrice")
    if take_profit is not None:
        r.fail(f"take-profit price {take_profit}: Lyra has no take-profit orders, attached or not")
    if stop_loss is not None and stop_loss != trigger:
        r.fail(f"stop-loss price {stop_loss} attached to the order: Lyra has no bracket orders")
    if kind is not None and kind in shape.stop_kinds and trigger is None:
        r.fail(f"a {kind!r} order without a trigger price")
    if trigger is None:
        return (OrderType.MARKET if unified == "market" else OrderType.LIMIT), None
    return (OrderType.STOP_MARKET if unified == "market" else OrderType.STOP_LIMIT), trigger


def _time_in_force(r: _Reader, shape: VenueShape) -> TimeInForce:
    value = r.data.get("timeInForce")
    if value is None or value == "":
        return shape.default_time_in_force
    tif = _TIME_IN_FORCE.get(str(value).upper())
    if tif is None:
        r.fail(f"time in force {value!r}: Lyra knows GTC, IOC, FOK (and post-only as GTC)")
    return tif


def _avg_price(r: _Reader, instrument_id: str, filled: Decimal) -> Decimal | None:
    if filled == 0:
        return None  # Kraken, for one, reports the limit price as "average" before any fill
    average = _trigger(r, "average")
    if average is None:
        cost = _trigger(r, "cost")
        if cost is None or is_derivative(instrument_id):
            # a derivative's cost includes its contract size: cost / filled is not a price
            r.fail(f"filled {filled} but no average price")
        average = cost / filled
    trades = r.data.get("trades")
    if isinstance(trades, list) and trades:
        amounts, notional = ZERO, ZERO
        for t in trades:
            if not isinstance(t, Mapping) or t.get("amount") is None or t.get("price") is None:
                return average  # trades listed by id only: nothing to check
            q = r.parse(t.get("amount"), "trades.amount")
            amounts += q
            notional += q * r.parse(t.get("price"), "trades.price")
        if amounts > filled + _ulp(filled, amounts):
            r.fail(f"its trades add up to {amounts}, more than the {filled} filled")
        # a relative 1e-6 allows the venue's rounding of the average, not a different price
        if amounts == filled and abs(notional / amounts - average) > average * Decimal("1e-6"):
            r.fail(f"average price {average} but its trades average {notional / amounts}")
    return average


def _reason(r: _Reader, shape: VenueShape, status: OrderStatus, note: str) -> str:
    if status not in (OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
        return ""
    parts = [note] if note else []
    for key in shape.reason_fields:
        value = first_raw(r.info, (key,))
        if value is not None and value not in shape.reason_placeholders and value not in parts:
            parts.append(value)
    return "; ".join(parts)


def order_report(
    ccxt_order: Mapping[str, Any], venue: str, instrument_id: str | None = None
) -> OrderReport:
    """The venue's view of one order (a ccxt order structure) as an :class:`OrderReport`.

    ``instrument_id`` overrides ``"{venue}:{symbol}"``. ``decision_id`` is ``""``: the venue
    never knows it. ``fees`` are the order's fees in the instrument's accounting currency only
    (see :func:`order_fees`). ``ts`` is the latest time the structure carries. Raises
    :class:`UnknownVenueShape` for anything missing, unknown or contradictory."""
    shape = venue_shape(venue)
    r = _Reader(ccxt_order, venue, "order")
    venue_order_id = r.text("id")
    status, note, amount, filled = _status(r, shape)
    iid = r.instrument(instrument_id)
    side = r.side()
    order_type, stop_price = _order_type(r, shape)
    limit_price = r.positive("price") if order_type in (OrderType.LIMIT, OrderType.STOP_LIMIT) else None
    return OrderReport(
        client_order_id=_client_id(r.data, r.info, shape),
        venue_order_id=venue_order_id,
        instrument_id=iid,
        side=side,
        order_type=order_type,
        time_in_force=_time_in_force(r, shape),
        quantity=amount,
        filled_quantity=filled,
        avg_price=_avg_price(r, iid, filled),
        limit_price=limit_price,
        stop_price=stop_price,
        status=status,
        fees=_fees(r, shape, iid).amount,
        decision_id="",
        ts=r.ts("lastUpdateTimestamp", "lastTradeTimestamp", "timestamp"),
        reason=_reason(r, shape, status, note),
    )


# ---------------------------------------------------------------------------- fees
@dataclass(frozen=True, slots=True)
class FeeBreakdown:
    """An order's fees by currency. ``amount`` is what :attr:`OrderReport.fees` carries."""

    currency: str  #: the instrument's accounting currency (quote; settlement for derivatives)
    amount: Decimal  #: fees charged in ``currency`` (negative: a rebate)
    #: fees in other currencies (BNB, the base asset...); ``""`` if the venue did not say which
    other: Mapping[str, Decimal] = field(default_factory=dict)


def _fee_entries(r: _Reader) -> list[Mapping[str, Any]]:
    fees = r.data.get("fees")
    if isinstance(fees, list) and fees:
        return [f for f in fees if isinstance(f, Mapping)]
    fee = r.data.get("fee")
    return [fee] if isinstance(fee, Mapping) else []


def _fees(r: _Reader, shape: VenueShape, instrument_id: str) -> FeeBreakdown:
    ccy = accounting_currency(instrument_id)
    amount = ZERO
    other: dict[str, Decimal] = {}
    for entry in _fee_entries(r):
        cost = r.parse_opt(entry.get("cost"), "fee.cost")
        if cost is None or cost == 0:
            continue
        currency = entry.get("currency") or ""
        if not currency and shape.order_fee_currency == "quote":
            currency = ccy
        if currency == ccy:
            amount += cost
        else:
            other[currency] = other.get(currency, ZERO) + cost
    return FeeBreakdown(ccy, amount, MappingProxyType(other))


def order_fees(ccxt_order: Mapping[str, Any], venue: str, instrument_id: str | None = None) -> FeeBreakdown:
    """An order's fees split by currency: those in the instrument's accounting currency (what
    :func:`order_report` puts in ``fees``) and the rest, which are never summed into it."""
    shape = venue_shape(venue)
    r = _Reader(ccxt_order, venue, "order")
    return _fees(r, shape, r.instrument(instrument_id))


# ---------------------------------------------------------------------------- fills
def fill_from_trade(
    ccxt_trade: Mapping[str, Any], venue: str, client_ids: Mapping[str, str] | None = None
) -> Fill:
    """One of our executions (a ccxt trade structure from ``fetch_my_trades``/``watch_my_trades``)
    as a :class:`Fill`.

    ``fill_id`` is ``"{venue}:{trade id}"``. The client order id comes from the trade's raw
    payload (Bybit ``orderLinkId``, OKX ``clOrdId``) or from ``client_ids`` (venue order id ->
    client order id); ``""`` when neither knows it. The fee stays in its own currency.
    Raises :class:`UnknownVenueShape` for a missing id, price, amount, time, liquidity flag or
    fee, fees in several currencies, or a raw client id that contradicts ``client_ids``."""
    shape = venue_shape(venue)
    r = _Reader(ccxt_trade, venue, "trade")
    trade_id = r.text("id")
    order_id = str(r.data.get("order") or "").strip()
    raw_cid = first_raw(r.info, shape.client_id_fields)
    mapped = client_ids.get(order_id) if client_ids is not None and order_id else None
    if raw_cid and mapped and raw_cid != mapped:
        r.fail(f"client order id {raw_cid!r} in the payload but {mapped!r} for venue order {order_id}")
    iid = r.instrument()
    liquidity = r.data.get("takerOrMaker")
    if liquidity not in ("maker", "taker"):
        r.fail(f"takerOrMaker {liquidity!r}: the venue did not say whether it made or took liquidity")
    fee, fee_currency = _trade_fee(r)
    return Fill(
        fill_id=f"{venue}:{trade_id}",
        client_order_id=raw_cid or mapped or "",
        instrument_id=iid,
        side=r.side(),
        quantity=r.positive("amount"),
        price=r.positive("price"),
        fee=fee,
        fee_currency=fee_currency,
        liquidity=Liquidity(liquidity),
        ts=r.ts("timestamp"),
    )


def _trade_fee(r: _Reader) -> tuple[Decimal, str]:
    """(fee, currency) of a trade: one currency, or zero."""
    by_currency: dict[str, Decimal] = {}
    for entry in _fee_entries(r):
        cost = r.parse_opt(entry.get("cost"), "fee.cost")
        if cost is None:
            continue
        currency = str(entry.get("currency") or "")
        if cost != 0 and not currency:
            r.fail(f"fee {cost} without a currency")
        by_currency[currency] = by_currency.get(currency, ZERO) + cost
    if not by_currency:
        r.fail("no fee (a fill booked without its fee would misstate its cost)")
    charged = [(c, v) for c, v in by_currency.items() if v != 0]
    if len(charged) > 1:
        r.fail(f"fees in several currencies ({', '.join(c for c, _ in charged)}): a Fill holds one")
    if charged:
        currency, cost = charged[0]
        return cost, currency
    return ZERO, next((c for c in by_currency if c), "")
