"""The pre-trade checks, one function each, in the order the engine runs them.

A check gets the order as seen by risk (:class:`OrderView`), the caller's
:class:`~lyra.risk.engine.RiskContext`, the resolved limits of that account and instrument
(:class:`ResolvedLimits`) and the account's mutable book (:class:`AccountBook`). It returns

* ``None`` — passes;
* a ``str`` — the exact rejection reason, ``"<check>: <value> > <limit> [unit]"``;
* a :class:`Resize` — the largest quantity that would pass (only checks in
  :data:`~lyra.risk.config.RESIZABLE_CHECKS` compute one; the engine uses it only if the
  config allows resizing for that check).

Position and exposure limits only stop orders that make things worse: an order that brings
a measure down passes even when the book is over the limit (so a book can always be cut).
The projected position counts this order and the account's open orders on the same
instrument and side (the worst case if they all fill).

What an order costs — the fee, the buffer a market buy reserves, the venue's lot and
minimums — is :class:`lyra.core.costs.CostRule`, the very rule the paper broker reserves by:
a buy the balance check resizes to fit is never rejected by that broker for funds. The rule
comes from the context (``RiskContext.costs``, the broker's) or else from the instrument.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal
from typing import TYPE_CHECKING, Any

import numpy as np

from lyra.core.costs import CostRule, cents
from lyra.core.enums import OrderType, Side
from lyra.core.errors import InvalidOrder
from lyra.core.instrument import Instrument
from lyra.core.orders import Order
from lyra.core.values import plain_str
from lyra.risk.var import incremental_var

if TYPE_CHECKING:
    from lyra.risk.engine import RiskContext

ZERO = Decimal(0)
ONE = Decimal(1)
HUNDRED = Decimal(100)
#: Approvals the duplicate guard remembers per account (the oldest are forgotten first).
MAX_RECENT = 10_000


@dataclass(frozen=True, slots=True)
class Resize:
    """A check's verdict "too big, but this much would pass"."""

    quantity: Decimal  #: the largest passing quantity (before rounding to the lot size)
    reason: str  #: the rejection reason for the original quantity


class ResolvedLimits:
    """The effective limits of one account and instrument, as plain attributes (fast)."""

    __slots__ = (
        "allowed_instruments", "allowed_venues", "balance_check", "duplicate_window_ms",
        "margin_rate", "max_gross_exposure", "max_leverage", "max_net_exposure", "max_open_orders",
        "max_order_notional", "max_order_qty", "max_orders_per_minute", "max_orders_per_second",
        "max_position_notional", "max_position_qty", "max_var", "min_order_notional",
        "price_collar_pct",
    )  # fmt: skip

    def __init__(self, values: Mapping[str, Any]) -> None:
        for name in self.__slots__:
            setattr(self, name, values.get(name))
        if self.balance_check is None:
            self.balance_check = "spot"

    allowed_instruments: frozenset[str] | None
    allowed_venues: frozenset[str] | None
    balance_check: str
    duplicate_window_ms: int | None
    margin_rate: Decimal | None
    max_gross_exposure: Decimal | None
    max_leverage: Decimal | None
    max_net_exposure: Decimal | None
    max_open_orders: int | None
    max_order_notional: Decimal | None
    max_order_qty: Decimal | None
    max_orders_per_minute: int | None
    max_orders_per_second: int | None
    max_position_notional: Decimal | None
    max_position_qty: Decimal | None
    max_var: Decimal | None
    min_order_notional: Decimal | None
    price_collar_pct: Decimal | None


class AccountBook:
    """What the engine remembers per account between checks: approvals for the rate limit
    and the duplicate guard."""

    __slots__ = ("approved_ts", "last_second", "recent")

    def __init__(self) -> None:
        self.approved_ts: deque[int] = deque()  # approval times of the last minute
        self.last_second: deque[int] = deque()  # ... and of the last second (O(1) counting)
        # (instrument, side, qty, price) -> (ts, decision_id) of the last approval, oldest first
        self.recent: OrderedDict[tuple[str, str, Decimal, Decimal | None], tuple[int, str]] = OrderedDict()

    def record(self, key: tuple[str, str, Decimal, Decimal | None], ts: int, decision_id: str) -> None:
        """Remember an approval. ``O(1)`` amortised: both memories are bounded."""
        times = self.approved_ts
        times.append(ts)
        while times[0] <= ts - 60_000:  # nothing looks further back than a minute
            times.popleft()
        sec = self.last_second
        sec.append(ts)
        while sec[0] <= ts - 1_000:
            sec.popleft()
        recent = self.recent
        recent[key] = (ts, decision_id)
        recent.move_to_end(key)  # keep time order
        if len(recent) > MAX_RECENT:
            recent.popitem(last=False)  # the oldest (O(1), unlike deleting a dict's first key)


class OrderView:
    """The order as risk sees it, computed once per check (quantity may be resized)."""

    __slots__ = (
        "client_order_id", "inst", "instrument_id", "is_limit", "key_price", "limit_price", "mark",
        "open_same", "order", "pos", "price", "qty", "reduce_only", "side", "sign", "tag",
    )  # fmt: skip

    def __init__(self, order: Order, ctx: RiskContext, inst: Instrument) -> None:
        it = order.intent
        self.order = order
        self.client_order_id = order.client_order_id
        self.instrument_id = iid = it.instrument_id
        self.inst = inst
        self.side = it.side
        self.sign = 1 if it.side is Side.BUY else -1
        self.qty: Decimal = it.quantity
        self.limit_price = it.limit_price
        self.is_limit = it.order_type is OrderType.LIMIT or it.order_type is OrderType.STOP_LIMIT
        self.key_price = it.limit_price if self.is_limit else it.stop_price
        self.reduce_only = it.reduce_only
        self.tag = it.tag
        self.mark: Decimal | None = ctx.marks.get(iid)
        # Money checks price a limit order at its limit, anything else at the mark.
        self.price: Decimal | None = it.limit_price if self.is_limit else self.mark
        self.pos: Decimal = ctx.positions.get(iid, ZERO)
        same = ZERO
        for o in ctx.open_orders:
            oi = o.intent
            if oi.instrument_id == iid and oi.side is it.side and o.client_order_id != order.client_order_id:
                same += o.intent.quantity - o.filled_quantity
        self.open_same = same  # unsigned remaining of open orders on this side

    def reduces(self) -> bool:
        """True if this order (with the same-side open ones) only brings the position to zero."""
        pos = self.pos
        if pos == 0 or (pos > 0) == (self.sign > 0):
            return False
        return self.qty + self.open_same <= abs(pos)

    def projected(self, qty: Decimal | None = None) -> Decimal:
        """Signed position if this order and the same-side open orders all fill."""
        return self.pos + self.sign * ((self.qty if qty is None else qty) + self.open_same)


def fmt_qty(q: Decimal) -> str:
    """A quantity as plain digits, no exponent: ``Decimal('1E+1')`` → ``'10'``."""
    return plain_str(q)


_RULES: dict[Instrument, CostRule] = {}


def cost_rule(ctx: RiskContext, inst: Instrument) -> CostRule:
    """The cost rule of ``inst``: the broker's from the context, else the instrument's own."""
    costs = ctx.costs
    if costs is not None:
        rule = costs.get(inst.id)
        if rule is not None:
            return rule
    rule = _RULES.get(inst)
    if rule is None:
        if len(_RULES) > 10_000:  # bounded: instruments are few, but never grow without end
            _RULES.clear()
        rule = _RULES[inst] = CostRule.of(inst)
    return rule


def floor_to_lot(q: Decimal, step: Decimal) -> Decimal:
    if q <= 0:
        return ZERO
    return (q / step).to_integral_value(rounding=ROUND_DOWN) * step


# ---------------------------------------------------------------------------------- checks
CheckFn = Callable[["OrderView", "RiskContext", ResolvedLimits, AccountBook, str], "str | Resize | None"]


def check_allowed(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                  ccy: str) -> str | None:
    if lim.allowed_venues is not None and o.inst.venue not in lim.allowed_venues:
        return f"allowed_venues: {o.inst.venue} is not an allowed venue"
    if lim.allowed_instruments is not None and o.instrument_id not in lim.allowed_instruments:
        return f"allowed_instruments: {o.instrument_id} is not an allowed instrument"
    return None


def check_mark(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
               ccy: str) -> str | None:
    if o.mark is None or o.mark <= 0:
        return f"no_mark: no mark price for {o.instrument_id}"
    return None


def check_instrument_rules(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                           ccy: str) -> str | None:
    try:
        o.inst.check_order(o.qty, o.limit_price)
    except InvalidOrder as exc:
        return f"instrument_rules: {exc}"
    if not o.is_limit and o.inst.min_notional > 0:
        # A market (or stop) order's value, at its stop or the mark, against the venue's
        # minimum: what the broker checks on arrival (a limit's was checked at its limit).
        rule = cost_rule(ctx, o.inst)
        why = rule.minimum_problem(o.qty, rule.reference(stop=o.order.intent.stop_price, market=o.mark))
        if why:
            return f"instrument_rules: {why}"
    return None


def check_min_order_notional(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                             ccy: str) -> str | None:
    m = lim.min_order_notional
    if m is not None and o.price is not None:
        n = o.qty * o.price
        if n < m:
            return f"min_order_notional: {n:.2f} < {m} {ccy}"
    return None


def check_max_order_qty(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                        ccy: str) -> str | Resize | None:
    m = lim.max_order_qty
    if m is not None and o.qty > m:
        return Resize(m, f"max_order_qty: {fmt_qty(o.qty)} > {m} {o.inst.base}")
    return None


def check_max_order_notional(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                             ccy: str) -> str | Resize | None:
    m = lim.max_order_notional
    if m is not None and o.price is not None:
        n = o.qty * o.price
        if n > m:
            return Resize(m / o.price, f"max_order_notional: {n:.2f} > {m} {ccy}")
    return None


def check_max_position_qty(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                           ccy: str) -> str | Resize | None:
    m = lim.max_position_qty
    if m is None:
        return None
    after = abs(o.projected())
    if after > m and after > abs(o.pos):
        # Largest q with |pos + sign·(q + open)| <= m on the side the order pushes towards.
        room = m - o.sign * o.pos - o.open_same
        return Resize(room, f"max_position_qty: {fmt_qty(after)} > {m} {o.inst.base}")
    return None


def check_max_position_notional(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                                ccy: str) -> str | Resize | None:
    m = lim.max_position_notional
    if m is None or o.mark is None:
        return None
    after = abs(o.projected()) * o.mark
    if after > m and after > abs(o.pos) * o.mark:
        room = m / o.mark - o.sign * o.pos - o.open_same
        return Resize(room, f"max_position_notional: {after:.2f} > {m} {ccy}")
    return None


def check_price_collar(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                       ccy: str) -> str | None:
    pct = lim.price_collar_pct
    lp = o.limit_price
    if pct is None or lp is None or o.mark is None:
        return None
    dev = abs(lp - o.mark) * HUNDRED / o.mark
    if dev > pct:
        return f"price_collar: limit {lp} is {dev:.2f}% from mark {o.mark} > {pct}%"
    return None


def check_duplicate(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                    ccy: str) -> str | None:
    w = lim.duplicate_window_ms
    if w is None:
        return None
    q = o.order.intent.quantity  # as requested: a resize must not hide a repeat
    prev = book.recent.get((o.instrument_id, o.side.value, q, o.key_price))
    if prev is not None:
        age = ctx.now - prev[0]
        if 0 <= age < w:
            px = "market" if o.key_price is None else str(o.key_price)
            return (f"duplicate_order: {o.side.value} {fmt_qty(q)} @ {px} as {prev[1]} "
                    f"{age} ms ago < {w} ms")
    return None


def check_open_orders(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                      ccy: str) -> str | None:
    m = lim.max_open_orders
    if m is not None:
        n = len(ctx.open_orders) + 1
        if n > m:
            return f"max_open_orders: {n} > {m}"
    return None


def check_order_rate(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                     ccy: str) -> str | None:
    per_s, per_m = lim.max_orders_per_second, lim.max_orders_per_minute
    if per_s is None and per_m is None:
        return None
    now = ctx.now
    if per_m is not None:
        ts = book.approved_ts
        while ts and ts[0] <= now - 60_000:
            ts.popleft()
        if len(ts) + 1 > per_m:
            return f"order_rate: {len(ts) + 1} orders in 60 s > {per_m} per minute"
    if per_s is not None:
        sec = book.last_second
        while sec and sec[0] <= now - 1_000:
            sec.popleft()
        if len(sec) + 1 > per_s:
            return f"order_rate: {len(sec) + 1} orders in 1 s > {per_s} per second"
    return None


def exposures(ctx: RiskContext, skip: str) -> tuple[Decimal, Decimal, str | None]:
    """(gross, net) of every position but ``skip``, or a reason if a mark is missing.

    ``O(1)`` with an :class:`~lyra.risk.engine.ExposureBook` in the context, else a pass
    over the positions.
    """
    book = ctx.exposure
    if book is not None:
        if book.unmarked:
            missing = sorted(book.unmarked - {skip})
            if missing:
                return ZERO, ZERO, f"no_mark: no mark price for held {missing[0]}"
        v = book.value(skip)
        return book.gross - abs(v), book.net - v, None
    gross = net = ZERO
    get = ctx.marks.get
    for iid, q in ctx.positions.items():
        if not q or iid == skip:  # `not q` is the cheapest zero test of a Decimal
            continue
        m = get(iid)
        if m is None:
            return ZERO, ZERO, f"no_mark: no mark price for held {iid}"
        v = q * m
        net += v
        gross += abs(v)
    return gross, net, None


def check_exposure(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                   ccy: str) -> str | None:
    g_lim, n_lim, lev = lim.max_gross_exposure, lim.max_net_exposure, lim.max_leverage
    if g_lim is None and n_lim is None and lev is None:
        return None
    assert o.mark is not None  # check_mark ran first
    gross, net, missing = exposures(ctx, o.instrument_id)
    if missing:
        return missing
    before_v = o.pos * o.mark
    after_v = o.projected() * o.mark
    g_before, g_after = gross + abs(before_v), gross + abs(after_v)
    if g_lim is not None and g_after > g_lim and g_after > g_before:
        return f"max_gross_exposure: {g_after:.2f} > {g_lim} {ccy}"
    n_before, n_after = abs(net + before_v), abs(net + after_v)
    if n_lim is not None and n_after > n_lim and n_after > n_before:
        return f"max_net_exposure: {n_after:.2f} > {n_lim} {ccy}"
    if lev is not None and g_after > g_before:
        if ctx.equity <= 0:
            return f"max_leverage: equity {ctx.equity:.2f} {ccy} is not positive"
        lv = g_after / ctx.equity
        if lv > lev:
            return f"max_leverage: {lv:.4f}x > {lev}x"
    return None


def check_balance(o: OrderView, ctx: RiskContext, lim: ResolvedLimits, book: AccountBook,
                  ccy: str) -> str | Resize | None:
    mode = lim.balance_check
    if mode == "off" or o.price is None:
        return None
    inst = o.inst
    if mode == "spot":
        # The broker's reservation (lyra.core.costs): a buy needs its limit, or the mark plus
        # the market buffer, times the quantity plus the taker fee; a sell needs the base.
        rule = cost_rule(ctx, inst)
        limit = o.limit_price if o.is_limit else None
        stop = o.order.intent.stop_price
        if o.sign > 0:
            free = ctx.balances.get(inst.quote, ZERO)
            unit = rule.unit_price(limit=limit, stop=stop, market=o.mark)
            if unit is None:
                return None
            need = rule.reserve(o.qty, unit)
            if need <= free:
                return None
            reason = (f"balance: needs {cents(need, up=True)} {inst.quote}, "
                      f"free {cents(free, up=False)} {inst.quote}")
            fit = rule.affordable(free, unit)
        else:
            free = ctx.balances.get(inst.base, ZERO)
            if o.qty <= free:
                return None
            reason = f"balance: needs {fmt_qty(o.qty)} {inst.base}, free {fmt_qty(free)} {inst.base}"
            fit = rule.floor(free)
        if fit > 0:
            # What fits must also be an order the venue takes, or resizing only moves the refusal.
            why = rule.minimum_problem(fit, rule.reference(limit=limit, stop=stop, market=o.mark))
            if why:
                return f"{reason}; the {fmt_qty(fit)} {inst.base} that fits is refused by the venue: {why}"
        return Resize(fit, reason)
    # margin: exposure-adding orders need the initial margin in free quote currency.
    if o.reduces():
        return None
    rate = lim.margin_rate if lim.margin_rate is not None else ONE
    free = ctx.balances.get(inst.quote, ZERO)
    unit = o.price * rate
    need = o.qty * unit
    if need > free:
        return Resize(free / unit,
                      f"balance: margin needs {cents(need, up=True)} {inst.quote}, "
                      f"free {cents(free, up=False)} {inst.quote}")
    return None


def var_vectors(
    ctx: RiskContext, o: OrderView, index: Mapping[str, int], n: int
) -> tuple[np.ndarray[Any, np.dtype[np.float64]], np.ndarray[Any, np.dtype[np.float64]], str | None]:
    """Current exposures and the order's change, in the covariance model's column order."""
    v = np.zeros(n)
    d = np.zeros(n)
    marks = ctx.marks
    for iid, q in ctx.positions.items():
        if q == 0:
            continue
        j = index.get(iid)
        if j is None:
            return v, d, f"pre_trade_var: held {iid} has no column in the covariance model"
        m = marks.get(iid)
        if m is None:
            return v, d, f"no_mark: no mark price for held {iid}"
        v[j] = float(q * m)
    j = index.get(o.instrument_id)
    if j is None:
        return v, d, f"pre_trade_var: {o.instrument_id} has no column in the covariance model"
    assert o.mark is not None
    d[j] = float(o.sign * o.qty * o.mark)
    return v, d, None


def run_var_check(o: OrderView, ctx: RiskContext, max_var: Decimal, index: Mapping[str, int],
                  confidence: float, horizon: int, include_mean: bool, ccy: str) -> str | None:
    """Reject if portfolio normal VaR after the order exceeds ``max_var`` and the order adds to it."""
    model = ctx.covariance
    if model is None:
        return "pre_trade_var: no covariance model in the context"
    v, d, err = var_vectors(ctx, o, index, model.n_assets)
    if err:
        return err
    iv = incremental_var(v, d, model, confidence=confidence, horizon=horizon, include_mean=include_mean)
    if iv.var_after > float(max_var) and iv.incremental > 0.0:
        return (f"pre_trade_var: {iv.var_after:.2f} > {max_var} {ccy} "
                f"(before {iv.var_before:.2f}, {confidence:g} over {horizon} period(s))")
    return None


#: The checks, in the order the engine runs them (VaR and custom checks come after these).
CHECKS: Sequence[tuple[str, CheckFn]] = (
    ("allowed", check_allowed),
    ("no_mark", check_mark),
    ("instrument_rules", check_instrument_rules),
    ("min_order_notional", check_min_order_notional),
    ("max_order_qty", check_max_order_qty),
    ("max_order_notional", check_max_order_notional),
    ("max_position_qty", check_max_position_qty),
    ("max_position_notional", check_max_position_notional),
    ("price_collar", check_price_collar),
    ("duplicate_order", check_duplicate),
    ("max_open_orders", check_open_orders),
    ("order_rate", check_order_rate),
    ("exposure", check_exposure),
    ("balance", check_balance),
)
