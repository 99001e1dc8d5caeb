"""VaR backtests: exception counting, Kupiec POF against published values, Christoffersen."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from lyra.core.errors import ValidationError
from lyra.risk import (
    christoffersen_test,
    count_exceptions,
    find_exceptions,
    historical_var,
    kupiec_pof,
    kupiec_test,
)


def kupiec_by_hand(t: int, x: int, p: float) -> float:
    """LR = −2·ln[(1−p)^(T−x)·p^x] + 2·ln[(1−x/T)^(T−x)·(x/T)^x] (0·ln 0 = 0)."""
    phat = x / t
    ll0 = (t - x) * math.log(1 - p) + (x * math.log(p) if x else 0.0)
    ll1 = ((t - x) * math.log(1 - phat) if x < t else 0.0) + (x * math.log(phat) if x else 0.0)
    return -2 * ll0 + 2 * ll1


def test_exceptions_are_losses_strictly_beyond_var():
    var = [10.0, 10.0, 10.0, 5.0, 5.0]
    pnl = [-10.0, -10.5, 3.0, -7.0, -4.9]  # −10 equals VaR: not an exception
    assert find_exceptions(var, pnl).tolist() == [False, True, False, True, False]
    assert count_exceptions(var, pnl) == 2
    with pytest.raises(ValidationError) as err:
        count_exceptions(var, pnl[:4])
    assert err.value.field == "pnl"


def test_kupiec_jorion_setting_250_days_99pct_worked_by_hand():
    # T = 250 days, 99% VaR, x = 3 exceptions (expected 2.5), worked by hand:
    #   ln L0 = 247·ln(0.99) + 3·ln(0.01)   = −2.482433 − 13.815511 = −16.297944
    #   ln L1 = 247·ln(0.988) + 3·ln(0.012) = −2.981928 − 13.268546 = −16.250473
    #   LR = −2·(ln L0 − ln L1) = 0.094940, p = P(χ²₁ > LR) = 0.7580
    # (One online calculator prints LR = 0.189 for this case, twice the statistic; the
    # MathWorks example below agrees with this formula to 5 decimals.)
    res = kupiec_pof(250, 3, 0.99)
    assert res.lr == pytest.approx(kupiec_by_hand(250, 3, 0.01), rel=1e-12)
    assert res.lr == pytest.approx(0.094940, abs=1e-6)
    assert res.p_value == pytest.approx(0.7580, abs=1e-4)
    assert not res.reject
    assert res.expected_rate == pytest.approx(0.01)
    assert res.observed_rate == pytest.approx(0.012)


def test_kupiec_against_mathworks_pof_example():
    # MathWorks Risk Management Toolbox, varbacktest "pof" doc example: 1043 observations,
    # 95% VaR, 57 failures → LRatioPOF 0.46147, PValuePOF 0.49694, accept.
    res = kupiec_pof(1043, 57, 0.95)
    assert res.lr == pytest.approx(0.46147, abs=5e-6)
    assert res.p_value == pytest.approx(0.49694, abs=5e-6)
    assert not res.reject


@pytest.mark.parametrize(("x", "reject"), [(0, True), (1, False), (6, False), (7, True)])
def test_kupiec_two_sided_rejections_at_250_days(x, reject):
    res = kupiec_pof(250, x, 0.99)
    assert res.lr == pytest.approx(kupiec_by_hand(250, x, 0.01), rel=1e-12)
    assert res.p_value == pytest.approx(stats.chi2.sf(res.lr, 1), rel=1e-12)
    assert res.reject is reject  # 0 exceptions: LR = −500·ln(0.99) = 5.03 > 3.84
    if x == 0:
        assert res.lr == pytest.approx(-2 * 250 * math.log(0.99), rel=1e-12)


def test_kupiec_validates_counts():
    with pytest.raises(ValidationError) as err:
        kupiec_pof(250, 251, 0.99)
    assert err.value.field == "n_exceptions"
    with pytest.raises(ValidationError) as err:
        kupiec_pof(250, 3, 99.0)
    assert err.value.field == "confidence"


def test_christoffersen_hand_worked_transition_counts():
    e = np.array([0, 0, 1, 1, 0, 0, 0, 1, 0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    # transitions (prev→next), 19 pairs: 00 = 10, 01 = 3, 10 = 3, 11 = 3; 6 exceptions
    res = christoffersen_test(e, 0.95)
    assert (res.n00, res.n01, res.n10, res.n11) == (10, 3, 3, 3)
    pi01, pi11, pi = 3 / 13, 3 / 6, 6 / 19
    ll0 = 13 * math.log(1 - pi) + 6 * math.log(pi)
    ll1 = 10 * math.log(1 - pi01) + 3 * math.log(pi01) + 3 * math.log(1 - pi11) + 3 * math.log(pi11)
    assert res.lr_ind == pytest.approx(-2 * (ll0 - ll1), rel=1e-12)
    pof = kupiec_pof(20, 6, 0.95)
    assert res.lr_cc == pytest.approx(pof.lr + res.lr_ind, rel=1e-12)
    assert res.p_value_cc == pytest.approx(stats.chi2.sf(res.lr_cc, 2), rel=1e-12)


def test_christoffersen_flags_clustered_exceptions_not_spread_ones():
    clustered = np.zeros(500, dtype=bool)
    clustered[100:110] = True  # 10 exceptions in a row
    spread = np.zeros(500, dtype=bool)
    spread[::50] = True  # 10 exceptions, never consecutive
    assert christoffersen_test(clustered, 0.98).reject_ind
    assert not christoffersen_test(spread, 0.98).reject_ind


def test_rolling_historical_var_backtest_on_real_btc(btc_daily_returns):
    """One-day 95% historical VaR on a 250-day window, rolled over 2015-2020 BTC/USD."""
    r = btc_daily_returns
    window, value = 250, 1e6
    var = np.array(
        [historical_var(r[t - window : t], value, confidence=0.95).var for t in range(window, r.size)]
    )
    pnl = value * r[window:]
    hits = find_exceptions(var, pnl)
    manual = sum(1 for t in range(var.size) if pnl[t] < -var[t])
    assert hits.sum() == manual
    res = kupiec_test(var, pnl, 0.95)
    assert res.n_obs == var.size
    assert res.n_exceptions == manual
    assert res.lr == pytest.approx(kupiec_by_hand(var.size, manual, 0.05), rel=1e-12)
    # A rolling historical VaR is roughly calibrated on this history: 3%-8% exceptions.
    assert 0.03 < res.observed_rate < 0.08
