"""Smart order routing on real order books, checked against a brute force over every split.

Books: Bybit XRPUSDT linear (2024-12-01, a 500-level snapshot replayed through its deltas and
kept at five moments, top 50 per side), Binance USD-M BTCUSDT 25-level snapshots (Tardis,
2020-09-01) and the Binance USD-M BTCUSDT L2 file. Several moments of one instrument stand in
for several venues: their books differ in shape, and each gets its own fee and minimums.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import itertools
import json
import random
from collections.abc import Callable, Sequence
from decimal import Decimal as D
from decimal import localcontext
from pathlib import Path

import pytest

from lyra.core import Instrument, OrderType, Side, TimeInForce
from lyra.core.errors import ValidationError
from lyra.execution.routing import (
    RoutePlan,
    VenueQuote,
    plan_route,
)
from lyra.execution.testkit import book

FIX = Path(__file__).resolve().parents[2] / "fixtures"
Level = tuple[D, D]
Book = tuple[int, list[Level], list[Level]]  # ts, bids, asks (best first)


def _load_long(path: Path) -> list[Book]:
    books: dict[int, tuple[list[Level], list[Level]]] = {}
    with gzip.open(path, "rt") as f:
        for r in csv.DictReader(f):
            b = books.setdefault(int(r["timestamp_ms"]), ([], []))
            b[0 if r["side"] == "bid" else 1].append((D(r["price"]), D(r["size"])))
    return [(ts, *books[ts]) for ts in sorted(books)]


XRP = _load_long(FIX / "routing" / "bybit_XRPUSDT_books_top50.csv.gz")  # 5 moments over 4.8 s
BTC = _load_long(FIX / "routing" / "binance-futures_BTCUSDT_snapshot25_tardis.csv.gz")  # 3 moments
XRP_TICK, BTC_TICK = D("0.0001"), D("0.01")


def quote(name: str, bk: Book, fee: str, step: object, min_size: object = 0, min_notional: object = 0,
          tick: D = XRP_TICK, depth: int | None = None) -> VenueQuote:
    ts, bids, asks = bk
    return VenueQuote(name, bids[:depth], asks[:depth], D(fee), D(str(step)), D(str(min_size)),
                      D(str(min_notional)), tick, ts)


# -- an independent reference: walk the Decimal book, enumerate every split -------------------
def walk(levels: Sequence[Level], q: D) -> tuple[D, D] | None:
    """(gross, worst price) of taking ``q`` from ``levels``; None if they hold less."""
    gross, left, worst = D(0), q, D(0)
    for p, s in levels:
        if left <= 0:
            break
        t = min(s, left)
        gross += p * t
        worst = p
        left -= t
    return None if left > 0 else (gross, worst)


def within(levels: Sequence[Level], side: Side, limit: D | None) -> list[Level]:
    if limit is None:
        return list(levels)
    return [lv for lv in levels if (lv[0] <= limit if side is Side.BUY else lv[0] >= limit)]


def signed_cost(side: Side, gross: D, fee: D) -> D:
    """What the router minimises: paid incl. fees (buy), minus received after fees (sell)."""
    return gross * (1 + fee) if side is Side.BUY else -(gross * (1 - fee))


def options(side: Side, vq: VenueQuote, limit: D | None, qmax: D) -> list[tuple[D, D]]:
    """Every allowed child (quantity, signed cost) of one venue, 0 included, by enumeration."""
    step = vq.size_step
    levels = within(vq.asks if side is Side.BUY else vq.bids, side, limit)
    depth = sum((s for _, s in levels), D(0))
    kmax = int(depth // step)
    # min notional at the child's limit (worst) price; allowed from the size on which every
    # larger child passes (the router's documented reading; identical to the plain one on buys)
    passes = {}
    for k in range(1, kmax + 1):
        g, w = walk(levels, k * step)  # type: ignore[misc]
        passes[k] = k * step * w >= vq.min_notional
    first_ok = kmax + 1
    for k in range(kmax, 0, -1):
        if not passes[k]:
            break
        first_ok = k
    out = [(D(0), D(0))]
    for k in range(1, kmax + 1):
        q = k * step
        if q > qmax:
            break
        if q < vq.min_size or k < first_ok:
            continue
        g, _ = walk(levels, q)  # type: ignore[misc]
        out.append((q, signed_cost(side, g, vq.taker_fee)))
    return out


def brute_force(side: Side, qty: D, quotes: Sequence[VenueQuote], limit: D | None = None) -> tuple[D, D]:
    """(largest routable total, its lowest signed cost) over every allocation in step units."""
    with localcontext() as ctx:
        ctx.prec = 60
        opts = [options(side, vq, limit, qty) for vq in quotes]
        best: tuple[D, D] | None = None
        for combo in itertools.product(*opts):
            total = sum((q for q, _ in combo), D(0))
            if total > qty:
                continue
            key = (-total, sum((c for _, c in combo), D(0)))
            if best is None or key < best:
                best = key
    assert best is not None
    return -best[0], best[1]


def plan_cost(plan: RoutePlan) -> D:
    return plan.expected_net if plan.side is Side.BUY else -plan.expected_net


def check_children(plan: RoutePlan, quotes: Sequence[VenueQuote]) -> None:
    """Every child obeys its venue's step, minimums, the limit, and adds up (test 4)."""
    by = {q.venue: q for q in quotes}
    total = D(0)
    for c in plan.children:
        vq = by[c.venue]
        assert c.quantity > 0
        assert c.quantity % vq.size_step == 0, (c.venue, c.quantity, vq.size_step)
        assert c.quantity >= vq.min_size
        assert c.quantity * c.limit_price >= vq.min_notional
        assert sum(s for _, s in c.levels) == c.quantity
        assert c.limit_price == c.levels[-1][0]
        if plan.limit_price is not None:
            assert (c.limit_price <= plan.limit_price) if plan.side is Side.BUY else (c.limit_price >= plan.limit_price)
        g, w = walk(vq.asks if plan.side is Side.BUY else vq.bids, c.quantity)  # type: ignore[misc]
        assert (c.expected_gross, c.limit_price) == (g, w)
        assert c.expected_fee == g * vq.taker_fee
        total += c.quantity
    assert total == plan.routed
    assert plan.routed + plan.unroutable == plan.quantity


# -- the fixtures are what we think they are ---------------------------------------------------
def test_fixture_books_are_real_moments_of_one_instrument() -> None:
    assert [b[0] for b in XRP] == [1733011200691, 1733011201790, 1733011202991, 1733011204190, 1733011205490]
    assert all(len(b[1]) == len(b[2]) == 50 for b in XRP)
    # moment 0 is the orderbook.500 snapshot: its top 20 equal the execution fixture
    with gzip.open(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    assert [(D(r["price"]), D(r["size"])) for r in rows if r["side"] == "ask"] == XRP[0][2][:20]
    assert [(D(r["price"]), D(r["size"])) for r in rows if r["side"] == "bid"] == XRP[0][1][:20]
    # the market moved up 6 ticks over the 4.8 s: the moments differ in level and shape
    assert [b[2][0] for b in XRP] == [(D("1.9532"), D("10480.0")), (D("1.9534"), D("1071.0")),
                                      (D("1.9535"), D("1301.0")), (D("1.9536"), D("11137.0")),
                                      (D("1.9538"), D("6702.0"))]
    assert [b[0] for b in BTC] == [1598918403696, 1598918403944, 1598918404005]
    assert BTC[0][2][0] == (D("11657.08"), D("1.714")) and BTC[2][2][0] == (D("11657.08"), D("1.475"))


# -- 1. the split beats every single venue -----------------------------------------------------
THREE = [("A", 0, "0.001", 1, 5), ("B", 2, "0.0004", 100, 100), ("C", 4, "0.0002", 1000, 500)]


def three_venues() -> list[VenueQuote]:
    return [quote(n, XRP[i], fee, 1, mins, mn) for n, i, fee, mins, mn in THREE]


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_split_beats_every_single_venue_net_of_fees(side: Side) -> None:
    quotes = three_venues()
    strict = 0
    for qty in (D(3000), D(40000), D(150000), D(400000), D(900000), D(2000000)):
        plan = plan_route(side, qty, quotes)
        check_children(plan, quotes)
        assert plan.exact and plan.unroutable == 0
        singles = {vq.venue: alone(side, vq, qty) for vq in quotes}  # independently, same rules
        for vq in quotes:
            got = next(c for c in plan.single_venue if c.venue == vq.venue)
            assert (got.net is None) == (singles[vq.venue] is None)
            if got.net is not None:
                assert (got.net if side is Side.BUY else -got.net) == singles[vq.venue]
        possible = [c for c in singles.values() if c is not None]
        assert all(plan_cost(plan) <= c for c in possible)
        if len(plan.children) >= 2 and possible:
            assert all(plan_cost(plan) < c for c in possible)  # books overlap: strictly better
            assert plan.improvement is not None and plan.improvement > 0
            strict += 1
    assert strict >= 3


def alone(side: Side, vq: VenueQuote, q: D) -> D | None:
    """Signed cost of ``q`` on one venue alone, or None if its depth or rules forbid it."""
    levels = vq.side_levels(side)
    got = walk(levels, q)
    if got is None or q % vq.size_step or q < vq.min_size:
        return None
    # every larger child clears the notional too (q x the book's lowest price does), so the
    # plain check equals the router's reading on both sides
    assert q * min(levels[0][0], levels[-1][0]) >= vq.min_notional
    return signed_cost(side, got[0], vq.taker_fee)


def test_split_on_btc_snapshots_beats_the_cheapest_venue() -> None:
    # Three Binance USD-M moments 0.3 s apart are nearly the same book: the fees decide, and
    # depth at the best levels makes the split pay.
    quotes = [quote(n, BTC[i], fee, "0.001", "0.001", 5, BTC_TICK) for n, i, fee in
              (("X", 0, "0.0004"), ("Y", 1, "0.0002"), ("Z", 2, "0.0002"))]
    plan = plan_route(Side.BUY, D("12"), quotes)
    check_children(plan, quotes)
    assert len(plan.children) >= 2 and plan.improvement is not None and plan.improvement > 0
    assert plan_cost(plan) == brute_force_two_level(Side.BUY, D("12"), quotes)


def brute_force_two_level(side: Side, qty: D, quotes: Sequence[VenueQuote]) -> D:
    """Same optimum, computed as the cheapest qty of the merged fee-adjusted levels.

    Valid when no minimum binds and every level size is a multiple of the step: then the
    continuous greedy is already on the grid.
    """
    lv = sorted(((p * (1 + vq.taker_fee) if side is Side.BUY else -(p * (1 - vq.taker_fee)), s)
                 for vq in quotes for p, s in vq.side_levels(side)))
    left, cost = qty, D(0)
    for p, s in lv:
        t = min(s, left)
        cost += p * t
        left -= t
    return cost


# -- 2. equal to the brute force on small real books ------------------------------------------
def small_case(rng: random.Random, kind: str) -> tuple[Side, D, list[VenueQuote], D | None]:
    """2-3 venues x 3-5 real levels, quantities of a few steps.

    ``kind``: one step for all ("equal", "minimums": with large minimums), steps that divide
    each other ("divisible"), or three distinct steps ("mixed").
    """
    xrp = rng.random() < 0.5
    src, tick = (XRP, XRP_TICK) if xrp else (BTC, BTC_TICK)
    base = rng.choice([D(2500), D(4000), D(5000)] if xrp else [D("0.25"), D("0.4"), D("0.5")])
    n = rng.choice([2, 3])
    if kind in ("equal", "minimums"):
        steps = [base] * n
    elif kind == "divisible":  # two steps, the coarse one a multiple of the fine one
        coarse = base * rng.choice([2, 4])
        steps = [base, coarse, *(rng.choice([base, coarse]) for _ in range(n - 2))]
        rng.shuffle(steps)
    else:  # three distinct steps that do not all divide one another
        steps = [base, base * 2, base * 3]
        n = 3
    moments = rng.sample(range(len(src)), n)
    side = rng.choice([Side.BUY, Side.SELL])
    quotes = []
    for j in range(n):
        bk = src[moments[j]]
        price = (bk[2] if side is Side.BUY else bk[1])[0][0]
        mins = steps[j] * rng.choice([2, 3, 4] if kind == "minimums" else [0, 1, 2, 3, 5])
        mn = (steps[j] * price * D(rng.choice([0, 0, 1.5, 2.5, 4, 6]))).quantize(D("0.01"))
        if kind == "minimums":  # sizes only, so that venues stay usable and the minimums bind
            mn = D(0)
        quotes.append(quote(f"v{j}", bk, rng.choice(["0", "0.0002", "0.0004", "0.00075", "0.001"]),
                            steps[j], mins, mn, tick, depth=rng.choice([3, 4, 5])))
    depth_units = sum(int(sum(s for _, s in q.side_levels(side)) // base) for q in quotes)
    qty = base * rng.randint(1, depth_units + 2)
    if kind == "minimums":  # just past one venue's depth: the next venue would get a sliver
        qty = base * (int(sum(s for _, s in rng.choice(quotes).side_levels(side)) // base) + rng.randint(1, 2))
    if rng.random() < 0.15:
        qty += base / 2  # a quantity finer than every step: the rest is unroutable
    limit = None
    if rng.random() < 0.3 and kind != "minimums":
        limit = quotes[0].side_levels(side)[rng.randint(0, 2)][0]
    return side, qty, quotes, limit


@pytest.mark.parametrize(("kind", "cases"), [("equal", 80), ("minimums", 40), ("divisible", 40), ("mixed", 30)])
def test_plan_equals_brute_force_on_small_real_books(kind: str, cases: int) -> None:
    rng = random.Random(20241201 + cases)
    searched = combos = 0
    for _ in range(cases):
        side, qty, quotes, limit = small_case(rng, kind)
        plan = plan_route(side, qty, quotes, limit_price=limit)
        check_children(plan, quotes)
        routed, cost = brute_force(side, qty, quotes, limit)
        searched += plan.subsets_searched > 0
        combos = max(combos, plan.combos_searched)
        assert plan.exact
        assert (plan.routed, plan_cost(plan)) == (routed, cost), (side, qty, limit, quotes)
    if kind == "minimums":
        assert searched >= cases // 3  # the minimums made the subset search run in many cases
    if kind == "mixed":
        assert combos >= 6  # residues of the 2x and 3x steps modulo their lcm (6x) were enumerated


# -- 3. fees change the routing ------------------------------------------------------------------
def test_a_better_gross_price_with_a_high_fee_loses() -> None:
    early, late = XRP[0], XRP[4]
    assert early[2][0][0] < late[2][0][0]  # the early book is cheaper gross: 1.9532 < 1.9538
    cheap_gross_dear_fee = quote("gross-best", early, "0.001", 1)
    dear_gross_cheap_fee = quote("net-best", late, "0.0002", 1)
    plan = plan_route(Side.BUY, D(5000), [cheap_gross_dear_fee, dear_gross_cheap_fee])
    assert [(c.venue, c.quantity) for c in plan.children] == [("net-best", D(5000))]
    # by hand: 5000 x 1.9538 x 1.0002 = 9770.95 against 5000 x 1.9532 x 1.001 = 9775.77
    assert plan.expected_net == D("9770.95380")
    assert next(c.net for c in plan.single_venue if c.venue == "gross-best") == D("9775.766")
    # with equal fees the gross price decides again
    same_fee = [quote("gross-best", early, "0.0002", 1), quote("net-best", late, "0.0002", 1)]
    assert [c.venue for c in plan_route(Side.BUY, D(5000), same_fee).children] == ["gross-best"]


# -- 4/5. minimums, steps, depth and the limit price ----------------------------------------------
def test_minimums_keep_small_children_away() -> None:
    # 40k XRP: the greedy wants a small slice on the 0.04% venue; a 20k minimum there makes
    # the plan choose between 0 and >= 20k, and the brute force agrees on the choice.
    quotes = [quote("A", XRP[0], "0.001", 1), quote("B", XRP[2], "0.0004", 1, 20000),
              quote("C", XRP[4], "0.0002", 1)]
    free = plan_route(Side.BUY, D(40000), [quote("A", XRP[0], "0.001", 1), quote("B", XRP[2], "0.0004", 1),
                                            quote("C", XRP[4], "0.0002", 1)])
    assert 0 < free.child("B").quantity < 20000  # type: ignore[union-attr]
    plan = plan_route(Side.BUY, D(40000), quotes)
    check_children(plan, quotes)
    assert plan.subsets_searched > 0
    b = plan.child("B")
    assert b is None or b.quantity >= 20000
    assert plan_cost(plan) > plan_cost(free)  # the minimum costs something
    assert plan_cost(plan) == brute_force_levels_with_min(quotes, D(40000))


def brute_force_levels_with_min(quotes: Sequence[VenueQuote], qty: D) -> D:
    """Best buy cost when B gets 0 or >= its minimum: try every share of B in 1 XRP steps.

    A and C have no binding minimum and level sizes in whole XRP, so their best cost for the
    rest is the cheapest ``rest`` of their merged fee-adjusted levels (a prefix sum).
    """
    a, b, c = quotes
    lv = sorted((p * (1 + vq.taker_fee), s) for vq in (a, c) for p, s in vq.asks)
    cum_q, cum_c, tq, tc = [], [], D(0), D(0)
    for p, s in lv:
        tq, tc = tq + s, tc + p * s
        cum_q.append(tq)
        cum_c.append(tc)

    def rest_cost(q: D) -> D:
        i = bisect.bisect_left(cum_q, q)
        before_q, before_c = (cum_q[i - 1], cum_c[i - 1]) if i else (D(0), D(0))
        return before_c + (q - before_q) * lv[i][0]

    best = rest_cost(qty)
    for x in range(int(b.min_size), int(qty) + 1):
        gb = walk(b.asks, D(x))
        assert gb is not None
        best = min(best, rest_cost(qty - x) + gb[0] * (1 + b.taker_fee))
    return best


def test_steps_are_respected_in_every_child_with_different_lots() -> None:
    # BTC: 0.001 on one venue, 0.01 on the two others (exact case: the steps divide)
    quotes = [quote("fine", BTC[0], "0.0004", "0.001", "0.001", 5, BTC_TICK),
              quote("coarse1", BTC[1], "0.0002", "0.01", "0.01", 5, BTC_TICK),
              quote("coarse2", BTC[2], "0.0001", "0.01", "0.01", 5, BTC_TICK)]
    for qty in (D("0.537"), D("3.333"), D("9.999"), D("25.0005")):
        plan = plan_route(Side.SELL, qty, quotes)
        check_children(plan, quotes)
        assert plan.exact
        assert plan.unroutable == qty - qty.quantize(D("0.001"), "ROUND_DOWN")


def test_steps_too_different_fall_back_to_multiples_of_their_lcm() -> None:
    # 0.017 and 0.019 BTC lots next to a 0.001 one: 17 x 19 = 323 remainders modulo 0.323 would
    # be needed (> MAX_RESIDUE_COMBOS). The router then keeps those venues to multiples of 0.323:
    # the plan says it is not proven exact, and it is the optimum of that restricted problem.
    def venues(s1: str, s2: str) -> list[VenueQuote]:
        return [quote("fine", BTC[0], "0.0004", "0.001", "0.001", 5, BTC_TICK),
                quote("odd1", BTC[1], "0.0002", s1, s1, 5, BTC_TICK),
                quote("odd2", BTC[2], "0.0001", s2, s2, 5, BTC_TICK)]
    quotes = venues("0.017", "0.019")
    plan = plan_route(Side.BUY, D("7.5"), quotes)
    check_children(plan, quotes)
    assert not plan.exact and plan.combos_searched == 1 and plan.routed == D("7.5")
    for c in plan.children:
        assert c.venue == "fine" or c.quantity % D("0.323") == 0
    restricted = plan_route(Side.BUY, D("7.5"), venues("0.323", "0.323"))
    assert restricted.exact and plan_cost(restricted) == plan_cost(plan)


def test_insufficient_liquidity_reports_the_remainder() -> None:
    with gzip.open(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    top20 = (int(rows[0]["timestamp_ms"]), [(D(r["price"]), D(r["size"])) for r in rows if r["side"] == "bid"],
             [(D(r["price"]), D(r["size"])) for r in rows if r["side"] == "ask"])
    depth20 = sum(s for _, s in top20[2])
    assert depth20 == D("294098")  # the fixture's 20 asks, summed with awk
    quotes = [quote("top20", top20, "0.00055", 1), quote("B", XRP[2], "0.0004", 1, depth=10)]
    depth = depth20 + sum(s for _, s in XRP[2][2][:10])
    plan = plan_route(Side.BUY, D(1_000_000), quotes)
    check_children(plan, quotes)
    assert plan.routed == depth and plan.unroutable == D(1_000_000) - depth
    assert plan.single_venue_best is None  # no venue alone holds it all
    rec = plan.to_record()
    assert rec["unroutable"] == str(D(1_000_000) - depth)


@pytest.mark.parametrize("side", [Side.BUY, Side.SELL])
def test_limit_price_is_never_passed(side: Side) -> None:
    quotes = three_venues()
    first = quotes[0].side_levels(side)
    limit = first[8][0]  # nine levels of venue A are allowed
    plan = plan_route(side, D(2_000_000), quotes, limit_price=limit)
    check_children(plan, quotes)
    allowed = sum(int(sum(s for _, s in within(q.side_levels(side), side, limit))) for q in quotes)
    assert plan.routed == allowed and plan.unroutable == D(2_000_000) - allowed
    rec = plan.to_record()["books"][0]
    assert rec["depth"]["levels_within_limit"] == 9 and rec["depth"]["levels"] == 50


def test_plan_record_is_json_safe_complete_and_deterministic() -> None:
    quotes = three_venues()
    plan = plan_route(Side.BUY, D(400000), quotes)
    rec = json.loads(json.dumps(plan.to_record()))
    assert rec == plan_route("buy", "400000", list(quotes)).to_record()  # pure: same input, same plan
    assert rec["side"] == "buy" and D(rec["routed"]) == D(400000)
    assert sum(D(c["quantity"]) for c in rec["children"]) == D(400000)
    assert D(rec["expected_net"]) == D(rec["expected_gross"]) + D(rec["expected_fees"])
    assert D(rec["expected_avg_price"]) == plan.expected_avg_price
    books = {b["venue"]: b for b in rec["books"]}
    assert set(books) == {"A", "B", "C"}
    for c in rec["children"]:
        assert books[c["venue"]]["levels_used"] == c["levels"]
        assert books[c["venue"]]["levels_used"][-1][0] == c["limit_price"]
    assert books["A"]["best_ask"] == "1.9532" and books["A"]["depth"]["levels"] == 50
    assert rec["single_venue_best"]["venue"] == "C"
    assert D(rec["improvement"]) == D(rec["single_venue_best"]["net"]) - D(rec["expected_net"])
    for c in plan.children:
        it = c.intent("t")
        assert (it.order_type, it.time_in_force, it.limit_price, it.quantity, it.side) == (
            OrderType.LIMIT, TimeInForce.IOC, c.limit_price, c.quantity, Side.BUY)


def test_quotes_from_ccxt_books_and_snapshots_are_exact() -> None:
    # ccxt and OrderBookSnapshot carry floats: the router reads them through their shortest
    # repr, so the quote equals the one built from the recorded decimal strings.
    inst = Instrument("XRP/USDT:USDT", "bybit", "XRP", "USDT", XRP_TICK, D(1), D(1), D(5), D("0.0002"), D("0.00055"))
    ts, bids, asks = XRP[0]
    exact = VenueQuote.from_instrument(inst, bids, asks, ts)
    ob = {"bids": [[float(p), float(s)] for p, s in bids], "asks": [[float(p), float(s), 0] for p, s in asks],
          "timestamp": ts, "nonce": None}
    from_ccxt = VenueQuote.from_ccxt_order_book(ob, inst)
    snap = book(inst.id, ts, [(float(p), float(s)) for p, s in bids], [(float(p), float(s)) for p, s in asks])
    from_snap = VenueQuote.from_snapshot(snap, inst)
    for vq in (from_ccxt, from_snap):
        assert (vq.venue, vq.instrument_id, vq.taker_fee, vq.size_step, vq.min_notional) == (
            "bybit", "bybit:XRP/USDT:USDT", D("0.00055"), D(1), D(5))
        assert vq.asks == exact.asks and vq.bids == exact.bids
        assert plan_route(Side.BUY, D(30000), [vq]).to_record() == plan_route(Side.BUY, D(30000), [exact]).to_record()


# -- 7. bad input ----------------------------------------------------------------------------------
def test_bad_input_raises_validation_errors_naming_venue_and_field() -> None:
    quotes = three_venues()
    ts, bids, asks = XRP[0]

    def vq(**kw: object) -> VenueQuote:
        args = {"venue": "okx", "bids": bids, "asks": asks, "taker_fee": D("0.0005"), "size_step": D(1),
                "min_size": D(1), "min_notional": D(5), "price_step": XRP_TICK, "ts": ts, **kw}
        return VenueQuote(**args)  # type: ignore[arg-type]

    cases: list[tuple[Callable[[], object], str, str]] = [
        (lambda: plan_route(Side.BUY, D(0), quotes), "quantity", "positive"),
        (lambda: plan_route(Side.BUY, D(-5), quotes), "quantity", "positive"),
        (lambda: plan_route(Side.BUY, D(1), []), "quotes", "at least one"),
        (lambda: plan_route(Side.BUY, D(1), [quotes[0], quotes[0]]), "quotes[1].venue", "duplicate"),
        (lambda: plan_route(Side.BUY, D(1), quotes, limit_price=D(0)), "limit_price", "positive"),
        # the bids of a later moment over these asks: a crossed book
        (lambda: vq(bids=XRP[4][1]), "quote[okx].bids[0].price", "crossed"),
        (lambda: vq(asks=[*asks[:3], (asks[3][0], -asks[3][1])]), "quote[okx].asks[3].size", "positive"),
        (lambda: vq(asks=[asks[1], asks[0], *asks[2:]]), "quote[okx].asks[1].price", "rising"),
        (lambda: vq(price_step=D("0.001")), "quote[okx].bids[0].price", "price step"),
        (lambda: vq(taker_fee=D("1.5")), "quote[okx].taker_fee", "rate"),
        (lambda: vq(size_step=D(0)), "quote[okx].size_step", "positive"),
        (lambda: vq(min_size=D(-1)), "quote[okx].min_size", "negative"),
    ]
    for call, field, words in cases:
        with pytest.raises(ValidationError) as e:
            call()
        assert e.value.field == field and words in str(e.value), (field, str(e.value))


def test_a_raw_binance_delta_is_not_a_book() -> None:
    # The Binance USD-M L2 file's update message lists its bid changes by rising price, with
    # size-0 deletes: fed as a book it is refused, naming the level.
    with gzip.open(FIX / "routing" / "binance-usdm_BTC-USDT-PERP_l2.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    delta = [r for r in rows if r["is_snapshot"] == "False" and r["side"] == "bid"]
    live = [(D(r["price"]), D(r["size"])) for r in delta if D(r["size"]) > 0]
    with pytest.raises(ValidationError) as e:
        VenueQuote("binance", live, [], D("0.0004"), D("0.001"), D("0.001"), D(5), D("0.1"), 0)
    assert e.value.field == "quote[binance].bids[1].price" and "falling" in str(e.value)
    with_deletes = [(D(r["price"]), D(r["size"])) for r in reversed(delta)]
    with pytest.raises(ValidationError) as e:
        VenueQuote("binance", with_deletes, [], D("0.0004"), D("0.001"), D("0.001"), D(5), D("0.1"), 0)
    assert e.value.field.startswith("quote[binance].bids[") and e.value.field.endswith("].size")
    assert e.value.hint and "size 0" in e.value.hint
    # the snapshot (bids only, 100 levels) is a valid book; a sell walks it as a plain walk would
    snap = [(D(r["price"]), D(r["size"])) for r in rows if r["is_snapshot"] == "True"]
    vq = VenueQuote("binance", snap, [], D("0.0004"), D("0.001"), D("0.001"), D(5), D("0.1"), 1667346579146)
    plan = plan_route(Side.SELL, D("25"), [vq])
    g, w = walk(snap, D("25"))  # type: ignore[misc]
    assert plan.expected_gross == g and plan.children[0].limit_price == w
    assert plan.expected_net == g * (1 - D("0.0004"))
    assert plan_route(Side.BUY, D(1), [vq]).unroutable == D(1)  # no asks at all
