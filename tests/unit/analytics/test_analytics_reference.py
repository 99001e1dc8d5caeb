"""lyra.analytics against empyrical's published test values (empyrical/tests/test_stats.py:
the same input series, the expected values copied from there) and a hand-worked example."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

import lyra.analytics as an
from lyra.core.errors import ValidationError

# empyrical's series (percent); its ``mixed_returns`` starts with a NaN that it skips.
MIXED = np.array([1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100
POSITIVE = np.array([1.0, 2.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0]) / 100
NEGATIVE = np.array([0.0, -6.0, -7.0, -1.0, -9.0, -2.0, -6.0, -8.0, -5.0]) / 100
WEEKLY = np.array([0.0, 1.0, 10.0, -4.0, 2.0, 3.0, 2.0, 1.0, -10.0]) / 100
DAILY, WEEK = 252.0, 52.0  # empyrical's DAILY and WEEKLY annualisation factors


def _eq(r: np.ndarray) -> np.ndarray:
    return np.cumprod(1.0 + r)  # an equity curve from 1.0 whose returns are r


@pytest.mark.parametrize(("r", "ann", "expected"), [
    (MIXED, DAILY, 1.7238613961706866),
    (POSITIVE, DAILY, 52.915026221291804),
    (NEGATIVE, DAILY, -24.406808633910085),
])
def test_sharpe_matches_empyrical(r, ann, expected) -> None:
    assert an.sharpe_ratio(r, ann) == pytest.approx(expected, abs=1e-8)
    assert an.sharpe_ratio(an.returns_from_equity(_eq(r), 1.0), ann) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize(("r", "ann", "expected"), [
    (MIXED, DAILY, 2.605531251673693),
    (NEGATIVE, DAILY, -13.532743075043401),
])
def test_sortino_matches_empyrical(r, ann, expected) -> None:
    assert an.sortino_ratio(r, ann) == pytest.approx(expected, abs=1e-8)


def test_cagr_volatility_calmar_drawdown_match_empyrical() -> None:
    # empyrical's CAGR counts the leading NaN period as a period (9 periods, no return).
    with_nan_period = np.concatenate(([0.0], MIXED))
    assert an.annualized_return(with_nan_period, DAILY) == pytest.approx(1.9135925373194231, abs=1e-8)
    assert an.calmar_ratio(with_nan_period, DAILY) == pytest.approx(19.135925373194233, abs=1e-8)
    assert an.annualized_volatility(MIXED, DAILY) == pytest.approx(0.9136465399704637, abs=1e-8)
    assert an.annualized_volatility(WEEKLY, WEEK) == pytest.approx(0.38851569394870583, abs=1e-8)
    # empyrical's max_drawdown is negative; ours is its magnitude (one convention: positive).
    assert an.max_drawdown(_eq(MIXED)) == pytest.approx(0.1, abs=1e-8)
    assert an.max_drawdown(_eq(NEGATIVE)) == pytest.approx(0.36590730349873601, abs=1e-8)
    assert an.max_drawdown(_eq(np.array([0.10, -0.10, 0.10]))) == pytest.approx(0.10, abs=1e-8)
    assert an.drawdown_series(_eq(MIXED)).min() == pytest.approx(-0.1, abs=1e-8)
    mm = an.compute_metrics(_eq(with_nan_period), 1.0, DAILY)
    assert mm["calmar"] == pytest.approx(19.135925373194233, abs=1e-8)
    assert mm["sharpe"] == pytest.approx(an.sharpe_ratio(with_nan_period, DAILY))
    assert mm["total_return"] == pytest.approx(0.03893, abs=1e-5)  # empyrical cum_returns_final


def test_hand_worked_curve() -> None:
    # 100 -> 110 -> 99 -> 121: returns 1/10, -1/10, 2/9; mean 2/27, sample var 3858/145800.
    v = np.array([110.0, 99.0, 121.0])
    r = an.returns_from_equity(v, 100.0)
    sd = math.sqrt(3858 / 145800)
    assert an.sharpe_ratio(r, 365) == pytest.approx((2 / 27) / sd * math.sqrt(365), rel=1e-13)
    assert an.annualized_return(r, 3.0) == pytest.approx(0.21, rel=1e-13)
    assert an.max_drawdown(v) == pytest.approx(0.1, rel=1e-14)
    assert an.fees_share(9.0, v, 100.0) == pytest.approx(9 / 30)  # gross 21 + 9 fees = 30
    assert math.isnan(an.fees_share(1.0, [90.0], 100.0))


def test_conventions_are_stated_and_configurable() -> None:
    assert an.ann_factor("1h") == 8760.0  # crypto: a 365-day year
    assert an.ann_factor("1D", year=an.Conventions(year_days=252).year) == 252.0
    ts = np.array([0, 3_600_000, 7_200_000, 7_200_000])  # a repeated timestamp counts once
    assert an.periods_per_year(ts) == 8760.0
    assert an.periods_per_year(ts, an.Conventions(year_days=365.25)) == 8766.0
    with pytest.raises(ValidationError, match="year_days"):
        an.Conventions(year_days=0)


def test_riskless_and_degenerate_curves_have_one_answer() -> None:
    assert math.isnan(an.sharpe_ratio([0.0, 0.0, 0.0], 365))  # flat: 0 / 0
    assert an.sharpe_ratio([0.01, 0.01, 0.01], 365) == math.inf  # riskless gain
    assert an.sharpe_ratio([-0.01, -0.01], 365) == -math.inf
    assert math.isnan(an.sharpe_ratio([0.01], 365))
    assert math.isnan(an.calmar_ratio([0.01, 0.02], 365))  # no drawdown
    rs = an.rolling_sharpe(pd.Series([0.01, 0.01, 0.02, -0.01]), 2, 365.0)
    assert rs.iloc[1] == math.inf
    assert rs.iloc[3] == pytest.approx(an.sharpe_ratio([0.02, -0.01], 365.0))


def test_monthly_returns_compound_within_each_month() -> None:
    idx = pd.to_datetime(["2024-01-15", "2024-01-31", "2024-02-10", "2024-03-01"], utc=True)
    eq = pd.Series([110.0, 121.0, 108.9, 108.9], index=idx)
    table = an.monthly_returns(eq, 100.0)
    assert table.loc[2024, 1] == pytest.approx(0.21)
    assert table.loc[2024, 2] == pytest.approx(-0.1)
    assert table.loc[2024, 3] == pytest.approx(0.0)
    assert math.isnan(table.loc[2024, 4])
