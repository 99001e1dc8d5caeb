"""The paper matching engine: how a working order meets the market.

Two regimes, chosen per instrument by the data the session feeds in.

**With an order book** (an :class:`OrderBookSnapshot` or a :class:`Quote`, i.e. a one-level
book, has been seen for the instrument):

- Taking: a market order, or the crossing part of a limit order, walks the visible levels from
  the best price, filling at each level's price (several partial fills), never more than a
  level shows (rounded down to the venue's lot). What we take is removed from our copy of the
  book until the next snapshot replaces it, so two orders cannot take the same liquidity.
  With a book, slippage *is* the walk: no extra slippage is added.
- Market orders never rest: whatever the visible book cannot fill is cancelled (IOC
  semantics, as venues do). IOC limit remainders are cancelled; FOK orders fill completely
  or are cancelled without any fill. Post-only orders that would cross are rejected before
  they get here (see :meth:`MatchingEngine.would_cross`).
- Resting limit orders keep a **queue position**: the size visible at their price on their
  side when they arrive (plus our own earlier orders at that price), i.e. they join the back.
  The queue ahead decreases

  * by the size of every trade printed **at** our price whose aggressor is on the other side
    (or unknown); what a trade prints beyond the queue ahead fills us (rounded down to lot);
  * when a new book shows **less** at our price than our queue ahead: the level cannot hold
    more ahead of us than it shows, so ``queue = min(queue, visible size)``. Shrinkage that
    leaves the level above our queue is assumed to come from behind us (conservative: cancels
    never move us forward unless they must). A price better than the best level starts a new
    level (nobody ahead); a price beyond the visible depth (e.g. below the best bid when only a
    quote is known) leaves the queue unknown (infinite) until a book shows that price.

  A trade printed **through** our price (below a resting buy, above a resting sell) fills us
  as a maker at our limit, up to that trade's size. A book that crosses a resting order (asks
  at or below our bid) fills it as a maker at our limit, up to the crossing size.
- Stops trigger on a trade at or through the stop price, or on a book whose mid is at or
  through it, then act as a market (walk the book) or limit order (take, then rest).

**Without a book** (bars or trades only), deliberately conservative rules:

- An order can fill on a bar only if it reached the venue no later than the bar's open time
  (``bar.ts``), and on a trade only if it arrived no later than the trade.
- Market orders fill at the next bar's open (or the next trade's price) moved against us by
  the ``CostModel`` slippage and rounded to the tick against us.
- A limit buy fills only if the price trades **through** it: ``low < limit`` on a bar, a
  trade strictly below the limit; touching is not enough (sell: mirror). It fills at the limit
  as a maker. If the first bar (trade) after arrival already opens (prints) through the limit,
  the order was marketable on arrival: it fills as a taker at that open, slipped, capped at the
  limit.
- Participation cap: per bar (trade) our orders together fill at most ``max_volume_fraction``
  of its volume; the remainder keeps working on later bars (partial fills). A bar with no
  volume fills nothing.
- A stop-market buy triggers when ``high >= stop`` (trade: ``price >= stop``) and fills in
  the same bar at ``max(open, stop)``, slipped; a stop-limit becomes a limit order from the
  *next* bar on (we cannot know the path inside the bar).
- IOC/FOK orders are decided on the first bar (trade) after arrival and cancelled otherwise.
  Post-only limits that would cross the last price are rejected.

The engine only decides *what* fills at *which price*; balances, fees and reports are the
broker's job (:class:`~lyra.execution.paper.PaperBroker` implements the three hooks).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal

from lyra.core.enums import Liquidity, OrderEventType, OrderStatus, OrderType, Side, TimeInForce
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import AggressorSide, Bar, OrderBookSnapshot, Quote, Trade
from lyra.core.orders import OrderIntent
from lyra.core.values import ZERO

_MAKER = Liquidity.MAKER
_TAKER = Liquidity.TAKER
_CANCEL = OrderEventType.CANCEL
_INF = math.inf
Levels = tuple[tuple[float, float], ...]


_DEC_CACHE: dict[float, Decimal] = {}


def dec(x: float) -> Decimal:
    """A market-data float as the Decimal it was printed as (shortest repr). Prices repeat a
    lot (the same levels, the same trade prices), so conversions are memoised."""
    d = _DEC_CACHE.get(x)
    if d is None:
        if len(_DEC_CACHE) > 200_000:
            _DEC_CACHE.clear()
        d = _DEC_CACHE[x] = Decimal(repr(x))
    return d


def size_dec(x: float) -> Decimal:
    """A size computed in float (queue and volume arithmetic) as a Decimal, with the float
    noise below 1e-9 removed (0.7 - 0.5 = 0.19999999999999996 must give 0.2): no venue
    trades sizes finer than 1e-8."""
    return Decimal(repr(round(x, 9)))


def floor_lot(x: Decimal, lot: Decimal) -> Decimal:
    """Round a non-negative quantity down to the lot size."""
    return x - x % lot


@dataclass(frozen=True, slots=True)
class MatchingConfig:
    """Knobs of the fill model (see the module doc)."""

    #: at most this fraction of a bar's (trade's) volume fills our orders, without a book
    max_volume_fraction: float = 0.1

    def __post_init__(self) -> None:
        f = self.max_volume_fraction
        if not isinstance(f, (int, float)) or not 0 < f <= 1:
            raise ValidationError("max_volume_fraction", f, "must be in (0, 1]")


class WorkingOrder:
    """The venue's copy of an order: what the engine and the paper broker mutate.

    The session's :class:`~lyra.core.orders.Order` is never touched by the broker; it learns
    what happened from reports.
    """

    __slots__ = (
        "arrival_ts",
        "booked",
        "cid",
        "decision_id",
        "done",
        "fees",
        "filled_notional",
        "fresh",
        "has_limit",
        "inst",
        "intent",
        "is_buy",
        "limit",
        "limit_f",
        "lock_asset",
        "locked",
        "order_type",
        "quantity",
        "queue_ahead",
        "reason",
        "remaining",
        "seq",
        "status",
        "stop_f",
        "tif",
        "triggered",
        "ts",
        "venue_order_id",
    )

    def __init__(self, cid: str, inst: Instrument, intent: OrderIntent, decision_id: str,
                 seq: int, sent_ts: int, arrival_ts: int) -> None:
        self.cid = cid
        self.inst = inst
        self.intent = intent
        self.decision_id = decision_id
        self.seq = seq
        self.ts = sent_ts
        self.arrival_ts = arrival_ts
        self.venue_order_id = f"paper-{seq}"
        self.is_buy = intent.side is Side.BUY
        self.order_type = intent.order_type
        self.tif = intent.time_in_force
        self.quantity = intent.quantity
        self.remaining = intent.quantity
        self.has_limit = intent.limit_price is not None
        self.limit: Decimal = intent.limit_price if intent.limit_price is not None else ZERO
        self.limit_f = float(intent.limit_price) if intent.limit_price is not None else 0.0
        self.stop_f = float(intent.stop_price) if intent.stop_price is not None else 0.0
        self.triggered = intent.stop_price is None
        self.status = OrderStatus.SUBMITTED
        self.filled_notional = ZERO
        self.fees = ZERO
        self.locked = ZERO
        self.lock_asset = inst.quote if self.is_buy else inst.base
        self.queue_ahead = _INF
        self.fresh = True  # not yet evaluated against a bar/trade since arrival
        self.booked = False  # has been matched against a book and rests with a queue position
        self.done = False
        self.reason = ""


class MarketState:
    """What the engine knows of one instrument's market, and the orders working on it.

    ``pending``: accepted orders not resting on the book (untriggered stops; all orders while
    there is no book). ``levels``: orders resting on the book, by ``(is_buy, price)`` in
    arrival order, with ``level_size`` the total we rest there (our own queue). Indexing by
    level keeps a trade's cost proportional to the levels it touches, not to all orders.
    """

    __slots__ = ("ask_used", "asks", "bid_used", "bids", "has_book", "last_price", "level_size",
                 "levels", "pending")

    def __init__(self) -> None:
        self.bids: Levels = ()
        self.asks: Levels = ()
        self.bid_used: dict[float, float] = {}
        self.ask_used: dict[float, float] = {}
        self.has_book = False
        self.last_price: float | None = None
        self.pending: list[WorkingOrder] = []
        self.levels: dict[tuple[bool, float], list[WorkingOrder]] = {}
        self.level_size: dict[tuple[bool, float], float] = {}


def _visible(levels: Levels, used: dict[float, float], price: float, bids: bool) -> float | None:
    """Size shown at ``price`` on one side: 0 if the price is better than the best level or
    inside the shown range but absent; None if beyond the shown depth (unknown)."""
    if not levels:
        return None
    best, worst = levels[0][0], levels[-1][0]
    if price > best if bids else price < best:
        return 0.0  # better than the best level: a new level, nobody ahead
    if price < worst if bids else price > worst:
        return None
    for p, s in levels:
        if p == price:
            return max(s - used.get(p, 0.0), 0.0)
    return 0.0


class MatchingEngine:
    """Matches working orders against the market. Subclasses implement the three hooks."""

    def __init__(self, config: MatchingConfig | None = None) -> None:
        self.matching = config or MatchingConfig()
        self._markets: dict[str, MarketState] = {}

    # -- hooks ----------------------------------------------------------------------------
    def _fill(self, o: WorkingOrder, qty: Decimal, price: Decimal, liq: Liquidity, ts: int) -> Decimal:
        """Book a fill; return the quantity really filled (may be less: funds, reduce-only)."""
        raise NotImplementedError

    def _close(self, o: WorkingOrder, etype: OrderEventType, reason: str, ts: int) -> None:
        """End the order's life (cancel/expire) and release what it locked."""
        raise NotImplementedError

    def _slip(self, o: WorkingOrder, price: Decimal) -> Decimal:
        """A taker price moved by the cost model's slippage, rounded to the tick against us."""
        raise NotImplementedError

    # -- queries --------------------------------------------------------------------------
    def _state(self, instrument_id: str) -> MarketState:
        st = self._markets.get(instrument_id)
        if st is None:
            st = self._markets[instrument_id] = MarketState()
        return st

    def reference_price(self, instrument_id: str, side: Side) -> float | None:
        """The price a market order on ``side`` would pay now: the best opposite level with a
        book, the last trade/close without one, None if nothing is known yet."""
        st = self._markets.get(instrument_id)
        if st is None:
            return None
        if st.has_book:
            levels = st.asks if side is Side.BUY else st.bids
            if levels:
                return levels[0][0]
        return st.last_price

    def would_cross(self, o: WorkingOrder) -> bool:
        """True if the limit order would take liquidity now (for post-only)."""
        st = self._markets.get(o.inst.id)
        if st is None:
            return False
        if st.has_book:
            levels, used = (st.asks, st.ask_used) if o.is_buy else (st.bids, st.bid_used)
            for p, s in levels:
                if s - used.get(p, 0.0) > 0:
                    return p <= o.limit_f if o.is_buy else p >= o.limit_f
            return False
        lp = st.last_price
        return lp is not None and (lp <= o.limit_f if o.is_buy else lp >= o.limit_f)

    # -- arrival ------------------------------------------------------------------------
    def _activate(self, o: WorkingOrder, ts: int) -> None:
        """The order has reached the venue and was accepted: match what can match now."""
        st = self._state(o.inst.id)
        if not o.triggered:
            lp = st.last_price
            if lp is not None and (lp >= o.stop_f if o.is_buy else lp <= o.stop_f):
                o.triggered = True
            else:
                st.pending.append(o)
                return
        if st.has_book:
            self._take_on_book(st, o, ts)
        else:
            st.pending.append(o)

    def _take_on_book(self, st: MarketState, o: WorkingOrder, ts: int) -> None:
        """Take what crosses, then cancel (market/IOC/FOK) or rest with a queue position."""
        has_limit = o.has_limit
        limit_f = o.limit_f if has_limit else None
        if o.tif is TimeInForce.FOK and self._available(st, o, limit_f) < o.remaining:
            self._close(o, _CANCEL, "fok: the book cannot fill the whole order", ts)
            return
        self._walk(st, o, limit_f, ts)
        if o.done:
            return
        if not has_limit:
            self._close(o, _CANCEL, "market order: no more liquidity in the visible book", ts)
        elif o.tif is not TimeInForce.GTC:
            self._close(o, _CANCEL, f"{o.tif.value}: remainder not fillable now", ts)
        else:
            levels, used = (st.bids, st.bid_used) if o.is_buy else (st.asks, st.ask_used)
            v = _visible(levels, used, o.limit_f, o.is_buy)
            key = (o.is_buy, o.limit_f)
            own = st.level_size.get(key, 0.0)
            o.queue_ahead = _INF if v is None else v + own
            o.booked = True
            st.level_size[key] = own + float(o.remaining)
            lst = st.levels.get(key)
            if lst is None:
                st.levels[key] = [o]
            else:
                lst.append(o)

    def _unbook(self, o: WorkingOrder, qty: Decimal) -> None:
        """Our resting size at the order's level shrank by ``qty`` (filled or cancelled)."""
        st = self._markets[o.inst.id]
        key = (o.is_buy, o.limit_f)
        st.level_size[key] = max(st.level_size.get(key, 0.0) - float(qty), 0.0)

    def _available(self, st: MarketState, o: WorkingOrder, limit_f: float | None) -> Decimal:
        levels, used = (st.asks, st.ask_used) if o.is_buy else (st.bids, st.bid_used)
        lot = o.inst.size_increment
        total = ZERO
        for p, s in levels:
            if limit_f is not None and (p > limit_f if o.is_buy else p < limit_f):
                break
            avail = s - used.get(p, 0.0)
            if avail > 0:
                total += floor_lot(size_dec(avail), lot)
                if total >= o.remaining:
                    break
        return total

    def _walk(self, st: MarketState, o: WorkingOrder, limit_f: float | None, ts: int) -> None:
        levels, used = (st.asks, st.ask_used) if o.is_buy else (st.bids, st.bid_used)
        lot = o.inst.size_increment
        for p, s in levels:
            if limit_f is not None and (p > limit_f if o.is_buy else p < limit_f):
                break
            avail = s - used.get(p, 0.0)
            if avail <= 0:
                continue
            q = min(o.remaining, floor_lot(size_dec(avail), lot))
            if q <= 0:
                continue
            got = self._fill(o, q, dec(p), _TAKER, ts)
            used[p] = used.get(p, 0.0) + float(got)
            if o.done or got < q:
                return

    # -- market data ----------------------------------------------------------------------
    def _on_book(self, st: MarketState, bids: Levels, asks: Levels, ts: int) -> None:
        st.bids, st.asks, st.has_book = bids, asks, True
        st.bid_used = {}
        st.ask_used = {}
        if st.pending:
            mid = (bids[0][0] + asks[0][0]) / 2.0 if bids and asks else None
            pending = st.pending
            st.pending = []
            for o in pending:
                if o.done:
                    continue
                if not o.triggered:
                    if mid is None or not (mid >= o.stop_f if o.is_buy else mid <= o.stop_f):
                        st.pending.append(o)
                        continue
                    o.triggered = True
                # triggered stops, and orders that arrived before we had a book
                self._take_on_book(st, o, ts)
        if not st.levels:
            return
        for key in list(st.levels):
            is_buy, price = key
            lst = st.levels[key]
            opp = asks if is_buy else bids
            crossed = bool(opp) and (opp[0][0] <= price if is_buy else opp[0][0] >= price)
            levels, used = (bids, st.bid_used) if is_buy else (asks, st.ask_used)
            v = _visible(levels, used, price, is_buy)
            own = 0.0
            for o in lst:
                if o.done:
                    continue
                if crossed:
                    self._book_cross(st, o, ts)
                    if o.done:
                        continue
                if v is not None and v + own < o.queue_ahead:
                    o.queue_ahead = v + own
                own += float(o.remaining)
            self._prune(st, key, lst)

    @staticmethod
    def _prune(st: MarketState, key: tuple[bool, float], lst: list[WorkingOrder]) -> None:
        for o in lst:
            if o.done:
                live = [x for x in lst if not x.done]
                if live:
                    st.levels[key] = live
                else:
                    del st.levels[key]
                    st.level_size.pop(key, None)
                return

    def _book_cross(self, st: MarketState, o: WorkingOrder, ts: int) -> None:
        """Liquidity resting at or through our resting limit would have traded with us."""
        levels, used = (st.asks, st.ask_used) if o.is_buy else (st.bids, st.bid_used)
        lot = o.inst.size_increment
        for p, s in levels:
            if p > o.limit_f if o.is_buy else p < o.limit_f:
                return
            avail = s - used.get(p, 0.0)
            if avail <= 0:
                continue
            q = min(o.remaining, floor_lot(size_dec(avail), lot))
            if q <= 0:
                continue
            got = self._fill(o, q, o.limit, _MAKER, ts)
            used[p] = used.get(p, 0.0) + float(got)
            o.queue_ahead = 0.0
            if o.done or got < q:
                return

    def _on_trade(self, st: MarketState, t: Trade) -> None:
        st.last_price = t.price
        if not st.has_book:
            if st.pending:
                self._on_tape(st, t.ts, t.price, t.price, t.price, t.size)
            return
        p, size, ts = t.price, t.size, t.ts
        if st.pending:
            pending = st.pending
            st.pending = []
            for o in pending:
                if o.done:
                    continue
                if not o.triggered and (p >= o.stop_f if o.is_buy else p <= o.stop_f):
                    o.triggered = True
                    self._take_on_book(st, o, ts)
                elif not o.done:
                    st.pending.append(o)  # untriggered, or waiting for the first book
        if not st.levels:
            return
        through_left = size
        seller = t.side is not AggressorSide.BUY  # also when unknown
        buyer = t.side is not AggressorSide.SELL
        for key in list(st.levels):
            is_buy, price = key
            through = p < price if is_buy else p > price
            at = p == price and (seller if is_buy else buyer)
            if not (through or at):
                continue
            lst = st.levels[key]
            for o in lst:
                if o.done:
                    continue
                lot = o.inst.size_increment
                if through:
                    o.queue_ahead = 0.0
                    if through_left > 0:
                        q = min(o.remaining, floor_lot(size_dec(through_left), lot))
                        if q > 0:
                            through_left -= float(self._fill(o, q, o.limit, _MAKER, ts))
                else:
                    excess = size - o.queue_ahead
                    o.queue_ahead = max(o.queue_ahead - size, 0.0)
                    if excess > 0:
                        q = min(o.remaining, floor_lot(size_dec(excess), lot))
                        if q > 0:
                            self._fill(o, q, o.limit, _MAKER, ts)
            self._prune(st, key, lst)

    def _on_bar(self, st: MarketState, b: Bar) -> None:
        st.last_price = b.close
        if st.pending and not st.has_book:
            self._on_tape(st, b.ts, b.open, b.high, b.low, b.volume)

    def _on_tape(self, st: MarketState, ts: int, open_: float, high: float, low: float,
                 volume: float) -> None:
        """Bars and trades without a book (see the module doc); ``budget`` is the volume cap."""
        budget = volume * self.matching.max_volume_fraction if volume > 0 else 0.0
        for o in st.pending:
            if o.done:
                continue
            fresh, o.fresh = o.fresh, False
            buy = o.is_buy
            if not o.triggered:
                if not (high >= o.stop_f if buy else low <= o.stop_f):
                    continue
                o.triggered = True
                if o.order_type is OrderType.STOP_LIMIT:
                    o.fresh = True  # works as a limit from the next bar on
                    continue
                px = max(open_, o.stop_f) if buy else min(open_, o.stop_f)
                budget = self._tape_fill(o, self._slip(o, dec(px)), _TAKER, budget, ts)
                continue
            if not o.has_limit:
                if o.tif is TimeInForce.FOK and not self._budget_covers(o, budget):
                    self._close(o, _CANCEL, "fok: the bar/trade volume cannot fill the whole order", ts)
                    continue
                budget = self._tape_fill(o, self._slip(o, dec(open_)), _TAKER, budget, ts)
            else:
                lim = o.limit_f
                price: Decimal | None = None
                liq = _MAKER
                if fresh and (open_ < lim if buy else open_ > lim):
                    s = self._slip(o, dec(open_))
                    price = min(s, o.limit) if buy else max(s, o.limit)
                    liq = _TAKER
                elif low < lim if buy else high > lim:
                    price = o.limit
                if price is not None:
                    if o.tif is TimeInForce.FOK and not self._budget_covers(o, budget):
                        self._close(o, _CANCEL, "fok: the bar/trade volume cannot fill the whole order", ts)
                        continue
                    budget = self._tape_fill(o, price, liq, budget, ts)
            if fresh and not o.done and o.tif is not TimeInForce.GTC:
                self._close(o, _CANCEL, f"{o.tif.value}: remainder not fillable now", ts)
        if any(o.done for o in st.pending):
            st.pending = [o for o in st.pending if not o.done]

    @staticmethod
    def _budget_covers(o: WorkingOrder, budget: float) -> bool:
        return budget > 0 and floor_lot(size_dec(budget), o.inst.size_increment) >= o.remaining

    def _tape_fill(self, o: WorkingOrder, price: Decimal, liq: Liquidity, budget: float, ts: int) -> float:
        if budget <= 0:
            return budget
        q = min(o.remaining, floor_lot(size_dec(budget), o.inst.size_increment))
        if q <= 0:
            return budget
        return budget - float(self._fill(o, q, price, liq, ts))

    def _dispatch(self, event: Trade | Quote | OrderBookSnapshot | Bar) -> None:
        """Feed one market event to the engine (time handling is the broker's job)."""
        if isinstance(event, Trade):
            self._on_trade(self._state(event.instrument_id), event)
        elif isinstance(event, Quote):
            self._on_book(self._state(event.instrument_id), ((event.bid_price, event.bid_size),),
                          ((event.ask_price, event.ask_size),), event.ts)
        elif isinstance(event, OrderBookSnapshot):
            self._on_book(self._state(event.instrument_id),
                          tuple((lv.price, lv.size) for lv in event.bids),
                          tuple((lv.price, lv.size) for lv in event.asks), event.ts)
        elif isinstance(event, Bar):
            self._on_bar(self._state(event.instrument_id), event)
        else:
            raise ValidationError("event", type(event).__name__, "not a market event")
