"""Slippage against the decision price, the venue's errors and rate limits, and the risk
limits a session exports: a live session on the fake Binance account (real ccxt over HTTP),
and a paper session whose slippage is checked fill by fill against the bars in the market
store."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import ccxt
import pytest
import sqlalchemy as sa
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lyra.core.market import Bar
from lyra.execution.ccxt_broker import RetryPolicy
from lyra.feeds import MarketStore
from lyra.metrics import session_metrics
from lyra.session.config import load_session_config
from lyra.session.factory import open_live_session, open_session
from lyra.store.tables import events, fills
from lyra.testing.fake_account import FakeAccount, load_book_csv
from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded
from lyra.testing.sessions import demo_config

FIX = Path(__file__).parents[2] / "fixtures"
SETTINGS = SimpleNamespace(metrics=True, metrics_port=0, metrics_linger_s=0.0)
IID = "binance:XRP/USDT"


def samples(registry: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(registry).decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def get(smp: dict, name: str, **labels: str) -> float:
    hits = [v for (n, lb), v in smp.items() if n == name and labels.items() <= dict(lb).items()]
    assert len(hits) == 1, f"{name} {labels}: {len(hits)} samples"
    return hits[0]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_live_session_slippage_and_rate_limits(engine):
    info = exchange_info_from_recorded(json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
                                       json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
    bids, asks = load_book_csv(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz")
    acct = FakeAccount({"USDT": "50000", "XRP": "1000"}, books={"XRPUSDT": (bids, asks)})
    closes = [1.95, 1.94, 1.93, 1.96, 1.99, 1.92, 1.90, 1.89]
    t0 = int(time.time() * 1000) // 60_000 * 60_000 - len(closes) * 60_000
    bars = [Bar(IID, "1m", t0 + i * 60_000, c, c, c, c, 1000.0) for i, c in enumerate(closes)]
    cfg = load_session_config({
        "session_id": "lvm", "mode": "live", "live_confirm": True, "venue": "binance", "symbols": ["XRP/USDT"],
        "timeframe": "1m", "quantity": "10", "strategy": "sma_cross", "params": {"fast": 2, "slow": 3},
        "instruments": {"XRP/USDT": {"price_increment": "0.0001", "size_increment": "1", "min_size": "1",
                                     "min_notional": "5"}},
        "risk": {"breakers": {"max_drawdown_pct": "20"}}})
    with FakeExchange(info, account=acct) as fake:
        ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(apiKey="k", secret="s", timeout=2000)))
        ex.load_markets()
        s = open_live_session(cfg, engine=engine, exchange=ex, feed=bars)
        s.broker.retry = RetryPolicy(attempts=4, base_delay_s=0.01, max_delay_s=0.05, settle_s=0.0)
        with session_metrics(s, serve=False, settings=SETTINGS) as att:
            fake.faults.fail_next(2, 429)  # the venue's next two answers: too many requests
            result = s.run()
            smp = samples(att.metrics.registry)
        s.broker.close()
        refused = fake.faults.fail_count
    assert result.orders == 2 and refused == 0  # both 429s were met, retried, and trading went on
    # Independent reference: SMA 2/3 crosses up at the 4th close (1.96) and down at the 6th
    # (1.92); the fake venue fills 10 from its recorded book at 1.9532 (ask) and 1.9531 (bid).
    # Slippage is signed as a cost: a buy above, or a sell below, its decision price.
    # (A histogram with buckets below 0 has no _sum/_count in the exposition: +Inf counts.)
    ref = [(1.9532 - 1.96) / 1.96, -(1.9531 - 1.92) / 1.92]  # -0.35 % and -1.72 %: both better
    assert get(smp, "lyra_fill_slippage_ratio_bucket", session_id="lvm", le="+Inf") == 2
    assert get(smp, "lyra_fill_slippage_ratio_bucket", le="-0.01") == sum(r <= -0.01 for r in ref) == 1
    assert get(smp, "lyra_fill_slippage_ratio_bucket", le="-0.002") == sum(r <= -0.002 for r in ref) == 2
    assert get(smp, "lyra_slippage_cost") == pytest.approx(10 * (1.9532 - 1.96) - 10 * (1.9531 - 1.92), rel=1e-9)
    # The two 429s, counted by class, the rate limits apart.
    errors = {dict(lb)["error"]: v for (n, lb), v in smp.items() if n == "lyra_venue_errors_total"}
    assert sum(errors.values()) == 2 and len(errors) == 1, errors
    assert next(iter(errors)) in ("RateLimitExceeded", "DDoSProtection")
    assert get(smp, "lyra_venue_rate_limits_total", session_id="lvm", venue="binance") == 2
    # Risk limits as configured (no VaR limit: the family is there, without a sample), the
    # breaker's drawdown from its own peak.
    assert not any(n == "lyra_risk_limit_var" for n, _ in smp)
    assert get(smp, "lyra_risk_limit_drawdown_ratio", session_id="lvm") == 0.2
    assert 0 <= get(smp, "lyra_breaker_drawdown_ratio", session_id="lvm") < 0.2
    assert "fetch" not in vars(ex), "detached: the exchange has its own fetch back"


def test_paper_slippage_matches_the_bars(session_home):
    """Every fill against the close of the bar its order was decided on (read from the store)."""
    engine = session_home["engine"]
    home = session_home["home"]
    cfg = demo_config(session_id="slip", end="2017-10-01", quantity="0.05", slippage_bps="7")
    s = open_session(cfg, engine=engine, market_dir=home / "market")
    with session_metrics(s, serve=False, settings=SETTINGS) as att:
        s.run()
        smp = samples(att.metrics.registry)
    venue, symbol = cfg.venue, cfg.symbols[0]
    bars = MarketStore(home / "market").read_bars_arrays(venue, symbol, cfg.timeframe)
    tf = 3_600_000  # 1h: a bar's decisions are taken at its close, ts + tf
    assert cfg.timeframe == "1h"
    close_at = {int(t) + tf: float(c) for t, c in zip(bars.ts, bars.close, strict=True)}
    with engine.connect() as c:
        submit_ts = {json.loads(p)["client_order_id"]: json.loads(p)["ts"] for (p,) in c.execute(
            sa.select(events.c.payload).where(events.c.session_id == "slip", events.c.kind == "order.submit"))}
        rows = c.execute(sa.select(fills.c.client_order_id, fills.c.side, fills.c.price, fills.c.quantity)
                         .where(fills.c.session_id == "slip")).all()
    assert len(rows) > 5
    ratios, cost = [], 0.0
    for cid, side, price, qty in rows:
        decided = close_at[submit_ts[cid]]
        diff = (1 if side == "buy" else -1) * (float(Decimal(price)) - decided)
        ratios.append(diff / decided)
        cost += diff * float(Decimal(qty))
    assert get(smp, "lyra_fill_slippage_ratio_bucket", le="+Inf") == len(rows)
    assert get(smp, "lyra_slippage_cost") == pytest.approx(cost, rel=1e-9)
    assert 0.0006 < min(ratios) <= max(ratios) < 0.001  # 7 bps against the trader, tick rounding aside
    assert get(smp, "lyra_fill_slippage_ratio_bucket", le="0.0005") == 0
    assert get(smp, "lyra_fill_slippage_ratio_bucket", le="0.001") == len(rows)
    # a paper broker talks to no venue: no venue error families at all
    assert not any(n.startswith("lyra_venue_") for n, _ in smp)
