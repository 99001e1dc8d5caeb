"""Paper matching engine: order round trip latency and orders/s through matching.

Round trip = ``broker.submit`` -> venue checks, funds lock, matching against the book -> fill
report -> ``poll_reports`` -> ``Order.apply`` of each report (what the session does), with zero
configured latency. The reference is the same loop against a no-op broker that only hands back
a canned ACCEPT report: the difference is the cost of the paper venue itself.

Run: .venv/bin/python benchmarks/bench_matching.py [--orders 50000]
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
from decimal import Decimal

from lyra.core import (
    AggressorSide,
    Order,
    OrderEvent,
    OrderEventType,
    OrderIntent,
    OrderType,
    Quote,
    ReplayClock,
    Side,
    TimeInForce,
    Trade,
    client_order_id,
)
from lyra.execution import ExecutionReport, PaperBroker

IID = "binance:BTC/USDT"
SUBMIT = OrderEventType.SUBMIT


class NoopBroker:
    """Takes the order, answers a canned ACCEPT: the floor of any broker round trip."""

    def __init__(self) -> None:
        self._out: list[ExecutionReport] = []

    def submit(self, order: Order, decision_id: str) -> None:
        self._out.append(ExecutionReport(order.client_order_id, OrderEventType.ACCEPT, 0))

    def poll_reports(self) -> list[ExecutionReport]:
        out, self._out = self._out, []
        return out


def make_orders(n: int, kind: str) -> list[Order]:
    orders = []
    for i in range(n):
        side = Side.BUY if i % 2 == 0 else Side.SELL
        if kind == "market":
            intent = OrderIntent(IID, side, Decimal("0.001"))
        else:  # resting limit orders a few ticks away, cancelled later
            k = Decimal(i % 200) / 100  # spread over 100 price levels per side
            px = Decimal("39000.00") - k if side is Side.BUY else Decimal("40000.00") + k
            intent = OrderIntent(IID, side, Decimal("0.001"), OrderType.LIMIT, px, None, TimeInForce.GTC)
        o = Order(client_order_id("bench", i), intent, 0)
        o.apply(OrderEvent(SUBMIT, 0))
        orders.append(o)
    return orders


def run(broker: object, orders: list[Order]) -> tuple[list[float], float]:
    submit = broker.submit  # type: ignore[attr-defined]
    poll = broker.poll_reports  # type: ignore[attr-defined]
    lat: list[float] = []
    clock = time.perf_counter_ns
    gc.disable()
    t_all = time.perf_counter()
    for o in orders:
        t0 = clock()
        submit(o, "risk")
        for r in poll():
            o.apply(r.to_event())
        lat.append((clock() - t0) / 1e3)
    total = time.perf_counter() - t_all
    gc.enable()
    return lat, total


def pct(xs: list[float], p: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, int(p * len(s)))]


def paper() -> PaperBroker:
    clock = ReplayClock(1)
    b = PaperBroker.from_venue("binance", clock, {"USDT": 10**12, "BTC": 10**6})
    b.on_market(Quote(IID, 1, 39_500.00, 1e9, 39_500.01, 1e9))
    return b


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--orders", type=int, default=50_000)
    n = ap.parse_args().orders
    print(f"paper matching benchmark, {n} orders per case (zero configured latency)")

    for kind in ("market", "limit"):
        noop_lat, noop_total = run(NoopBroker(), make_orders(n, kind))
        b = paper()
        lat, total = run(b, make_orders(n, kind))
        filled = sum(1 for f in b.fills_since(0))
        print(f"\n[{kind} orders] fills: {filled}, open after run: {len(b.open_orders())}")
        print(f"  paper round trip  p50 {statistics.median(lat):7.1f} us   p99 {pct(lat, 0.99):7.1f} us   "
              f"{n / total:10,.0f} orders/s")
        print(f"  no-op reference   p50 {statistics.median(noop_lat):7.1f} us   p99 {pct(noop_lat, 0.99):7.1f} us   "
              f"{n / noop_total:10,.0f} orders/s")
        print(f"  paper / no-op time ratio: {total / noop_total:.1f}x")

    # Trades against a deep book of resting orders: the cost of the queue bookkeeping.
    b = paper()
    orders = make_orders(2_000, "limit")
    run(b, orders)
    trades = [Trade(IID, 2 + i, 39_000.00 - (i % 100) / 100, 0.0005, AggressorSide.SELL)
              for i in range(20_000)]
    t0 = time.perf_counter()
    for tr in trades:
        b.on_market(tr)
    dt = time.perf_counter() - t0
    print(f"\n[trades vs {len(orders)} resting orders] {len(trades) / dt:,.0f} trades/s, "
          f"fills {len(b.fills_since(0))}")
    print("\ntargets: round-trip p99 <= 1000 us; >= 20,000 orders/s through matching")


if __name__ == "__main__":
    main()
