"""Performance figures of an equity curve, in plain numpy (conventions: ``lyra.analytics``)."""

from __future__ import annotations

from dataclasses import dataclass
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

_MS_PER_DAY = 86_400_000


@dataclass(frozen=True, slots=True)
class Conventions:
    """The stated, configurable choices: a year of ``year_days`` days (365: crypto trades
    every day), a per-period risk-free rate and a per-period required return (Sortino)."""

    year_days: float = 365.0
    risk_free: float = 0.0
    required_return: float = 0.0

    def __post_init__(self) -> None:
        if not np.isfinite(self.year_days) or self.year_days <= 0:
            raise ValidationError("year_days", self.year_days, "must be a positive number of days")

    @property
    def year(self) -> pd.Timedelta:
        return pd.Timedelta(days=self.year_days)


DEFAULT = Conventions()


def _arr(name: str, x: ArrayLike) -> F64:
    a = np.asarray(x, dtype=np.float64)
    if a.ndim != 1:
        raise ValidationError(name, f"shape {a.shape}", "must be one-dimensional")
    return a


def ann_factor(freq: str | pd.Timedelta, year: str | pd.Timedelta = "365 days") -> float:
    """Periods per year for a period length ``freq`` ("1h", "1d", a Timedelta)."""
    try:
        td = pd.Timedelta(freq)
    except (ValueError, TypeError) as exc:
        raise ValidationError("freq", freq, "not a bar length", "use e.g. '1h', '1d'") from exc
    if td <= pd.Timedelta(0):
        raise ValidationError("freq", freq, "must be positive")
    return float(pd.Timedelta(year) / td)


def periods_per_year(ts_ms: ArrayLike, conventions: Conventions = DEFAULT) -> float:
    """Periods per year of a curve sampled at ``ts_ms`` (epoch ms): a year over the median
    spacing of distinct timestamps. ``nan`` with fewer than two distinct times."""
    d = np.diff(np.asarray(ts_ms, dtype=np.int64))
    d = d[d > 0]
    return float(conventions.year_days * _MS_PER_DAY / float(np.median(d))) if d.size else float("nan")


def session_curve(curve: pd.DataFrame, start_equity: float | None = None) -> tuple[F64, float, F64]:
    """(equity, init, ts) of a session's snapshots (columns ``ts``, ``equity``): snapshots
    sharing a timestamp are one point (the last); without ``start_equity`` the first snapshot
    is the start and only later ones make returns."""
    c = curve.drop_duplicates("ts", keep="last") if len(curve) else curve
    v = c["equity"].to_numpy(dtype=np.float64)
    ts = c["ts"].to_numpy(dtype=np.int64)
    if start_equity is None:
        if v.size == 0:
            return v, float("nan"), ts
        return v[1:], float(v[0]), ts
    return v, float(start_equity), ts


def returns_from_equity(equity: ArrayLike, init_cash: float) -> F64:
    """Per-period simple returns, the first measured from ``init_cash``."""
    v = _arr("equity", equity)
    prev = np.concatenate(([float(init_cash)], v[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        return (v - prev) / prev


def total_return(equity: ArrayLike, init_cash: float) -> float:
    """Final equity over the starting equity, minus one."""
    v = _arr("equity", equity)
    return float((v[-1] - init_cash) / init_cash) if v.size else float("nan")


def annualized_return(returns: ArrayLike, ann_factor: float) -> float:
    """CAGR: ``prod(1 + r) ** (ann_factor / n) - 1``."""
    r = _arr("returns", returns)
    if r.size == 0:
        return float("nan")
    with np.errstate(over="ignore"):  # a huge growth over a short curve: inf, not a warning
        return float(np.prod(1.0 + r) ** (ann_factor / r.size) - 1.0)


def annualized_volatility(returns: ArrayLike, ann_factor: float) -> float:
    """Sample standard deviation of returns times ``sqrt(ann_factor)``."""
    r = _arr("returns", returns)
    if r.size < 2:
        return float("nan")
    return float(np.std(r, ddof=1) * np.sqrt(ann_factor))


def _ratio(num: float, den: float) -> float:
    if den == 0.0:
        return float("nan") if num == 0.0 else float(np.copysign(np.inf, num))
    return num / den


def sharpe_ratio(returns: ArrayLike, ann_factor: float, risk_free: float = 0.0) -> float:
    """``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ann_factor)`` (``rf`` per period)."""
    r = _arr("returns", returns) - risk_free
    if r.size < 2:
        return float("nan")
    return float(_ratio(float(np.mean(r)), float(np.std(r, ddof=1))) * np.sqrt(ann_factor))


def sortino_ratio(returns: ArrayLike, ann_factor: float, required_return: float = 0.0) -> float:
    """Annualised mean excess return over the annualised downside deviation
    ``sqrt(mean(min(r - req, 0)^2))``."""
    r = _arr("returns", returns) - required_return
    if r.size < 2:
        return float("nan")
    down = float(np.sqrt(np.mean(np.minimum(r, 0.0) ** 2)) * np.sqrt(ann_factor))
    return float(_ratio(float(np.mean(r) * ann_factor), down))


def drawdown_series(equity: ArrayLike) -> F64:
    """The underwater curve ``equity / running peak - 1`` (zero or negative)."""
    v = _arr("equity", equity)
    return v / np.maximum.accumulate(v) - 1.0


def max_drawdown(equity: ArrayLike) -> float:
    """Largest fall from a peak, as a positive fraction (0.25 = 25 % below the peak)."""
    v = _arr("equity", equity)
    if v.size == 0:
        return float("nan")
    return float(-np.min(drawdown_series(v)))


def max_drawdown_duration(equity: ArrayLike) -> int:
    """Longest run of consecutive periods strictly below the running peak."""
    v = _arr("equity", equity)
    below = v < np.maximum.accumulate(v)
    if not below.any():
        return 0
    idx = np.flatnonzero(np.diff(np.concatenate(([0], below.astype(np.int8), [0]))))
    return int((idx[1::2] - idx[0::2]).max())


def calmar_ratio(returns: ArrayLike, ann_factor: float) -> float:
    """CAGR over the maximum drawdown of the compounded returns (``nan`` without one)."""
    r = _arr("returns", returns)
    mdd = max_drawdown(np.cumprod(1.0 + r))
    if mdd == 0.0 or not np.isfinite(mdd):
        return float("nan")
    return float(annualized_return(r, ann_factor) / mdd)


def win_rate(pnl: ArrayLike) -> float:
    """Share of closed round trips with a positive P&L after fees."""
    p = _arr("pnl", pnl)
    return float(np.mean(p > 0)) if p.size else float("nan")


def profit_factor(pnl: ArrayLike) -> float:
    """Gross profit over gross loss of closed round trips (``inf`` with no losing one)."""
    p = _arr("pnl", pnl)
    if p.size == 0:
        return float("nan")
    return _ratio(float(p[p > 0].sum()), float(-p[p < 0].sum()))


def expectancy(pnl: ArrayLike) -> float:
    """Mean P&L per closed round trip, in the quote currency."""
    p = _arr("pnl", pnl)
    return float(np.mean(p)) if p.size else float("nan")


def exposure(position: ArrayLike) -> float:
    """Share of periods that end with an open position."""
    p = _arr("position", position)
    return float(np.mean(p != 0)) if p.size else float("nan")


def turnover(traded_notional: ArrayLike, equity: ArrayLike) -> float:
    """Total traded notional over the mean equity (2.0 = the book bought and sold once)."""
    n = _arr("traded_notional", traded_notional)
    if n.size == 0:
        return 0.0
    return float(np.sum(n) / np.mean(_arr("equity", equity)))


def fees_paid(fees: ArrayLike) -> float:
    """Sum of fees paid, in the quote currency (values already converted)."""
    return float(np.sum(_arr("fees", fees)))


def fees_share(fees: float, equity: ArrayLike, init_cash: float) -> float:
    """Fees over the gross P&L before fees (``final - init + fees``); ``nan`` when that
    gross P&L is not positive (fees then ate more than everything the trading made)."""
    v = _arr("equity", equity)
    if v.size == 0:
        return float("nan")
    gross = float(v[-1] - init_cash + fees)
    return float(fees / gross) if gross > 0 else float("nan")


def rolling_sharpe(returns: pd.Series, window: int, ann_factor: float) -> pd.Series:
    """Sharpe over a trailing ``window`` of periods, with :func:`sharpe_ratio`'s formula."""
    if window < 2:
        raise ValidationError("window", window, "must be at least 2")
    r = pd.Series(returns, dtype="float64")
    mean = r.rolling(window).mean()
    sd = r.rolling(window).std(ddof=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = mean / sd * np.sqrt(ann_factor)
    return out.where(sd != 0, np.where(mean == 0, np.nan, np.sign(mean) * np.inf))


def monthly_returns(equity: pd.Series, init_cash: float) -> pd.DataFrame:
    """Compounded return per calendar month (UTC) of an equity series indexed by time:
    rows are years, columns months 1-12 (missing months are ``nan``)."""
    e = pd.Series(equity, dtype="float64")
    if e.empty:
        return pd.DataFrame(columns=range(1, 13), dtype="float64")
    idx = pd.DatetimeIndex(e.index)
    idx = idx.tz_localize("UTC") if idx.tz is None else idx.tz_convert("UTC")
    e.index = idx
    r = pd.Series(returns_from_equity(e.to_numpy(), init_cash), index=idx)
    per = r.groupby([idx.year, idx.month]).apply(lambda x: float(np.prod(1.0 + x) - 1.0))
    table = per.unstack()
    table.index.name, table.columns.name = "year", "month"
    return table.reindex(columns=range(1, 13))


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
    conventions: Conventions = DEFAULT,
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
        "sharpe": sharpe_ratio(r, ann, conventions.risk_free),
        "sortino": sortino_ratio(r, ann, conventions.required_return),
        "calmar": float("nan") if mdd == 0 or not np.isfinite(mdd) else ar / mdd,
        "max_drawdown": mdd,
        "max_drawdown_duration": max_drawdown_duration(v),
        "n_trades": int(pnl.size + n_open_trades),
        "win_rate": win_rate(pnl),
        "profit_factor": profit_factor(pnl),
        "expectancy": expectancy(pnl),
        "exposure": exposure(position),
        "turnover": turnover(traded_notional, v),
        "fees_paid": fees_paid(fees),
        "final_equity": float(v[-1]) if v.size else float("nan"),
    }
