"""Running a routed order: IOC children through real paper venues whose books moved.

Books: the Bybit XRPUSDT linear book of 2024-12-01 at several moments (see test_routing.py). The
plan is made on earlier moments; each venue (a PaperBroker) already shows a later one.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Sequence
from decimal import Decimal as D
from pathlib import Path

from lyra.core import Instrument, OrderType, ReplayClock, Side, TimeInForce
from lyra.core.errors import RiskRejected
from lyra.core.orders import Fill, OrderIntent
from lyra.execution import PaperBroker
from lyra.execution.routing import VenueQuote, execute_route, planner
from lyra.execution.testkit import BrokerDriver, book

Level = tuple[D, D]
Book = tuple[int, list[Level], list[Level]]  # ts, bids, asks (best first)
XRP_TICK = D("0.0001")


def _load() -> list[Book]:
    books: dict[int, tuple[list[Level], list[Level]]] = {}
    path = Path(__file__).resolve().parents[2] / "fixtures" / "routing" / "bybit_XRPUSDT_books_top50.csv.gz"
    with gzip.open(path, "rt") as f:
        for r in csv.DictReader(f):
            b = books.setdefault(int(r["timestamp_ms"]), ([], []))
            b[0 if r["side"] == "bid" else 1].append((D(r["price"]), D(r["size"])))
    return [(ts, *books[ts]) for ts in sorted(books)]


XRP = _load()  # 5 moments over 4.8 s, top 50 per side


def three_venues() -> list[VenueQuote]:
    """The venues of test_routing.py: moments 0, 2, 4 with their own fees and minimums."""
    return [VenueQuote(n, XRP[i][1], XRP[i][2], D(fee), D(1), D(mins), D(mn), XRP_TICK, XRP[i][0])
            for n, i, fee, mins, mn in (("A", 0, "0.001", 1, 5), ("B", 2, "0.0004", 100, 100),
                                        ("C", 4, "0.0002", 1000, 500))]


VENUES = {"A": (0, 1, "0.001"), "B": (1, 2, "0.0004"), "C": (2, 3, "0.0002")}  # plan moment, moved, fee


def minus_fills(bk: Book, fills: Sequence[Fill]) -> Book:
    """The book a venue shows after our fills took liquidity from it."""
    taken: dict[D, D] = {}
    for f in fills:
        taken[f.price] = taken.get(f.price, D(0)) + f.quantity
    ts, bids, asks = bk
    keep = [(p, s - taken.get(p, D(0))) for p, s in asks]
    return ts, bids, [(p, s) for p, s in keep if s > 0]


def test_execute_route_reroutes_what_the_moved_books_left() -> None:
    instruments = {v: Instrument("XRP/USDT:USDT", v, "XRP", "USDT", XRP_TICK, D(1), D(1), D(5), D("0.0002"), D(fee))
                   for v, (_, _, fee) in VENUES.items()}
    clock = ReplayClock(0)
    drivers = {v: BrokerDriver(PaperBroker([inst], clock, {"USDT": 10**9, "XRP": 10**9}), clock, session=v)
               for v, inst in instruments.items()}
    moved = {v: XRP[m] for v, (_, m, _) in VENUES.items()}
    for v, d in drivers.items():  # each venue's book has moved on by the time our children arrive
        ts, bids, asks = moved[v]
        d.broker.on_market(book(instruments[v].id, ts, [(float(p), float(s)) for p, s in bids],
                                [(float(p), float(s)) for p, s in asks]))
    sent: list[tuple[str, OrderIntent]] = []
    fills_by_venue: dict[str, list[Fill]] = {v: [] for v in VENUES}

    def send_child(venue: str, intent: OrderIntent) -> list[Fill]:
        sent.append((venue, intent))
        d = drivers[venue]
        o = d.submit(intent.instrument_id, intent.side.value, intent.quantity, order_type=intent.order_type,
                     limit_price=intent.limit_price, time_in_force=intent.time_in_force, tag=intent.tag)
        got = [r.fill for r in d.poll() if r.fill is not None and r.client_order_id == o.client_order_id]
        fills_by_venue[venue].extend(got)
        return got

    refreshed = [0]

    def refresh_quotes() -> list[VenueQuote]:
        refreshed[0] += 1
        if refreshed[0] == 1:  # what we saw when deciding
            return [VenueQuote.from_instrument(instruments[v], XRP[p][1], XRP[p][2], XRP[p][0])
                    for v, (p, _, _) in VENUES.items()]
        return [VenueQuote.from_instrument(instruments[v], *minus_fills(moved[v], fills_by_venue[v])[1:],
                                           moved[v][0]) for v in VENUES]

    qty = D(600000)
    result = execute_route(planner(Side.BUY), send_child, refresh_quotes, quantity=qty, max_rounds=3)
    r1 = result.rounds[0]
    assert r1.plan.routed == qty and r1.filled < qty  # the book moved up: the limits left some
    # venue A's first child, matched by hand against A's later book (levels <= its limit)
    a_child = r1.plan.child("A")
    assert a_child is not None
    levels = [lv for lv in moved["A"][2] if lv[0] <= a_child.limit_price]
    expect_a = min(a_child.quantity, sum(s for _, s in levels))
    assert next(c.filled for c in r1.children if c.venue == "A") == expect_a
    assert len(result.rounds) >= 2 and result.stop_reason == "filled"
    assert result.filled_quantity == qty and result.remainder == 0
    assert all(i.order_type is OrderType.LIMIT and i.time_in_force is TimeInForce.IOC for _, i in sent)
    for rnd in result.rounds:
        for ch in rnd.children:
            assert ch.error == "" and ch.anomalies == ()
            for f in ch.fills:
                assert f.price <= ch.intent.limit_price  # type: ignore[operator]
                assert f.fee == f.quantity * f.price * D(VENUES[ch.venue][2])
    # achieved vs expected: paid more than planned because the asks moved up
    assert result.avg_price_net is not None and result.expected_avg_price is not None
    assert result.avg_price_net > result.expected_avg_price and result.slippage_bps > 0  # type: ignore[operator]
    gross = sum(f.quantity * f.price for _, f in result.fills)
    assert result.gross == gross and result.net == gross + sum(f.fee for _, f in result.fills)
    rec = json.loads(json.dumps(result.to_record()))
    assert D(rec["filled"]) == qty and len(rec["rounds"]) == len(result.rounds)
    assert D(rec["expected_avg_price"]) == r1.plan.expected_avg_price
    assert D(rec["rounds"][1]["plan"]["quantity"]) == qty - r1.filled
    assert rec["rounds"][0]["children"][0]["expected_net"] == str(r1.plan.children[0].expected_net)


def test_execute_route_records_a_rejected_child_and_stops_after_max_rounds() -> None:
    quotes = three_venues()

    def send_child(venue: str, intent: OrderIntent) -> list[Fill]:
        if venue == "C":
            raise RiskRejected("max order notional")
        return [Fill(f"{venue}-{intent.tag}", intent.tag, intent.instrument_id, intent.side, intent.quantity,
                     intent.limit_price, D(0), "USDT", "taker", 1)]  # type: ignore[arg-type]

    result = execute_route(planner(Side.BUY), send_child, lambda: quotes, quantity=D(300000), max_rounds=2)
    assert len(result.rounds) == 2 and result.stop_reason == "max rounds"
    errors = [c.error for r in result.rounds for c in r.children if c.venue == "C"]
    assert errors and all(e.startswith("RiskRejected") for e in errors)
    assert result.remainder == sum(c.intent.quantity for c in result.rounds[-1].children if c.venue == "C")
