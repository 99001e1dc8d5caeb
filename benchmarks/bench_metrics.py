"""Cost of Prometheus metrics to a session (issue 19), measured against the same session
without them, in the same run.

1. bars/s of the full-stack session (SMA 50/200 on 1m bars, few orders) with and without
   metrics attached and served (a scraper reads /metrics every second while it runs).
2. orders/s (SMA 2/3: an order on a large share of bars), with and without.
   Target for both: overhead <= 3 %. Runs alternate (without, with, without, ...) and the
   best of each is compared, so a neighbour's CPU burst does not land on one side only.
3. Scrape time of /metrics (HTTP, and the exposition alone) for a session with 20 instruments.

    .venv/bin/python benchmarks/bench_metrics.py [--bars 500000] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from prometheus_client import generate_latest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_session import config, synthetic_bars

from lyra.feeds import MarketStore
from lyra.metrics import MetricsEndpoint, SessionMetrics, session_metrics
from lyra.session.factory import open_session
from lyra.store import create_engine_for, upgrade

TARGET_OVERHEAD = 0.03


class Hooks:
    """Time spent inside the metrics' own code during the with-metrics runs: the observer on
    the commit path (timed directly) and the server's side of the scrapes (scrapes x the time
    of one exposition). A direct measure that a noisy neighbour inflates far less than a ratio
    of two runs."""

    def __init__(self) -> None:
        self.observer_s = 0.0
        self.scrapes = 0
        self.expo_s = 0.0


#: Prometheus stand-in: another process that scrapes a URL every second until stdin closes.
SCRAPER = """
import sys, threading, time, urllib.request
url = sys.argv[1]
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
n = 0
while not done.wait(1.0):
    with urllib.request.urlopen(url, timeout=30) as r:
        r.read()
    n += 1
print(n)
"""


def run_once(engine, market: Path, cfg, with_metrics: bool, hooks: Hooks | None = None) -> tuple[float, object]:
    s = open_session(cfg, engine=engine, market_dir=market)
    if not with_metrics:
        t = time.perf_counter()
        r = s.run()
        return time.perf_counter() - t, r
    m = SessionMetrics(s)
    if hooks is not None:
        inner = m.on_records

        def timed(records, **kw):  # type: ignore[no-untyped-def]
            t0 = time.perf_counter()
            inner(records, **kw)
            hooks.observer_s += time.perf_counter() - t0

        m.on_records = timed  # type: ignore[method-assign]
    m.attach()
    ep = MetricsEndpoint(m.registry, kind="session", name=s.sid, engine=engine).start()
    scraper = subprocess.Popen([sys.executable, "-c", SCRAPER, ep.url], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    try:
        t = time.perf_counter()
        r = s.run()
        dt = time.perf_counter() - t
    finally:
        out, _ = scraper.communicate("", timeout=60)
        if hooks is not None:
            hooks.scrapes += int(out.strip() or 0)
            t0 = time.perf_counter()
            generate_latest(m.registry)
            hooks.expo_s = max(hooks.expo_s, time.perf_counter() - t0)
        m.detach()
        ep.stop()
    return dt, r


def compare(engine, market: Path, make_cfg, repeats: int, unit: str) -> tuple[float, float, object, float]:
    """Best times without and with metrics, the result, and the share of the with-metrics runs'
    time spent inside the metrics' code (observer + scrapes)."""
    best = {False: float("inf"), True: float("inf")}
    result = None
    hooks = Hooks()
    total_with = 0.0
    for i in range(repeats):
        for flag in (False, True):
            dt, result = run_once(engine, market, make_cfg(f"{unit}-{int(flag)}-{i}"), flag, hooks)
            best[flag] = min(best[flag], dt)
            if flag:
                total_with += dt
    return best[False], best[True], result, (hooks.observer_s + hooks.scrapes * hooks.expo_s) / total_with


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--bars", type=int, default=500_000)
    ap.add_argument("--order-bars", type=int, default=50_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scrapes", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        market = tmp / "market"
        store = MarketStore(market)
        store.write_bars("bench", "BTC/USDT", "1m", synthetic_bars(args.bars))
        store.write_bars("bench", "ETH/USDT", "1m", synthetic_bars(args.order_bars, seed=11))
        engine = create_engine_for(f"sqlite:///{tmp / 'bench.db'}")
        upgrade(engine)

        # 1. bars/s
        off, on, r, inside = compare(engine, market, lambda sid: config(sid, 50, 200), args.repeats, "bars")
        n = r.events
        over = on / off - 1
        print(f"full-stack session, SMA 50/200 on {n:,} 1m bars ({r.orders:,} orders): "
              f"{n / off:,.0f} bars/s without metrics, {n / on:,.0f} bars/s with metrics served and "
              f"scraped every 1 s: overhead {over:+.1%} (target <= {TARGET_OVERHEAD:.0%}) "
              f"{'OK' if over <= TARGET_OVERHEAD else 'MISSED'}; time inside the metrics' code "
              f"(commit-path observer + server side of the scrapes): {inside:.2%} of the run")

        # 2. orders/s
        eth = {"ETH/USDT": {"price_increment": "0.01", "size_increment": "0.00001", "maker_fee": "0.001",
                            "taker_fee": "0.001"}}
        off, on, r, inside = compare(engine, market,
                                     lambda sid: config(sid, 2, 3, symbols=["ETH/USDT"], instruments=eth),
                                     args.repeats, "orders")
        over = on / off - 1
        print(f"orders through risk + matching + log, SMA 2/3 on {r.events:,} bars ({r.orders:,} orders): "
              f"{r.orders / off:,.0f} orders/s without metrics, {r.orders / on:,.0f} orders/s with: "
              f"overhead {over:+.1%} (target <= {TARGET_OVERHEAD:.0%}) "
              f"{'OK' if over <= TARGET_OVERHEAD else 'MISSED'}; time inside the metrics' code: {inside:.2%}")

        # 3. scrape time, 20 instruments (positions held in most of them)
        syms = [f"C{i:02d}/USDT" for i in range(20)]
        inst = {}
        for i, sym in enumerate(syms):
            store.write_bars("bench", sym, "1m", synthetic_bars(3_000, seed=100 + i))
            inst[sym] = {"price_increment": "0.01", "size_increment": "0.00001", "maker_fee": "0.001",
                         "taker_fee": "0.001"}
        cfg = config("scrape20", 5, 20, symbols=syms, instruments=inst)
        s = open_session(cfg, engine=engine, market_dir=market)
        with session_metrics(s, port=0) as att:
            r = s.run()
            assert att.endpoint is not None
            url = att.endpoint.url
            http, expo = [], []
            size = 0
            for _ in range(args.scrapes):
                t = time.perf_counter()
                with urllib.request.urlopen(url, timeout=30) as resp:
                    size = len(resp.read())
                http.append(time.perf_counter() - t)
                t = time.perf_counter()
                generate_latest(att.metrics.registry)
                expo.append(time.perf_counter() - t)
        q = statistics.quantiles(http, n=100)
        print(f"/metrics of a session with 20 instruments ({r.orders:,} orders, {size:,} bytes): "
              f"HTTP scrape p50 {statistics.median(http) * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms; "
              f"exposition alone p50 {statistics.median(expo) * 1000:.2f} ms over {args.scrapes} scrapes")
        engine.dispose()


if __name__ == "__main__":
    main()
