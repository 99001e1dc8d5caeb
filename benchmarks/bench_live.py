"""Live-feed and order-book figures, each measured against a reference in the same run.

    .venv/bin/python benchmarks/bench_live.py

1. OrderBook: Bybit XRPUSDT snapshot + 49 deltas replayed many times; deltas/s and top-10
   snapshots/s, against a naive reference that re-sorts the whole book after each delta.
2. LiveFeed over ccxt.pro against the fake exchange: trades/s through LiveFeed (id checks,
   queue) against a bare ccxt.pro watch_trades loop on the same tape.
3. Recovery: the same tape with a forced disconnect every 15 messages; trades/s and
   disconnects handled per second.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import time
from pathlib import Path

import ccxt.pro as ccxtpro

from lyra.core.market import Trade
from lyra.feeds.live import FeedSource, LiveFeed
from lyra.feeds.orderbook import OrderBook
from lyra.testing.fake_exchange import FakeExchange, binance_fake

FIX = Path(__file__).parents[1] / "tests" / "fixtures"


def bench_book(rounds: int = 200) -> None:
    msgs = json.loads(gzip.decompress(
        (FIX / "orderbook" / "bybit_XRPUSDT_ob500_2024-12-01.json.gz").read_bytes()))
    parsed = [([(float(p), float(q)) for p, q in m["data"]["b"]],
               [(float(p), float(q)) for p, q in m["data"]["a"]], m["data"]["u"], m["ts"])
              for m in msgs]
    snap, deltas = parsed[0], parsed[1:]

    t0 = time.perf_counter()
    for _ in range(rounds):
        book = OrderBook("x")
        book.apply_snapshot(snap[0], snap[1], sequence=snap[2], ts=snap[3])
        for b, a, u, ts in deltas:
            book.apply_delta(b, a, last_id=u, ts=ts)
            book.snapshot(10)
    lyra_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    for _ in range(rounds):
        bids, asks = dict(snap[0]), dict(snap[1])
        for b, a, _u, _ts in deltas:
            for side, lv in ((bids, b), (asks, a)):
                for p, q in lv:
                    if q == 0:
                        side.pop(p, None)
                    else:
                        side[p] = q
            sorted(bids.items(), reverse=True)[:10]
            sorted(asks.items())[:10]
    naive_s = time.perf_counter() - t0
    n = rounds * len(deltas)
    print(f"order book: {n / lyra_s:,.0f} deltas/s incl. top-10 snapshot "
          f"({lyra_s / n * 1e6:.1f} us each); naive full re-sort {n / naive_s:,.0f}/s; "
          f"ratio {naive_s / lyra_s:.2f}x")


async def _bare(fake: FakeExchange, total: int) -> float:
    ex = fake.point_ccxt(ccxtpro.binance(fake.ccxt_config()))
    seen = 0
    t0 = time.perf_counter()
    while seen < total:
        seen += len(await ex.watch_trades("BTC/USDT"))
    dt = time.perf_counter() - t0
    await ex.close()
    return dt


async def _feed(fake: FakeExchange, total: int) -> tuple[float, LiveFeed]:
    ex = fake.point_ccxt(ccxtpro.binance(fake.ccxt_config()))
    start = int(fake.trades["BTCUSDT"]["ts"].iloc[0])
    feed = LiveFeed([FeedSource("binance", "BTC/USDT", ex, since=start)], reconnect_delay=0.001,
                    reconnect_max=0.02, idle_backfill=0.2)
    n = 0
    t0 = time.perf_counter()
    async with feed:
        while n < total:
            if isinstance(await feed.get(timeout=5), Trade):
                n += 1
    return time.perf_counter() - t0, feed


def bench_live() -> None:
    rate = 20_000.0  # the tape is published faster than any client reads it
    with binance_fake(FIX, rate=rate) as fake:
        total = len(fake.trades["BTCUSDT"])
        bare = asyncio.run(_bare(fake, total))
    with binance_fake(FIX, rate=rate) as fake:
        lyra, _ = asyncio.run(_feed(fake, total))
    print(f"live trades: LiveFeed {total / lyra:,.0f}/s vs bare ccxt.pro watch_trades "
          f"{total / bare:,.0f}/s ({total} trades; LiveFeed/bare time {lyra / bare:.2f}x)")
    with binance_fake(FIX, rate=2_000.0) as fake:
        fake.faults.drop_ws_every = 15
        dt, feed = asyncio.run(_feed(fake, total))
    st = feed.stats["binance"]
    print(f"with a disconnect every 15 msgs: {total / dt:,.0f} trades/s, {st.reconnects} "
          f"reconnects ({st.reconnects / dt:,.0f}/s), {st.backfilled} trades backfilled by REST, "
          f"{dt:.2f}s total; all {st.trades} trades, {st.duplicates} duplicates dropped")


if __name__ == "__main__":
    bench_book()
    bench_live()
