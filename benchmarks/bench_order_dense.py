"""Order-dense full-stack figure (issue 21): SMA 10/50 on 500,000 1m bars, long only, all-in
(every buy asks for more than the cash buys and risk resizes it to the balance), 0.1% fee,
against the plain SMA loop in the same run. Target: the session's bars/s >= 20% of the plain
loop's. Bars are a seeded random walk (the shipped 1m sample has only 500 bars).

    .venv/bin/python benchmarks/bench_order_dense.py [--bars 500000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_session import config, plain_sma_loop, synthetic_bars

from lyra.feeds import MarketStore
from lyra.session.factory import open_session
from lyra.store import create_engine_for, upgrade


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=500_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        bars = synthetic_bars(args.bars, seed=3)
        MarketStore(tmp / "market").write_bars("bench", "BTC/USDT", "1m", bars)
        engine = create_engine_for(f"sqlite:///{tmp / 'bench.db'}")
        upgrade(engine)
        close = bars["close"].tolist()
        t = time.perf_counter()
        crossings = plain_sma_loop(close, 10, 50)
        t_plain = time.perf_counter() - t
        cfg = config("dense", 10, 50, quantity="1000", balances={"USDT": "10000"},
                     risk={"currency": "USDT", "resize": ["balance"]})
        s = open_session(cfg, engine=engine, market_dir=tmp / "market")
        t = time.perf_counter()
        r = s.run()
        t_full = time.perf_counter() - t
        engine.dispose()
    plain_rate, full_rate = args.bars / t_plain, r.events / t_full
    share = full_rate / plain_rate
    print(f"reference: plain SMA 10/50 loop: {plain_rate:,.0f} bars/s ({crossings:,} crossings)")
    print(f"full stack, SMA 10/50 all-in on {args.bars:,} 1m bars: {full_rate:,.0f} bars/s "
          f"({r.orders:,} orders, {r.fills:,} fills, {r.denied:,} denied, {t_full:.2f} s)")
    print(f"order-dense share of the plain loop: {share:.1%} (target >= 20%) "
          f"{'OK' if share >= 0.2 else 'MISSED'}")


if __name__ == "__main__":
    main()
