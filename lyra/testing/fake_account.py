"""A Binance spot trading account for the fake exchange: balances, orders matched against a book,
fills, user-data events and account faults.

Give one to :class:`~lyra.testing.fake_exchange.FakeExchange` and the fake serves Binance's signed
spot API (``/api/v3/order``, ``order/test``, ``openOrders``, ``allOrders``, ``myTrades``,
``account``) and the websocket API's user-data stream (``userDataStream.subscribe.signature``,
which is what ``ccxt.pro.binance`` uses for spot ``watch_orders`` / ``watch_my_trades``). With a
recorded ``exchangeInfo`` (``info``) and a book snapshot (:func:`load_book_csv`)::

    acct = FakeAccount({"USDT": "50000", "XRP": "0"}, books={"XRPUSDT": (bids, asks)})
    with FakeExchange(info, account=acct) as fake:
        ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config()))
        ex.create_order("XRP/USDT", "limit", "buy", 100, 1.95, {"newClientOrderId": "a1"})
        acct.cross("XRPUSDT", "1.9499")          # the market trades through: "a1" fills (maker)

How it matches: a new order takes liquidity from the symbol's book (a snapshot you give, or the
fake's recorded :class:`BookTape` at first use), level by level, at each level's price (taker);
what is left of a GTC limit rests. Resting orders fill only when the test calls :meth:`cross`
(maker, at the order's own price). ``/api/v3/depth`` then serves this book (your resting orders
included), so the venue's public book and its fills agree.

Checks, in Binance's codes and words: mandatory parameters (-1102), symbol (-1121), side, type and
time in force (-1117/-1116/-1115), client id format (-1100), too many decimals (-1111), the
``PRICE_FILTER``, ``LOT_SIZE``, ``MARKET_LOT_SIZE`` and ``NOTIONAL``/``MIN_NOTIONAL`` filters
(-1013 "Filter failure: ..."), a client id already used by an open order of the symbol (-2010
"Duplicate order sent."), balance (-2010 "Account has insufficient balance for requested
action."), a post-only order that would take (-2010), unknown orders (-2013 query, -2011 cancel).
What ``ccxt.binance`` (4.5) raises for them: -2010 InvalidOrder (InsufficientFunds for balance,
OrderImmediatelyFillable for post-only; never DuplicateOrderId), LOT_SIZE/PRICE_FILTER
InvalidOrder, NOTIONAL and the other -1013/-11xx BadRequest, -2011/-2013 OrderNotFound, 429
DDoSProtection, 5xx ExchangeNotAvailable, a late answer RequestTimeout.

Inspection: :attr:`FakeAccount.orders`, ``trades``, ``submissions`` (every create request the
matching engine received, duplicates and rejects included), ``events`` (user-data events, in
order), :meth:`FakeAccount.balances`, :meth:`FakeAccount.duplicate_client_order_ids`.
Faults (:class:`AccountFaults`, ``account.faults``): ``accept_then_timeout(n, seconds)``,
``fail_private_next(n, status)``, ``drop_user_ws_during_fill()``; venue-wide ones
(``fail_next``, ``down()``/``up()``) are on ``FakeExchange.faults`` and reach these routes too.

Simplifications (documented so no one trusts them): a new order never matches your own resting
orders (no self-trade prevention); :meth:`cross` moves no book level; STOP/TAKE_PROFIT and OCO
orders are not simulated (-1116); no REJECTED execution reports (Binance rejects synchronously);
commission is rounded up to 8 decimals; ``fee_asset="quote"`` (the default) charges every fee in
the quote asset and reserves it with a buy, ``"received"`` charges it in the asset received, as
Binance does without BNB.
"""

from __future__ import annotations

import csv
import gzip
import itertools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from pathlib import Path
from typing import Any, NamedTuple

from lyra.core.errors import ValidationError
from lyra.testing.binance_wire import (
    E8,
    OPEN,
    ZERO,
    BinanceError,
    Levels,
    Num,
    SymbolRules,
    VenueOrder,
    cancel_json,
    dec,
    execution_report,
    fmt,
    int_param,
    missing,
    order_json,
    parse_new_order,
    window,
)

_NO_FUNDS = "Account has insufficient balance for requested action."


def load_book_csv(path: Path) -> tuple[list[list[str]], list[list[str]]]:
    """A flat book snapshot (``timestamp_ms,side,price,size`` with side ``bid``/``ask``, gzipped
    or not) -> ``(bids, asks)`` as ``[price, qty]`` strings, best first."""
    opener = gzip.open if path.suffix == ".gz" else open
    bids: list[list[str]] = []
    asks: list[list[str]] = []
    with opener(path, "rt") as f:
        for row in csv.DictReader(f):
            (bids if row["side"] == "bid" else asks).append([row["price"], row["size"]])
    bids.sort(key=lambda x: -Decimal(x[0]))
    asks.sort(key=lambda x: Decimal(x[0]))
    return bids, asks


class AssetBalance(NamedTuple):
    """One asset's balance: available and locked in open orders."""

    free: Decimal
    locked: Decimal


@dataclass
class Submission:
    """One ``POST /api/v3/order`` the matching engine received (duplicates and rejects included)."""

    params: dict[str, str]
    accepted: bool = False
    order_id: int | None = None
    error_code: int | None = None
    error_msg: str = ""

    @property
    def client_order_id(self) -> str | None:
        """The ``newClientOrderId`` sent, if any."""
        return self.params.get("newClientOrderId")


@dataclass
class AccountFaults:
    """Account-level faults. Thread-safe; change them any time. Counters count down as requests
    arrive; venue-wide faults (``fail_next``, ``down()``) live on ``FakeExchange.faults``."""

    fail_private_count: int = 0
    fail_private_status: int = 429
    timeout_count: int = 0
    timeout_seconds: float = 0.0
    drop_user_ws_on_fill: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def fail_private_next(self, n: int, status: int = 429) -> None:
        """Answer the next ``n`` signed REST requests with HTTP ``status`` (429 with Retry-After, 5xx)."""
        with self._lock:
            self.fail_private_count, self.fail_private_status = n, status

    def accept_then_timeout(self, n: int, seconds: float) -> None:
        """The next ``n`` order-create requests are processed at the venue (accepted, filled...) but
        their HTTP answer waits ``seconds``: longer than the client's timeout, the client sees a
        timeout for an order that exists."""
        with self._lock:
            self.timeout_count, self.timeout_seconds = n, seconds

    def drop_user_ws_during_fill(self, on: bool = True) -> None:
        """Close the user-data websockets when the next fill happens, before its events are sent."""
        with self._lock:
            self.drop_user_ws_on_fill = on

    def _take_fail(self) -> int | None:
        with self._lock:
            if self.fail_private_count > 0:
                self.fail_private_count -= 1
                return self.fail_private_status
            return None

    def _take_timeout(self) -> float:
        with self._lock:
            if self.timeout_count > 0:
                self.timeout_count -= 1
                return self.timeout_seconds
            return 0.0

    def _take_drop(self) -> bool:
        with self._lock:
            on, self.drop_user_ws_on_fill = self.drop_user_ws_on_fill, False
            return on


class _Book:
    """External liquidity of one symbol: price -> quantity per side."""

    def __init__(self, bids: Levels, asks: Levels) -> None:
        self.bids = {dec(p): dec(q) for p, q in bids if dec(q) > 0}
        self.asks = {dec(p): dec(q) for p, q in asks if dec(q) > 0}
        self.version = 1

    def levels(self, side: str) -> list[tuple[Decimal, Decimal]]:
        """The levels a ``side`` order takes from, best first."""
        if side == "BUY":
            return sorted(self.asks.items())
        return sorted(self.bids.items(), reverse=True)


class FakeAccount:
    """One Binance spot account at the fake venue (see the module docstring). Thread-safe.

    ``balances``: asset -> free amount. ``books``: symbol -> (bids, asks), lists of
    ``[price, qty]``. ``taker_fee``/``maker_fee``: commission rates. ``api_key``/``secret``: when
    given, requests must carry that key and a valid HMAC-SHA256 signature; otherwise any key and
    any signature are accepted (both must be present)."""

    def __init__(self, balances: Mapping[str, Num] | None = None, *,
                 books: Mapping[str, tuple[Levels, Levels]] | None = None,
                 taker_fee: Num = "0.001", maker_fee: Num = "0.001", fee_asset: str = "quote",
                 api_key: str | None = None, secret: str | None = None) -> None:
        if fee_asset not in ("quote", "received"):
            raise ValidationError("fee_asset", fee_asset, "unknown fee asset", "use 'quote' or 'received'")
        self.taker_fee, self.maker_fee, self.fee_asset = dec(taker_fee), dec(maker_fee), fee_asset
        self.api_key, self.secret = api_key, secret
        self.faults = AccountFaults()
        self.submissions: list[Submission] = []
        self.events: list[dict[str, Any]] = []  # every user-data event, in order
        self.drop_marks: set[int] = set()  # event indexes at which user websockets are closed
        self.user_ws_connections = 0  # user-data websockets opened so far (kept by the server)
        self.user_ws_subscriptions = 0  # live user-data subscriptions now (kept by the server)
        self._free: dict[str, Decimal] = {a: dec(v) for a, v in (balances or {}).items()}
        self._locked: dict[str, Decimal] = {a: ZERO for a in self._free}
        self._books = {s: _Book(b, a) for s, (b, a) in (books or {}).items()}
        self._orders: list[VenueOrder] = []
        self._trades: list[dict[str, Any]] = []
        self._rules: dict[str, SymbolRules] = {}
        self._clock: Callable[[], int] = lambda: 0
        self._book_source: Callable[[str], Mapping[str, Any] | None] = lambda s: None
        self._order_ids = itertools.count(4_000_001)
        self._trade_ids = itertools.count(900_001)
        self._gen_ids = itertools.count(1)
        self._touched: set[str] = set()
        self._lock = threading.RLock()

    # -- wiring and inspection ----------------------------------------------------------------
    def attach(self, exchange_info: Mapping[str, Any], clock: Callable[[], int],
               book_source: Callable[[str], Mapping[str, Any] | None]) -> None:
        """Called by ``FakeExchange``: the symbols' filters, the venue clock, and where a book not
        given starts from (a ``/depth`` body of the recorded tape, or ``None``)."""
        with self._lock:
            self._rules = {s["symbol"]: SymbolRules.from_info(s) for s in exchange_info["symbols"]}
            self._clock, self._book_source = clock, book_source

    def set_book(self, symbol: str, bids: Levels, asks: Levels) -> None:
        """Replace a symbol's external liquidity (resting orders stay)."""
        with self._lock:
            self._books[symbol] = _Book(bids, asks)

    def has_book(self, symbol: str) -> bool:
        """True once the account holds a book for ``symbol`` (given, or taken from a tape)."""
        return symbol in self._books

    def depth(self, symbol: str, limit: int = 100) -> dict[str, Any]:
        """``/api/v3/depth`` body: the book after our fills, our resting orders included."""
        with self._lock:
            book = self._book(symbol)
            bids, asks = dict(book.bids), dict(book.asks)
            for o in self._orders:
                if o.symbol == symbol and o.status in OPEN and o.type != "MARKET":
                    side = bids if o.side == "BUY" else asks
                    side[o.price] = side.get(o.price, ZERO) + o.qty - o.executed
            return {"lastUpdateId": book.version,
                    "bids": [[fmt(p), fmt(q)] for p, q in sorted(bids.items(), reverse=True)[:limit]],
                    "asks": [[fmt(p), fmt(q)] for p, q in sorted(asks.items())[:limit]]}

    def deposit(self, asset: str, amount: Num) -> None:
        """Credit ``amount`` (a ``balanceUpdate`` event, as a deposit on Binance)."""
        with self._lock:
            now = self._clock()
            self._free[asset] = self._free.get(asset, ZERO) + dec(amount)
            self._locked.setdefault(asset, ZERO)
            self._emit({"e": "balanceUpdate", "E": now, "a": asset, "d": fmt(dec(amount)), "T": now})

    def balances(self) -> dict[str, AssetBalance]:
        """asset -> (free, locked), exact."""
        with self._lock:
            return {a: AssetBalance(self._free[a], self._locked.get(a, ZERO)) for a in sorted(self._free)}

    @property
    def orders(self) -> list[dict[str, Any]]:
        """Every order the venue accepted, as ``GET /api/v3/order`` shows it, oldest first."""
        with self._lock:
            return [order_json(o) for o in self._orders]

    @property
    def trades(self) -> list[dict[str, Any]]:
        """Every fill, as ``GET /api/v3/myTrades`` shows it, oldest first."""
        with self._lock:
            return [dict(t) for t in self._trades]

    def duplicate_client_order_ids(self) -> list[str]:
        """Client order ids carried by more than one accepted order (should be none)."""
        with self._lock:
            seen: dict[str, int] = {}
            for o in self._orders:
                seen[o.client_id] = seen.get(o.client_id, 0) + 1
            return sorted(c for c, n in seen.items() if n > 1)

    # -- signed REST operations (raise BinanceError) --------------------------------------------
    def new_order(self, params: Mapping[str, str], *, test: bool = False) -> dict[str, Any]:
        """``POST /api/v3/order`` (``test=True``: ``/order/test``, validates only)."""
        with self._lock:
            sub = Submission({k: v for k, v in params.items() if k != "signature"})
            if not test:
                self.submissions.append(sub)
            try:
                body = self._new_order(params, test)
            except BinanceError as e:
                sub.error_code, sub.error_msg = e.code, e.msg
                raise
            sub.accepted, sub.order_id = not test, body.get("orderId")
            return body

    def cancel_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``DELETE /api/v3/order``: cancel one open order by ``orderId`` or ``origClientOrderId``."""
        with self._lock:
            o = self._find(params, cancel=True)
            if o.status not in OPEN:
                raise BinanceError(-2011, "Unknown order sent.")
            return self._cancel(o, params.get("newClientOrderId") or self._gen_cid())

    def cancel_open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``DELETE /api/v3/openOrders``: cancel every open order of a symbol."""
        with self._lock:
            sym = self._symbol(params)
            todo = [o for o in self._orders if o.symbol == sym and o.status in OPEN]
            if not todo:
                raise BinanceError(-2011, "Unknown order sent.")
            return [self._cancel(o, self._gen_cid()) for o in todo]

    def query_order(self, params: Mapping[str, str]) -> dict[str, Any]:
        """``GET /api/v3/order``."""
        with self._lock:
            return order_json(self._find(params, cancel=False))

    def open_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/openOrders`` (``symbol`` optional)."""
        with self._lock:
            sym = self._symbol(params) if params.get("symbol") else None
            return [order_json(o) for o in self._orders
                    if o.status in OPEN and (sym is None or o.symbol == sym)]

    def all_orders(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/allOrders``: ``orderId`` (from), ``startTime``/``endTime``, ``limit``."""
        with self._lock:
            sym = self._symbol(params)
            rows = [o for o in self._orders if o.symbol == sym]
            return [order_json(o) for o in window(rows, params, "orderId", lambda o: o.order_id,
                                                              lambda o: o.time)]

    def my_trades(self, params: Mapping[str, str]) -> list[dict[str, Any]]:
        """``GET /api/v3/myTrades``: ``orderId``, ``fromId``, ``startTime``/``endTime``, ``limit``."""
        with self._lock:
            sym = self._symbol(params)
            rows = [t for t in self._trades if t["symbol"] == sym]
            oid = int_param(params, "orderId")
            if oid is not None:
                rows = [t for t in rows if t["orderId"] == oid]
            return [dict(t) for t in window(rows, params, "fromId", lambda t: t["id"], lambda t: t["time"])]

    def account(self) -> dict[str, Any]:
        """``GET /api/v3/account``."""
        with self._lock:
            bp = int(self.maker_fee * 10_000), int(self.taker_fee * 10_000)
            return {"makerCommission": bp[0], "takerCommission": bp[1], "buyerCommission": 0,
                    "sellerCommission": 0,
                    "commissionRates": {"maker": fmt(self.maker_fee), "taker": fmt(self.taker_fee),
                                        "buyer": fmt(ZERO), "seller": fmt(ZERO)},
                    "canTrade": True, "canWithdraw": True, "canDeposit": True, "brokered": False,
                    "requireSelfTradePrevention": False, "preventSor": False, "updateTime": self._clock(),
                    "accountType": "SPOT", "permissions": ["SPOT"], "uid": 1,
                    "balances": [{"asset": a, "free": fmt(b.free), "locked": fmt(b.locked)}
                                 for a, b in self.balances().items()]}

    # -- the market moves ------------------------------------------------------------------------
    def cross(self, symbol: str, price: Num, qty: Num | None = None) -> list[dict[str, Any]]:
        """The market trades through ``price``: resting buys at or above it and resting sells at or
        below it fill (maker, at their own price), best price then oldest first, up to ``qty`` in
        total (all of them when ``None``). Returns the new fills (``myTrades`` shape)."""
        px, left = dec(price), None if qty is None else dec(qty)
        with self._lock:
            hit = [o for o in self._orders if o.symbol == symbol and o.status in OPEN and o.type != "MARKET"
                   and ((o.side == "BUY" and o.price >= px) or (o.side == "SELL" and o.price <= px))]
            hit.sort(key=lambda o: (-o.price if o.side == "BUY" else o.price, o.order_id))
            fills: list[dict[str, Any]] = []
            for o in hit:
                q = o.qty - o.executed if left is None else min(o.qty - o.executed, left)
                if q <= 0:
                    break
                fills.append(self._fill(o, o.price, q, maker=True))
                self._after_fills(o)
                if left is not None:
                    left -= q
            self._position_event()
            return fills

    # -- internals ------------------------------------------------------------------------------
    def _symbol(self, params: Mapping[str, str]) -> str:
        sym = params.get("symbol")
        if not sym:
            raise missing("symbol")
        if sym not in self._rules:
            raise BinanceError(-1121, "Invalid symbol.")
        return sym

    def _book(self, symbol: str) -> _Book:
        book = self._books.get(symbol)
        if book is None:
            src = self._book_source(symbol) or {}
            book = self._books[symbol] = _Book(src.get("bids", []), src.get("asks", []))
        return book

    def _gen_cid(self) -> str:
        return f"fake{next(self._gen_ids):020d}"

    def _find(self, params: Mapping[str, str], *, cancel: bool) -> VenueOrder:
        sym = self._symbol(params)
        oid, cid = int_param(params, "orderId"), params.get("origClientOrderId")
        if oid is None and not cid:
            raise BinanceError(-1102, "Param 'origClientOrderId' or 'orderId' must be sent, but both were "
                                      "empty/null!")
        for o in reversed(self._orders):  # a reused client id names its latest order
            if o.symbol == sym and (o.order_id == oid if oid is not None else o.client_id == cid):
                return o
        if cancel:
            raise BinanceError(-2011, "Unknown order sent.")
        raise BinanceError(-2013, "Order does not exist.")

    def _new_order(self, params: Mapping[str, str], test: bool) -> dict[str, Any]:
        rules = self._rules[self._symbol(params)]
        req = parse_new_order(params, rules)
        sym, side, otype, tif = req.symbol, req.side, req.type, req.tif
        qty, price, quote_qty = req.qty, req.price, req.quote_qty
        cid = req.client_id or self._gen_cid()
        book = self._book(sym)
        levels = book.levels(side)
        rules.check(otype, price, qty, quote_qty, levels[0][0] if levels else None)
        if test:
            return {}
        if any(o.client_id == cid and o.symbol == sym and o.status in OPEN for o in self._orders):
            raise BinanceError(-2010, "Duplicate order sent.")
        if otype == "LIMIT_MAKER" and levels and self._crosses(side, price or ZERO, levels[0][0]):
            raise BinanceError(-2010, "Order would immediately match and take.")
        plan = self._plan(side, levels, price, qty, quote_qty, rules.step())
        need = self._need(side, otype, price, qty, plan)
        planned = sum((q for _, q in plan), ZERO)
        if qty is None:  # sized by quoteOrderQty: it is FILLED once it spent what it could, but
            # EXPIRED when the book ran out first (one step more keeps it short of FILLED)
            exhausted = len(plan) == len(levels) and (not plan or plan[-1][1] == levels[-1][1])
            qty = planned + (rules.step() if exhausted else ZERO)
        have_asset = rules.quote if side == "BUY" else rules.base
        if self._free.get(have_asset, ZERO) < need:
            raise BinanceError(-2010, _NO_FUNDS)
        now = self._clock()
        o = VenueOrder(next(self._order_ids), cid, sym, side, otype, tif or "GTC", price or ZERO, qty,
                       quote_qty or ZERO, now, update_time=now)
        self._orders.append(o)
        self._move(have_asset, need, lock=True)
        o.locked = need
        self._report(o, "NEW")
        fills = []
        if not (tif == "FOK" and planned < qty):
            for px, q in plan:
                book_side = book.asks if side == "BUY" else book.bids
                book_side[px] -= q
                if book_side[px] <= 0:
                    del book_side[px]
                fills.append(self._fill(o, px, q, maker=False))
            if plan:
                book.version += 1
        if o.quote_qty:
            o.qty = o.executed  # a quote-sized order reports what it traded as its quantity
        if o.status in OPEN and (otype == "MARKET" or tif in ("IOC", "FOK")):
            self._finish(o, "EXPIRED")
        self._after_fills(o)
        self._position_event()
        return order_json(o, req.resp, fills)

    @staticmethod
    def _crosses(side: str, price: Decimal, best: Decimal) -> bool:
        return price >= best if side == "BUY" else price <= best

    def _plan(self, side: str, levels: list[tuple[Decimal, Decimal]], price: Decimal | None,
              qty: Decimal | None, quote_qty: Decimal | None, step: Decimal) -> list[tuple[Decimal, Decimal]]:
        """The (price, qty) the order would take now, level by level."""
        plan: list[tuple[Decimal, Decimal]] = []
        left_q, left_quote = qty, quote_qty
        for px, avail in levels:
            if price is not None and not self._crosses(side, price, px):
                break
            if left_q is not None:
                q = min(avail, left_q)
                left_q -= q
            else:
                assert left_quote is not None
                q = min(avail, (left_quote / px / step).to_integral_value(ROUND_DOWN) * step)
                left_quote -= q * px
            if q <= 0:
                break
            plan.append((px, q))
        return plan

    def _need(self, side: str, otype: str, price: Decimal | None, qty: Decimal | None,
              plan: list[tuple[Decimal, Decimal]]) -> Decimal:
        """What the order locks: base for a sell, quote (with the fee, in quote-fee mode) for a buy."""
        if side == "SELL":
            return qty if qty is not None else sum((q for _, q in plan), ZERO)
        margin = max(self.taker_fee, self.maker_fee) if self.fee_asset == "quote" else ZERO
        if otype == "MARKET":
            cost = sum((px * q for px, q in plan), ZERO)
            return cost * (1 + self.taker_fee) if self.fee_asset == "quote" else cost
        assert price is not None
        assert qty is not None
        return price * qty * (1 + margin)

    def _move(self, asset: str, amount: Decimal, *, lock: bool) -> None:
        """Free -> locked (``lock``) or locked -> free."""
        sign = 1 if lock else -1
        self._free[asset] = self._free.get(asset, ZERO) - sign * amount
        self._locked[asset] = self._locked.get(asset, ZERO) + sign * amount
        self._touched.add(asset)

    def _fill(self, o: VenueOrder, px: Decimal, q: Decimal, *, maker: bool) -> dict[str, Any]:
        rules = self._rules[o.symbol]
        quote_amt = px * q
        rate = self.maker_fee if maker else self.taker_fee
        buy = o.side == "BUY"
        if self.fee_asset == "quote" or not buy:
            fee_asset, fee = rules.quote, (quote_amt * rate).quantize(E8, ROUND_UP)
        else:
            fee_asset, fee = rules.base, (q * rate).quantize(E8, ROUND_UP)
        pay_asset, pay = (rules.quote, quote_amt) if buy else (rules.base, q)
        get_asset, get = (rules.base, q) if buy else (rules.quote, quote_amt)
        if fee_asset == pay_asset:
            pay += fee
        else:
            get -= fee
        from_lock = min(pay, o.locked)  # commission rounding may exceed the lock by 1e-8
        o.locked -= from_lock
        self._locked[pay_asset] -= from_lock
        self._free[pay_asset] -= pay - from_lock
        self._free[get_asset] = self._free.get(get_asset, ZERO) + get
        self._locked.setdefault(get_asset, ZERO)
        self._touched.update((pay_asset, get_asset))
        o.executed += q
        o.cum_quote += quote_amt
        now = self._clock()
        o.update_time = now
        o.status = "FILLED" if o.executed >= o.qty else "PARTIALLY_FILLED"
        trade = {"symbol": o.symbol, "id": next(self._trade_ids), "orderId": o.order_id, "orderListId": -1,
                 "price": fmt(px), "qty": fmt(q), "quoteQty": fmt(quote_amt), "commission": fmt(fee),
                 "commissionAsset": fee_asset, "time": now, "isBuyer": buy, "isMaker": maker,
                 "isBestMatch": True}
        self._trades.append(trade)
        if self.faults._take_drop():
            self.drop_marks.add(len(self.events))  # before the event: the pump never sends it
        self._report(o, "TRADE", trade=trade)
        return trade

    def _after_fills(self, o: VenueOrder) -> None:
        """Release what an order no longer needs locked (all of it once it is finished)."""
        if o.status in OPEN:
            rules = self._rules[o.symbol]
            if o.side == "BUY":
                margin = max(self.taker_fee, self.maker_fee) if self.fee_asset == "quote" else ZERO
                keep = (o.qty - o.executed) * o.price * (1 + margin)
                asset = rules.quote
            else:
                keep, asset = o.qty - o.executed, rules.base
            if o.locked > keep:
                self._move(asset, o.locked - keep, lock=False)
                o.locked = keep
        elif o.locked:
            rules = self._rules[o.symbol]
            self._move(rules.quote if o.side == "BUY" else rules.base, o.locked, lock=False)
            o.locked = ZERO

    def _finish(self, o: VenueOrder, status: str, cancel_id: str = "") -> None:
        o.status, o.update_time = status, self._clock()
        self._after_fills(o)
        self._report(o, status, cancel_id=cancel_id)

    def _cancel(self, o: VenueOrder, cancel_id: str) -> dict[str, Any]:
        self._finish(o, "CANCELED", cancel_id)
        self._position_event()
        return cancel_json(o, cancel_id)

    def _report(self, o: VenueOrder, x: str, *, trade: dict[str, Any] | None = None,
                cancel_id: str = "") -> None:
        seq = len(self.events) + 1
        self._emit(execution_report(o, x, self._clock(), seq, trade=trade, cancel_id=cancel_id))

    def _position_event(self) -> None:
        """One ``outboundAccountPosition`` with the assets the last operation changed."""
        if not self._touched:
            return
        now = self._clock()
        self._emit({"e": "outboundAccountPosition", "E": now, "u": now,
                    "B": [{"a": a, "f": fmt(self._free[a]), "l": fmt(self._locked.get(a, ZERO))}
                          for a in sorted(self._touched)]})
        self._touched.clear()

    def _emit(self, ev: dict[str, Any]) -> None:
        self.events.append(ev)
