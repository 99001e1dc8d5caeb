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

from lyra.core.clock import ManualClock
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
        drops, conns_at_drop, since_drop, away = 0, 0, 0, 0
        t0 = time.monotonic()
        async with feed:
            while len(got) < len(TRADES) and time.monotonic() - t0 < 180:
                # The venue's tape moves with the loop, not with the wall clock: one trade a
                # turn while we are connected, two at most while we are away (a gap to notice),
                # then fast once the 100 drops are done — so a loaded machine (slow reconnects)
                # cannot let the tape run out before the drops happen.
                back = fake.ws_connections > conns_at_drop
                if drops >= 100:
                    venue.advance(0.1)
                elif back or away < 2:
                    venue.advance(1 / 250)
                    away += not back
                ev = await feed.get(timeout=0.05)
                if isinstance(ev, Trade):
                    got.append(ev)
                    since_drop += 1
                # the venue drops us again as soon as we are back and trades are flowing
                back = fake.ws_connections > conns_at_drop
                if drops < 100 and back and since_drop >= 3:
                    conns_at_drop = fake.ws_connections
                    fake.drop_all_websockets()
                    drops, since_drop, away = drops + 1, 0, 0
        return got, feed, drops

    venue = ManualClock(START)
    with binance_fake(FIX, rate=250.0, clock=venue) as fake:  # an 8 s tape: drops land while trades flow
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


# -- a tape published in slices, each when the feed is ready: counts that do not depend on load --
RATE = 1000.0  # trades per second of the venue's clock: one message per ms


class _PacedBinance(ccxtpro.binance):  # type: ignore[misc]
    """ccxt.pro binance that tells the test when the feed waits for the next trade message,
    and how many trade messages reached it (its trade cache is sized for the whole tape)."""

    waiting = False

    async def watch_trades(self, symbol: str, since: int | None = None, limit: int | None = None,
                           params: dict | None = None) -> list:
        self.waiting = True
        try:
            return await super().watch_trades(symbol, since, limit, params or {})
        finally:
            self.waiting = False

    def received(self) -> int:
        return len(self.trades.get("BTC/USDT") or ())


def _paced(fake: FakeExchange) -> _PacedBinance:
    cfg = fake.ccxt_config()
    cfg["options"]["tradesLimit"] = 10 * len(TRADES)  # never drops a message we count
    return fake.point_ccxt(_PacedBinance(cfg))


def _ws_schedule(n: int, skip_every: int = 0, bad_every: int = 0) -> tuple[int, int, int]:
    """What the fake does to the first ``n`` messages of a connection, as the feed must see it:
    (messages sent, malformed ones, holes = good trades whose previous message was lost or bad)."""
    skipped = [bool(skip_every) and m % skip_every == 0 for m in range(1, n + 1)]
    bad = [not sk and bool(bad_every) and m % bad_every == 0 for m, sk in zip(range(1, n + 1), skipped,
                                                                              strict=True)]
    good = [not (sk or b) for sk, b in zip(skipped, bad, strict=True)]
    holes = sum(1 for i in range(1, n) if good[i] and not good[i - 1])
    return n - sum(skipped), sum(bad), holes


async def _pace_tape(fake: FakeExchange, venue: ManualClock, ex: _PacedBinance, feed: LiveFeed,
                     got: list[Trade], *, upto: int, step: int = 50) -> None:
    """Publish the trade tape up to message ``upto`` in slices of at most ``step`` messages,
    each once every message before it has reached ccxt and the feed is waiting for more; the
    last slice is a single message. (ccxt.pro keeps a message that arrives while nobody waits
    until the next one comes: a message published alone to a waiting feed is delivered at once,
    with everything held back before it.) So every run sends the same messages, loses and
    spoils the same ones and the feed sees them all, however slow the machine. Waits on
    conditions only, with a generous deadline."""
    deadline = time.monotonic() + 120
    skip = fake.faults.skip_ws_every
    while True:
        published = fake.published("BTCUSDT")
        sent = _ws_schedule(published, skip)[0]
        while True:
            ev = await feed.get(timeout=0.02)
            if isinstance(ev, Trade):
                got.append(ev)
            if ex.waiting and ex.received() == sent:
                break
            assert time.monotonic() < deadline, (
                f"feed stuck: {published} published, {ex.received()} of {sent} received, "
                f"{len(got)} passed on; {feed.stats}")
        if published >= upto:
            return
        # before anyone subscribed nothing is published: this just moves the venue's clock
        venue.advance((min(step, upto - 1 - published) if upto - 1 > published else 1) / RATE)


async def _drain_until(feed: LiveFeed, got: list[Trade], n: int, what: str) -> None:
    deadline = time.monotonic() + 120
    while len(got) < n:
        assert time.monotonic() < deadline, f"{what}: {len(got)} of {n} trades; {feed.stats}"
        ev = await feed.get(timeout=0.05)
        if isinstance(ev, Trade):
            got.append(ev)


def _paced_fake(**faults: int) -> tuple[FakeExchange, ManualClock]:
    venue = ManualClock(START)
    fake = binance_fake(FIX, rate=RATE, clock=venue)
    for k, v in faults.items():
        setattr(fake.faults, k, v)
    return fake, venue


def test_sequence_gaps_and_malformed_messages_are_repaired() -> None:
    n = len(TRADES)
    fake, venue = _paced_fake(skip_ws_every=50, bad_ws_every=77)  # lost and price-less messages
    feed_clock = ManualClock(START)  # frozen: no idle REST poll hides a hole from the websocket

    async def run() -> tuple[list[Trade], LiveFeed]:
        ex = _paced(fake)
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex, since=START)],
                        reconnect_delay=0.001, idle_backfill=0.3, clock=feed_clock)
        got: list[Trade] = []
        async with feed:
            await _pace_tape(fake, venue, ex, feed, got, upto=n)
            await _drain_until(feed, got, n, "holes repaired from the websocket alone")
        return got, feed

    with fake:
        got, feed = asyncio.run(run())
    sent, malformed, holes = _ws_schedule(n, 50, 77)
    assert (sent, malformed, holes) == (1961, 25, 64)
    stats = feed.stats["binance"]
    assert fake.ws_connections == 1
    assert stats.bad_messages == malformed  # each counted and logged, none fatal
    assert stats.gaps == holes  # every hole noticed (a lost message and a spoilt one side by side
    # make one hole), and filled by REST before the next trade was passed on:
    assert stats.backfilled == n - (sent - malformed)
    assert stats.duplicates == 0
    _assert_complete(got)


def test_rest_errors_during_backfill_are_retried() -> None:
    n = len(TRADES)
    fake, venue = _paced_fake(skip_ws_every=100)

    async def run() -> tuple[list[Trade], LiveFeed, list[str]]:
        ex = _paced(fake)
        await ex.load_markets()
        n_rest = len(fake.requests)
        fake.faults.fail_next(3, 429)  # so the first backfill meets a rate limit
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex, since=START)], reconnect_delay=0.001,
                        idle_backfill=0.3, clock=ManualClock(START))
        got: list[Trade] = []
        async with feed:
            await _pace_tape(fake, venue, ex, feed, got, upto=n)
            await _drain_until(feed, got, n, "holes repaired despite HTTP 429")
        return got, feed, [p for p, _ in fake.requests[n_rest:]]

    with fake:
        got, feed, later = asyncio.run(run())
        refused = fake.faults.fail_count
    assert later and set(later) == {"/api/v3/aggTrades"}
    assert refused == 0  # all three 429s were met (and survived) by the first backfill
    assert feed.stats["binance"].gaps == _ws_schedule(n, 100)[2] == 20  # every skip a hole
    _assert_complete(got)


def test_stale_alarm_fires_once_when_the_venue_goes_quiet() -> None:
    n = len(TRADES)
    alarms: list[tuple[str, float]] = []
    # the tape's last message is lost: only the idle REST poll can find that trade
    fake, venue = _paced_fake(skip_ws_every=n)
    clock = ManualClock(START)  # the feed's: it stands still until the test moves it

    async def run() -> tuple[list[Trade], LiveFeed]:
        ex = _paced(fake)
        feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex, since=START)],
                        stale_after=5.0, idle_backfill=1.0, clock=clock,
                        on_stale=lambda name, quiet: alarms.append((name, quiet)))
        got: list[Trade] = []
        async with feed:
            await _pace_tape(fake, venue, ex, feed, got, upto=n - 1)  # all delivered...
            await _pace_tape(fake, venue, ex, feed, got, upto=n)  # ...but the last, lost
            await _drain_until(feed, got, n - 1, "the tape up to its lost last message")
            assert feed.stats["binance"].backfilled == 0 and feed.check_stale() == []
            clock.advance(1.1)  # quiet for longer than idle_backfill: the REST poll finds it
            await _drain_until(feed, got, n, "the idle REST poll")
            assert feed.stats["binance"].backfilled == 1
            assert feed.check_stale() == [] and not alarms  # 1.1 s quiet is not stale yet
            clock.advance(4.0)  # 5.1 s since the last message: the monitor raises the alarm
            deadline = time.monotonic() + 60
            while not alarms:
                assert time.monotonic() < deadline, "no stale alarm"
                await feed.get(timeout=0.05)
            clock.advance(60.0)  # still quiet: no second alarm for the same silence
            assert feed.check_stale() == []
        return got, feed

    with fake:
        got, feed = asyncio.run(run())
    assert alarms == [("binance", pytest.approx(5.1))]
    stats = feed.stats["binance"]
    assert stats.stale and stats.stale_alarms == 1
    assert stats.trades == n
    _assert_complete(got)


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
    with pytest.raises(ValidationError, match="venue='mtgox': unknown venue"):
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
