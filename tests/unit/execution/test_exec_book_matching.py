"""Matching against an order book: walking levels, queue position, TIF and post-only."""

from __future__ import annotations

from decimal import Decimal as D
from pathlib import Path

import pandas as pd
import pytest

from lyra.core import (
    AggressorSide,
    Instrument,
    Liquidity,
    OrderBookSnapshot,
    OrderStatus,
    Quote,
    ReplayClock,
    Trade,
)
from lyra.execution import PaperBroker
from lyra.execution.testkit import BrokerDriver as Driver
from lyra.execution.testkit import book

BTC = "binance:BTC/USDT"
XRP = "bybit:XRP/USDT:USDT"
# Bybit's published XRPUSDT linear rules: tick 0.0001, qty step 1, default fees 0.02% / 0.055%.
XRP_INST = Instrument("XRP/USDT:USDT", "bybit", "XRP", "USDT", D("0.0001"), D("1"), D("1"), D("5"),
                      D("0.0002"), D("0.00055"))


def xrp_driver(balances: dict[str, int] | None = None) -> Driver:
    clock = ReplayClock(0)
    return Driver(PaperBroker([XRP_INST], clock, balances or {"USDT": 1_000_000, "XRP": 100_000}), clock)


def btc_driver(balances: dict[str, object] | None = None) -> Driver:
    clock = ReplayClock(0)
    return Driver(PaperBroker.from_venue("binance", clock, balances or {"USDT": 100_000, "BTC": 1}), clock)


def test_large_market_order_walks_the_real_bybit_book_at_several_prices(
    bybit_book: OrderBookSnapshot,
) -> None:
    d = xrp_driver()
    snap = bybit_book
    d.feed(snap)
    # By hand from the fixture: asks 1.9532 x 10480, 1.9533 x 13701, 1.9534 x 15996.
    assert [(lv.price, lv.size) for lv in snap.asks[:3]] == [(1.9532, 10480.0), (1.9533, 13701.0),
                                                           (1.9534, 15996.0)]
    o = d.submit(XRP, "buy", 30_000)
    d.poll()
    assert d.fills(o) == [(D("10480"), D("1.9532")), (D("13701"), D("1.9533")), (D("5819"), D("1.9534"))]
    assert o.status is OrderStatus.FILLED
    fees = [e.fill.fee for e in o.history if e.fill]
    assert fees == [D("10480") * D("1.9532") * D("0.00055"), D("13701") * D("1.9533") * D("0.00055"),
                    D("5819") * D("1.9534") * D("0.00055")]
    assert all(e.fill.liquidity is Liquidity.TAKER for e in o.history if e.fill)
    # The liquidity we took is gone until the next snapshot: a second order starts at 1.9534.
    o2 = d.submit(XRP, "buy", 11_000)
    d.poll()
    assert d.fills(o2) == [(D("10177"), D("1.9534")), (D("823"), D("1.9535"))]


def test_market_order_larger_than_the_visible_book_fills_partially_then_is_cancelled(
    bybit_book: OrderBookSnapshot,
) -> None:
    d = xrp_driver({"USDT": 10_000_000})
    snap = bybit_book
    d.feed(snap)
    visible = int(sum(lv.size for lv in snap.asks))
    o = d.submit(XRP, "buy", visible + 1000)
    d.poll()
    assert o.status is OrderStatus.CANCELLED
    assert o.filled_quantity == visible
    assert len(d.fills(o)) == 20
    assert "no more liquidity" in o.history[-1].reason


def test_resting_limit_fills_only_after_the_queue_ahead_trades() -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(100.0, 2.0), (99.0, 5.0)], [(101.0, 1.0)]))
    o = d.submit(BTC, "buy", "0.5", order_type="limit", limit_price="100")
    d.poll()
    assert o.status is OrderStatus.ACCEPTED  # 2.0 ahead of us at 100
    assert d.feed(Trade(BTC, 1_001, 100.0, 1.5, AggressorSide.SELL)) == []  # 0.5 still ahead
    assert d.feed(Trade(BTC, 1_002, 100.0, 0.3, AggressorSide.BUY)) == []  # buyer-initiated: not our queue
    assert d.feed(Trade(BTC, 1_003, 100.5, 9.0, AggressorSide.SELL)) == []  # another price
    d.feed(Trade(BTC, 1_004, 100.0, 0.7, AggressorSide.SELL))  # 0.5 clears the queue, 0.2 fills us
    assert d.fills(o) == [(D("0.20000"), D("100"))]
    assert o.history[-1].fill.liquidity is Liquidity.MAKER
    d.feed(Trade(BTC, 1_005, 100.0, 1.0, AggressorSide.SELL))
    assert o.status is OrderStatus.FILLED
    assert o.filled_quantity == D("0.5")


def test_queue_shrinks_when_the_level_shrinks_below_it() -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(100.0, 2.0)], [(101.0, 1.0)]))
    o = d.submit(BTC, "buy", "0.5", order_type="limit", limit_price="100")
    d.feed(book(BTC, 1_001, [(100.0, 2.5)], [(101.0, 1.0)]))  # grew: new size is behind us
    d.feed(book(BTC, 1_002, [(100.0, 0.4)], [(101.0, 1.0)]))  # at most 0.4 can be ahead now
    d.feed(Trade(BTC, 1_003, 100.0, 0.5, AggressorSide.SELL))
    assert d.fills(o) == [(D("0.10000"), D("100"))]


def test_trade_through_the_limit_and_crossing_book_fill_the_resting_order_as_maker() -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(100.0, 50.0)], [(101.0, 1.0)]))
    o = d.submit(BTC, "buy", "0.5", order_type="limit", limit_price="100")
    d.feed(Trade(BTC, 1_001, 99.5, 0.2, AggressorSide.SELL))  # printed below us: our level was cleared
    assert d.fills(o) == [(D("0.20000"), D("100"))]
    d.feed(book(BTC, 1_002, [(99.0, 1.0)], [(99.8, 0.1), (100.0, 1.0)]))  # asks now cross our bid
    assert d.fills(o)[1:] == [(D("0.10000"), D("100")), (D("0.20000"), D("100"))]
    assert o.status is OrderStatus.FILLED
    assert {e.fill.liquidity for e in o.history if e.fill} == {Liquidity.MAKER}


def test_real_binance_queue_position_against_recorded_trades(
    btc_quotes: list[Quote], btc_trades: list[Trade], fixtures_dir: Path
) -> None:
    """Join the bid of a recorded quote; the order fills exactly when the recorded sell trades
    at that price have consumed the size that was ahead of it (computed here with pandas)."""
    q0 = btc_quotes[74]
    trades = [t for t in btc_trades if t.ts > q0.ts]
    d = btc_driver()
    d.feed(q0)
    o = d.submit(BTC, "buy", "0.01", order_type="limit", limit_price=str(q0.bid_price))
    # Independent reference, in exact decimals from the raw CSV text. The file carries float
    # noise (0.011201000000000001): sizes are cleaned to Binance's 8 base decimals first.
    df = pd.read_csv(fixtures_dir / "binance_BTC-USDT_trades.csv.gz", dtype=str)
    df = df[df.timestamp_ms.astype(int) > q0.ts].reset_index(drop=True)
    price = df.price.map(D)
    at = df[(price == D(repr(q0.bid_price))) & (df.side == "sell")]
    queue = D(repr(q0.bid_size)).quantize(D("1e-8"))
    cum = D(0)
    first = -1
    for idx, size in zip(at.index, at["size"], strict=True):
        first = idx
        cum += D(size).quantize(D("1e-8"))
        if cum > queue:
            break
    assert (price[:first] < D(repr(q0.bid_price))).sum() == 0  # nothing traded through before
    expected = (cum - queue).quantize(D("0.00001"), "ROUND_DOWN")
    for i, t in enumerate(trades[: first + 1]):
        got = d.feed(t)
        if i < first:
            assert got == [] or all(r.fill is None for r in got), f"filled early at trade {i}"
    assert len(at.loc[:first]) >= 10  # many prints at our price went by before we were reached
    assert d.fills(o) == [(expected, D(repr(q0.bid_price)))]


@pytest.mark.parametrize(("tif", "qty", "status", "filled"), [
    ("fok", "1.5", OrderStatus.CANCELLED, D("0")),  # book has 1.2 within the limit: nothing
    ("fok", "1.2", OrderStatus.FILLED, D("1.2")),
    ("ioc", "1.5", OrderStatus.CANCELLED, D("1.2")),  # takes 1.2, remainder cancelled
])
def test_fok_and_ioc(tif: str, qty: str, status: OrderStatus, filled: D) -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(99.0, 1.0)], [(100.0, 0.5), (100.5, 0.7), (101.0, 9.0)]))
    o = d.submit(BTC, "buy", qty, order_type="limit", limit_price="100.5", time_in_force=tif)
    d.poll()
    assert o.status is status
    assert o.filled_quantity == filled
    assert d.broker.open_orders() == []
    assert d.broker.balances()["USDT"].locked == 0


def test_crossing_limit_takes_then_rests_the_remainder_at_the_front() -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(99.0, 1.0)], [(100.0, 0.5), (101.0, 2.0)]))
    o = d.submit(BTC, "buy", "0.8", order_type="limit", limit_price="100")
    d.poll()
    assert d.fills(o) == [(D("0.50000"), D("100.0"))]
    assert o.status is OrderStatus.PARTIALLY_FILLED
    d.feed(Trade(BTC, 1_001, 100.0, 0.1, AggressorSide.SELL))  # we are the best bid: nobody ahead
    assert d.fills(o)[1:] == [(D("0.10000"), D("100"))]


def test_post_only_that_would_cross_is_rejected_and_one_that_rests_is_accepted() -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(99.0, 1.0)], [(100.0, 0.5)]))
    bad = d.submit(BTC, "buy", "0.1", order_type="limit", limit_price="100", post_only=True)
    good = d.submit(BTC, "buy", "0.1", order_type="limit", limit_price="99.5", post_only=True)
    d.poll()
    assert bad.status is OrderStatus.REJECTED
    assert "post-only" in bad.history[-1].reason
    assert good.status is OrderStatus.ACCEPTED
    assert d.broker.balances()["USDT"].locked == D("99.5") * D("0.1") * D("1.001")


def test_reduce_only_rejects_increasing_and_accepts_reducing() -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(99.0, 5.0)], [(100.0, 5.0)]))
    inc = d.submit(BTC, "sell", "0.1", reduce_only=True)  # flat: a sell would open a short
    d.poll()
    assert inc.status is OrderStatus.REJECTED
    assert "increase the position" in inc.history[-1].reason
    d.submit(BTC, "buy", "0.3")
    d.poll()
    assert d.broker.position(BTC) == D("0.3")
    too_big = d.submit(BTC, "sell", "0.4", reduce_only=True)
    ok = d.submit(BTC, "sell", "0.3", reduce_only=True)
    d.poll()
    assert too_big.status is OrderStatus.REJECTED
    assert ok.status is OrderStatus.FILLED
    assert d.broker.position(BTC) == 0


def test_stop_market_triggers_on_trade_through_the_stop_and_walks_the_book() -> None:
    d = btc_driver()
    d.feed(book(BTC, 1_000, [(99.0, 5.0)], [(100.0, 0.2), (100.5, 5.0)]))
    o = d.submit(BTC, "buy", "0.5", order_type="stop_market", stop_price="100.2")
    d.feed(Trade(BTC, 1_001, 100.1, 0.1, AggressorSide.BUY))
    assert d.fills(o) == []
    d.feed(Trade(BTC, 1_002, 100.2, 0.1, AggressorSide.BUY))  # at the stop: triggers
    assert d.fills(o) == [(D("0.20000"), D("100.0")), (D("0.30000"), D("100.5"))]
