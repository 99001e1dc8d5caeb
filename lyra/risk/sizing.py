"""Position sizing: fixed fractional, Kelly, volatility targeting, inverse vol, risk parity.

All functions are pure float64 arithmetic. "Fractions" are of equity: ``0.5`` means an
exposure worth half the account, ``2.0`` a 2× levered one. Returns are simple per-period
returns (``p_t / p_{t-1} - 1``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy.linalg import cho_factor, cho_solve
from scipy.optimize import brentq

from lyra.core.errors import ValidationError
from lyra.risk._validate import (
    FloatArray,
    as_float_array,
    check_covariance,
    open_unit,
    positive_float,
    positive_int,
)


@dataclass(frozen=True, slots=True)
class RiskParityResult:
    """Weights whose risk contributions match the budgets."""

    weights: FloatArray  #: long-only, sum to 1
    risk_contributions: FloatArray  #: w_i·(Σw)_i / (wᵀΣw), sum to 1
    n_iter: int  #: Newton iterations used
    converged: bool  #: max relative budget error <= tol
    max_rel_error: float  #: max_i |RC_i / b_i − 1|


def fixed_fractional_size(
    equity: float,
    risk_fraction: float,
    entry_price: float,
    stop_price: float,
    *,
    max_leverage: float | None = None,
) -> float:
    """Quantity (base units) that loses ``risk_fraction · equity`` if the stop is hit.

    ``qty = equity · risk_fraction / |entry_price − stop_price|``; e.g. 10,000 equity, 1% risk,
    entry 100, stop 95 → 20 units (a 2,000 position). Slippage through the stop is not in it.
    With ``max_leverage`` the notional ``qty · entry_price`` is capped at
    ``max_leverage · equity``.
    """
    eq = positive_float("equity", equity)
    f = open_unit("risk_fraction", risk_fraction)
    entry = positive_float("entry_price", entry_price)
    stop = positive_float("stop_price", stop_price)
    if stop == entry:
        raise ValidationError("stop_price", stop_price, "equals entry_price: risk is undefined")
    qty = eq * f / abs(entry - stop)
    if max_leverage is not None:
        cap = positive_float("max_leverage", max_leverage) * eq / entry
        qty = min(qty, cap)
    return qty


def kelly_fraction(win_rate: float, payoff_ratio: float, *, fraction: float = 1.0) -> float:
    """Kelly bet size for a binary bet: ``fraction · (p − (1 − p)/b)``.

    ``win_rate`` is ``p`` (probability of a win), ``payoff_ratio`` is ``b`` (average win divided
    by average loss, both positive). ``fraction=0.5`` is "half Kelly". A result ``<= 0`` means
    the bet has no edge: do not take it.
    """
    p = open_unit("win_rate", win_rate)
    b = positive_float("payoff_ratio", payoff_ratio)
    k = _fraction(fraction)
    return k * (p - (1.0 - p) / b)


def kelly_fraction_from_returns(returns: ArrayLike, *, fraction: float = 1.0) -> float:
    """Growth-optimal exposure ``f*`` maximising ``mean(log(1 + f·r))`` over past returns.

    The objective is strictly concave, so ``f*`` is the unique root of
    ``mean(r / (1 + f·r)) = 0`` inside the range where every ``1 + f·r > 0`` (found by Brent's
    method). For small returns ``f* ≈ mean(r) / mean(r²) ≈ μ/σ²``. Needs both gains and
    losses in the sample (otherwise the optimal bet is unbounded). Multiplied by ``fraction``.
    """
    r = as_float_array("returns", returns, ndim=(1,))
    k = _fraction(fraction)
    if r.size < 2:
        raise ValidationError("returns", f"{r.size} observations", "needs at least 2")
    r_min, r_max = float(r.min()), float(r.max())
    if r_min < -1.0:
        raise ValidationError("returns", r_min, "a simple return cannot be below -1")
    if not (r_min < 0.0 < r_max):
        raise ValidationError(
            "returns", f"min {r_min}, max {r_max}", "needs both gains and losses (else f* = ±∞)"
        )
    mean = float(r.mean())
    if mean == 0.0:
        return 0.0

    def growth_slope(f: float) -> float:
        return float(np.mean(r / (1.0 + f * r)))

    # Bracket [0, edge): the slope is mean(r) at 0 and → −∞ (or +∞) at the ruin edge.
    edge = (-1.0 / r_min) if mean > 0.0 else (-1.0 / r_max)
    end = edge * (1.0 - 1e-12)
    while growth_slope(end) * mean > 0.0:  # only if the ruin term is not yet dominant
        end = edge - (edge - end) / 1e3
        if end == edge:
            return k * edge
    lo, hi = min(0.0, end), max(0.0, end)
    f_star = float(brentq(growth_slope, lo, hi, xtol=1e-14, rtol=1e-15, maxiter=500))
    return k * f_star


def volatility_target_leverage(
    returns: ArrayLike,
    target_vol: float,
    periods_per_year: float,
    *,
    max_leverage: float | None = None,
) -> float:
    """Exposure (fraction of equity) that scales realised volatility to ``target_vol``.

    ``leverage = target_vol / (std(returns, ddof=1) · √periods_per_year)``, e.g. a 20% target
    on an asset with 80% annualised vol gives 0.25. Use the window you trust (e.g. the last
    30 days) as ``returns``. Optionally capped at ``max_leverage``.
    """
    r = as_float_array("returns", returns, ndim=(1,))
    tv = positive_float("target_vol", target_vol)
    ppy = positive_float("periods_per_year", periods_per_year)
    if r.size < 2:
        raise ValidationError("returns", f"{r.size} observations", "needs at least 2")
    vol = float(r.std(ddof=1)) * math.sqrt(ppy)
    if vol <= 0.0:
        raise ValidationError("returns", "constant series", "zero volatility: cannot scale")
    lev = tv / vol
    if max_leverage is not None:
        lev = min(lev, positive_float("max_leverage", max_leverage))
    return lev


def inverse_volatility_weights(vols: ArrayLike) -> FloatArray:
    """Weights ``∝ 1/σ_i`` summing to 1 (pass ``returns.std(axis=0, ddof=1)`` for ``vols``)."""
    v = as_float_array("vols", vols, ndim=(1,))
    if v.size == 0:
        raise ValidationError("vols", "empty", "needs at least one volatility")
    if np.any(v <= 0.0):
        i = int(np.argmin(v))
        raise ValidationError(f"vols[{i}]", float(v[i]), "must be > 0")
    inv = 1.0 / v
    return np.asarray(inv / inv.sum(), dtype=np.float64)


def risk_contributions(weights: ArrayLike, cov: ArrayLike) -> FloatArray:
    """Each weight's share of portfolio variance, ``w_i·(Σw)_i / (wᵀΣw)`` (sums to 1)."""
    c = check_covariance("cov", cov)
    w = as_float_array("weights", weights, ndim=(1,))
    if w.size != c.shape[0]:
        raise ValidationError("weights", f"{w.size} values", f"cov is {c.shape}")
    sw = c @ w
    total = float(w @ sw)
    if total <= 0.0:
        raise ValidationError("weights", "zero-variance portfolio", "contributions undefined")
    return np.asarray(w * sw / total, dtype=np.float64)


def risk_parity_weights(
    cov: ArrayLike,
    budgets: ArrayLike | None = None,
    *,
    tol: float = 1e-12,
    max_iter: int = 100,
) -> RiskParityResult:
    """Long-only equal-risk-contribution (or risk-budget) weights from a covariance matrix.

    Solves Spinu's (2013) convex problem ``min ½xᵀΣx − Σ b_i·ln x_i`` (``x > 0``) by Newton's
    method with a backtracking line search. Its optimum satisfies ``x_i·(Σx)_i = b_i``, so
    ``w = x / Σx`` has risk contributions exactly ``b / Σb``. The solution exists and is unique
    for any PSD ``Σ`` with positive variances; convergence is quadratic (a handful of steps).
    ``budgets`` default to equal; ``tol`` is on ``max |RC_i/b_i − 1|``.
    """
    c = check_covariance("cov", cov)
    n = c.shape[0]
    tol_ = positive_float("tol", tol)
    iters = positive_int("max_iter", max_iter)
    if budgets is None:
        b = np.full(n, 1.0 / n)
    else:
        b = as_float_array("budgets", budgets, ndim=(1,))
        if b.size != n:
            raise ValidationError("budgets", f"{b.size} values", f"cov is {n}×{n}")
        if np.any(b <= 0.0):
            i = int(np.argmin(b))
            raise ValidationError(f"budgets[{i}]", float(b[i]), "must be > 0")
        b = b / b.sum()

    def objective(x: FloatArray) -> float:
        return 0.5 * float(x @ c @ x) - float(b @ np.log(x))

    # Start from the diagonal-covariance solution x_i = sqrt(b_i)/σ_i, best-scaled on its ray.
    x = np.sqrt(b) / np.sqrt(np.diag(c))
    x *= math.sqrt(1.0 / float(x @ c @ x))
    it = 0
    while True:
        cx = c @ x
        err = float(np.max(np.abs(x * cx / b - 1.0)))
        if err <= tol_ or it >= iters:
            break
        grad = cx - b / x
        hess = c + np.diag(b / (x * x))
        step = cho_solve(cho_factor(hess), grad)
        decrement = float(grad @ step)  # Newton decrement squared, > 0 while not optimal
        t = 1.0
        if decrement > 1e-8:  # far from the optimum: backtrack (Armijo) to stay in x > 0
            f0 = objective(x)
            while t > 1e-12:
                trial = x - t * step
                if np.all(trial > 0.0) and objective(trial) <= f0 - 0.25 * t * decrement:
                    break
                t *= 0.5
        trial = x - t * step
        if not np.all(trial > 0.0):  # cannot happen in exact arithmetic; stop, report err
            break
        x = trial
        it += 1
    w = x / x.sum()
    rc = w * (c @ w)
    rc = rc / rc.sum()
    return RiskParityResult(np.asarray(w), np.asarray(rc), it, err <= tol_, err)


def _fraction(fraction: float) -> float:
    """The Kelly multiplier: > 0 (1.0 full Kelly, 0.5 half Kelly)."""
    return positive_float("fraction", fraction)
