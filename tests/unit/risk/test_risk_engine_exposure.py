"""ExposureBook: O(1) gross/net exposure that stays exactly equal to a full recount, and the
engine decides the same with it as without it."""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace
from decimal import Decimal as D

import pytest

from lyra.audit import EventLog
from lyra.core import Instrument, Order, OrderIntent, ReplayClock
from lyra.risk import ExposureBook, RiskConfig, RiskContext, RiskEngine, TradingStateStore
from lyra.store import create_engine_for, upgrade

NOW = 1_700_000_000_000
INSTS = {i.id: i for i in (Instrument(f"C{k}/USDT", "binance", f"C{k}", "USDT", D("0.01"), D("0.001"))
                           for k in range(8))}
IDS = sorted(INSTS)


def recount(book):
    vals = [q * book.marks[i] for i, q in book.positions.items() if i in book.marks]
    return sum((abs(v) for v in vals), D(0)), sum(vals, D(0))


def test_book_matches_a_full_recount_after_many_updates():
    rng = random.Random(5)
    book = ExposureBook()
    for step in range(5000):
        iid = rng.choice(IDS)
        if rng.random() < 0.5:
            book.set_mark(iid, D(rng.randint(1, 100_000)) / 100)
        else:
            book.set_position(iid, D(rng.randint(-5000, 5000)) / 1000)
        if step % 250 == 0:
            assert (book.gross, book.net) == recount(book)  # exact, not approximately
    assert (book.gross, book.net) == recount(book)
    assert book.unmarked <= set(IDS)


def test_unmarked_positions_are_tracked():
    book = ExposureBook({IDS[0]: D(1)}, {})
    assert book.unmarked == {IDS[0]} and book.gross == 0
    book.set_mark(IDS[0], D(10))
    assert book.unmarked == set() and book.gross == 10 and book.net == 10
    book.set_position(IDS[1], D(-2))
    assert book.unmarked == {IDS[1]}
    book.set_position(IDS[1], D(0))
    assert book.unmarked == set() and IDS[1] not in book.positions


@pytest.fixture
def store(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    yield TradingStateStore(EventLog(eng))
    eng.dispose()


def test_engine_decides_the_same_with_and_without_the_book(store):
    cfg = RiskConfig.from_dict({"defaults": {"max_gross_exposure": 40_000, "max_net_exposure": 15_000,
                                             "max_leverage": 3, "balance_check": "off"}})
    e_scan = RiskEngine(cfg, store, clock=ReplayClock(NOW), account_id="a")
    e_book = RiskEngine(cfg, store, clock=ReplayClock(NOW), account_id="b")
    rng = random.Random(11)
    book = ExposureBook({i: D(rng.randint(-3000, 3000)) / 100 for i in IDS}, {i: D(rng.randint(100, 90_000)) / 100 for i in IDS})
    verdicts = []
    for k in range(400):
        iid = rng.choice(IDS)
        if k % 7 == 0:
            book.set_mark(iid, D(rng.randint(100, 90_000)) / 100)
        o = Order(f"s-{k:08d}", OrderIntent(iid, rng.choice(["buy", "sell"]), D(rng.randint(1, 40_000)) / 1000), NOW)
        base = RiskContext("a", dict(book.positions), dict(book.marks), D(12_000), {}, [], INSTS, NOW + k,
                           {i: NOW + k for i in IDS})
        d1 = e_scan.check(o, base)
        d2 = e_book.check(o, replace(base, account_id="b", positions=book.positions, marks=book.marks, exposure=book))
        assert (d1.approved, d1.check, d1.reason) == (d2.approved, d2.check, d2.reason)
        verdicts.append(d1.check)
        if d1.approved:
            book.set_position(iid, book.positions.get(iid, D(0)) + o.side.sign * o.quantity)
    # The sample exercised both outcomes and several checks.
    counts = Counter(verdicts)
    assert all(counts[c] >= 20 for c in ("", "max_gross_exposure", "max_net_exposure", "max_leverage")), counts
