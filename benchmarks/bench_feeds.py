"""Speed of the offline market-data path on 10,000,000 synthetic 1m bars (a geometric random
walk written to a temp store).

    .venv/bin/python benchmarks/bench_feeds.py [--bars N] [--iter-events N]

Targets: store read <= 1 s, validation <= 1 s, replay batches >= 1,000,000 events/s,
replay one event at a time >= 300,000 events/s. The reference in the same run is a plain
pyarrow read of the same Parquet file into numpy (what the store cannot beat).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from lyra.feeds import MarketStore, ReplayFeed, ValidationConfig, validate_bars


def synthetic_bars(n: int, seed: int = 7) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    close = 30_000.0 * np.exp(np.cumsum(rng.normal(0.0, 5e-4, n)))
    open_ = np.empty(n)
    open_[0], open_[1:] = 30_000.0, close[:-1]
    wick = np.abs(rng.normal(0.0, 2e-4, n))
    start = 1_500_000_000_000 - 1_500_000_000_000 % 60_000
    return pd.DataFrame({
        "ts": start + np.arange(n, dtype=np.int64) * 60_000,
        "open": open_, "high": np.maximum(open_, close) * (1 + wick),
        "low": np.minimum(open_, close) * (1 - wick), "close": close,
        "volume": rng.gamma(2.0, 5.0, n),
    })


def best(fn, repeat: int = 3) -> tuple[float, object]:  # type: ignore[no-untyped-def]
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=10_000_000)
    ap.add_argument("--iter-events", type=int, default=2_000_000,
                    help="events for the one-at-a-time figure (it is the slow one)")
    args = ap.parse_args()
    n = args.bars
    t_all = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        store = MarketStore(Path(tmp))
        df = synthetic_bars(n)
        t = time.perf_counter()
        store.write_bars("bench", "BTC/USDT", "1m", df)
        print(f"write        {n:>12,} bars   {time.perf_counter() - t:6.2f} s")
        del df
        part = next(store.dataset_dir("bench", "BTC/USDT", "1m").glob("part-*.parquet"))

        t_ref, _ = best(lambda: [c.to_numpy() for c in pq.read_table(part).columns])
        t_arr, arr = best(lambda: store.read_bars_arrays("bench", "BTC/USDT", "1m"))
        t_pd, bars = best(lambda: store.read_bars("bench", "BTC/USDT", "1m"))
        print(f"read numpy   {n:>12,} bars   {t_arr:6.3f} s   (target <= 1 s; raw pyarrow "
              f"reference {t_ref:.3f} s, ratio {t_arr / t_ref:.2f})")
        print(f"read pandas  {n:>12,} bars   {t_pd:6.3f} s   (tz-aware UTC DatetimeIndex)")

        cfg = ValidationConfig()
        t_val, res = best(lambda b=bars: validate_bars(b, "1m", cfg), 2)
        print(f"validate     {n:>12,} bars   {t_val:6.3f} s   (target <= 1 s; "
              f"{res.bad_rows} bad rows, {len(res.gaps)} gaps)")  # type: ignore[attr-defined]
        del bars, res

        feed = ReplayFeed.from_store(store, [("bench", "BTC/USDT", "1m")])
        feed._merge()  # built once per feed; timed separately below

        def run_batches() -> int:
            k = 0
            for chunk in feed.batches(65_536):
                k += len(chunk)
            return k

        t_b, k = best(run_batches, 2)
        print(f"replay batch {k:>12,} events {t_b:6.3f} s = {k / t_b:12,.0f} events/s "
              f"(target >= 1,000,000)")

        m = min(args.iter_events, n)
        small = ReplayFeed.from_frames([("bench:BTC-USDT", "1m", arr.to_frame().iloc[:m])])  # type: ignore[attr-defined]

        def run_iter() -> int:
            k = 0
            for _ev in small:
                k += 1
            return k

        t_i, k = best(run_iter, 1)
        print(f"replay iter  {k:>12,} events {t_i:6.3f} s = {k / t_i:12,.0f} events/s "
              f"(target >= 300,000)")

        two = ReplayFeed.from_frames([
            ("bench:A", "1m", arr.to_frame().iloc[: m // 2]),  # type: ignore[attr-defined]
            ("bench:B", "1m", arr.to_frame().iloc[: m // 2]),  # type: ignore[attr-defined]
        ])
        t_m, _ = best(two._merge, 1)
        t_i2, k2 = best(lambda: sum(1 for _ in two), 1)
        print(f"replay iter  {k2:>12,} events {t_i2:6.3f} s = {k2 / t_i2:12,.0f} events/s "
              f"(2 instruments merged; merge built in {t_m:.3f} s)")
    print(f"total        {time.perf_counter() - t_all:6.1f} s")


if __name__ == "__main__":
    main()
