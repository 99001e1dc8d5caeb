"""LiveFeed (ccxt.pro) against the fake Binance server: forced disconnects, sequence gaps,
malformed messages, stale alarms, BBO and order book — checked against the replayed files."""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import ccxt.pro as ccxtpro
import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.core.market import OrderBookSnapshot, Quote, Trade
from lyra.feeds.live import FeedSource, LiveFeed, SyncLiveFeed
from lyra.feeds.orderbook import OrderBook
from lyra.testing.fake_exchange import (
    FakeExchange,
    binance_fake,
    iter_trade_ids,
    load_quotes_csv,
    load_trades_csv,
)

FIX = Path(__file__).parents[2] / "fixtures"
TRADES = load_trades_csv(FIX / "exchange" / "binance_BTC-USDT_trades.csv.gz")
START = int(TRADES["ts"].iloc[0])
QUOTES = load_quotes_csv(FIX / "exchange" / "binance_BTC-USDT_bbo.csv.gz")


def _pro(fake: FakeExchange) -> ccxtpro.binance:
    return fake.point_ccxt(ccxtpro.binance(fake.ccxt_config()))


async def _collect_trades(fake: FakeExchange, feed: LiveFeed, deadline: float) -> list[Trade]:
    got: list[Trade] = []
    t0 = time.monotonic()
    async with feed:
        while len(got) < len(TRADES) and time.monotonic() - t0 < deadline:
            ev = await feed.get(timeout=0.5)
            if isinstance(ev, Trade):
                got.append(ev)
    return got


def _assert_complete(got: list[Trade]) -> None:
    ids = [t.trade_id for t in got]
    assert len(ids) == len(set(ids)), "duplicated trades"
    assert set(ids) == set(iter_trade_ids(TRADES)), "missing trades"
    assert [int(i) for i in ids] == sorted(int(i) for i in ids), "out of order"
    ref = TRADES.set_index(TRADES["trade_id"].astype(str))
    for t in got[::97]:  # values survive the websocket/REST round trip exactly
        row = ref.loc[t.trade_id]
        assert (t.ts, t.price, t.size, t.side.value) == (row["ts"], row["price"], row["size"],
                                                         row["side"])


def test_100_forced_disconnects_lose_and_duplicate_nothing() -> None:
    async def run(fake: FakeExchange) -> tuple[list[Trade], LiveFeed, int]:
        # watch_timeout: a drop that lands mid-subscribe can leave ccxt's send hanging
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", _pro(fake), since=START)],
                        reconnect_delay=0.001, reconnect_max=0.02, watch_timeout=0.5,
                        idle_backfill=0.3)
        got: list[Trade] = []
        drops, conns_at_drop, since_drop = 0, 0, 0
        t0 = time.monotonic()
        async with feed:
            while len(got) < len(TRADES) and time.monotonic() - t0 < 25:
                ev = await feed.get(timeout=0.05)
                if isinstance(ev, Trade):
                    got.append(ev)
                    since_drop += 1
                # the venue drops us again as soon as we are back and trades are flowing
                back = fake.ws_connections > conns_at_drop
                if drops < 100 and back and since_drop >= 3:
                    conns_at_drop = fake.ws_connections
                    fake.drop_all_websockets()
                    drops, since_drop = drops + 1, 0
        return got, feed, drops

    with binance_fake(FIX, rate=250.0) as fake:  # an 8 s tape: drops land while trades flow
        fake.faults.drop_ws_every = 40  # and the venue drops on its own too
        got, feed, drops = asyncio.run(run(fake))
    stats = feed.stats["binance"]
    assert drops == 100
    assert fake.ws_connections >= 101  # every drop was followed by a new connection
    # (ccxt reconnects some drops by itself, between two watch calls, so our own count of
    # reconnects is lower than the number of drops)
    assert stats.reconnects >= 50
    assert stats.gaps >= 50  # trades published while we were away were noticed...
    assert stats.backfilled > 0  # ...and fetched by REST
    _assert_complete(got)
    assert stats.trades == len(TRADES)
    assert stats.duplicates >= 0


def test_sequence_gaps_and_malformed_messages_are_repaired() -> None:
    with binance_fake(FIX, rate=1000.0) as fake:
        fake.faults.skip_ws_every = 50  # lost messages on a live connection
        fake.faults.bad_ws_every = 77  # trade messages without a price
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", _pro(fake), since=START)],
                        reconnect_delay=0.001,
                        idle_backfill=0.3)  # a message lost at the very end is found too
        got = asyncio.run(_collect_trades(fake, feed, deadline=20))
        stats = feed.stats["binance"]
    assert stats.bad_messages >= 10  # counted and logged, not fatal
    assert stats.gaps >= 30
    _assert_complete(got)


def test_rest_errors_during_backfill_are_retried() -> None:
    async def run(fake: FakeExchange) -> tuple[list[Trade], LiveFeed]:
        ex = _pro(fake)
        await ex.load_markets()
        n_rest = len(fake.requests)
        fake.faults.fail_next(3, 429)  # so the first backfill meets a rate limit
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex, since=START)], reconnect_delay=0.001,
                        idle_backfill=0.3)
        got = await _collect_trades(fake, feed, deadline=20)
        later = [p for p, _ in fake.requests[n_rest:]]
        assert later
        assert set(later) == {"/api/v3/aggTrades"}
        return got, feed

    with binance_fake(FIX, rate=1000.0) as fake:
        fake.faults.skip_ws_every = 100
        got, feed = asyncio.run(run(fake))
        refused = fake.faults.fail_count
    assert refused == 0  # all three 429s were met (and survived) by backfills
    # 20 trades were skipped on the socket; one backfill may close several of those holes
    # when the machine is slow, so count holes seen, not one per skip.
    assert feed.stats["binance"].gaps >= 5
    _assert_complete(got)


def test_stale_alarm_fires_once_when_the_venue_goes_quiet() -> None:
    alarms: list[tuple[str, float]] = []

    async def run(fake: FakeExchange) -> LiveFeed:
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", _pro(fake), since=START)],
                        stale_after=0.4, idle_backfill=0.3,
                        on_stale=lambda name, quiet: alarms.append((name, quiet)))
        async with feed:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 8 and not alarms:
                await feed.get(timeout=0.1)
            await asyncio.sleep(0.5)  # it stays quiet: no second alarm
        return feed

    with binance_fake(FIX, rate=5000.0) as fake:  # the whole tape in 0.4 s, then silence
        feed = asyncio.run(run(fake))
    assert len(alarms) == 1
    assert alarms[0][0] == "binance"
    assert alarms[0][1] > 0.4
    assert feed.stats["binance"].stale
    assert feed.stats["binance"].stale_alarms == 1
    # ccxt.pro holds back a trade that arrives between two watch calls until the next
    # message; at the end of the tape there is none, and only the idle REST poll finds it
    assert feed.stats["binance"].trades == len(TRADES)


def _bybit_final_book() -> OrderBook:
    msgs = json.loads(gzip.decompress(
        (FIX / "orderbook" / "bybit_XRPUSDT_ob500_2024-12-01.json.gz").read_bytes()))
    book = OrderBook("ref")
    for m in msgs:
        d = m["data"]
        b = [(float(p), float(q)) for p, q in d["b"]]
        a = [(float(p), float(q)) for p, q in d["a"]]
        if m["type"] == "snapshot":
            book.apply_snapshot(b, a, sequence=d["u"], ts=m["ts"])
        else:
            book.apply_delta(b, a, last_id=d["u"], ts=m["ts"])
    return book


def test_bbo_and_order_book_streams() -> None:
    ref = _bybit_final_book()

    async def run(fake: FakeExchange) -> tuple[list[Quote], list[OrderBookSnapshot]]:
        ex = _pro(fake)
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex, frozenset({"bbo"})),
                         FeedSource("binance", "XRP/USDT", ex, frozenset({"book"}),
                                    label="binance-book")])
        quotes: list[Quote] = []
        books: list[OrderBookSnapshot] = []
        async with feed:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 15:
                ev = await feed.get(timeout=0.5)
                if isinstance(ev, Quote):
                    quotes.append(ev)
                elif isinstance(ev, OrderBookSnapshot):
                    books.append(ev)
                if len(quotes) >= 20 and books and books[-1].sequence == ref.sequence:
                    break
        return quotes, books

    with binance_fake(FIX, rate=40.0) as fake:
        quotes, books = asyncio.run(run(fake))
    # quotes: each one is a recorded row, in recorded order (coalescing may skip some)
    rows = list(QUOTES[["bid_price", "bid_size", "ask_price", "ask_size"]].itertuples(index=False))
    pos = -1
    for q in quotes:
        nxt = rows.index((q.bid_price, q.bid_size, q.ask_price, q.ask_size), pos + 1)
        assert nxt > pos
        pos = nxt
    assert len(quotes) >= 20
    assert all(q.bid_price < q.ask_price for q in quotes)
    # book: never crossed, and the final top 10 equals our own replay of the recorded deltas
    assert books
    assert all(b.bids[0].price < b.asks[0].price for b in books)
    final = books[-1]
    assert final.sequence == ref.sequence
    assert [(lv.price, lv.size) for lv in final.bids] == ref.top_bids(10)
    assert [(lv.price, lv.size) for lv in final.asks] == ref.top_asks(10)


def test_sync_wrapper_yields_trades_in_order() -> None:
    with binance_fake(FIX, rate=500.0) as fake, SyncLiveFeed(
        lambda: LiveFeed([FeedSource("binance", "BTC/USDT", _pro(fake), since=START)])
    ) as sync:
        events = list(sync.events(timeout=5, limit=300))
    assert len(events) == 300
    assert all(isinstance(e, Trade) for e in events)
    ids = [int(e.trade_id) for e in events if isinstance(e, Trade)]
    assert ids == list(range(ids[0], ids[0] + 300))


def test_bad_sources_are_refused() -> None:
    with pytest.raises(ValidationError, match="exchange"):
        LiveFeed([FeedSource("mtgox", "BTC/USD", object())])
    with pytest.raises(ValidationError, match="channels"):
        LiveFeed([FeedSource("binance", "BTC/USDT", object(), frozenset({"funding"}))])
    with pytest.raises(ValidationError, match="label"):
        LiveFeed([FeedSource("binance", "BTC/USDT", object()),
                  FeedSource("binance", "ETH/USDT", object())])
    with pytest.raises(ValidationError):
        LiveFeed([])


def test_trade_ids_in_fixture_are_consecutive() -> None:
    # the must-show relies on Binance's consecutive aggregate-trade ids
    assert (pd.Series(TRADES["trade_id"]).diff().dropna() == 1).all()
