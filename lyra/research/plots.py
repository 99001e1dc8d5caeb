"""HoloViews plots for backtests, sweeps and walk-forward runs.

Each function returns a HoloViews object: it renders in JupyterLab after
``hv.extension("bokeh", inline=True)`` (inline: a notebook exported to HTML then renders
offline) and can be saved with ``hv.save(obj, "file.html", resources="inline")``.
HoloViews is imported on first use so that ``import lyra.research`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from lyra.core.errors import ValidationError

if TYPE_CHECKING:
    from lyra.research.backtest import BacktestResult
    from lyra.research.sweep import SweepResult
    from lyra.research.walkforward import WalkForwardResult


def _hv() -> Any:
    import holoviews as hv
    import holoviews.plotting.bokeh  # registers the backend that .opts() styles target

    return hv


def _naive(s: pd.Series) -> pd.Series:
    # Bokeh shows naive datetimes as they are: hand it UTC wall time.
    idx = pd.DatetimeIndex(s.index)
    out = s.copy()
    out.index = idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx
    out.index.name = "time"
    return out


def equity_plot(result: BacktestResult) -> Any:
    """Equity curve."""
    hv = _hv()
    e = _naive(result.equity)
    return hv.Curve((e.index, e.to_numpy()), "time", "equity", label=repr(result.strategy)).opts(
        responsive=True, height=300, tools=["hover"])


def drawdown_plot(result: BacktestResult) -> Any:
    """Drawdown (fraction below the running peak) as a filled area."""
    hv = _hv()
    d = _naive(result.drawdown)
    return hv.Area((d.index, d.to_numpy()), "time", "drawdown").opts(
        responsive=True, height=180, color="firebrick", alpha=0.5)


def backtest_plot(result: BacktestResult) -> Any:
    """Equity above drawdown, sharing the time axis."""
    return (equity_plot(result) + drawdown_plot(result)).cols(1)


def sweep_heatmap(result: SweepResult, x: str, y: str, metric: str) -> Any:
    """Heatmap of ``metric`` over parameters ``x`` and ``y`` (best value over other params)."""
    hv = _hv()
    t = result.table
    for name, col in (("x", x), ("y", y), ("metric", metric)):
        if col not in t.columns:
            raise ValidationError(name, col, f"not a column of the sweep: {list(t.columns)}")
    agg = "min" if metric in _lower() else "max"
    g = t.groupby([x, y], as_index=False)[metric].agg(agg)
    g[metric] = g[metric].replace([np.inf, -np.inf], np.nan)
    return hv.HeatMap(g, kdims=[x, y], vdims=[metric]).opts(
        responsive=True, height=400, colorbar=True, cmap="RdYlGn_r" if agg == "min" else "RdYlGn",
        tools=["hover"], title=f"{metric} by {x} × {y}")


def _lower() -> frozenset[str]:
    from lyra.research.metrics import LOWER_IS_BETTER

    return LOWER_IS_BETTER


def walkforward_plot(result: WalkForwardResult) -> Any:
    """Bars of the in- vs out-of-sample metric per fold, above the chained OOS equity."""
    hv = _hv()
    f = result.folds
    mt = result.metric
    rows = [(str(r["fold"]), "in-sample", r[f"is_{mt}"]) for _, r in f.iterrows()]
    rows += [(str(r["fold"]), "out-of-sample", r[f"oos_{mt}"]) for _, r in f.iterrows()]
    table = pd.DataFrame(rows, columns=["fold", "sample", mt])
    bars = hv.Bars(table, kdims=["fold", "sample"], vdims=[mt]).opts(
        responsive=True, height=250, title=f"{mt}: in- vs out-of-sample", tools=["hover"])
    e = _naive(result.oos_equity)
    curve = hv.Curve((e.index, e.to_numpy()), "time", "equity", label="out-of-sample equity").opts(
        responsive=True, height=250)
    return (bars + curve).cols(1)
