"""CcxtBroker: order submit overhead over a raw ccxt call, against the local fake Binance.

Both sides send the same resting limit orders (a bid far below the recorded book, so nothing
fills) to the same fake venue over real HTTP with the real ``ccxt.binance``:

- raw: ``exchange.create_order(...)`` with a client order id, nothing else;
- broker: ``CcxtBroker.submit(order, decision_id)`` + ``poll_reports()`` + ``Order.apply`` of
  the ACCEPT — strict parsing of the answer, the shadow order, the report.

Runs alternate (raw, broker, raw, broker, ...) so machine noise hits both alike. The figure is
the per-order difference of the medians, and the ratio.

Run: .venv/bin/python benchmarks/bench_ccxt_broker.py [--orders 400]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from decimal import Decimal
from pathlib import Path

import ccxt

from lyra.core.enums import OrderEventType, OrderType, Side
from lyra.core.instrument import Instrument
from lyra.core.orders import Order, OrderEvent, OrderIntent
from lyra.execution.ccxt_broker import CcxtBroker
from lyra.testing.fake_account import FakeAccount, load_book_csv
from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded

FIX = Path(__file__).parents[1] / "tests" / "fixtures"
XRP = Instrument("XRP/USDT", "binance", "XRP", "USDT", Decimal("0.0001"), Decimal(1), Decimal(1), Decimal(5))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=400)
    args = ap.parse_args()
    info = exchange_info_from_recorded(json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
                                       json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
    bids, asks = load_book_csv(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz")
    acct = FakeAccount({"USDT": "100000000", "XRP": "0"}, books={"XRPUSDT": (bids, asks)})
    with FakeExchange(info, account=acct) as fake:
        def exchange() -> ccxt.binance:
            ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(apiKey="k", secret="s", timeout=5000)))
            ex.load_markets()
            return ex

        raw_ex = exchange()
        broker = CcxtBroker(exchange(), [XRP])
        raw_t: list[float] = []
        brk_t: list[float] = []
        for i in range(args.orders + 20):
            t0 = time.perf_counter()
            raw_ex.create_order("XRP/USDT", "limit", "buy", 10, 1.0, {"newClientOrderId": f"raw-{i:08d}"})
            t1 = time.perf_counter()
            o = Order(f"brk-{i:08d}", OrderIntent(XRP.id, Side.BUY, Decimal(10), OrderType.LIMIT, Decimal(1)), 1)
            o.apply(OrderEvent(OrderEventType.SUBMIT, 1))
            t2 = time.perf_counter()
            broker.submit(o, f"rd-{i}")
            for r in broker.poll_reports():
                o.apply(r.to_event())
            t3 = time.perf_counter()
            assert o.status.value == "accepted", o.history
            if i >= 20:  # warm-up: connection pool, ccxt caches
                raw_t.append(t1 - t0)
                brk_t.append(t3 - t2)
        assert acct.duplicate_client_order_ids() == []
    raw_med, brk_med = statistics.median(raw_t), statistics.median(brk_t)
    p99 = sorted(brk_t)[int(len(brk_t) * 0.99) - 1]
    print(f"orders: {len(raw_t)} each, alternating, fake Binance over HTTP on 127.0.0.1")
    print(f"raw ccxt create_order       p50 {raw_med * 1e3:7.2f} ms")
    print(f"CcxtBroker submit+report    p50 {brk_med * 1e3:7.2f} ms   p99 {p99 * 1e3:7.2f} ms")
    print(f"broker overhead per order   {(brk_med - raw_med) * 1e6:7.0f} us   ratio {brk_med / raw_med:.3f}x")


if __name__ == "__main__":
    main()
