"""Session runtime figures (issue: execution and sessions).

1. Event-driven backtest of the SMA crossover through the full stack (strategy, risk, paper
   broker, portfolio, event log) on 1,000,000 1m bars, against a plain Python loop doing only
   the SMA arithmetic, in the same run. Target >= 500,000 bars/s with few orders.
2. Orders/s through risk + matching + log (a strategy that trades very often).
   Target >= 20,000 orders/s.
3. Paper order round trip (intent -> risk -> matching -> fill recorded) p50/p99.
   Target p99 <= 1 ms.

    .venv/bin/python benchmarks/bench_session.py [--bars 1000000]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd

from lyra.core.enums import Side
from lyra.core.orders import OrderIntent
from lyra.feeds import MarketStore
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.store import create_engine_for, upgrade

T0 = 1_514_764_800_000  # 2018-01-01


def synthetic_bars(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 10_000.0 * np.exp(np.cumsum(rng.normal(0, 0.0008, n)))
    close = np.round(close, 2)
    open_ = np.concatenate([[close[0]], close[:-1]])
    high = np.maximum(open_, close) + 0.5
    low = np.minimum(open_, close) - 0.5
    return pd.DataFrame({"ts": T0 + 60_000 * np.arange(n, dtype=np.int64), "open": open_, "high": high,
                         "low": low, "close": close, "volume": np.full(n, 50.0)})


def plain_sma_loop(close: list[float], fast: int, slow: int) -> int:
    """The bare arithmetic: running sums of two SMAs and a crossing test."""
    sf = ss = 0.0
    prev = 0
    signals = 0
    for i, c in enumerate(close):
        sf += c
        ss += c
        if i >= fast:
            sf -= close[i - fast]
        if i >= slow:
            ss -= close[i - slow]
        if i >= slow - 1:
            state = 1 if sf / fast > ss / slow else -1
            if state != prev:
                signals += 1
                prev = state
    return signals


def config(sid: str, fast: int, slow: int, **kw: object):
    return load_session_config({
        "session_id": sid, "mode": "backtest", "strategy": "sma_cross", "params": {"fast": fast, "slow": slow},
        "venue": "bench", "symbols": ["BTC/USDT"], "timeframe": "1m", "quantity": "0.01",
        "balances": {"USDT": "100000000"}, "equity_every": 1_000_000,
        "instruments": {"BTC/USDT": {"price_increment": "0.01", "size_increment": "0.00001",
                                     "maker_fee": "0.001", "taker_fee": "0.001"}},
        **kw,
    })


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=1_000_000)
    ap.add_argument("--order-bars", type=int, default=100_000)
    ap.add_argument("--round-trips", type=int, default=5_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        store = MarketStore(tmp / "market")
        bars = synthetic_bars(args.bars)
        store.write_bars("bench", "BTC/USDT", "1m", bars)
        engine = create_engine_for(f"sqlite:///{tmp / 'bench.db'}")
        upgrade(engine)

        # 1. bars/s, few orders
        close = bars["close"].tolist()
        t = time.perf_counter()
        n_sig = plain_sma_loop(close, 50, 200)
        t_plain = time.perf_counter() - t
        s = open_session(config("bars", 50, 200), engine=engine, market_dir=tmp / "market")
        t = time.perf_counter()
        r = s.run()
        t_full = time.perf_counter() - t
        print(f"reference: plain SMA loop: {args.bars / t_plain:,.0f} bars/s ({n_sig:,} crossings)")
        print(f"full stack, SMA 50/200 on {args.bars:,} 1m bars: {r.events / t_full:,.0f} bars/s "
              f"({r.orders:,} orders, {r.fills:,} fills, {t_full:.2f} s) "
              f"(target >= 500,000) {'OK' if r.events / t_full >= 500_000 else 'MISSED'}; "
              f"{t_full / t_plain:.1f}x the plain loop")

        # 2. orders/s: SMA 2/3 trades on a large share of bars
        store.write_bars("bench", "ETH/USDT", "1m", synthetic_bars(args.order_bars, seed=11))
        cfg = config("orders", 2, 3, symbols=["ETH/USDT"], instruments={"ETH/USDT": {
            "price_increment": "0.01", "size_increment": "0.00001", "maker_fee": "0.001", "taker_fee": "0.001"}})
        s = open_session(cfg, engine=engine, market_dir=tmp / "market")
        t = time.perf_counter()
        r = s.run()
        dt = time.perf_counter() - t
        print(f"orders through risk + matching + log: {r.orders / dt:,.0f} orders/s "
              f"({r.orders:,} orders, {r.fills:,} fills over {r.events:,} bars in {dt:.2f} s; "
              f"bar overhead included) (target >= 20,000) {'OK' if r.orders / dt >= 20_000 else 'MISSED'}")

        # 3. round trip latency: intent -> risk -> matching -> fill recorded
        s = open_session(config("rtt", 50, 200), engine=engine, market_dir=tmp / "market")
        feed = iter(s.feed)
        first = next(feed)
        s.clock.advance_to(first.ts + 60_000)
        s.marks[first.instrument_id] = first.close
        s.broker.on_market(first)
        lat = []
        side = Side.BUY
        for _ in range(args.round_trips):
            bar = next(feed)
            intent = OrderIntent(bar.instrument_id, side, Decimal("0.01"))
            t = time.perf_counter_ns()
            s._submit([intent], s.clock.now_ms())
            s.clock.advance_to(bar.ts + 60_000)
            s.broker.on_market(bar)
            s._drain(s.clock.now_ms())
            lat.append(time.perf_counter_ns() - t)
            s.marks[bar.instrument_id] = bar.close
            side = side.opposite
        s.recorder.commit()
        a = np.array(lat) / 1000.0
        p50, p99 = np.percentile(a, [50, 99])
        print(f"paper order round trip (intent -> risk -> match at next bar -> fill recorded): "
              f"p50 {p50:.0f} µs, p99 {p99:.0f} µs over {len(a):,} orders (target p99 <= 1,000 µs) "
              f"{'OK' if p99 <= 1000 else 'MISSED'}")
        assert s.result.fills == args.round_trips


if __name__ == "__main__":
    main()
