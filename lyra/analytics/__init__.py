"""lyra.analytics: the one set of performance figures research, sessions, dashboards,
notebooks and reports all compute with, so one equity curve gives one set of numbers.

Conventions (each checked in ``tests/unit/analytics``):

- **Returns** are simple per-period returns of the equity curve. The first is measured from
  the starting equity: ``r[0] = v[0] / init - 1``, ``r[i] = v[i] / v[i-1] - 1``. A session's
  curve without a stated start uses its first snapshot as ``init`` (so it contributes no
  return of its own). Snapshots sharing a timestamp are one point (the last one counts).
- **Period and annualisation**: ``ann_factor`` is the number of periods in a year. Crypto
  trades every day, so a year is **365 days** by default (``Conventions.year_days``);
  ``ann_factor("1h") == 8760``. For a session the period is the median spacing of its
  snapshots (:func:`periods_per_year`). Pass ``year_days=252`` style values via
  :class:`Conventions` for a different calendar.
- **Volatility** is the sample standard deviation (ddof=1) times ``sqrt(ann_factor)``.
- **Sharpe** = ``mean(r - rf) / std(r - rf, ddof=1) * sqrt(ann_factor)`` with ``rf`` per
  period (0 by default). **Sortino** = ``mean(r - req) * ann / (sqrt(mean(min(r - req, 0)^2))
  * sqrt(ann))`` (the downside deviation over all periods, as empyrical). A zero denominator
  gives ``nan`` when the numerator is zero too, else ``±inf`` with the numerator's sign;
  fewer than two returns give ``nan``.
- **CAGR** (``annualized_return``) = ``prod(1 + r) ** (ann_factor / n) - 1``.
- **Drawdown**: the underwater series ``v / running_peak - 1`` is zero or **negative**;
  ``max_drawdown`` is its magnitude, a **positive** fraction (0.25 = fell 25 % from a peak).
  ``calmar = CAGR / max_drawdown`` (``nan`` without a drawdown).
- **Trades** are **round trips after fees**: a round trip opens when a position leaves zero
  and closes when it is exactly zero again (a fill that flips the position closes one and
  opens the next, its fee split pro rata by quantity). Quantities, prices and fees are exact
  ``Decimal`` from the ledger, so a partially filled order never leaves a float remainder
  that looks like a trade. ``win_rate`` is the share of closed round trips with a positive
  P&L after fees; ``profit_factor`` is gross profit over gross loss of closed round trips
  (``inf`` with no losing one, ``nan`` with none); ``n_trades`` counts closed round trips
  plus the open one.
- **Fees** are valued in the quote currency: a fee in the quote as is; a fee in the base at
  the fill's own price (source ``"fill price"``); a fee in any other asset only through a
  rate the caller gives (its source is recorded on the round trip) — never summed as is.
- **Exposure** is the share of periods ending with an open position; **turnover** is the
  traded notional over the mean equity (2.0 = the book bought and sold once);
  **fees_share** is fees paid over the gross P&L before fees (``nan`` when that is not
  positive).
"""

from lyra.analytics.perf import (
    DEFAULT as DEFAULT_CONVENTIONS,
)
from lyra.analytics.perf import (
    LOWER_IS_BETTER,
    METRIC_NAMES,
    Conventions,
    ann_factor,
    annualized_return,
    annualized_volatility,
    calmar_ratio,
    compute_metrics,
    drawdown_series,
    expectancy,
    exposure,
    fees_paid,
    fees_share,
    max_drawdown,
    max_drawdown_duration,
    monthly_returns,
    periods_per_year,
    profit_factor,
    returns_from_equity,
    rolling_sharpe,
    session_curve,
    sharpe_ratio,
    sortino_ratio,
    total_return,
    turnover,
    win_rate,
)
from lyra.analytics.trades import (
    FeeRate,
    RoundTrip,
    TradeFill,
    fills_from_frame,
    round_trips,
    trades_summary,
)

__all__ = [
    "DEFAULT_CONVENTIONS",
    "LOWER_IS_BETTER",
    "METRIC_NAMES",
    "Conventions",
    "FeeRate",
    "RoundTrip",
    "TradeFill",
    "ann_factor",
    "annualized_return",
    "annualized_volatility",
    "calmar_ratio",
    "compute_metrics",
    "drawdown_series",
    "expectancy",
    "exposure",
    "fees_paid",
    "fees_share",
    "fills_from_frame",
    "max_drawdown",
    "max_drawdown_duration",
    "monthly_returns",
    "periods_per_year",
    "profit_factor",
    "returns_from_equity",
    "rolling_sharpe",
    "round_trips",
    "session_curve",
    "sharpe_ratio",
    "sortino_ratio",
    "total_return",
    "trades_summary",
    "turnover",
    "win_rate",
]
