"""Metrics: a hand-worked example with exact fractions, and vectorbt's own stats on real data."""

from __future__ import annotations

import math
from fractions import Fraction as Fr

import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.research import backtest, metrics
from lyra.strategy import SmaCross

pytestmark = pytest.mark.numba  # vectorbt's compiled simulators (warm: scripts/warm_numba.py)

# Equity 110, 99, 121 from 100: returns 1/10, -1/10, 2/9.
EQ = np.array([110.0, 99.0, 121.0])
R = [Fr(1, 10), Fr(-1, 10), Fr(2, 9)]
MEAN = sum(R) / 3  # 2/27
VAR = sum((r - MEAN) ** 2 for r in R) / 2  # 3858/145800
SD = math.sqrt(VAR)


def test_hand_worked_returns_and_ratios() -> None:
    r = metrics.returns_from_equity(EQ, 100.0)
    np.testing.assert_allclose(r, [float(x) for x in R], rtol=1e-15)
    assert metrics.total_return(EQ, 100.0) == pytest.approx(0.21, rel=1e-14)
    assert Fr(3858, 145800) == VAR
    assert metrics.annualized_volatility(r, 1.0) == pytest.approx(SD, rel=1e-13)
    assert metrics.sharpe_ratio(r, 1.0) == pytest.approx(float(MEAN) / SD, rel=1e-13)  # 0.45537...
    assert metrics.sharpe_ratio(r, 4.0) == pytest.approx(2 * float(MEAN) / SD, rel=1e-13)
    # Downside deviation: sqrt(mean(min(r,0)^2)) = sqrt(0.01/3).
    assert metrics.sortino_ratio(r, 1.0) == pytest.approx(float(MEAN) / math.sqrt(0.01 / 3), rel=1e-13)
    # 3 bars per year => the 3 bars are one year: CAGR = 1.21 - 1.
    assert metrics.annualized_return(r, 3.0) == pytest.approx(0.21, rel=1e-13)
    assert metrics.annualized_return(r, 6.0) == pytest.approx(1.21**2 - 1, rel=1e-13)
    assert metrics.max_drawdown(EQ) == pytest.approx(0.1, rel=1e-14)  # 110 -> 99
    assert metrics.max_drawdown_duration(EQ) == 1
    assert metrics.calmar_ratio(r, 3.0) == pytest.approx(2.1, rel=1e-13)


def test_hand_worked_trades_and_activity() -> None:
    pnl = [10.0, -5.0, 0.0, 15.0]
    assert metrics.win_rate(pnl) == 0.5
    assert metrics.profit_factor(pnl) == 5.0  # 25 / 5
    assert metrics.expectancy(pnl) == 5.0
    assert metrics.profit_factor([3.0]) == math.inf
    assert math.isnan(metrics.win_rate([]))
    assert metrics.exposure([0, 1, 1, 0, -2]) == 0.6
    assert metrics.turnover([100.0, 110.0], [100.0, 110.0]) == pytest.approx(2.0)
    assert metrics.fees_paid([0.1, 0.11]) == pytest.approx(0.21)
    # Drawdown duration: the longest run below a peak, here bars 2-4 (3 bars).
    assert metrics.max_drawdown_duration([1, 2, 1.5, 1.9, 1.9, 2.0, 1.0]) == 3
    assert metrics.max_drawdown_duration([1, 2, 3]) == 0
    assert metrics.ann_factor("1h") == 8760.0
    assert metrics.ann_factor(pd.Timedelta("1D")) == 365.0
    with pytest.raises(ValidationError):
        metrics.ann_factor("soon")


@pytest.fixture(scope="module")
def result(coinbase_1h: pd.DataFrame):
    return backtest(SmaCross(fast=10, slow=30), coinbase_1h)


def test_metrics_agree_with_vectorbt_stats(result) -> None:
    pf = result.portfolio
    st = pf.stats()
    mm = result.metrics
    assert mm["n_trades"] == st["Total Trades"] > 100
    assert mm["final_equity"] == pytest.approx(st["End Value"], rel=1e-12)
    assert mm["total_return"] * 100 == pytest.approx(st["Total Return [%]"], rel=1e-12)
    assert mm["max_drawdown"] * 100 == pytest.approx(st["Max Drawdown [%]"], rel=1e-10)
    assert mm["max_drawdown_duration"] == st["Max Drawdown Duration"] / pd.Timedelta("1h")
    assert mm["win_rate"] * 100 == pytest.approx(st["Win Rate [%]"], rel=1e-12)
    assert mm["profit_factor"] == pytest.approx(st["Profit Factor"], rel=1e-10)
    assert mm["expectancy"] == pytest.approx(st["Expectancy"], rel=1e-10)
    assert mm["sharpe"] == pytest.approx(st["Sharpe Ratio"], rel=1e-10)
    assert mm["sortino"] == pytest.approx(st["Sortino Ratio"], rel=1e-10)
    assert mm["calmar"] == pytest.approx(st["Calmar Ratio"], rel=1e-10)
    assert mm["fees_paid"] == pytest.approx(st["Total Fees Paid"], rel=1e-10)
    assert mm["annualized_return"] == pytest.approx(pf.annualized_return(), rel=1e-10)
    assert mm["annualized_volatility"] == pytest.approx(pf.annualized_volatility(), rel=1e-10)
    # Exposure = share of bars in the market; vectorbt's position mask says the same.
    assert mm["exposure"] == pytest.approx(pf.position_mask().mean(), rel=1e-12)
    # Turnover: every order's notional over mean equity, recomputed from the order records.
    o = pf.orders.records_arr
    assert mm["turnover"] == pytest.approx((o["size"] * o["price"]).sum() / pf.value().mean(), rel=1e-12)


def test_exported_names() -> None:
    import lyra.research as pkg

    assert sorted(pkg.__all__) == sorted([
        "METRIC_NAMES", "BacktestResult", "Comparison", "SweepResult", "WalkForwardResult",
        "WeightsBacktestResult", "backtest", "data_quality", "expand_grid", "infer_freq", "load_ohlcv",
        "metrics", "sample_data", "sample_data_dir", "sweep", "walk_forward",
    ])
    assert all(hasattr(pkg, n) for n in pkg.__all__)
