"""A session's pre-trade VaR check (a ``max_var`` limit) has a covariance model: estimated
from the market store's closes of the bars that ended before the data day (no look-ahead),
equal to an independent pandas estimate; a generous limit trades exactly like no limit, a tight
one denies the first order with the VaR a textbook formula gives (z·σ·|exposure|)."""

from __future__ import annotations

import json
import math
from decimal import Decimal
from pathlib import Path
from statistics import NormalDist
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd
import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lyra.audit import EventLog
from lyra.core.timeutil import timeframe_to_ms
from lyra.demo import LIVE_DEMO_SESSION
from lyra.feeds import import_file
from lyra.feeds.store import MarketStore
from lyra.metrics.session import session_metrics
from lyra.session.factory import open_session
from lyra.session.var_model import DAY_MS, SessionCovariance
from lyra.testing.sessions import demo_config

UNTIL = "2017-09-01"
REPO = Path(__file__).resolve().parents[3]


def _independent_cov(market, venue: str, symbols: list[str], timeframe: str, t_ms: int,
                     lookback: int) -> np.ndarray:
    """pandas: closes joined on shared candle times, pct_change, bars ended by t's day."""
    store = MarketStore(market)
    closes = pd.concat({s: store.read_bars(venue, s, timeframe)["close"] for s in symbols}, axis=1,
                       join="inner").astype(float)
    rets = closes.pct_change().iloc[1:]
    tf = pd.Timedelta(timeframe_to_ms(timeframe), unit="ms")
    day = pd.Timestamp(t_ms - t_ms % DAY_MS, unit="ms", tz="UTC")
    ended = rets[rets.index + tf <= day].iloc[-lookback:]
    return ended.cov(ddof=1).to_numpy()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_model_is_the_store_returns_before_the_data_day(session_home: dict[str, Any]) -> None:
    market = session_home["home"] / "market"  # type: ignore[operator]
    cfg = LIVE_DEMO_SESSION
    for sym in cfg["symbols"]:  # the live demo's three Bitstamp pairs (daily bars)
        import_file(REPO / "data" / "ohlcv" / f"bitstamp_{sym.replace('/', '-')}_1d.csv.gz", store=MarketStore(market))
    t = int(pd.Timestamp("2018-06-15T13:00Z").value // 1_000_000)  # ETH/USD starts 2017-11-09
    cov = SessionCovariance(market, cfg["venue"], cfg["symbols"], cfg["timeframe"], lookback=60)
    model, cols = cov.model_at(t)
    assert cols == ("bitstamp:BTC/USD", "bitstamp:ETH/USD", "bitstamp:LTC/USD")
    assert model is not None and model.n_obs == 60
    ref = _independent_cov(market, cfg["venue"], cfg["symbols"], cfg["timeframe"], t, 60)
    np.testing.assert_allclose(model.cov, ref, rtol=1e-12)
    assert cov.model_at(t + 3_600_000)[0] is model  # same day: the same estimate
    later, _ = cov.model_at(t + DAY_MS)
    assert later is not model and not np.allclose(later.cov, model.cov)  # one more day of returns
    assert cov.model_at(int(pd.Timestamp("2000-01-01").value // 1_000_000))[0] is None  # no data yet


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_max_var_trades_like_no_limit_when_generous_and_denies_when_tight(session_home: dict[str, Any]) -> None:
    h = session_home
    market = h["home"] / "market"  # type: ignore[operator]

    def run(sid: str, risk: dict[str, Any]) -> Any:
        s = open_session(demo_config(session_id=sid, end=UNTIL, risk=risk), engine=h["engine"], market_dir=market)
        return s.run()

    free = run("free", {})
    s = open_session(demo_config(session_id="loose", end=UNTIL, risk={"defaults": {"max_var": "1000000"},
                                                                       "var_confidence": 0.99}),
                     engine=h["engine"], market_dir=market)
    with session_metrics(s, serve=False, settings=SimpleNamespace(metrics=True, metrics_port=0,
                                                                  metrics_linger_s=0.0)) as att:
        loose = s.run()
        text = generate_latest(att.metrics.registry).decode()
    assert (loose.orders, loose.fills, loose.equity) == (free.orders, free.fills, free.equity) and free.fills > 4
    # The metric of the book's VaR now: the final position's exposure through the same formula.
    got = {x.name: x.value for f in text_string_to_metric_families(text) for x in f.samples
           if x.name in ("lyra_risk_var", "lyra_risk_limit_var")}
    qty = float(s.holdings.get("coinbase:BTC/USD", 0))
    assert qty != 0  # holding at the end: a VaR of 0 would prove nothing
    t_end = s.clock.now_ms()
    sig = math.sqrt(_independent_cov(market, "coinbase", ["BTC/USD"], "1h", t_end, 250)[0, 0])
    assert got["lyra_risk_limit_var"] == 1_000_000
    assert got["lyra_risk_var"] == pytest.approx(NormalDist().inv_cdf(0.99) * sig * abs(qty) *
                                                 float(s.marks["coinbase:BTC/USD"]), rel=1e-9)
    tight = run("tight", {"defaults": {"max_var": "1"}, "var_confidence": 0.99})
    assert tight.fills == 0 and tight.denied > 0
    first = next(e for e in EventLog(h["engine"]).read(session_id="tight", kinds=("risk.decision",)))
    d = json.loads(first.payload)
    assert not d["approved"] and d["check"] == "pre_trade_var"
    # The textbook figure: normal VaR of the order's exposure q·mark, z(0.99)·σ·|q·mark|·√1.
    var_after = float(d["reason"].split("pre_trade_var: ")[1].split(" > ")[0])
    t = int(d["ts"])
    sigma2 = _independent_cov(market, "coinbase", ["BTC/USD"], "1h", t, 250)[0, 0]
    created = next(json.loads(e.payload) for e in EventLog(h["engine"]).read(session_id="tight",
                                                                                kinds=("order.created",)))
    store = MarketStore(market).read_bars("coinbase", "BTC/USD", "1h")
    mark = float(store[store.index + pd.Timedelta("1h") <= pd.Timestamp(t, unit="ms", tz="UTC")]["close"].iloc[-1])
    exposure = float(Decimal(created["quantity"])) * mark
    expected = NormalDist().inv_cdf(0.99) * math.sqrt(sigma2) * exposure
    assert var_after == pytest.approx(expected, abs=0.006)  # printed to the cent
    assert d["reason"].endswith("(before 0.00, 0.99 over 1 period(s))")
