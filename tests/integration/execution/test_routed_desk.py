"""Smart order routing end to end: three fake venues (real ccxt, real HTTP), each serving a
different real Bybit XRPUSDT book (three moments of the recorded orderbook.500 stream) with its
own taker fee; children go through the real risk engine and CcxtBroker; the decision and the
outcome are in the event log."""

from __future__ import annotations

import csv
import gzip
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest
from sqlalchemy.engine import Engine

from lyra.audit import EventLog, Ledger
from lyra.core.clock import ReplayClock
from lyra.core.enums import Side
from lyra.core.instrument import Instrument
from lyra.core.orders import Order
from lyra.execution.ccxt_broker import CcxtBroker, RetryPolicy
from lyra.execution.routed_desk import RoutedDesk, VenueLink
from lyra.execution.routing import plan_route
from lyra.risk.engine import RiskContext
from lyra.session.config import load_session_config
from lyra.session.factory import default_risk_engine
from lyra.testing.fake_account import FakeAccount
from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded

FIX = Path(__file__).parents[2] / "fixtures"
INFO = exchange_info_from_recorded(json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
                                   json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
D = Decimal
FEES = {"a": D("0.001"), "b": D("0.0004"), "c": D("0.0002")}


def _books() -> list[tuple[list[list[str]], list[list[str]]]]:
    books: dict[int, tuple[list[list[str]], list[list[str]]]] = {}
    with gzip.open(FIX / "routing" / "bybit_XRPUSDT_books_top50.csv.gz", "rt") as f:
        for r in csv.DictReader(f):
            b = books.setdefault(int(r["timestamp_ms"]), ([], []))
            b[0 if r["side"] == "bid" else 1].append([r["price"], r["size"]])
    moments = [books[t] for t in sorted(books)]
    return [moments[0], moments[2], moments[4]]


def _inst(venue: str) -> Instrument:
    return Instrument("XRP/USDT", "binance", "XRP", "USDT", D("0.0001"), D(1), D(1), D(5),
                      maker_fee=FEES[venue], taker_fee=FEES[venue])


@pytest.fixture
def venues() -> Iterator[dict[str, tuple[FakeExchange, FakeAccount]]]:
    with ExitStack() as stack:
        out = {}
        for name, (bids, asks) in zip("abc", _books(), strict=True):
            acct = FakeAccount({"USDT": "1000000", "XRP": "0"}, books={"XRPUSDT": (bids, asks)},
                               taker_fee=str(FEES[name]), maker_fee=str(FEES[name]))
            out[name] = (stack.enter_context(FakeExchange(INFO, account=acct)), acct)
        yield out


def _desk(engine: Engine, venues: dict[str, Any]) -> RoutedDesk:
    links = {}
    for name, (fake, _acct) in venues.items():
        ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(apiKey="k", secret="s", timeout=3000)))
        ex.load_markets()
        broker = CcxtBroker(ex, [_inst(name)], retry=RetryPolicy(attempts=2, base_delay_s=0.01, settle_s=0.0))
        links[name] = VenueLink(broker, ex, _inst(name))
    cfg = load_session_config({"session_id": "router", "venue": "binance", "symbols": ["XRP/USDT"],
                               "instruments": {"XRP/USDT": {"price_increment": "0.0001", "size_increment": "1"}},
                               "risk": {"defaults": {"max_order_notional": "40000"}}})
    clock = ReplayClock(int(time.time() * 1000))
    risk = default_risk_engine(cfg, engine, clock)

    def context(order: Order) -> RiskContext:
        now = int(time.time() * 1000)
        clock.advance_to(max(clock.now_ms(), now))
        return RiskContext(account_id="router", positions={}, marks={"binance:XRP/USDT": D("1.953")},
                           equity=D(1_000_000), balances={"USDT": D(1_000_000)}, open_orders=[],
                           instruments={"binance:XRP/USDT": _inst("a")}, now=now,
                           last_md_ts={"binance:XRP/USDT": now})

    return RoutedDesk(links, ledger=Ledger(EventLog(engine)), risk=risk, risk_context=context,
                      account_id="router")


def _single_venue_costs(desk: RoutedDesk, qty: Decimal) -> dict[str, Decimal]:
    out = {}
    for q in desk.quotes():
        p = plan_route(Side.BUY, qty, [q])
        out[q.venue] = p.expected_net if p.unroutable == 0 else D("Infinity")
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_split_beats_every_single_venue_and_is_recorded(engine: Engine, venues: Any) -> None:
    desk = _desk(engine, venues)
    qty = D(20000)
    singles = _single_venue_costs(desk, qty)
    result = desk.route(Side.BUY, qty)
    assert result.stop_reason == "filled" and result.filled_quantity == qty
    # achieved (real fills at the fake venues, fees included) beats the best single venue
    assert result.net < min(singles.values())
    # the books did not move: achieved equals expected, to the cent of a fee rounding
    assert abs(result.net - result.rounds[0].plan.expected_net) < D("0.0001")
    used = {c.venue for c in result.rounds[0].plan.children}
    assert len(used) >= 2
    # every child passed risk and was recorded; decision and outcome are in the log
    log = EventLog(engine)
    decisions = [r.data() for r in log.read(session_id="router", kinds=("risk.decision",))]
    assert len(decisions) == sum(len(r.children) for r in result.rounds) and all(d["approved"] for d in decisions)
    route = [r.data() for r in log.read(session_id="router", kinds=("route.decision",))]
    done = [r.data() for r in log.read(session_id="router", kinds=("route.completed",))]
    assert len(route) == 1 and len(done) == 1
    assert route[0]["children"] and done[0]["stop_reason"] == "filled"
    # each venue filled exactly what its child asked, never twice
    for name, (_f, acct) in venues.items():
        got = sum((D(str(t["qty"])) for t in acct.trades), D(0))
        want = sum((c.quantity for c in result.rounds[0].plan.children if c.venue == name), D(0))
        assert got == want
        assert acct.duplicate_client_order_ids() == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_book_that_moved_gets_the_remainder_re_routed(engine: Engine, venues: Any) -> None:
    desk = _desk(engine, venues)
    first = True
    seen = desk.quotes

    def quotes_then_move() -> Any:
        nonlocal first
        q = seen()
        if first:  # after the router saw the books, venue c's best asks are taken by someone else
            first = False
            _fake, acct = venues["c"]
            bids, asks = _books()[2]
            acct.set_book("XRPUSDT", bids, asks[3:])
        return q

    desk.quotes = quotes_then_move  # type: ignore[method-assign]
    result = desk.route(Side.BUY, D(20000))
    assert len(result.rounds) == 2 and result.stop_reason == "filled"
    assert result.rounds[0].filled < D(20000)
    assert result.filled_quantity == D(20000)
    done = next(r.data() for r in EventLog(engine).read(session_id="router", kinds=("route.completed",)))
    assert len(done["rounds"]) == 2


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_child_risk_refuses_is_not_sent(engine: Engine, venues: Any) -> None:
    desk = _desk(engine, venues)
    result = desk.route(Side.BUY, D(60000), max_rounds=1)  # children above the 40,000 notional limit
    denied = [c for r in result.rounds for c in r.children if c.error]
    assert denied and all("RiskRejected" in c.error for c in denied)
    sent = sum(len(acct.submissions) for _f, acct in venues.values())
    assert sent == sum(1 for r in result.rounds for c in r.children if not c.error)
