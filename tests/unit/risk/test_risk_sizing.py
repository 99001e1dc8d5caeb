"""Position sizing against closed forms and independent numerical optimisers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import optimize

from lyra.core.errors import ValidationError
from lyra.risk import (
    fixed_fractional_size,
    inverse_volatility_weights,
    kelly_fraction,
    kelly_fraction_from_returns,
    risk_contributions,
    risk_parity_weights,
    volatility_target_leverage,
)


def random_cov(n: int, seed: int) -> np.ndarray:
    """A realistic covariance: a common factor, a sector factor and idiosyncratic noise."""
    rng = np.random.default_rng(seed)
    t = max(3 * n, 300)
    market = rng.normal(0, 0.02, (t, 1))
    sector = rng.normal(0, 0.01, (t, 1)) * (np.arange(n) % 3 == 0)
    r = market * rng.uniform(0.5, 1.5, n) + sector + rng.normal(0, 0.01, (t, n)) * rng.uniform(0.5, 3.0, n)
    return np.cov(r, rowvar=False)


# ---------------------------------------------------------------- fixed fractional


def test_fixed_fractional_hand_worked():
    # 10,000 equity risking 1% = 100; stop 5 away from entry 100 → 20 units.
    assert fixed_fractional_size(10_000, 0.01, 100.0, 95.0) == pytest.approx(20.0)
    assert fixed_fractional_size(10_000, 0.01, 100.0, 105.0) == pytest.approx(20.0)  # short
    # Capped at 1× leverage: at most 10,000 / 100 = 100 units although the stop is 0.5 away.
    assert fixed_fractional_size(10_000, 0.01, 100.0, 99.5) == pytest.approx(200.0)
    assert fixed_fractional_size(10_000, 0.01, 100.0, 99.5, max_leverage=1.0) == pytest.approx(100.0)
    with pytest.raises(ValidationError) as err:
        fixed_fractional_size(10_000, 0.01, 100.0, 100.0)
    assert err.value.field == "stop_price"
    with pytest.raises(ValidationError) as err:
        fixed_fractional_size(10_000, 1.5, 100.0, 90.0)
    assert err.value.field == "risk_fraction"


# ---------------------------------------------------------------- Kelly


@pytest.mark.parametrize(("p", "b", "expected"), [(0.6, 1.0, 0.2), (0.5, 2.0, 0.25), (0.4, 1.0, -0.2)])
def test_kelly_closed_form(p, b, expected):
    assert kelly_fraction(p, b) == pytest.approx(expected, rel=1e-12)
    assert kelly_fraction(p, b, fraction=0.5) == pytest.approx(expected / 2, rel=1e-12)
    if expected > 0:  # the growth-optimal stake by brute force on p·ln(1+bf) + q·ln(1−f)
        best = optimize.minimize_scalar(
            lambda f: -(p * math.log(1 + b * f) + (1 - p) * math.log(1 - f)),
            bounds=(0.0, 0.99),
            method="bounded",
            options={"xatol": 1e-10},
        )
        assert kelly_fraction(p, b) == pytest.approx(best.x, abs=1e-6)


def test_kelly_from_returns_matches_binary_closed_form():
    # 60 wins of +15% and 40 losses of −10%: p = 0.6, b = 1.5 in units of the 10% loss, so
    # the growth-optimal exposure is (p − q/b) / 0.10 = (0.6 − 0.4/1.5) / 0.1 = 3.3333...
    r = np.array([0.15] * 60 + [-0.10] * 40)
    assert kelly_fraction_from_returns(r) == pytest.approx((0.6 - 0.4 / 1.5) / 0.1, rel=1e-10)
    assert kelly_fraction_from_returns(r, fraction=0.5) == pytest.approx(5 / 3, rel=1e-10)
    assert kelly_fraction_from_returns(-r) == pytest.approx(-10 / 3, rel=1e-10)  # short it


def test_kelly_from_returns_is_the_log_growth_maximiser_and_near_mu_over_sigma2(
    btc_daily_returns,
):
    r = btc_daily_returns
    f = kelly_fraction_from_returns(r)
    best = optimize.minimize_scalar(
        lambda x: -np.mean(np.log1p(x * r)),
        bounds=(-1 / r.max() * 0.999, -1 / r.min() * 0.999),
        method="bounded",
        options={"xatol": 1e-12},
    )
    assert f == pytest.approx(best.x, rel=1e-5)
    # Small returns: f* ≈ μ/σ² (second-order expansion of log growth).
    small = np.random.default_rng(2).normal(0.0005, 0.01, 50_000)
    assert kelly_fraction_from_returns(small) == pytest.approx(small.mean() / small.var(), rel=0.02)


def test_kelly_from_returns_rejects_one_sided_samples():
    with pytest.raises(ValidationError, match="both gains and losses"):
        kelly_fraction_from_returns([0.01, 0.02, 0.0])


# ---------------------------------------------------------------- vol targeting / inverse vol


def test_volatility_target_leverage():
    r = np.tile([0.01, -0.01], 100)  # std(ddof=1) = 0.01·sqrt(200/199)
    vol = 0.01 * math.sqrt(200 / 199) * math.sqrt(365)
    assert volatility_target_leverage(r, 0.2, 365) == pytest.approx(0.2 / vol, rel=1e-12)
    assert volatility_target_leverage(r, 2.0, 365, max_leverage=3.0) == pytest.approx(3.0)
    with pytest.raises(ValidationError) as err:
        volatility_target_leverage(np.zeros(10), 0.2, 365)
    assert err.value.field == "returns"


def test_inverse_volatility_weights():
    w = inverse_volatility_weights([0.1, 0.2, 0.4])
    np.testing.assert_allclose(w, np.array([4, 2, 1]) / 7, rtol=1e-15)
    with pytest.raises(ValidationError) as err:
        inverse_volatility_weights([0.1, 0.0])
    assert err.value.field == "vols[1]"


# ---------------------------------------------------------------- risk parity


@pytest.mark.parametrize(("n", "seed"), [(5, 0), (50, 1), (50, 2)])
def test_risk_parity_equal_contributions_to_1e8(n, seed):
    cov = random_cov(n, seed)
    res = risk_parity_weights(cov)
    assert res.converged
    assert res.n_iter < 30
    rc = risk_contributions(res.weights, cov)  # recomputed independently of the solver
    assert np.max(np.abs(rc * n - 1.0)) < 1e-8
    assert res.weights.sum() == pytest.approx(1.0)
    assert np.all(res.weights > 0)


def test_risk_parity_diagonal_and_two_asset_closed_forms():
    sig = np.array([0.1, 0.25, 0.5, 0.8])
    w = risk_parity_weights(np.diag(sig**2)).weights
    np.testing.assert_allclose(w, (1 / sig) / (1 / sig).sum(), rtol=1e-12)
    # Two assets: ERC weights are ∝ 1/σ whatever the correlation.
    for rho in (-0.7, 0.0, 0.9):
        s = np.array([0.2, 0.05])
        cov = np.outer(s, s) * np.array([[1, rho], [rho, 1]])
        np.testing.assert_allclose(risk_parity_weights(cov).weights, (1 / s) / (1 / s).sum(), rtol=1e-12)


def test_risk_budgets_against_independent_slsqp_solution():
    cov = random_cov(6, 5)
    b = np.array([0.3, 0.2, 0.2, 0.1, 0.1, 0.1])
    res = risk_parity_weights(cov, b)
    np.testing.assert_allclose(res.risk_contributions, b, rtol=1e-10)

    def spread(w):
        rc = w * (cov @ w) / (w @ cov @ w)
        return 1e4 * np.sum((rc - b) ** 2)

    ref = optimize.minimize(
        spread,
        np.full(6, 1 / 6),
        method="SLSQP",
        bounds=[(1e-6, 1)] * 6,
        constraints=[{"type": "eq", "fun": lambda w: w.sum() - 1}],
        options={"ftol": 1e-16, "maxiter": 1000},
    )
    np.testing.assert_allclose(res.weights, ref.x, rtol=1e-4)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(2, 12), seed=st.integers(0, 10_000))
def test_risk_parity_converges_on_random_covariances(n, seed):
    cov = random_cov(n, seed)
    res = risk_parity_weights(cov)
    assert res.converged
    assert np.max(np.abs(risk_contributions(res.weights, cov) * n - 1.0)) < 1e-8


def test_risk_parity_rejects_bad_covariance():
    with pytest.raises(ValidationError) as err:
        risk_parity_weights([[1.0, 2.0], [2.0, 1.0]])  # eigenvalue −1
    assert err.value.field == "cov"
    with pytest.raises(ValidationError) as err:
        risk_parity_weights([[1.0, 0.1], [0.2, 1.0]])
    assert "symmetric" in str(err.value)
    with pytest.raises(ValidationError) as err:
        risk_parity_weights([[1.0, np.nan], [np.nan, 1.0]])
    assert err.value.field == "cov[0, 1]"
    with pytest.raises(ValidationError) as err:
        risk_parity_weights(np.eye(2), [1.0, -1.0])
    assert err.value.field == "budgets[1]"
