"""VaR / ES against independent references: closed forms, scipy, hand-worked examples."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from scipy import integrate, stats

from lyra.core.errors import ValidationError
from lyra.risk import (
    CovarianceModel,
    VaRMethod,
    component_var,
    cornish_fisher_var,
    cornish_fisher_z,
    empirical_var_es,
    historical_var,
    incremental_var,
    min_historical_obs,
    monte_carlo_var,
    normal_var,
    value_at_risk,
)

COV3 = np.array(
    [
        [0.0004, 0.00018, -0.00005],
        [0.00018, 0.0009, 0.0001],
        [-0.00005, 0.0001, 0.000225],
    ]
)
MU3 = np.array([0.0005, 0.001, -0.0002])


def normal_sample(t: int = 2000, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).multivariate_normal(MU3, COV3, size=t)


# ---------------------------------------------------------------- parametric normal


@pytest.mark.parametrize("confidence", [0.95, 0.99])
@pytest.mark.parametrize("horizon", [1, 10])
def test_normal_var_matches_closed_form_with_scipy_quantile(confidence, horizon):
    r = normal_sample()[:, 0]
    value = 250_000.0
    mu, sd = r.mean(), r.std(ddof=1)
    z = stats.norm.ppf(confidence)
    # Convention: VaR = V·(z·σ·√h − μ·h); ES = V·(σ·√h·φ(z)/(1−α) − μ·h).
    expected_var = value * (z * sd * math.sqrt(horizon) - mu * horizon)
    # ES reference by numerical integration of the normal loss quantile over (α, 1).
    loss_q = lambda u: value * (sd * math.sqrt(horizon) * stats.norm.ppf(u) - mu * horizon)  # noqa: E731
    expected_es = integrate.quad(loss_q, confidence, 1.0, limit=200)[0] / (1 - confidence)
    res = normal_var(r, value, confidence=confidence, horizon=horizon)
    assert res.var == pytest.approx(expected_var, rel=1e-12)
    assert res.es == pytest.approx(expected_es, rel=1e-7)
    assert res.method is VaRMethod.NORMAL
    assert res.n_obs == r.size


def test_normal_var_without_mean_and_for_a_short():
    r = normal_sample()[:, 1]
    sd = r.std(ddof=1)
    z = stats.norm.ppf(0.99)
    assert normal_var(r, 1000.0, confidence=0.99, include_mean=False).var == pytest.approx(
        z * sd * 1000.0, rel=1e-12
    )
    # A short loses when the price rises: the mean term flips sign, the σ term does not.
    short = normal_var(r, -1000.0, confidence=0.99)
    assert short.var == pytest.approx(1000.0 * (z * sd + r.mean()), rel=1e-12)


def test_portfolio_normal_var_uses_correlations():
    r = normal_sample()
    v = np.array([1e5, -4e4, 2e5])
    cov = np.cov(r, rowvar=False)
    sd_p = math.sqrt(v @ cov @ v)
    mu_p = r.mean(axis=0) @ v
    expected = stats.norm.ppf(0.99) * sd_p - mu_p
    assert normal_var(r, v, confidence=0.99).var == pytest.approx(expected, rel=1e-10)
    model = CovarianceModel.from_returns(r)
    assert normal_var(model, v, confidence=0.99).var == pytest.approx(expected, rel=1e-10)
    # Perfect hedge: long and short the same asset → no risk beyond the zero mean.
    hedge = np.column_stack([r[:, 0], r[:, 0]])
    assert normal_var(hedge, [1e5, -1e5], include_mean=False).var == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- historical


def test_historical_var_hand_worked_ten_scenarios():
    returns = [0.02, -0.01, 0.03, -0.04, 0.01, -0.02, 0.05, -0.03, 0.00, -0.05]
    # Losses on V = 1000 (loss = −V·r): −20, 10, −30, 40, −10, 20, −50, 30, 0, 50.
    # Sorted: −50, −30, −20, −10, 0, 10, 20, 30, 40, 50.  α = 0.75, n = 10:
    #   k = ceil(n·α) = ceil(7.5) = 8  →  VaR = L(8) = 30   (numpy "inverted_cdf" quantile)
    #   ES = (L(9) + L(10) + (k − n·α)·L(8)) / (n·(1 − α)) = (40 + 50 + 0.5·30) / 2.5 = 42
    # α = 0.75 needs ceil(1/0.25) = 4 scenarios, we have 10.
    res = historical_var(returns, 1000.0, confidence=0.75)
    assert res.var == pytest.approx(30.0, abs=1e-9)
    assert res.es == pytest.approx(42.0, abs=1e-9)
    losses = -1000.0 * np.array(returns)
    assert res.var == pytest.approx(np.quantile(losses, 0.75, method="inverted_cdf"))


def test_empirical_quantile_convention_edge_cases():
    losses = np.arange(1.0, 251.0)  # 1, 2, ..., 250
    # n = 250, α = 0.99: k = 248 (the 3rd-worst), ES = (249 + 250 + 0.5·248)/2.5 = 249.2
    assert empirical_var_es(losses, 0.99) == pytest.approx((248.0, 249.2))
    # n·α = 100·0.95 is 95.00000000000001 in floats; it must still be k = 95 and ES the
    # plain mean of the 5 worst losses.
    var, es = empirical_var_es(np.arange(1.0, 101.0), 0.95)
    assert (var, es) == pytest.approx((95.0, 98.0))


def test_historical_horizon_overlapping_vs_sqrt_time():
    rng = np.random.default_rng(3)
    r = rng.normal(0.0, 0.02, size=(300, 2))
    v = np.array([1000.0, 500.0])
    h = 5
    # Reference: compounded buy-and-hold returns over every overlapping 5-period window.
    pnl = np.array([(np.prod(1 + r[t : t + h], axis=0) - 1) @ v for t in range(300 - h + 1)])
    expected = np.quantile(-pnl, 0.95, method="inverted_cdf")
    res = historical_var(r, v, confidence=0.95, horizon=h)
    assert res.var == pytest.approx(expected, rel=1e-12)
    assert res.n_obs == 296
    one = historical_var(r, v, confidence=0.95)
    sq = historical_var(r, v, confidence=0.95, horizon=h, scaling="sqrt_time")
    assert sq.var == pytest.approx(one.var * math.sqrt(h), rel=1e-12)


def test_historical_portfolio_equals_var_of_its_pnl_series(daily_returns):
    v = np.array([5e4, 3e4, -2e4])
    port = historical_var(daily_returns, v, confidence=0.99)
    # The same P&L as one "position" of 100k in the return series R·(v / 100k).
    single = historical_var(daily_returns @ (v / 1e5), 1e5, confidence=0.99)
    assert port.var == pytest.approx(single.var, rel=1e-12)
    assert port.es == pytest.approx(single.es, rel=1e-12)
    # Diversification on real crypto data: less than the sum of stand-alone VaRs.
    alone = sum(historical_var(daily_returns[:, i], v[i], confidence=0.99).var for i in range(3))
    assert port.var < alone


# ---------------------------------------------------------------- Cornish-Fisher


@pytest.mark.parametrize("confidence", [0.9, 0.95, 0.99, 0.999])
def test_cornish_fisher_reduces_to_normal_quantile(confidence):
    assert cornish_fisher_z(confidence, 0.0, 0.0) == pytest.approx(stats.norm.ppf(confidence), rel=1e-15)


def test_cornish_fisher_var_and_es_against_scipy_moments_and_quadrature(btc_daily_returns):
    r = btc_daily_returns
    value, alpha, h = 10_000.0, 0.99, 3
    mu, sd = r.mean(), r.std(ddof=1)
    s = stats.skew(r, bias=False)
    k = stats.kurtosis(r, bias=False)  # excess
    # Loss-side moments over h periods: skew of the loss is −skew of P&L, scaled by 1/√h.
    s_l, k_l = -s / math.sqrt(h), k / h

    def cf(z):
        return z + (z**2 - 1) * s_l / 6 + (z**3 - 3 * z) * k_l / 24 - (2 * z**3 - 5 * z) * s_l**2 / 36

    def loss_q(u):
        return value * (sd * math.sqrt(h) * cf(stats.norm.ppf(u)) - mu * h)

    res = cornish_fisher_var(r, value, confidence=alpha, horizon=h)
    assert res.var == pytest.approx(loss_q(alpha), rel=1e-10)
    es_ref = integrate.quad(loss_q, alpha, 1.0, limit=400)[0] / (1 - alpha)
    assert res.es == pytest.approx(es_ref, rel=1e-6)
    # BTC daily returns are fat-tailed: the modified VaR is above the normal one at 99%.
    assert res.var > normal_var(r, value, confidence=alpha, horizon=h).var


def test_cornish_fisher_close_to_normal_on_normal_data():
    r = np.random.default_rng(11).normal(0.0003, 0.01, 200_000)
    cf = cornish_fisher_var(r, 1.0, confidence=0.99)
    nv = normal_var(r, 1.0, confidence=0.99)
    assert cf.var == pytest.approx(nv.var, rel=0.01)
    assert cf.es == pytest.approx(nv.es, rel=0.01)


# ---------------------------------------------------------------- Monte Carlo


@pytest.mark.parametrize("confidence", [0.95, 0.99])
def test_monte_carlo_close_to_parametric_on_normal_data(confidence):
    r = normal_sample()
    v = np.array([1e5, 5e4, -3e4])
    mc = monte_carlo_var(r, v, confidence=confidence, horizon=2, n_paths=200_000, seed=42)
    nv = normal_var(r, v, confidence=confidence, horizon=2)
    # Quantile standard error at 99% with 200k paths is ~0.4%; 1.5% is ~4 standard errors.
    assert mc.var == pytest.approx(nv.var, rel=0.015)
    assert mc.es == pytest.approx(nv.es, rel=0.015)
    assert mc.n_obs == 200_000


def test_monte_carlo_is_seeded_and_chunking_does_not_change_the_draws():
    r = normal_sample(500)
    v = np.array([1.0, 2.0, 3.0])
    a = monte_carlo_var(r, v, n_paths=30_000, seed=5)
    b = monte_carlo_var(r, v, n_paths=30_000, seed=np.random.default_rng(5))
    c = monte_carlo_var(r, v, n_paths=30_000, seed=6)
    assert a == b
    assert a.var != c.var
    # Row-major draws: one 30k chunk or 3 × 10k chunks consume the stream identically.
    d = monte_carlo_var(r, v, n_paths=30_000, seed=5, chunk_paths=10_000)
    assert d.var == pytest.approx(a.var, rel=1e-12)


def test_monte_carlo_with_singular_covariance_uses_an_eigen_factor():
    base = np.random.default_rng(1).normal(0, 0.01, size=(50, 2))
    r = np.column_stack([base, base[:, 0] + base[:, 1]])  # rank 2: Cholesky fails
    v = np.array([1.0, 1.0, 1.0])
    mc = monte_carlo_var(r, v, confidence=0.99, n_paths=200_000, seed=0)
    assert mc.var == pytest.approx(normal_var(r, v, confidence=0.99).var, rel=0.02)


# ---------------------------------------------------------------- decomposition / incremental


@pytest.mark.parametrize("include_mean", [True, False])
def test_component_var_sums_exactly_and_marginal_is_the_gradient(include_mean):
    r = normal_sample()
    v = np.array([1e5, -4e4, 2e5])
    dec = component_var(r, v, confidence=0.99, horizon=5, include_mean=include_mean)
    total = normal_var(r, v, confidence=0.99, horizon=5, include_mean=include_mean)
    assert dec.var == pytest.approx(total.var, rel=1e-10)
    assert dec.component_var.sum() == pytest.approx(dec.var, rel=1e-12)
    assert dec.component_es.sum() == pytest.approx(dec.es, rel=1e-12)
    for i in range(3):  # central finite differences of the full VaR
        step = np.zeros(3)
        step[i] = 1.0
        up = normal_var(r, v + step, confidence=0.99, horizon=5, include_mean=include_mean).var
        dn = normal_var(r, v - step, confidence=0.99, horizon=5, include_mean=include_mean).var
        assert dec.marginal_var[i] == pytest.approx((up - dn) / 2.0, rel=1e-6)


def test_incremental_var_matches_recomputation_from_returns():
    r = normal_sample()
    model = CovarianceModel.from_returns(r)
    v = np.array([1e5, 0.0, 2e5])
    d = np.array([0.0, 5e4, -1e5])
    inc = incremental_var(v, d, model, confidence=0.99, horizon=1)
    before = normal_var(r, v, confidence=0.99).var
    after = normal_var(r, v + d, confidence=0.99).var
    assert inc.var_before == pytest.approx(before, rel=1e-10)
    assert inc.var_after == pytest.approx(after, rel=1e-10)
    assert inc.incremental == pytest.approx(after - before, rel=1e-9)
    small = incremental_var(v, d * 1e-4, model, confidence=0.99)
    assert small.first_order == pytest.approx(small.incremental, rel=1e-3)


def test_covariance_model_is_the_sample_covariance_and_read_only():
    r = normal_sample()
    m = CovarianceModel.from_returns(r)
    np.testing.assert_allclose(m.cov, np.cov(r, rowvar=False), rtol=1e-12)
    np.testing.assert_allclose(m.mean, r.mean(axis=0), rtol=1e-12)
    with pytest.raises(ValueError, match="read-only"):
        m.cov[0, 0] = 1.0
    np.testing.assert_allclose(m.factor() @ m.factor().T, m.cov, rtol=1e-12, atol=1e-18)
    with pytest.raises(ValidationError) as err:
        CovarianceModel.from_covariance([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]])  # eigenvalue −1
    assert err.value.field == "cov"


# ---------------------------------------------------------------- validation


def test_nan_is_rejected_with_its_position():
    r = normal_sample(100)
    r[7, 2] = np.nan
    with pytest.raises(ValidationError) as err:
        historical_var(r, [1.0, 1.0, 1.0])
    assert err.value.field == "returns[7, 2]"
    assert math.isnan(err.value.value)


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1, float("nan")])
def test_confidence_outside_unit_interval(bad):
    with pytest.raises(ValidationError) as err:
        normal_var(normal_sample(100)[:, 0], 1.0, confidence=bad)
    assert err.value.field == "confidence"


def test_too_few_observations_names_the_minimum():
    r = np.random.default_rng(0).normal(0, 0.01, 99)
    assert min_historical_obs(0.99) == 100
    assert min_historical_obs(0.95) == 20
    with pytest.raises(ValidationError, match="at least 100"):
        historical_var(r, 1.0, confidence=0.99)
    with pytest.raises(ValidationError, match="at least 104"):  # 100 scenarios + 5 − 1
        historical_var(np.resize(r, 103), 1.0, confidence=0.99, horizon=5)
    with pytest.raises(ValidationError, match="at least 4"):
        cornish_fisher_var(r[:3], 1.0)
    assert historical_var(np.resize(r, 100), 1.0, confidence=0.99).n_obs == 100


def test_mismatched_shapes_and_bad_inputs():
    r = normal_sample(100)
    with pytest.raises(ValidationError) as err:
        normal_var(r, [1.0, 2.0])
    assert err.value.field == "values"
    model = CovarianceModel.from_returns(r)
    with pytest.raises(ValidationError) as err:
        incremental_var([1.0, 2.0, 3.0], [1.0], model)
    assert err.value.field == "order_delta_values"
    with pytest.raises(ValidationError) as err:
        historical_var(r[:, 0] - 2.0, 1.0)  # a −200% "simple return": prices passed?
    assert err.value.field.startswith("returns[")
    with pytest.raises(ValidationError) as err:
        value_at_risk(r, [1.0, 1.0, 1.0], method="garch")
    assert err.value.field == "method"
    with pytest.raises(ValidationError) as err:
        normal_var(r, [1.0, 1.0, 1.0], horizon=0)
    assert err.value.field == "horizon"


def test_value_at_risk_dispatches():
    r = normal_sample(300)
    v = [1.0, 1.0, 1.0]
    assert value_at_risk(r, v, method="normal") == normal_var(r, v)
    assert value_at_risk(r, v) == historical_var(r, v)
    assert value_at_risk(r, v, method="cornish_fisher") == cornish_fisher_var(r, v)
    assert value_at_risk(r, v, method="monte_carlo", n_paths=1000) == monte_carlo_var(r, v, n_paths=1000)


# ---------------------------------------------------------------- properties

returns_1d = arrays(
    np.float64,
    st.integers(40, 200),
    elements=st.floats(-0.5, 0.5, allow_nan=False, allow_subnormal=False),
)


@settings(max_examples=60, deadline=None)
@given(r=returns_1d, alpha=st.floats(0.9, 0.975))
def test_es_at_least_var(r, alpha):
    for res in (
        historical_var(r, 1000.0, confidence=alpha),
        normal_var(r, 1000.0, confidence=alpha),
        monte_carlo_var(r, 1000.0, confidence=alpha, n_paths=2000),
    ):
        assert res.es >= res.var - 1e-9 * max(1.0, abs(res.var))


@settings(max_examples=60, deadline=None)
@given(r=returns_1d, a1=st.floats(0.9, 0.975), a2=st.floats(0.9, 0.975))
def test_var_monotone_in_confidence_and_homogeneous(r, a1, a2):
    lo, hi = sorted((a1, a2))
    assert historical_var(r, 1.0, confidence=lo).var <= historical_var(r, 1.0, confidence=hi).var
    assert normal_var(r, 1.0, confidence=lo).var <= normal_var(r, 1.0, confidence=hi).var + 1e-15
    assert historical_var(r, 3.0, confidence=lo).var == pytest.approx(
        3.0 * historical_var(r, 1.0, confidence=lo).var, rel=1e-12, abs=1e-15
    )
