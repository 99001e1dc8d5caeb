"""The dashboards' numbers, each against a hand-worked example or an independent formula."""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

import lyra.readside as readside
from lyra.core.errors import ValidationError
from lyra.readside import (
    downsample_ohlc,
    drawdown,
    execution_quality,
    fee_tier_progress,
    fmt_money,
    fmt_num,
    fmt_pct,
    kpis,
    order_flow,
    periods_per_year,
    rebalance_proposal,
    returns,
    rolling_volatility,
    sharpe,
    trade_pnls,
    var_es,
)


def test_public_names_are_pinned():
    assert sorted(readside.__all__) == sorted(
        [
            "CHART_TIMEFRAMES",
            "MANUAL_SESSION",
            "OPEN_STATUSES",
            "Changes",
            "Kpis",
            "ManualDesk",
            "ReadModel",
            "RiskState",
            "SessionInfo",
            "downsample_ohlc",
            "drawdown",
            "execution_quality",
            "fee_tier_progress",
            "fmt_money",
            "fmt_num",
            "fmt_pct",
            "kpis",
            "order_flow",
            "periods_per_year",
            "pull_kill_switch",
            "rebalance_proposal",
            "resample_ohlc",
            "returns",
            "rolling_volatility",
            "sharpe",
            "timeframe_choices",
            "trade_pnls",
            "var_es",
            "weights",
        ]
    )


def _bars(n: int) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    return pd.DataFrame(
        {
            "ts": np.arange(n, dtype="int64") * 60_000,
            "open": close + 0.1,
            "high": close + 1,
            "low": close - 1,
            "close": close,
            "volume": np.ones(n),
        }
    )


def test_downsample_keeps_extremes_and_totals():
    b = pd.DataFrame(
        {
            "ts": [0, 1, 2, 3, 4],
            "open": [1.0, 2, 3, 4, 5],
            "high": [2.0, 9, 4, 5, 6],
            "low": [0.5, 1, -3, 3, 4],
            "close": [1.5, 2.5, 3.5, 4.5, 5.5],
            "volume": [1.0] * 5,
        }
    )
    d = downsample_ohlc(b, 2)  # buckets of 3: rows 0-2 and 3-4
    assert d.to_dict("list") == {
        "ts": [0, 3],
        "open": [1.0, 4.0],
        "high": [9.0, 6.0],
        "low": [-3.0, 3.0],
        "close": [3.5, 5.5],
        "volume": [3.0, 2.0],
    }
    big = _bars(100_000)
    small = downsample_ohlc(big, 1500)
    assert len(small) <= 1500
    assert small["high"].max() == big["high"].max() and small["low"].min() == big["low"].min()
    assert small["volume"].sum() == pytest.approx(big["volume"].sum())
    assert len(downsample_ohlc(big.head(10), 1500)) == 10
    with pytest.raises(ValidationError, match="max_points"):
        downsample_ohlc(big, 1)


def test_returns_drawdown_sharpe_by_hand():
    eq = pd.Series([100.0, 110.0, 99.0, 120.0])
    assert list(returns(eq)) == pytest.approx([0.1, -0.1, 120 / 99 - 1])
    assert list(drawdown(eq)) == pytest.approx([0.0, 0.0, 99 / 110 - 1, 0.0])
    r = returns(eq)
    assert sharpe(r, 252) == pytest.approx(r.mean() / r.std(ddof=1) * math.sqrt(252))
    assert math.isnan(sharpe(pd.Series([0.01]), 252))
    ts = pd.Series([0, 3_600_000, 7_200_000])
    assert periods_per_year(ts) == pytest.approx(365 * 24)  # lyra.analytics: a 365-day year
    vol = rolling_volatility(pd.Series([0.01, -0.01, 0.02]), 2, 4.0)
    assert vol.iloc[1] == pytest.approx(np.std([0.01, -0.01], ddof=1) * 2)


def test_var_es_is_the_empirical_quantile_of_losses():
    r = pd.Series(np.linspace(-0.1, 0.09, 20))  # 20 returns; 95 %: the worst 1 of 20
    var, es = var_es(r, 0.95)
    assert var == pytest.approx(0.1 - (0.19 / 19))  # the 19th smallest loss = the 2nd worst return
    assert es >= var
    assert all(math.isnan(x) for x in var_es(pd.Series([], dtype=float)))


def _fills(rows: list[tuple[str, float, float]]) -> pd.DataFrame:
    f = pd.DataFrame(rows, columns=["side", "quantity", "price"])
    f["session_id"] = "s"
    f["instrument_id"] = "x:A/B"
    f["signed_qty"] = np.where(f["side"] == "buy", f["quantity"], -f["quantity"])
    return f


def test_trade_pnls_average_cost_with_a_flip():
    # buy 1 @ 10, buy 1 @ 20 (avg 15), sell 1 @ 30 (+15), sell 2 @ 10 (closes 1: -5; opens short 1 @ 10),
    # buy 1 @ 4 (+6 on the short)
    f = _fills([("buy", 1, 10), ("buy", 1, 20), ("sell", 1, 30), ("sell", 2, 10), ("buy", 1, 4)])
    assert trade_pnls(f).to_dict() == {2: pytest.approx(15.0), 3: pytest.approx(-5.0), 4: pytest.approx(6.0)}


def test_kpis_from_a_small_curve():
    t = pd.to_datetime(["2017-12-30 00:00", "2017-12-31 12:00", "2018-01-01 00:00", "2018-01-01 12:00"])
    curve = pd.DataFrame({"ts": t.asi8 // 1_000_000, "time": t, "equity": [100.0, 120.0, 90.0, 95.0]})
    f = _fills([("buy", 1, 10), ("sell", 1, 12), ("buy", 1, 12), ("sell", 1, 11)])
    f["fee"] = [0.1, 0.1, 0.1, 0.1]
    k = kpis(curve, f, 100.0)
    assert (k.equity, k.pnl, k.pnl_today, k.pnl_mtd, k.pnl_ytd) == pytest.approx((95, -5, -25, -25, -25))
    assert k.max_drawdown == pytest.approx(1 - 90 / 120)  # lyra.analytics: a positive fraction
    assert (k.win_rate, k.trades, k.fees) == pytest.approx((0.5, 2, 0.4))
    empty = kpis(curve.iloc[0:0], f.iloc[0:0], 100.0)
    assert empty.equity == 100.0 and empty.trades == 0 and math.isnan(empty.win_rate)


def test_execution_quality_latency_and_slippage():
    orders = pd.DataFrame({"client_order_id": ["a", "b"], "created_ts": [3_600_000, 7_200_000]})
    fills = pd.DataFrame(
        {
            "client_order_id": ["a", "b"],
            "ts": [3_600_250, 7_200_000],
            "side": ["buy", "sell"],
            "price": [101.0, 198.0],
            "time": pd.to_datetime([3_600_250, 7_200_000], unit="ms"),
        }
    )
    bars = pd.DataFrame({"ts": [0, 3_600_000], "close": [100.0, 200.0]})  # bar 0 ends at 1 h, bar 1 at 2 h
    q = execution_quality(fills, orders, bars, 3_600_000)
    assert list(q["latency_ms"]) == [250, 0]
    assert list(q["slippage_bps"]) == pytest.approx([100.0, 100.0])  # paid 1 % more / received 1 % less


def test_order_flow_imbalance():
    f = pd.DataFrame(
        {
            "time": pd.to_datetime(["2020-01-01 01:00", "2020-01-01 02:00", "2020-01-02 01:00"]),
            "side": ["buy", "sell", "sell"],
            "quantity": [3.0, 1.0, 2.0],
        }
    )
    out = order_flow(f, "1D")
    assert list(out["buy"]) == [3.0, 0.0] and list(out["sell"]) == [1.0, 2.0]
    assert list(out["imbalance"]) == pytest.approx([0.5, -1.0])


def test_rebalance_proposal_by_hand():
    p = rebalance_proposal(
        {"v:BTC/USD": 0.1},
        {"v:BTC/USD": 10_000.0},
        4_000.0,
        {"v:BTC/USD": 0.5},
        fee_rate=0.006,
        slippage_bps=2,
    )
    row = p.iloc[0]
    assert row["actual_weight"] == pytest.approx(0.25) and row["drift"] == pytest.approx(-0.25)
    assert row["side"] == "buy" and row["quantity"] == pytest.approx(0.1)  # 0.2 target - 0.1 held
    assert row["notional"] == pytest.approx(1_000.0)
    assert row["est_fee"] == pytest.approx(6.0) and row["est_slippage"] == pytest.approx(0.2)
    with pytest.raises(ValidationError, match="sum"):
        rebalance_proposal({}, {"a": 1.0}, 1.0, {"a": 0.7, "b": 0.7}, fee_rate=0, slippage_bps=0)
    with pytest.raises(ValidationError, match=r"target\.a"):
        rebalance_proposal({}, {"a": 1.0}, 1.0, {"a": 1.5}, fee_rate=0, slippage_bps=0)


def test_fee_tier_progress():
    tiers = [Decimal(0), Decimal(10_000), Decimal(50_000)]
    assert fee_tier_progress(2_500, tiers) == (0, 0.25, 7_500)
    assert fee_tier_progress(30_000, tiers) == (1, 0.5, 20_000)
    assert fee_tier_progress(60_000, tiers) == (2, 1.0, None)


def test_formatting_for_people():
    assert fmt_money(1234567.891, "USD") == "1,234,567.89 USD"
    assert fmt_money(-5.5, "USD") == "−5.50 USD"
    assert fmt_pct(-0.1234) == "−12.34 %"
    assert fmt_num(float("nan")) == "–" and fmt_money(float("inf")) == "–"
    assert fmt_num(1234.5678, 1) == "1,234.6"
