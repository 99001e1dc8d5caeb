"""Orders through the session's order gateway (issue 21): client id, risk decision, the
ledger transaction (risk.decision + order.created + order.submit), the paper broker's matching
at the next bar, the fill recorded -- against the paper matching engine alone, in the same run.

Prints orders/s and the paper order round trip p50/p99 (intent -> gateway -> risk -> match at
the next bar -> fill recorded). Targets: >= 20,000 orders/s, p99 <= 1 ms.

    .venv/bin/python benchmarks/bench_gateway.py [--orders 20000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_matching import make_orders, paper
from bench_matching import run as run_matching
from bench_session import config, synthetic_bars

from lyra.core.enums import Side
from lyra.core.orders import OrderIntent
from lyra.feeds import MarketStore
from lyra.session.factory import open_session
from lyra.store import create_engine_for, upgrade


def gateway_run(n: int, tmp: Path) -> tuple[float, np.ndarray, int]:
    """(orders/s, round-trip latencies in µs, fills) for ``n`` market orders through the gateway."""
    store = MarketStore(tmp / "market")
    store.write_bars("bench", "BTC/USDT", "1m", synthetic_bars(n + 2))
    engine = create_engine_for(f"sqlite:///{tmp / 'bench.db'}")
    upgrade(engine)
    s = open_session(config("gw", 50, 200), engine=engine, market_dir=tmp / "market")
    gateway = s.gateway
    feed = iter(s.feed)
    first = next(feed)
    s.clock.advance_to(first.ts + 60_000)
    s.marks[first.instrument_id] = first.close
    s.broker.on_market(first)
    lat = np.empty(n)
    side = Side.BUY
    qty = Decimal("0.01")
    t0 = time.perf_counter()
    for i in range(n):
        bar = next(feed)
        intent = OrderIntent(bar.instrument_id, side, qty)
        t = time.perf_counter_ns()
        gateway.submit([intent], s.clock.now_ms())
        s.clock.advance_to(bar.ts + 60_000)
        s.broker.on_market(bar)
        s._drain(s.clock.now_ms())
        lat[i] = time.perf_counter_ns() - t
        s.marks[bar.instrument_id] = bar.close
        side = side.opposite
    s.recorder.commit()
    total = time.perf_counter() - t0
    engine.dispose()
    return n / total, lat / 1000.0, s.result.fills


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=20_000)
    n = ap.parse_args().orders
    m_lat, m_total = run_matching(paper(), make_orders(n, "market"))
    m_p50, m_p99 = np.percentile(np.array(m_lat), [50, 99])
    with tempfile.TemporaryDirectory() as d:
        rate, lat, fills = gateway_run(n, Path(d))
    p50, p99 = np.percentile(lat, [50, 99])
    print(f"order gateway benchmark, {n:,} market orders")
    print(f"  gateway + risk + paper matching + log: {rate:10,.0f} orders/s   round trip p50 {p50:7.1f} µs"
          f"   p99 {p99:7.1f} µs   ({fills:,} fills)")
    print(f"  paper matching engine alone:          {n / m_total:10,.0f} orders/s   round trip p50 "
          f"{m_p50:7.1f} µs   p99 {m_p99:7.1f} µs")
    print(f"  targets: >= 20,000 orders/s ({'OK' if rate >= 20_000 else 'MISSED'}), "
          f"p99 <= 1,000 µs ({'OK' if p99 <= 1000 else 'MISSED'})")
    assert fills == n, f"{fills} fills for {n} orders"


if __name__ == "__main__":
    main()
