"""OrderBook: snapshot + deltas, sequence gaps, top-N, Kraken checksums — on recorded books."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.core.market import BookLevel
from lyra.feeds.orderbook import (
    OrderBook,
    SequenceGap,
    apply_kraken_v1,
    kraken_checksum,
    kraken_decimals,
)

FIX = Path(__file__).parents[2] / "fixtures" / "orderbook"


def _bybit() -> list[dict]:
    return json.loads(gzip.decompress((FIX / "bybit_XRPUSDT_ob500_2024-12-01.json.gz").read_bytes()))


def _kraken() -> list[dict]:
    return json.loads(gzip.decompress(
        (FIX / "kraken_XBT-CHF_book1000_ws_2021-04-17.json.gz").read_bytes()))


def _levels(raw: list[list[str]]) -> list[tuple[float, float]]:
    return [(float(p), float(q)) for p, q in raw]


def _replay_bybit(msgs: list[dict], book: OrderBook) -> list[tuple[float, float]]:
    """Apply the recorded messages; return (best bid, best ask) after each."""
    tops = []
    for m in msgs:
        d = m["data"]
        if m["type"] == "snapshot":
            book.apply_snapshot(_levels(d["b"]), _levels(d["a"]), sequence=d["u"], ts=m["ts"])
        else:
            assert book.apply_delta(_levels(d["b"]), _levels(d["a"]), last_id=d["u"], ts=m["ts"])
        tops.append((book.best_bid, book.best_ask))
    return tops


def test_bybit_replay_is_never_crossed_and_matches_independent_rebuild() -> None:
    msgs = _bybit()
    book = OrderBook("bybit:XRP/USDT:USDT")
    tops = _replay_bybit(msgs, book)
    assert len(tops) == 50
    assert all(bb < ba for bb, ba in tops), "the book crossed"
    assert book.sequence == msgs[-1]["data"]["u"]
    # Independent reference: the flattened CSV of the same capture, last size per level wins.
    flat = pd.read_csv(FIX / "bybit-linear_XRP-USDT-PERP_l2.csv.gz")
    last = flat.groupby(["side", "price"], sort=False)["size"].last()
    ref_bids = {p: s for (side, p), s in last.items() if side == "bid" and s > 0}
    ref_asks = {p: s for (side, p), s in last.items() if side == "ask" and s > 0}
    assert book.bids == ref_bids
    assert book.asks == ref_asks
    assert len(ref_bids) + len(ref_asks) > 900


def test_bybit_deletes_remove_levels() -> None:
    msgs = _bybit()
    book = OrderBook("x")
    _replay_bybit(msgs[:1], book)
    deletes = [(float(p), side) for m in msgs[1:] for side in ("b", "a")
               for p, q in m["data"][side] if float(q) == 0]
    assert len(deletes) == 18  # as the data README says
    _replay_bybit(msgs[1:], book)
    # a deleted level stays gone unless a later delta re-adds it
    later_adds = {(float(p), side) for m in msgs[1:] for side in ("b", "a")
                  for p, q in m["data"][side] if float(q) > 0}
    for price, side in deletes:
        if (price, side) not in later_adds:
            assert price not in (book.bids if side == "b" else book.asks)


def test_sequence_gap_requires_resync() -> None:
    msgs = _bybit()
    book = OrderBook("x")
    _replay_bybit(msgs[:3], book)
    skipped = msgs[4]["data"]  # msgs[3] is "lost"
    with pytest.raises(SequenceGap) as info:
        book.apply_delta(_levels(skipped["b"]), _levels(skipped["a"]), last_id=skipped["u"], ts=0)
    assert info.value.expected == msgs[3]["data"]["u"]
    assert book.needs_resync
    assert book.gaps == 1
    # refuses even the "right" next message until a snapshot arrives
    d3 = msgs[3]["data"]
    with pytest.raises(SequenceGap):
        book.apply_delta(_levels(d3["b"]), _levels(d3["a"]), last_id=d3["u"], ts=0)
    _replay_bybit(msgs[:1], book)
    assert not book.needs_resync


def test_stale_delta_is_ignored_and_binance_ranges_accepted() -> None:
    book = OrderBook("binance:BTC/USDT")
    book.apply_snapshot([(100.0, 1.0)], [(101.0, 1.0)], sequence=100, ts=0)
    assert not book.apply_delta([(100.0, 9.0)], [], first_id=90, last_id=100, ts=1)
    assert book.bids[100.0] == 1.0
    assert book.stale_dropped == 1
    # Binance: first update straddles the snapshot id (U <= lastUpdateId+1 <= u)
    assert book.apply_delta([(100.0, 2.0)], [], first_id=95, last_id=105, ts=2)
    assert book.bids[100.0] == 2.0
    assert book.sequence == 105
    with pytest.raises(SequenceGap):
        book.apply_delta([], [], first_id=107, last_id=110, ts=3)


def test_top_n_snapshot_orders_levels() -> None:
    book = OrderBook("i", depth=None)
    book.apply_snapshot([(99.0, 1.0), (100.0, 2.0), (98.0, 3.0)],
                        [(102.0, 1.0), (101.0, 4.0), (103.0, 5.0)], sequence=7, ts=42)
    snap = book.snapshot(2)
    assert snap.bids == (BookLevel(100.0, 2.0), BookLevel(99.0, 1.0))
    assert snap.asks == (BookLevel(101.0, 4.0), BookLevel(102.0, 1.0))
    assert (snap.ts, snap.sequence, snap.instrument_id) == (42, 7, "i")
    book.apply_delta([(100.5, 1.0)], [], last_id=8, ts=43)
    assert not book.is_crossed
    book.apply_delta([(101.0, 1.0)], [], last_id=9, ts=44)
    assert book.is_crossed


def test_bad_level_is_refused() -> None:
    book = OrderBook("i")
    book.apply_snapshot([(1.0, 1.0)], [(2.0, 1.0)], sequence=None, ts=0)
    with pytest.raises(ValidationError, match="book level"):
        book.apply_delta([(1.0, -1.0)], [], ts=1)


def test_depth_truncates_to_best_levels() -> None:
    book = OrderBook("i", depth=2)
    book.apply_snapshot([(1.0, 1.0), (2.0, 1.0), (3.0, 1.0)], [(4.0, 1.0), (5.0, 1.0), (6.0, 1.0)],
                        sequence=None, ts=0)
    assert sorted(book.bids) == [2.0, 3.0]
    assert sorted(book.asks) == [4.0, 5.0]


def test_kraken_every_checksum_verifies() -> None:
    msgs = _kraken()
    book = OrderBook("kraken:XBT/CHF", depth=1000)
    price_dec, size_dec = kraken_decimals(msgs[0]["msg"][1]["as"])
    assert (price_dec, size_dec) == (5, 8)
    assert apply_kraken_v1(book, msgs[0]["msg"]) is None
    assert len(book.asks) + len(book.bids) == 818
    checked = 0
    for m in msgs[1:]:
        expected = apply_kraken_v1(book, m["msg"])
        assert expected is not None, "every Kraken update carries a checksum"
        assert kraken_checksum(book, price_dec, size_dec) == expected, m
        assert not book.is_crossed
        checked += 1
    assert checked == 289


def test_kraken_checksum_detects_a_wrong_book() -> None:
    msgs = _kraken()
    book = OrderBook("k", depth=1000)
    apply_kraken_v1(book, msgs[0]["msg"])
    expected = apply_kraken_v1(book, msgs[1]["msg"])
    assert kraken_checksum(book, 5, 8) == expected
    best = book.top_bids(1)[0][0]
    book.bids[best] += 1e-8  # one satoshi off at the top of the book
    assert kraken_checksum(book, 5, 8) != expected
    # a level deeper than the top 10 does not enter the checksum
    book.bids[best] -= 1e-8
    deep = book.top_bids(20)[-1][0]
    book.bids[deep] += 1.0
    assert kraken_checksum(book, 5, 8) == expected
