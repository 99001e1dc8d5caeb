"""Feed metrics of live feeds against the local fake Binance (real websockets, real REST):
what /metrics serves equals what the feeds counted, the counts agree with what the fake did to
the stream, the last-message time is the feed's clock at the last message, and a book whose
venue checksum fails is counted."""

from __future__ import annotations

import asyncio
import gc
import time
import urllib.request
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from lyra.core.clock import ManualClock
from lyra.core.market import OrderBookSnapshot, Trade
from lyra.feeds.live import FeedSource, LiveFeed
from lyra.metrics import MetricsEndpoint
from lyra.metrics.feeds import FeedCollector
from lyra.testing.fake_exchange import binance_fake, iter_trade_ids, load_trades_csv

FIX = Path(__file__).parents[2] / "fixtures"
TRADES = load_trades_csv(FIX / "exchange" / "binance_BTC-USDT_trades.csv.gz")
START = int(TRADES["ts"].iloc[0])


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def get(samples: dict, name: str, **labels: str) -> float:
    hits = [v for (n, lb), v in samples.items() if n == name and labels.items() <= dict(lb).items()]
    assert len(hits) == 1, f"{name} {labels}: {len(hits)} samples"
    return hits[0]


class _ChecksumOnce(ccxtpro.binance):  # type: ignore[misc]
    """ccxt.pro binance whose first order book fails its checksum, as ccxt.pro reports it on
    venues that send one (Kraken, OKX...): watch_order_book raises ChecksumError."""

    failed = False

    async def watch_order_book(self, symbol: str, limit: int | None = None, params: Any = None) -> Any:
        if not self.failed:
            self.failed = True
            raise ccxt.ChecksumError(f"{self.id} {symbol} checksum error")
        return await super().watch_order_book(symbol, limit, params or {})


@pytest.fixture
def endpoint():
    reg = CollectorRegistry()
    reg.register(FeedCollector())  # every LiveFeed of this process, through lyra.feeds.observer
    ep = MetricsEndpoint(reg, kind="session", name="feeds-test").start()
    yield ep
    ep.stop()


def test_feed_metrics_match_the_feed_and_the_venue(endpoint):
    gc.collect()  # feeds of earlier tests leave the (weak) registry
    venue = ManualClock(START)
    feed_clock = ManualClock(START)  # frozen while trades flow: no idle poll hides a hole
    n = len(TRADES)

    async def trades() -> tuple[LiveFeed, list[Trade], dict, dict, dict]:
        cfg_ = None
        with binance_fake(FIX, rate=1000.0, clock=venue) as fake:
            fake.faults.skip_ws_every = 50  # lost messages: gaps the feed must notice and backfill
            cfg_ = fake.ccxt_config()
            cfg_["options"]["tradesLimit"] = 10 * n
            ex = fake.point_ccxt(ccxtpro.binance(cfg_))
            # labels of our own: feeds other tests left in this process are reported beside them
            feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex, since=START, label="m-trades")],
                            reconnect_delay=0.001, clock=feed_clock)
            got: list[Trade] = []
            deadline = time.monotonic() + 120
            async with feed:
                while len(got) < n and time.monotonic() < deadline:
                    ev = await feed.get(timeout=0.05)
                    if isinstance(ev, Trade):
                        got.append(ev)
                    elif ev is None and not fake.tape_done("BTCUSDT"):
                        venue.advance(0.05)  # the venue publishes the next 50 trades
                mid = await asyncio.to_thread(scrape, endpoint.url)
                # Later: 42 quiet seconds on the feed's clock; the last message stays where it was.
                feed_clock.advance(42.0)
                quiet = await asyncio.to_thread(scrape, endpoint.url)
        closed = await asyncio.to_thread(scrape, endpoint.url)
        return feed, got, mid, quiet, closed

    feed, got, during, later, closed = asyncio.run(trades())
    st = feed.stats["m-trades"]
    assert sorted(int(t.trade_id) for t in got) == sorted(int(i) for i in iter_trade_ids(TRADES))
    lbl = {"feed": "m-trades", "instrument": "m-trades:BTC/USDT"}
    # what was served equals what the feed counted...
    assert get(during, "lyra_feed_messages_total", channel="trades", **lbl) == st.trades - st.backfilled
    assert get(during, "lyra_feed_gaps_total", **lbl) == st.gaps
    assert get(during, "lyra_feed_backfilled_trades_total", **lbl) == st.backfilled
    assert get(during, "lyra_feed_reconnects_total", **lbl) == st.reconnects
    assert get(during, "lyra_feed_book_checksum_failures_total", **lbl) == 0
    # ...and what the venue did: every 50th message lost, so at least n/50 - 1 holes (the last
    # one may sit in the history fetched from `since`), each refilled by REST; all trades came once
    assert st.gaps >= n // 50 - 1 and st.backfilled >= st.gaps
    assert st.trades == n and st.duplicates == 0
    # the clock stood still: the last message came at its reading
    assert get(during, "lyra_feed_last_message_timestamp_seconds", **lbl) == START / 1000

    assert get(later, "lyra_feed_last_message_timestamp_seconds", **lbl) == START / 1000
    assert get(later, "lyra_feed_messages_total", channel="trades", **lbl) == st.trades - st.backfilled
    # Closed, the feed is no longer reported: its series end with it.
    assert not any(dict(lb).get("feed") == lbl["feed"] for _, lb in closed)

    # A second feed, on books: its first book fails the checksum, it resubscribes and goes on.
    async def books() -> tuple[LiveFeed, int, dict]:
        with binance_fake(FIX, rate=40.0) as fake:
            ex = fake.point_ccxt(_ChecksumOnce(fake.ccxt_config()))
            bfeed = LiveFeed([FeedSource("binance", "XRP/USDT", ex, frozenset({"book"}), label="m-book")],
                             reconnect_delay=0.001)
            n_books = 0
            deadline = time.monotonic() + 60
            async with bfeed:
                while n_books < 3 and time.monotonic() < deadline:
                    if isinstance(await bfeed.get(timeout=0.5), OrderBookSnapshot):
                        n_books += 1
                open_now = await asyncio.to_thread(scrape, endpoint.url)
        return bfeed, n_books, open_now

    bfeed, n_books, both = asyncio.run(books())
    assert n_books == 3
    blbl = {"feed": "m-book", "instrument": "m-book:XRP/USDT"}
    assert get(both, "lyra_feed_book_checksum_failures_total", **blbl) == 1
    assert get(both, "lyra_feed_reconnects_total", **blbl) == bfeed.stats["m-book"].reconnects >= 1
    assert get(both, "lyra_feed_messages_total", channel="book", **blbl) == bfeed.stats["m-book"].books >= 3
    # the first feed, closed, is not reported beside it; and now neither is
    assert not any(dict(lb).get("feed") == lbl["feed"] for _, lb in both)
    gone = scrape(endpoint.url)
    assert not any(dict(lb).get("feed") in (lbl["feed"], blbl["feed"]) for _, lb in gone)
