"""Smart order routing: split one order across several venues' books for the best net price.

>>> from decimal import Decimal as D
>>> from lyra.core import Side
>>> a = VenueQuote("a", [(D("99"), D("5"))], [(D("100"), D("1")), (D("102"), D("5"))],
...                D("0.001"), D("0.1"), D("0.1"), D("0"), D("1"), 0)
>>> b = VenueQuote("b", [(D("99"), D("5"))], [(D("101"), D("5"))],
...                D("0.0002"), D("0.1"), D("0.1"), D("0"), D("1"), 0)
>>> plan = plan_route(Side.BUY, D("3"), [a, b])
>>> [(c.venue, c.quantity, c.limit_price) for c in plan.children]
[('a', Decimal('1.0'), Decimal('100')), ('b', Decimal('2.0'), Decimal('101'))]
>>> plan.expected_net, plan.single_venue_best.venue, plan.single_venue_best.net
(Decimal('302.14040'), 'b', Decimal('303.06060'))

**What is optimised.** A buy minimises what it pays including taker fees; a sell maximises
what it receives after them. Each venue's cost is its book walked best first (the visible
depth, as seen in the quote) times ``1 ± taker_fee``. Among all splits that route the largest
possible quantity, the plan is the cheapest.

**Venue rules.** Every child is a multiple of its venue's ``size_step`` and is either absent
or at least ``min_size`` with ``quantity × limit price >= min_notional`` (the limit price is the
child's worst level, which is what the venue checks on an IOC limit order). On the sell side a
bigger child can have a lower limit price, so a child is allowed from the size on which *every*
larger child clears the notional minimum — a conservative reading that only matters on books
with large gaps between levels.

**Limit price.** ``limit_price`` bounds the gross level price, as the venue applies it to each
child: a buy never takes an ask above it, a sell never a bid below it, fees aside. (Fold the fee
into the limit yourself if you mean a net bound.)

**What cannot be routed** — depth within the limit, the steps, the minimums, or a quantity finer
than every step — is reported as ``unroutable``; the plan routes the rest.

**Exactness.** The plan is the exact optimum of this model — largest routable quantity, then
lowest net cost — for any mix of size steps and minimums (the argument is in
:mod:`lyra.execution.routing_solver`; the tests compare it with a brute force over every
allocation on real books). One exception: with very different steps, enumerating each coarse
venue's remainder modulo the steps' least common multiple could take more than
``MAX_RESIDUE_COMBOS`` combinations; the router then keeps remainder 0 only (children stay
valid, the split may cost a little more) and says so with ``RoutePlan.exact = False``.
Among equally cheap splits, ties go to the venue listed first.

**Cost.** Without binding minimums the work is one merge of the levels the order needs. A venue
whose cheapest share would fall below its minimum makes the router solve each subset of venues
(2^n - 1, hence :data:`MAX_VENUES`). A venue whose step is neither the finest nor the least
common multiple of all steps multiplies that by the remainders it can leave modulo that multiple
(``RoutePlan.combos_searched``); steps of 1, 10 and 10 need no such search, 1, 2 and 5 need 10.

:func:`execute_route` runs a plan through a ``send_child`` callable (IOC limit children) and
re-routes what did not fill on refreshed books for a bounded number of rounds.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence
from decimal import Decimal
from itertools import accumulate
from operator import mul

from lyra.core.enums import Side
from lyra.core.errors import ValidationError
from lyra.core.values import ZERO, to_decimal
from lyra.execution.routing_exec import (
    ChildExecution,
    PlanFn,
    RouteResult,
    RouteRound,
    execute_route,
    planner,
)
from lyra.execution.routing_solver import MAX_RESIDUE_COMBOS, VenueModel, notional_min_units, solve
from lyra.execution.routing_types import (
    Level,
    RouteChild,
    RoutePlan,
    SingleVenueCost,
    VenueQuote,
    from_scaled,
    places,
    to_scaled,
)

__all__ = [
    "MAX_RESIDUE_COMBOS",
    "MAX_VENUES",
    "ChildExecution",
    "PlanFn",
    "RouteChild",
    "RoutePlan",
    "RouteResult",
    "RouteRound",
    "SingleVenueCost",
    "VenueQuote",
    "execute_route",
    "plan_route",
    "planner",
]

#: Minimums make the router try every subset of venues (2^n); beyond this many it refuses.
MAX_VENUES = 12


class _Side:
    """One venue's side of the book for one plan, as integers at the plan's common scales."""

    __slots__ = ("_cum_cost", "_cum_size", "fee", "min_notional", "min_size", "prices", "quote", "sizes",
                 "step")

    def __init__(self, quote: VenueQuote, prices: Sequence[int], sizes: Sequence[int], fee: int,
                 step: int, min_size: int, min_notional: int) -> None:
        self.quote = quote
        self.prices = prices
        self.sizes = sizes
        self.fee = fee
        self.step = step  # the venue's own size step
        self.min_size = min_size
        self.min_notional = min_notional  # ceil(min notional) at the price × size scale
        self._cum_size: list[int] | None = None
        self._cum_cost: list[int] = []

    def walk(self, qty: int) -> tuple[int, int, int]:
        """Taking ``qty`` (<= depth): (gross cost, index of the last level, quantity from it)."""
        if self._cum_size is None:
            self._cum_size = list(accumulate(self.sizes))
            self._cum_cost = list(accumulate(map(mul, self.prices, self.sizes)))
        i = bisect_left(self._cum_size, qty)
        before = self._cum_size[i - 1] if i else 0
        last = qty - before
        return (self._cum_cost[i - 1] if i else 0) + last * self.prices[i], i, last


def _rescale(n: int, own: int, scale: int, ceil: bool = False) -> int:
    """``n × 10**(scale - own)``; rounded up when ``own > scale`` and ``ceil``, else down."""
    if own <= scale:
        return n * int(10 ** (scale - own))
    d = int(10 ** (own - scale))
    return -(-n // d) if ceil else n // d


def _check_inputs(side: Side | str, quantity: object, quotes: Sequence[VenueQuote],
                  limit_price: object | None) -> tuple[Side, Decimal, Decimal | None]:
    try:
        s = Side(side)
    except ValueError:
        raise ValidationError("side", side, "must be 'buy' or 'sell'") from None
    q = to_decimal(quantity, "quantity")
    if q <= 0:
        raise ValidationError("quantity", q, "must be positive")
    if isinstance(quotes, VenueQuote) or not isinstance(quotes, Sequence) or not quotes:
        raise ValidationError("quotes", quotes, "need at least one VenueQuote to route to")
    if len(quotes) > MAX_VENUES:
        raise ValidationError("quotes", len(quotes), f"at most {MAX_VENUES} venues",
                              "pre-select the venues worth routing to")
    seen: set[str] = set()
    for i, vq in enumerate(quotes):
        if not isinstance(vq, VenueQuote):
            raise ValidationError(f"quotes[{i}]", vq, "not a VenueQuote")
        if vq.venue in seen:
            raise ValidationError(f"quotes[{i}].venue", vq.venue, "duplicate venue")
        seen.add(vq.venue)
    lim: Decimal | None = None
    if limit_price is not None:
        lim = to_decimal(limit_price, "limit_price")
        if lim <= 0:
            raise ValidationError("limit_price", lim, "must be positive")
    return s, q, lim


def plan_route(side: Side | str, quantity: Decimal, quotes: Sequence[VenueQuote], *,
               limit_price: Decimal | None = None) -> RoutePlan:
    """Split a ``side`` order of ``quantity`` across ``quotes`` for the best price net of fees.

    Pure and deterministic: the same quotes give the same plan. See the module doc for the
    model, the venue rules, the limit price and when the split is provably optimal.
    """
    s, qty, lim = _check_inputs(side, quantity, quotes, limit_price)
    buy = s is Side.BUY
    iq = [vq._int for vq in quotes]
    pscale = max([q.pscale for q in iq] + ([places(lim)] if lim is not None else []))
    sscale = max([q.sscale for q in iq] + [places(qty)])
    fscale = max(q.fscale for q in iq)
    vscale = pscale + sscale
    one = int(10**fscale)
    lim_int = None if lim is None else to_scaled(lim, pscale)
    target = to_scaled(qty, sscale)
    sides: list[_Side] = []
    models: list[VenueModel] = []
    for i, (vq, q) in enumerate(zip(quotes, iq, strict=True)):
        px, sz = (q.ask_px, q.ask_sz) if buy else (q.bid_px, q.bid_sz)
        mp, mz = int(10 ** (pscale - q.pscale)), int(10 ** (sscale - q.sscale))
        n = len(px)
        if lim_int is not None:  # prices are monotone: the allowed levels are a prefix
            n = 0
            for p in px:
                if (p * mp > lim_int) if buy else (p * mp < lim_int):
                    break
                n += 1
        prices = [p * mp for p in px[:n]] if mp != 1 else px[:n]
        sizes = [z * mz for z in sz[:n]] if mz != 1 else sz[:n]
        fee = q.fee * int(10 ** (fscale - q.fscale))
        step = q.step * mz
        vs = _Side(vq, prices, sizes, fee, step, q.min_size * mz,
                   _rescale(q.min_notional, q.mn_scale, vscale, ceil=True))
        sides.append(vs)
        cap = sum(sizes) // step
        min_units = max(1, -(-vs.min_size // step))
        if vs.min_notional and cap >= min_units:
            need = notional_min_units(prices, sizes, step, vs.min_notional, cap, rising=buy)
            min_units = max(min_units, need)
        models.append(VenueModel(i, step, min_units * step, cap * step, prices, sizes,
                                 (one + fee) if buy else -(one - fee)))
    sol = solve(models, target)

    children: list[RouteChild] = []
    gross_t = fee_t = 0
    for i in sorted(sol.alloc):
        q_int = sol.alloc[i]
        vs = sides[i]
        gross, last_i, last_q = vs.walk(q_int)
        fee_amt = gross * vs.fee
        gross_t += gross
        fee_t += fee_amt
        levels = vs.quote.side_levels(s)
        gross_d = from_scaled(gross, vscale)
        fee_d = from_scaled(fee_amt, vscale + fscale)
        q_d = from_scaled(q_int, sscale)
        last = (levels[last_i] if last_q == vs.sizes[last_i]
                else (levels[last_i][0], from_scaled(last_q, sscale)))
        # Sums in integers: Decimal arithmetic would round past 28 digits.
        net_d = from_scaled(gross * one + fee_amt if buy else gross * one - fee_amt, vscale + fscale)
        children.append(RouteChild(
            vs.quote.venue, vs.quote.instrument_id, s, q_d, levels[last_i][0], gross_d / q_d,
            gross_d, fee_d, net_d, (*levels[:last_i], last),
        ))
    return RoutePlan(
        s, qty, lim, tuple(children), from_scaled(sol.routed, sscale),
        from_scaled(target - sol.routed, sscale) if target != sol.routed else ZERO,
        from_scaled(gross_t, vscale), from_scaled(fee_t, vscale + fscale),
        from_scaled(gross_t * one + fee_t if buy else gross_t * one - fee_t, vscale + fscale),
        _single_venue(sides, models, sol.routed, buy, vscale, fscale) if sol.routed else (),
        sol.exact, sol.subsets, sol.combos, tuple(quotes),
    )


def _single_venue(sides: list[_Side], models: list[VenueModel], routed: int, buy: bool, vscale: int,
                  fscale: int) -> tuple[SingleVenueCost, ...]:
    """What each venue alone would do for ``routed`` (the same rules as the split)."""
    out: list[SingleVenueCost] = []
    one = int(10**fscale)
    for vs, m in zip(sides, models, strict=True):
        vq = vs.quote
        reason = ""
        if routed % m.step:
            reason = f"not a multiple of the size step {vq.size_step}"
        elif routed > m.cap_qty:
            reason = "not enough depth within the limit"
        elif routed < m.min_qty:
            reason = f"below the minimum size {vq.min_size} or notional {vq.min_notional}"
        if reason:
            out.append(SingleVenueCost(vq.venue, None, reason))
            continue
        gross = vs.walk(routed)[0]
        f = gross * vs.fee
        out.append(SingleVenueCost(vq.venue, from_scaled(gross * one + f if buy else gross * one - f,
                                                         vscale + fscale)))
    return tuple(out)


def depth_within(quote: VenueQuote, side: Side, limit_price: Decimal | None = None) -> Decimal:
    """Total size an order of ``side`` could take on ``quote`` without passing ``limit_price``."""
    levels: Sequence[Level] = quote.side_levels(side)
    if limit_price is None:
        return sum((z for _, z in levels), ZERO)
    if side is Side.BUY:
        return sum((z for p, z in levels if p <= limit_price), ZERO)
    return sum((z for p, z in levels if p >= limit_price), ZERO)
