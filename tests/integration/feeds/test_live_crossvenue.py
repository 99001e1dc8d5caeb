"""Consolidated best bid/offer and the cross-venue sanity check: hand-worked numbers, then live
against two fake venues, one of them quoting 3% off the market."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import ccxt.pro as ccxtpro
import pytest

from lyra.core.market import Quote
from lyra.feeds.live import FeedSource, LiveFeed, consolidated_bbo, deviating_venues
from lyra.testing.fake_exchange import FakeExchange, binance_fake

FIX = Path(__file__).parents[2] / "fixtures"


def _q(bid: float, ask: float, bsz: float = 1.0, asz: float = 1.0, ts: int = 0) -> Quote:
    return Quote("x", ts, bid, bsz, ask, asz)


def test_consolidated_bbo_hand_worked() -> None:
    quotes = {"a": _q(100.0, 101.0, ts=5), "b": _q(100.5, 101.5, bsz=2.0, ts=7),
              "c": _q(99.0, 100.8, asz=3.0, ts=6)}
    bbo = consolidated_bbo(quotes)
    assert bbo is not None
    assert (bbo.bid_price, bbo.bid_size, bbo.bid_venue) == (100.5, 2.0, "b")
    assert (bbo.ask_price, bbo.ask_size, bbo.ask_venue) == (100.8, 3.0, "c")
    assert bbo.ts == 7
    assert not bbo.crossed
    assert consolidated_bbo({}) is None
    # equal prices: the bigger size wins
    tie = consolidated_bbo({"a": _q(100.0, 101.0, bsz=1.0, asz=1.0),
                            "b": _q(100.0, 101.0, bsz=4.0, asz=5.0)})
    assert tie is not None
    assert (tie.bid_venue, tie.ask_venue) == ("b", "b")


def test_deviating_venues_hand_worked() -> None:
    # mids: a 100.5, b 100.7, c 103.5, d 100.6
    quotes = {"a": _q(100, 101), "b": _q(100.2, 101.2), "c": _q(103, 104), "d": _q(100.1, 101.1)}
    out = deviating_venues(quotes, max_deviation_pct=1.0)
    # c vs median(100.5, 100.7, 100.6) = 100.6 -> |103.5-100.6|/100.6 = 2.8827%
    assert set(out) == {"c"}
    assert out["c"] == pytest.approx((103.5 - 100.6) / 100.6 * 100)
    # a vs median(100.7, 103.5, 100.6) = 100.7 -> 0.199% : under the threshold
    assert deviating_venues(quotes, max_deviation_pct=0.19).keys() >= {"a", "c"}
    assert deviating_venues({"a": _q(1, 2)}, 0.1) == {}
    # two venues: neither can be trusted over the other, both are flagged
    assert set(deviating_venues({"a": _q(100, 101), "b": _q(110, 111)}, 1.0)) == {"a", "b"}


def test_live_venue_quoting_off_market_is_flagged() -> None:
    async def run(a: FakeExchange, b: FakeExchange) -> LiveFeed:
        ex_a1 = a.point_ccxt(ccxtpro.binance(a.ccxt_config()))
        ex_a2 = a.point_ccxt(ccxtpro.binance(a.ccxt_config()))
        ex_a3 = a.point_ccxt(ccxtpro.binance(a.ccxt_config()))
        ex_b = b.point_ccxt(ccxtpro.binance(b.ccxt_config()))
        bbo = frozenset({"bbo"})
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex_a1, bbo, label="a1"),
                         FeedSource("binance", "BTC/USDT", ex_a2, bbo, label="a2"),
                         FeedSource("binance", "BTC/USDT", ex_a3, bbo, label="a3"),
                         FeedSource("binance", "BTC/USDT", ex_b, bbo, label="b")],
                        max_deviation_pct=1.0)
        async with feed:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 10:
                await feed.get(timeout=0.2)
                if all(st.quotes >= 5 for st in feed.stats.values()):
                    break
        return feed

    # four sources: with three, "the median of the other two" is their mean, and one bad
    # venue drags the good ones' reference halfway towards itself
    with binance_fake(FIX, rate=50.0) as a, binance_fake(FIX, rate=50.0) as b:
        b.faults.quote_skew = 1.03
        feed = asyncio.run(run(a, b))
    assert all(st.quotes >= 5 for st in feed.stats.values())
    dev = feed.deviating()
    assert set(dev) == {"b"}
    assert 2.5 < dev["b"] < 3.5
    bbo = feed.consolidated()
    assert bbo is not None
    # the skewed venue bids 3% over the market: the consolidated book is crossed, a red flag
    assert bbo.bid_venue == "b"
    assert bbo.ask_venue in {"a1", "a2", "a3"}
    assert bbo.crossed
