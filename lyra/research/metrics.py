"""Research's performance metrics: the ones of :mod:`lyra.analytics` (one set of figures for
research, sessions, dashboards and reports; conventions in that module's docstring).

Research feeds them vectorbt's per-bar equity (returns from the initial cash), its closed
trades' P&L after fees and its orders; the annualisation is a 365-day year
(:func:`ann_factor`). The numba sweep kernel (``_kernel.finalize``) computes the same
figures column-wise with the same conventions, checked against these in the tests.
"""

from __future__ import annotations

from lyra.analytics.perf import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    ann_factor,
    annualized_return,
    annualized_volatility,
    calmar_ratio,
    compute_metrics,
    drawdown_series,
    expectancy,
    exposure,
    fees_paid,
    max_drawdown,
    max_drawdown_duration,
    profit_factor,
    returns_from_equity,
    sharpe_ratio,
    sortino_ratio,
    total_return,
    turnover,
    win_rate,
)

__all__ = [
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "ann_factor",
    "annualized_return",
    "annualized_volatility",
    "calmar_ratio",
    "compute_metrics",
    "drawdown_series",
    "expectancy",
    "exposure",
    "fees_paid",
    "max_drawdown",
    "max_drawdown_duration",
    "profit_factor",
    "returns_from_equity",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return",
    "turnover",
    "win_rate",
]
