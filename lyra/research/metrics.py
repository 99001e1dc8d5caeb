"""Performance metrics in plain numpy.

Conventions (the same as vectorbt's where both have the metric, and checked against it in
the tests):

- ``returns`` are per-bar simple returns of the equity curve, the first one measured from
  the initial cash: ``r[0] = (v[0] - init) / init``, ``r[i] = (v[i] - v[i-1]) / v[i-1]``.
- ``ann_factor`` is the number of bars in a year of 365 days (:func:`ann_factor`).
- Ratios use the sample standard deviation (ddof=1). A zero denominator gives ``inf``
  (or ``nan`` when the numerator is zero too).
- ``max_drawdown`` is a positive fraction (0.25 = the equity fell 25 % from a peak);
  ``max_drawdown_duration`` is the longest run of bars spent below a previous peak.
- Trade statistics use closed trades only; ``n_trades`` counts the open one too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from lyra.core.errors import ValidationError

F64 = NDArray[np.float64]

#: Metrics where smaller is better (sweeps rank them ascending).
LOWER_IS_BETTER = frozenset(
    {"max_drawdown", "max_drawdown_duration", "annualized_volatility", "fees_paid", "turnover"}
)

#: Every metric :func:`compute_metrics` returns, in display order.
METRIC_NAMES: tuple[str, ...] = (
    "total_return",
    "annualized_return",
    "annualized_volatility",
    "sharpe",
    "sortino",
    "calmar",
    "max_drawdown",
    "max_drawdown_duration",
    "n_trades",
    "win_rate",
    "profit_factor",
    "expectancy",
    "exposure",
    "turnover",
    "fees_paid",
    "final_equity",
)


def _arr(name: str, x: ArrayLike) -> F64:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValidationError(name, f"shape {a.shape}", "must be one-dimensional")
    return a


def ann_factor(freq: str | pd.Timedelta, year: str = "365 days") -> float:
    """Bars per year for a bar length ``freq`` ("1h", "1d", a Timedelta)."""
    try:
        td = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise ValidationError("freq", freq, "not a bar length", "use e.g. '1h', '1d'") from exc
    if td <= pd.Timedelta(0):
        raise ValidationError("freq", freq, "must be positive")
    return float(pd.Timedelta(year) / td)


def returns_from_equity(equity: ArrayLike, init_cash: float) -> F64:
    """Per-bar simple returns, the first measured from ``init_cash``."""
    v = _arr("equity", equity)
    prev = np.concatenate(([float(init_cash)], v[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (v - prev) / prev


def total_return(equity: ArrayLike, init_cash: float) -> float:
    """Final equity over initial cash, minus one."""
    v = _arr("equity", equity)
    return float((v[-1] - init_cash) / init_cash) if v.size else float("nan")


def annualized_return(returns: ArrayLike, ann_factor: float) -> float:
    """Compound annual growth rate: ``prod(1 + r) ** (ann_factor / n) - 1``."""
    r = _arr("returns", returns)
    if r.size == 0:
        return float("nan")
    return float(np.prod(1.0 + r) ** (ann_factor / r.size) - 1.0)


def annualized_volatility(returns: ArrayLike, ann_factor: float) -> float:
    """Sample standard deviation of returns times ``sqrt(ann_factor)``."""
    r = _arr("returns", returns)
    if r.size < 2:
        return float("nan")
    return float(np.std(r, ddof=1) * np.sqrt(ann_factor))


def _ratio(num: float, den: float) -> float:
    if den == 0.0:
        return float("nan") if num == 0.0 else float("inf") * np.sign(num)
    return num / den


def sharpe_ratio(returns: ArrayLike, ann_factor: float, risk_free: float = 0.0) -> float:
    """``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ann_factor)`` (rf per bar)."""
    r = _arr("returns", returns) - risk_free
    if r.size < 2:
        return float("nan")
    sd = float(np.std(r, ddof=1))
    if sd == 0.0:
        return float("inf")  # vectorbt's convention for a riskless curve
    return float(np.mean(r) / sd * np.sqrt(ann_factor))


def sortino_ratio(returns: ArrayLike, ann_factor: float, required_return: float = 0.0) -> float:
    """Annualised mean excess return over the annualised downside deviation
    ``sqrt(mean(min(r - req, 0)^2))``."""
    r = _arr("returns", returns) - required_return
    if r.size < 2:
        return float("nan")
    down = np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * np.sqrt(ann_factor)
    if down == 0.0:
        return float("inf")
    return float(np.mean(r) * ann_factor / down)


def drawdown_series(equity: ArrayLike) -> F64:
    """``equity / running peak - 1`` (zero or negative)."""
    v = _arr("equity", equity)
    return v / np.maximum.accumulate(v) - 1.0


def max_drawdown(equity: ArrayLike) -> float:
    """Largest fall from a peak, as a positive fraction."""
    v = _arr("equity", equity)
    if v.size == 0:
        return float("nan")
    return float(-np.min(drawdown_series(v)))


def max_drawdown_duration(equity: ArrayLike) -> int:
    """Longest run of consecutive bars strictly below the running peak."""
    v = _arr("equity", equity)
    below = v < np.maximum.accumulate(v)
    if not below.any():
        return 0
    # Lengths of runs of True: split at the False positions.
    idx = np.flatnonzero(np.diff(np.concatenate(([0], below.astype(np.int8), [0]))))
    return int((idx[1::2] - idx[0::2]).max())


def calmar_ratio(returns: ArrayLike, ann_factor: float) -> float:
    """Annualised return over the maximum drawdown of the compounded returns."""
    r = _arr("returns", returns)
    mdd = max_drawdown(np.cumprod(1.0 + r))
    if mdd == 0.0:
        return float("nan")
    return float(annualized_return(r, ann_factor) / mdd)


def win_rate(pnl: ArrayLike) -> float:
    """Share of closed trades with a positive P&L."""
    p = _arr("pnl", pnl)
    return float(np.mean(p > 0)) if p.size else float("nan")


def profit_factor(pnl: ArrayLike) -> float:
    """Gross profit over gross loss of closed trades (inf with no losing trade)."""
    p = _arr("pnl", pnl)
    if p.size == 0:
        return float("nan")
    return _ratio(float(p[p > 0].sum()), float(-p[p < 0].sum()))


def expectancy(pnl: ArrayLike) -> float:
    """Mean P&L per closed trade, in quote currency."""
    p = _arr("pnl", pnl)
    return float(np.mean(p)) if p.size else float("nan")


def exposure(position: ArrayLike) -> float:
    """Share of bars that end with an open position."""
    p = _arr("position", position)
    return float(np.mean(p != 0)) if p.size else float("nan")


def turnover(traded_notional: ArrayLike, equity: ArrayLike) -> float:
    """Total traded notional over the mean equity (2.0 = the book was bought and sold once)."""
    return float(np.sum(_arr("traded_notional", traded_notional)) / np.mean(_arr("equity", equity)))


def fees_paid(fees: ArrayLike) -> float:
    """Sum of fees paid, in quote currency."""
    return float(np.sum(_arr("fees", fees)))


def compute_metrics(
    equity: ArrayLike,
    init_cash: float,
    ann: float,
    *,
    trade_pnl: ArrayLike = (),
    n_open_trades: int = 0,
    position: ArrayLike = (),
    traded_notional: ArrayLike = (),
    fees: ArrayLike = (),
) -> dict[str, Any]:
    """Every metric of :data:`METRIC_NAMES` from an equity curve and its trades."""
    v = _arr("equity", equity)
    r = returns_from_equity(v, init_cash)
    pnl = _arr("trade_pnl", trade_pnl)
    ar = annualized_return(r, ann)
    mdd = max_drawdown(v)
    return {
        "total_return": total_return(v, init_cash),
        "annualized_return": ar,
        "annualized_volatility": annualized_volatility(r, ann),
        "sharpe": sharpe_ratio(r, ann),
        "sortino": sortino_ratio(r, ann),
        "calmar": float("nan") if mdd == 0 else ar / mdd,
        "max_drawdown": mdd,
        "max_drawdown_duration": max_drawdown_duration(v),
        "n_trades": int(pnl.size + n_open_trades),
        "win_rate": win_rate(pnl),
        "profit_factor": profit_factor(pnl),
        "expectancy": expectancy(pnl),
        "exposure": exposure(position),
        "turnover": turnover(traded_notional, v) if np.size(traded_notional) else 0.0,
        "fees_paid": fees_paid(fees),
        "final_equity": float(v[-1]),
    }
