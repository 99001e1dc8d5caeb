"""Value at Risk and Expected Shortfall: historical, normal, Cornish-Fisher, Monte Carlo.

Conventions (the same in every function here)
---------------------------------------------
* ``returns`` are **simple** per-period returns (``p_t / p_{t-1} - 1``), float64, one row per
  period: a 1-D series for one position, or a ``T×N`` matrix for ``N`` instruments.
* ``values`` are the signed currency exposures (``+`` long, ``-`` short): a scalar for one
  position, or an ``N`` vector. The P&L of a period is ``returns @ values`` (the exposure is
  held constant over the horizon).
* VaR and ES are **losses, reported as positive currency amounts**: ``VaR = 1000`` means "with
  probability ``confidence`` we lose at most 1000 over ``horizon`` periods". They can only come
  out negative when even the tail of the distribution is a gain (a huge drift).
* ``confidence`` is the VaR level ``α`` in (0, 1), e.g. 0.99; ``horizon`` is a number of periods
  of the returns' own frequency.
* The expected return is part of the parametric figures (``VaR = z·σ·|V|·√h − μ·V·h``) unless
  ``include_mean=False``, in which case ``μ`` is taken as 0 (common for 1-day crypto risk).

Horizon
-------
* Parametric (normal, Cornish-Fisher) and Monte Carlo: i.i.d. returns, so the mean scales with
  ``h`` and the standard deviation with ``√h``; Cornish-Fisher also scales skew by ``1/√h`` and
  excess kurtosis by ``1/h`` (the moments of a sum of ``h`` i.i.d. draws).
* Historical, default ``scaling="overlapping"``: each scenario is an overlapping ``h``-period
  compounded return ``prod(1 + r) - 1`` per instrument (buy-and-hold over the window). This
  keeps the fat tails and volatility clustering of the data, at the price of dependent
  scenarios (``T - h + 1`` of them). ``scaling="sqrt_time"`` uses one-period scenarios and
  multiplies by ``√h`` instead (the Basel shortcut).

Quantile convention (historical and Monte Carlo)
------------------------------------------------
With the ``n`` scenario losses sorted ascending ``L(1) <= ... <= L(n)``, ``VaR = L(k)`` with
``k = ceil(n·α)``: the smallest loss whose empirical CDF reaches ``α`` (numpy's
``method="inverted_cdf"``). For ``n = 250, α = 0.99``: ``k = 248``, the 3rd-worst loss.
``ES`` is the exact tail integral of that empirical distribution,
``ES = (L(k+1) + ... + L(n) + (k - n·α)·L(k)) / (n·(1 - α))``, which is coherent and ``>= VaR``.
Historical VaR needs ``n >= ceil(1 / (1 - α))`` scenarios (100 at 99%, 20 at 95%).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import ndtri

from lyra.core.errors import ValidationError
from lyra.risk._validate import (
    FloatArray,
    as_float_array,
    check_covariance,
    check_finite,
    open_unit,
    positive_int,
)

#: Fewest observations each parametric/simulation method accepts (historical: see module doc).
MIN_OBS_NORMAL = 2
MIN_OBS_CORNISH_FISHER = 4
MIN_OBS_MONTE_CARLO = 2


class VaRMethod(StrEnum):
    """How the loss distribution is estimated."""

    HISTORICAL = "historical"  #: empirical quantile of past P&L scenarios
    NORMAL = "normal"  #: parametric normal with the sample mean and covariance
    CORNISH_FISHER = "cornish_fisher"  #: normal quantile adjusted for skew and kurtosis
    MONTE_CARLO = "monte_carlo"  #: multivariate-normal simulation (Cholesky of the covariance)


class HorizonScaling(StrEnum):
    """How historical VaR goes from one period to ``horizon`` periods."""

    OVERLAPPING = "overlapping"  #: overlapping compounded h-period returns (model-free)
    SQRT_TIME = "sqrt_time"  #: one-period figure times sqrt(h)


@dataclass(frozen=True, slots=True)
class VaRResult:
    """VaR and ES of one estimate, both positive losses in the currency of ``values``."""

    var: float  #: Value at Risk
    es: float  #: Expected Shortfall (mean loss beyond VaR)
    confidence: float  #: VaR level α
    horizon: int  #: periods
    method: VaRMethod  #: estimator used
    n_obs: int  #: observations (historical: scenarios; Monte Carlo: paths) behind the figure


@dataclass(frozen=True, slots=True)
class VaRDecomposition:
    """Parametric-normal VaR/ES split by position (Euler allocation).

    ``component_var.sum() == var`` and ``component_es.sum() == es`` (to float rounding),
    because normal VaR is homogeneous of degree 1 in the exposures.
    """

    var: float
    es: float
    marginal_var: FloatArray  #: dVaR/dV_i: VaR added per unit of currency in position i
    component_var: FloatArray  #: V_i · marginal_var_i
    marginal_es: FloatArray
    component_es: FloatArray


@dataclass(frozen=True, slots=True)
class IncrementalVaR:
    """Normal VaR of the portfolio before and after a proposed change."""

    var_before: float
    var_after: float
    incremental: float  #: var_after - var_before (positive: the order adds risk)
    first_order: float  #: marginal VaR · delta, the linear estimate of ``incremental``


@dataclass(frozen=True)
class CovarianceModel:
    """Sample mean vector and covariance of ``N`` instruments, computed once and reused.

    Build it with :meth:`from_returns` (``O(T·N²)``), then every VaR figure from it costs
    ``O(N²)``: this is what a pre-trade check should hold on to. The arrays are read-only.
    """

    mean: FloatArray
    cov: FloatArray
    n_obs: int
    _factor: list[FloatArray] = field(default_factory=list, init=False, repr=False, compare=False)

    @classmethod
    def from_returns(cls, returns: ArrayLike) -> CovarianceModel:
        """Estimate from a ``T×N`` (or length-``T``) simple-returns array; needs ``T >= 2``."""
        r = _returns_matrix(returns)
        _need_obs(r.shape[0], MIN_OBS_NORMAL, "normal/Monte Carlo")
        mean = r.mean(axis=0)
        centred = r - mean
        cov = centred.T @ centred / (r.shape[0] - 1)
        cov = (cov + cov.T) / 2.0  # exact symmetry for Cholesky / quadratic forms
        mean.flags.writeable = False
        cov.flags.writeable = False
        return cls(mean=mean, cov=cov, n_obs=int(r.shape[0]))

    @classmethod
    def from_covariance(cls, mean: ArrayLike, cov: ArrayLike, n_obs: int = 0) -> CovarianceModel:
        """Wrap an externally estimated mean and covariance (e.g. EWMA); ``cov`` must be PSD."""
        c = check_covariance("cov", cov).copy()
        m = as_float_array("mean", mean, ndim=(1,)).copy()
        if m.shape[0] != c.shape[0]:
            raise ValidationError("mean", f"{m.shape[0]} values", f"cov is {c.shape}")
        c = (c + c.T) / 2.0
        m.flags.writeable = False
        c.flags.writeable = False
        return cls(mean=m, cov=c, n_obs=int(n_obs))

    @property
    def n_assets(self) -> int:
        return int(self.mean.shape[0])

    def factor(self) -> FloatArray:
        """``F`` with ``F @ F.T == cov``: Cholesky, or an eigen-factor if ``cov`` is singular."""
        if not self._factor:
            self._factor.append(_cov_factor(self.cov))
        return self._factor[0]


# ----------------------------------------------------------------------------- public API


def value_at_risk(
    returns: ArrayLike | CovarianceModel,
    values: ArrayLike,
    *,
    method: VaRMethod | str = VaRMethod.HISTORICAL,
    confidence: float = 0.95,
    horizon: int = 1,
    scaling: HorizonScaling | str = HorizonScaling.OVERLAPPING,
    include_mean: bool = True,
    n_paths: int = 100_000,
    seed: int | np.random.Generator = 0,
) -> VaRResult:
    """VaR and ES with the chosen ``method``; see the four functions it dispatches to."""
    try:
        m = VaRMethod(method)
    except ValueError:
        raise ValidationError(
            "method", method, "unknown VaR method", f"one of {[x.value for x in VaRMethod]}"
        ) from None
    if m is VaRMethod.HISTORICAL:
        if isinstance(returns, CovarianceModel):
            raise ValidationError("returns", "CovarianceModel", "historical VaR needs returns")
        return historical_var(returns, values, confidence=confidence, horizon=horizon, scaling=scaling)
    if m is VaRMethod.NORMAL:
        return normal_var(returns, values, confidence=confidence, horizon=horizon, include_mean=include_mean)
    if m is VaRMethod.CORNISH_FISHER:
        if isinstance(returns, CovarianceModel):
            raise ValidationError("returns", "CovarianceModel", "Cornish-Fisher needs returns")
        return cornish_fisher_var(
            returns, values, confidence=confidence, horizon=horizon, include_mean=include_mean
        )
    return monte_carlo_var(
        returns,
        values,
        confidence=confidence,
        horizon=horizon,
        include_mean=include_mean,
        n_paths=n_paths,
        seed=seed,
    )


def historical_var(
    returns: ArrayLike,
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    horizon: int = 1,
    scaling: HorizonScaling | str = HorizonScaling.OVERLAPPING,
) -> VaRResult:
    """Historical-simulation VaR/ES: re-price today's exposures on every past period.

    Needs ``ceil(1/(1-confidence))`` scenarios, i.e. ``T >= that + horizon - 1`` rows with
    overlapping scaling. Cost ``O(T·N)`` (``O(T·N·h)`` for overlapping windows).
    """
    alpha = open_unit("confidence", confidence)
    h = positive_int("horizon", horizon)
    try:
        mode = HorizonScaling(scaling)
    except ValueError:
        raise ValidationError(
            "scaling", scaling, "unknown", f"one of {[x.value for x in HorizonScaling]}"
        ) from None
    r, v = _returns_and_values(returns, values)
    need = min_historical_obs(alpha)
    if h > 1 and mode is HorizonScaling.OVERLAPPING:
        _need_obs(r.shape[0], need + h - 1, f"historical VaR at {alpha} over {h} periods")
        windows = np.lib.stride_tricks.sliding_window_view(1.0 + r, h, axis=0)
        pnl = (windows.prod(axis=-1) - 1.0) @ v
        factor = 1.0
    else:
        _need_obs(r.shape[0], need, f"historical VaR at {alpha}")
        pnl = r @ v
        factor = math.sqrt(h)
    var, es = empirical_var_es(-pnl, alpha)
    return VaRResult(factor * var, factor * es, alpha, h, VaRMethod.HISTORICAL, int(pnl.size))


def normal_var(
    returns: ArrayLike | CovarianceModel,
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    horizon: int = 1,
    include_mean: bool = True,
) -> VaRResult:
    """Parametric normal VaR/ES: ``VaR = z_α·σ_P·√h − μ_P·h``, ``ES = σ_P·√h·φ(z_α)/(1−α) − μ_P·h``.

    ``σ_P`` and ``μ_P`` are the std and mean of the P&L ``returns @ values`` (equal to
    ``sqrt(vᵀΣv)`` and ``vᵀμ`` with the sample covariance, so correlations count). With
    returns this costs ``O(T·N)``; with a :class:`CovarianceModel` ``O(N²)``.
    """
    alpha = open_unit("confidence", confidence)
    h = positive_int("horizon", horizon)
    mu_p, sd_p, n = _pnl_moments(returns, values)
    if not include_mean:
        mu_p = 0.0
    z = float(ndtri(alpha))
    sq = math.sqrt(h)
    var = z * sd_p * sq - mu_p * h
    es = sd_p * sq * _phi(z) / (1.0 - alpha) - mu_p * h
    return VaRResult(var, es, alpha, h, VaRMethod.NORMAL, n)


def cornish_fisher_z(confidence: float, skew: float, excess_kurtosis: float) -> float:
    """The Cornish-Fisher adjusted standard quantile of a **loss** distribution.

    ``z + (z²−1)·S/6 + (z³−3z)·K/24 − (2z³−5z)·S²/36`` with ``z = Φ⁻¹(confidence)``; ``S`` is
    the skew of the loss (minus the skew of the P&L) and ``K`` the excess kurtosis. With
    ``S = K = 0`` it is the normal quantile. The expansion is only a sensible quantile for
    moderate ``|S|`` and ``K`` (it stops being monotone in ``confidence`` otherwise).
    """
    alpha = open_unit("confidence", confidence)
    z = float(ndtri(alpha))
    return _cf_poly(z, float(skew), float(excess_kurtosis))


def cornish_fisher_var(
    returns: ArrayLike,
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    horizon: int = 1,
    include_mean: bool = True,
) -> VaRResult:
    """Modified (Cornish-Fisher) VaR/ES from the P&L's mean, std, skew and excess kurtosis.

    Moments are the bias-corrected sample ones (as ``scipy.stats.skew/kurtosis(bias=False)``),
    so at least 4 observations are needed. ES integrates the adjusted quantile over the tail
    in closed form (normal partial moments), so with zero skew and kurtosis it is the normal ES.
    """
    alpha = open_unit("confidence", confidence)
    h = positive_int("horizon", horizon)
    r, v = _returns_and_values(returns, values)
    _need_obs(r.shape[0], MIN_OBS_CORNISH_FISHER, "Cornish-Fisher VaR")
    pnl = r @ v
    n = pnl.size
    mu = float(pnl.mean())
    d = pnl - mu
    m2 = float(np.mean(d * d))
    sd = math.sqrt(m2 * n / (n - 1))
    if m2 > 0.0:
        g1 = float(np.mean(d**3)) / m2**1.5
        g2 = float(np.mean(d**4)) / m2**2 - 3.0
        skew = g1 * math.sqrt(n * (n - 1)) / (n - 2)
        kurt = ((n + 1) * g2 + 6.0) * (n - 1) / ((n - 2) * (n - 3))
    else:
        skew = kurt = 0.0
    s_loss = -skew / math.sqrt(h)
    k_loss = kurt / h
    if not include_mean:
        mu = 0.0
    z = float(ndtri(alpha))
    sq = math.sqrt(h)
    var = sd * sq * _cf_poly(z, s_loss, k_loss) - mu * h
    # ∫_{z_α}^∞ cf(z)·φ(z) dz via the normal partial moments M_k = ∫_a^∞ z^k φ(z) dz.
    phi = _phi(z)
    m0 = 1.0 - alpha
    m1 = phi
    m2_ = z * phi + m0
    m3 = z * z * phi + 2.0 * m1
    tail = (
        m1
        + s_loss / 6.0 * (m2_ - m0)
        + k_loss / 24.0 * (m3 - 3.0 * m1)
        - s_loss**2 / 36.0 * (2.0 * m3 - 5.0 * m1)
    )
    es = sd * sq * tail / (1.0 - alpha) - mu * h
    return VaRResult(var, es, alpha, h, VaRMethod.CORNISH_FISHER, n)


def monte_carlo_var(
    returns: ArrayLike | CovarianceModel,
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    horizon: int = 1,
    n_paths: int = 100_000,
    seed: int | np.random.Generator = 0,
    include_mean: bool = True,
    chunk_paths: int = 20_000,
) -> VaRResult:
    """Monte Carlo VaR/ES: ``n_paths`` draws of ``X = μ·h + √h·F·Z``, ``F Fᵀ = Σ``, ``Z ~ N(0, I)``.

    ``F`` is the Cholesky factor of the sample covariance (an eigen-factor when ``Σ`` is
    singular, e.g. ``T <= N``). The portfolio P&L of a path is ``vᵀX = vᵀμ·h + √h·(Fᵀv)ᵀZ``;
    we contract ``Fᵀv`` once, so a path costs ``O(N)`` instead of ``O(N²)`` and the scenarios
    are the same as materialising ``X``. Deterministic for a given ``seed`` (default 0).
    Draws are made in chunks of ``chunk_paths`` to bound memory (``chunk_paths·N·8`` bytes).
    VaR/ES use the empirical quantile convention of the module doc.
    """
    alpha = open_unit("confidence", confidence)
    h = positive_int("horizon", horizon)
    paths = positive_int("n_paths", n_paths)
    chunk = positive_int("chunk_paths", chunk_paths)
    model = _as_model(returns, MIN_OBS_MONTE_CARLO, "Monte Carlo VaR")
    v = _values_for(model, values)
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    b = model.factor().T @ v
    k = b.shape[0]
    mu_p = float(model.mean @ v) if include_mean else 0.0
    pnl = np.empty(paths)
    done = 0
    while done < paths:
        m = min(chunk, paths - done)
        z = rng.standard_normal((m, k))
        pnl[done : done + m] = z @ b
        done += m
    pnl *= math.sqrt(h)
    pnl += mu_p * h
    var, es = empirical_var_es(-pnl, alpha)
    return VaRResult(var, es, alpha, h, VaRMethod.MONTE_CARLO, paths)


def component_var(
    returns: ArrayLike | CovarianceModel,
    values: ArrayLike,
    *,
    confidence: float = 0.95,
    horizon: int = 1,
    include_mean: bool = True,
) -> VaRDecomposition:
    """Marginal and component (Euler) normal VaR/ES of each position.

    ``marginal_i = z·√h·(Σv)_i/σ_P − μ_i·h`` and ``component_i = v_i·marginal_i``; the
    components add up to the portfolio figure exactly (Euler's theorem). Raises if the
    portfolio has zero variance (the split is then undefined).
    """
    alpha = open_unit("confidence", confidence)
    h = positive_int("horizon", horizon)
    model = returns if isinstance(returns, CovarianceModel) else _as_model(returns, 2, "VaR")
    v = _values_for(model, values)
    sv = model.cov @ v
    var_p = float(v @ sv)
    if not var_p > 0.0:
        raise ValidationError("values", "zero-variance portfolio", "Euler allocation undefined")
    sd_p = math.sqrt(var_p)
    mu = model.mean if include_mean else np.zeros_like(model.mean)
    z = float(ndtri(alpha))
    sq = math.sqrt(h)
    k_es = _phi(z) / (1.0 - alpha)
    beta = sv / sd_p  # dσ_P/dv
    m_var = z * sq * beta - mu * h
    m_es = k_es * sq * beta - mu * h
    mu_p = float(mu @ v)
    return VaRDecomposition(
        var=z * sd_p * sq - mu_p * h,
        es=k_es * sd_p * sq - mu_p * h,
        marginal_var=m_var,
        component_var=v * m_var,
        marginal_es=m_es,
        component_es=v * m_es,
    )


def incremental_var(
    current_values: ArrayLike,
    order_delta_values: ArrayLike,
    model: CovarianceModel,
    *,
    confidence: float = 0.95,
    horizon: int = 1,
    include_mean: bool = True,
) -> IncrementalVaR:
    """Normal VaR with and without a proposed change, for a pre-trade check.

    ``current_values`` and ``order_delta_values`` are ``N`` exposures ordered like ``model``
    (put 0 for instruments not held / not traded). Costs two ``N×N`` mat-vecs, no pass over
    the returns history: build the :class:`CovarianceModel` once and keep it.
    """
    alpha = open_unit("confidence", confidence)
    h = positive_int("horizon", horizon)
    v = _values_for(model, current_values, "current_values")
    d = _values_for(model, order_delta_values, "order_delta_values")
    sv = model.cov @ v
    sd = model.cov @ d
    var_b = float(v @ sv)
    var_a = float((v + d) @ (sv + sd))
    z = float(ndtri(alpha))
    sq = math.sqrt(h)
    mu_v = float(model.mean @ v) if include_mean else 0.0
    mu_d = float(model.mean @ d) if include_mean else 0.0
    sd_b = math.sqrt(max(var_b, 0.0))
    before = z * sq * sd_b - mu_v * h
    after = z * sq * math.sqrt(max(var_a, 0.0)) - (mu_v + mu_d) * h
    # The linear estimate uses the marginal VaR; at a zero-risk book it is |Δ|-driven instead.
    first = z * sq * float(sv @ d) / sd_b - mu_d * h if sd_b > 0.0 else after - before
    return IncrementalVaR(before, after, after - before, first)


def empirical_var_es(losses: ArrayLike, confidence: float) -> tuple[float, float]:
    """VaR and ES of a sample of losses with the module's quantile convention (``O(n)``)."""
    alpha = open_unit("confidence", confidence)
    arr = np.asarray(losses, dtype=np.float64).ravel()
    check_finite("losses", arr)
    n = arr.size
    if n == 0:
        raise ValidationError("losses", "empty", "needs at least one scenario")
    # The 1e-9 guards float noise such as 100 * 0.95 = 95.00000000000001.
    k = min(max(math.ceil(n * alpha - 1e-9), 1), n)
    part = np.partition(arr, k - 1)
    var = float(part[k - 1])
    weight = max(k - n * alpha, 0.0)
    es = (float(part[k:].sum()) + weight * var) / (n * (1.0 - alpha))
    return var, es


def min_historical_obs(confidence: float) -> int:
    """Fewest scenarios historical VaR accepts: ``ceil(1/(1−α))`` (one expected tail event)."""
    alpha = open_unit("confidence", confidence)
    return math.ceil(1.0 / (1.0 - alpha) - 1e-9)


# ----------------------------------------------------------------------------- internals


def _phi(z: float) -> float:
    """Standard normal density (scipy.stats.norm.pdf costs ~30 µs a call; this ~0.1 µs)."""
    return math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _cf_poly(z: float, s: float, k: float) -> float:
    return z + (z * z - 1.0) * s / 6.0 + (z**3 - 3.0 * z) * k / 24.0 - (2.0 * z**3 - 5.0 * z) * s * s / 36.0


def _returns_matrix(returns: ArrayLike) -> FloatArray:
    r = as_float_array("returns", returns, ndim=(1, 2))
    if r.ndim == 1:
        r = r[:, None]
    if r.shape[1] == 0:
        raise ValidationError("returns", f"array of shape {r.shape}", "has no instruments")
    if r.size and float(r.min()) < -1.0:
        pos = np.unravel_index(int(np.argmin(r)), r.shape)
        raise ValidationError(
            f"returns[{pos[0]}, {pos[1]}]",
            float(r[pos]),
            "a simple return cannot be below -1 (-100%)",
            "pass simple returns, not log returns or prices",
        )
    return r


def _returns_and_values(returns: ArrayLike, values: ArrayLike) -> tuple[FloatArray, FloatArray]:
    raw_ndim = np.ndim(returns)
    r = _returns_matrix(returns)
    v = as_float_array("values", values, ndim=(0, 1)).reshape(-1)
    if raw_ndim == 1 and np.ndim(values) != 0 and v.size != 1:
        raise ValidationError("values", f"{v.size} values", "a 1-D returns series needs one value")
    if v.size != r.shape[1]:
        raise ValidationError(
            "values",
            f"{v.size} values",
            f"must match the {r.shape[1]} columns of returns (shape {r.shape})",
        )
    return r, v


def _need_obs(have: int, need: int, what: str) -> None:
    if have < need:
        raise ValidationError(
            "returns", f"{have} observations", f"{what} needs at least {need}", "use more history"
        )


def _as_model(returns: ArrayLike | CovarianceModel, need: int, what: str) -> CovarianceModel:
    if isinstance(returns, CovarianceModel):
        return returns
    r = _returns_matrix(returns)
    _need_obs(r.shape[0], need, what)
    return CovarianceModel.from_returns(r)


def _values_for(model: CovarianceModel, values: ArrayLike, name: str = "values") -> FloatArray:
    v = as_float_array(name, values, ndim=(0, 1)).reshape(-1)
    if v.size != model.n_assets:
        raise ValidationError(
            name, f"{v.size} values", f"must match the model's {model.n_assets} instruments"
        )
    return v


def _pnl_moments(returns: ArrayLike | CovarianceModel, values: ArrayLike) -> tuple[float, float, int]:
    """Mean and std (ddof=1) of the one-period P&L, and the observation count."""
    if isinstance(returns, CovarianceModel):
        v = _values_for(returns, values)
        return (
            float(returns.mean @ v),
            math.sqrt(max(float(v @ returns.cov @ v), 0.0)),
            returns.n_obs,
        )
    r, v = _returns_and_values(returns, values)
    _need_obs(r.shape[0], MIN_OBS_NORMAL, "normal VaR")
    pnl = r @ v
    return float(pnl.mean()), float(pnl.std(ddof=1)), int(pnl.size)


def _cov_factor(cov: FloatArray) -> FloatArray:
    try:
        return np.asarray(np.linalg.cholesky(cov), dtype=np.float64)
    except np.linalg.LinAlgError:
        # Singular covariance (T <= N, collinear instruments): F = U·sqrt(max(λ, 0)).
        lam, vec = np.linalg.eigh(cov)
        keep = lam > lam[-1] * 1e-12
        return np.asarray(vec[:, keep] * np.sqrt(lam[keep]), dtype=np.float64)
