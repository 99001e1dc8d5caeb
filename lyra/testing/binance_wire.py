"""Binance spot's wire format, for the fake exchange: API errors, request parameters, symbol
filters, and the JSON of orders and ``executionReport`` events, in Binance's codes and words.

Shapes follow Binance's spot API documentation (``POST /api/v3/order`` ACK/RESULT/FULL answers,
``GET /api/v3/order``, the user-data stream's ``executionReport``); ``ccxt.binance`` parses them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

Num = Decimal | str | float | int
Levels = Sequence[Sequence[Num]]
E8 = Decimal("1E-8")
ZERO = Decimal(0)
OPEN = ("NEW", "PARTIALLY_FILLED")
SIMULATED = ("LIMIT", "MARKET", "LIMIT_MAKER")
_KNOWN_TYPES = (*SIMULATED, "STOP_LOSS", "STOP_LOSS_LIMIT", "TAKE_PROFIT", "TAKE_PROFIT_LIMIT")
_CID = re.compile(r"^[\.A-Z\:/a-z0-9_-]{1,36}$")


def dec(x: Num) -> Decimal:
    """A number as an exact Decimal (floats through their shortest repr)."""
    return x if isinstance(x, Decimal) else Decimal(str(x))


def fmt(x: Decimal) -> str:
    """Binance prints amounts with 8 decimals."""
    return format(x.quantize(E8), "f")


class BinanceError(Exception):
    """A Binance API error: the HTTP ``status`` and the body ``{"code": code, "msg": msg}``."""

    def __init__(self, code: int, msg: str, status: int = 400) -> None:
        super().__init__(f"{code} {msg}")
        self.code, self.msg, self.status = code, msg, status


def missing(name: str) -> BinanceError:
    """-1102 for a mandatory parameter not sent."""
    return BinanceError(-1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def dec_param(params: Mapping[str, str], name: str) -> Decimal | None:
    """A decimal parameter: -1100 when not a number, -1111 with more than 8 decimals."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        v = Decimal(raw)
    except InvalidOperation:
        v = Decimal("NaN")
    if not v.is_finite():
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                  "'^([0-9]{1,20})(\\.[0-9]{1,20})?$'.")
    exp = v.as_tuple().exponent
    if isinstance(exp, int) and -exp > 8:
        raise BinanceError(-1111, f"Parameter '{name}' has too much precision.")
    return v


def int_param(params: Mapping[str, str], name: str) -> int | None:
    """An integer parameter (ids, times, limits)."""
    raw = params.get(name)
    if raw is None or raw == "":
        return None
    try:
        return int(raw)
    except ValueError:
        raise BinanceError(-1100, f"Illegal characters found in parameter '{name}'; legal range is "
                                  "'^[0-9]{1,20}$'.") from None


def window(rows: list[Any], params: Mapping[str, str], from_name: str, key: Callable[[Any], int],
           ts: Callable[[Any], int]) -> list[Any]:
    """``allOrders``/``myTrades`` paging: ``fromId``/``orderId`` (ascending from it), else
    ``startTime``/``endTime``, else the most recent ``limit`` rows (500, at most 1000)."""
    limit = min(int_param(params, "limit") or 500, 1000)
    start, end = int_param(params, "startTime"), int_param(params, "endTime")
    from_id = int_param(params, from_name)
    if from_id is not None:
        return [r for r in rows if key(r) >= from_id][:limit]
    if start is not None or end is not None:
        return [r for r in rows
                if (start is None or ts(r) >= start) and (end is None or ts(r) <= end)][:limit]
    return rows[-limit:]


@dataclass(frozen=True)
class SymbolRules:
    """A symbol's assets and trading filters, read from Binance's ``exchangeInfo``."""

    symbol: str
    base: str
    quote: str
    order_types: tuple[str, ...]
    filters: dict[str, dict[str, Any]]

    @classmethod
    def from_info(cls, s: Mapping[str, Any]) -> SymbolRules:
        """One ``exchangeInfo`` symbol object -> rules."""
        return cls(s["symbol"], s["baseAsset"], s["quoteAsset"], tuple(s.get("orderTypes", SIMULATED)),
                   {f["filterType"]: f for f in s.get("filters", [])})

    def _f(self, name: str, key: str) -> Decimal:
        return dec(self.filters.get(name, {}).get(key, "0"))

    def check(self, otype: str, price: Decimal | None, qty: Decimal | None, quote_qty: Decimal | None,
              ref_price: Decimal | None) -> None:
        """Raise -1013 "Filter failure: <FILTER>" as Binance does (a zero bound is no bound)."""
        if price is not None and "PRICE_FILTER" in self.filters:
            lo, hi, tick = (self._f("PRICE_FILTER", k) for k in ("minPrice", "maxPrice", "tickSize"))
            if (lo and price < lo) or (hi and price > hi) or (tick and (price - lo) % tick):
                raise BinanceError(-1013, "Filter failure: PRICE_FILTER")
        for name in ["LOT_SIZE"] + (["MARKET_LOT_SIZE"] if otype == "MARKET" else []):
            if qty is None or name not in self.filters:
                continue
            lo, hi, step = (self._f(name, k) for k in ("minQty", "maxQty", "stepSize"))
            if (lo and qty < lo) or (hi and qty > hi) or (step and (qty - lo) % step):
                raise BinanceError(-1013, f"Filter failure: {name}")
        for name in ("NOTIONAL", "MIN_NOTIONAL"):
            f = self.filters.get(name)
            if f is None:
                continue
            if otype == "MARKET":  # Binance uses its average price; the fake, the best opposite level
                notional = quote_qty if quote_qty is not None else (
                    qty * ref_price if qty is not None and ref_price is not None else None)
                apply_min = f.get("applyMinToMarket", f.get("applyToMarket", True))
                apply_max = f.get("applyMaxToMarket", False)
            else:
                notional = price * qty if price is not None and qty is not None else None
                apply_min = apply_max = True
            if notional is None:
                continue
            lo, hi = dec(f.get("minNotional", "0")), dec(f.get("maxNotional", "0"))
            if (apply_min and lo and notional < lo) or (apply_max and hi and notional > hi):
                raise BinanceError(-1013, f"Filter failure: {name}")

    def step(self) -> Decimal:
        """The quantity step (``LOT_SIZE.stepSize``), 1e-8 when the symbol has none."""
        return self._f("LOT_SIZE", "stepSize") or E8


@dataclass(frozen=True)
class NewOrder:
    """A ``POST /api/v3/order`` request, checked."""

    symbol: str
    side: str
    type: str
    tif: str  # "" unless LIMIT
    qty: Decimal | None
    price: Decimal | None
    quote_qty: Decimal | None
    client_id: str | None
    resp: str  # ACK, RESULT or FULL


def parse_new_order(p: Mapping[str, str], rules: SymbolRules) -> NewOrder:
    """Check a new order's parameters in Binance's order; raise :class:`BinanceError`."""
    side, otype, tif = p.get("side") or "", p.get("type") or "", p.get("timeInForce") or ""
    if not side:
        raise missing("side")
    if side not in ("BUY", "SELL"):
        raise BinanceError(-1117, "Invalid side.")
    if not otype:
        raise missing("type")
    if otype not in _KNOWN_TYPES or otype not in rules.order_types:
        raise BinanceError(-1116, "Invalid orderType.")
    if otype not in SIMULATED:
        raise BinanceError(-1116, f"Invalid orderType. (the fake exchange does not simulate {otype})")
    if otype == "LIMIT" and not tif:
        raise missing("timeInForce")
    if otype != "LIMIT" and tif:
        raise BinanceError(-1106, "Parameter 'timeInForce' sent when not required.")
    if tif and tif not in ("GTC", "IOC", "FOK"):
        raise BinanceError(-1115, "Invalid timeInForce.")
    qty, price, quote_qty = dec_param(p, "quantity"), dec_param(p, "price"), dec_param(p, "quoteOrderQty")
    if otype == "MARKET":
        if price is not None:
            raise BinanceError(-1106, "Parameter 'price' sent when not required.")
        if qty is None and quote_qty is None:
            raise BinanceError(-1102, "Param 'quantity' or 'quoteOrderQty' must be sent, but both were "
                                      "empty/null!")
        if qty is not None and quote_qty is not None:
            raise BinanceError(-1106, "Parameter 'quoteOrderQty' sent when not required.")
    else:
        if qty is None:
            raise missing("quantity")
        if price is None:
            raise missing("price")
    for v, what in ((qty, "quantity"), (price, "price"), (quote_qty, "quantity")):
        if v is not None and v <= 0:
            raise BinanceError(-1013, f"Invalid {what}.")
    cid = p.get("newClientOrderId") or None
    if cid is not None and not _CID.match(cid):
        raise BinanceError(-1100, "Illegal characters found in parameter 'newClientOrderId'; legal range "
                                  "is '^[\\.A-Z\\:/a-z0-9_-]{1,36}$'.")
    resp = p.get("newOrderRespType") or ("FULL" if otype in ("LIMIT", "MARKET") else "ACK")
    if resp not in ("ACK", "RESULT", "FULL"):
        raise BinanceError(-1136, "Invalid newOrderRespType.")
    return NewOrder(rules.symbol, side, otype, tif, qty, price, quote_qty, cid, resp)


@dataclass
class VenueOrder:
    """An order as the venue keeps it."""

    order_id: int
    client_id: str
    symbol: str
    side: str
    type: str
    tif: str
    price: Decimal  # 0 for market orders
    qty: Decimal  # a quote-sized market order: what it can buy, then what it bought
    quote_qty: Decimal  # origQuoteOrderQty
    time: int
    executed: Decimal = ZERO
    cum_quote: Decimal = ZERO
    status: str = "NEW"
    update_time: int = 0
    locked: Decimal = ZERO  # what it still holds locked (quote for a buy, base for a sell)


def order_json(o: VenueOrder, resp: str | None = None,
               fills: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """``resp=None``: the ``GET /api/v3/order`` shape; ``"ACK"``/``"RESULT"``/``"FULL"``: the
    new-order answers (FULL lists the ``fills`` given, in ``myTrades`` shape)."""
    head = {"symbol": o.symbol, "orderId": o.order_id, "orderListId": -1, "clientOrderId": o.client_id}
    if resp == "ACK":
        return {**head, "transactTime": o.time}
    core = {"price": fmt(o.price), "origQty": fmt(o.qty), "executedQty": fmt(o.executed),
            "cummulativeQuoteQty": fmt(o.cum_quote), "status": o.status, "timeInForce": o.tif,
            "type": o.type, "side": o.side}
    if resp is None:
        return {**head, **core, "stopPrice": fmt(ZERO), "icebergQty": fmt(ZERO), "time": o.time,
                "updateTime": o.update_time, "isWorking": True, "workingTime": o.time,
                "origQuoteOrderQty": fmt(o.quote_qty), "selfTradePreventionMode": "EXPIRE_MAKER"}
    body = {**head, "transactTime": o.update_time, **core, "origQuoteOrderQty": fmt(o.quote_qty),
            "workingTime": o.time, "selfTradePreventionMode": "EXPIRE_MAKER"}
    if resp == "FULL":
        body["fills"] = [{"price": t["price"], "qty": t["qty"], "commission": t["commission"],
                          "commissionAsset": t["commissionAsset"], "tradeId": t["id"]}
                         for t in fills or []]
    return body


def cancel_json(o: VenueOrder, cancel_id: str) -> dict[str, Any]:
    """The ``DELETE /api/v3/order`` answer: ``clientOrderId`` is the cancel's own id, the
    order's is ``origClientOrderId`` (as on Binance)."""
    body = order_json(o, "RESULT")
    body.pop("workingTime")
    return {**body, "origClientOrderId": o.client_id, "clientOrderId": cancel_id}


def execution_report(o: VenueOrder, x: str, now: int, seq: int, *, trade: dict[str, Any] | None = None,
                     cancel_id: str = "") -> dict[str, Any]:
    """An ``executionReport`` user-data event, field for field as Binance sends it. ``x``: the
    execution type (NEW, TRADE, CANCELED, EXPIRED); ``trade``: the fill, ``myTrades`` shape."""
    zero = fmt(ZERO)
    t = trade or {}
    return {"e": "executionReport", "E": now, "s": o.symbol, "c": cancel_id or o.client_id, "S": o.side,
            "o": o.type, "f": o.tif, "q": fmt(o.qty), "p": fmt(o.price), "P": zero, "F": zero, "g": -1,
            "C": o.client_id if cancel_id else "", "x": x, "X": o.status, "r": "NONE", "i": o.order_id,
            "l": t.get("qty", zero), "z": fmt(o.executed), "L": t.get("price", zero),
            "n": t.get("commission", "0"), "N": t.get("commissionAsset"), "T": now, "t": t.get("id", -1),
            "I": seq, "w": o.status in OPEN and o.type != "MARKET", "m": bool(t.get("isMaker")),
            "M": trade is not None, "O": o.time, "Z": fmt(o.cum_quote), "Y": t.get("quoteQty", zero),
            "Q": fmt(o.quote_qty), "W": o.time, "V": "EXPIRE_MAKER"}
