"""An offline HTML tear sheet: equity, drawdown, monthly returns, rolling Sharpe, trade
distribution, fees and exposure, with every figure from :mod:`lyra.analytics` and BokehJS
inlined (``bokeh.resources.INLINE``'s mode), so the file opens without a network."""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from bokeh.embed import file_html
from bokeh.layouts import column
from bokeh.models import ColumnDataSource, Div  # type: ignore[attr-defined]
from bokeh.plotting import figure
from bokeh.resources import INLINE, Resources

import lyra.analytics as an


class _Inline(Resources):
    """INLINE without other libraries' external scripts: Bokeh adds the ``__javascript__``
    URLs of every model class imported in the process (Panel's ESM shim from a CDN, once
    Panel is loaded); the sheet uses none of those models, and must open offline."""

    def _collect_external_resources(self, resource_attr: Any) -> list[str]:
        return []

    def clone(self, *, components: Any = None) -> Resources:
        c = super().clone(components=components)  # Bokeh's file_html clones its resources
        c.__class__ = _Inline
        return c


_RESOURCES = _Inline(mode=INLINE.mode)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return "–" if not math.isfinite(v) else f"{v:.6g}"
    return html.escape(str(v))


def tearsheet_html(title: str, equity: pd.Series, metrics: dict[str, Any], init: float, ann: float,
                   trade_pnl: list[float] | None = None) -> str:
    """The tear sheet of an equity series (time index) and its metrics as HTML text."""
    e = pd.Series(equity, dtype="float64")
    t = pd.DatetimeIndex(e.index)
    t = t.tz_convert("UTC").tz_localize(None) if t.tz is not None else t  # UTC, as Bokeh wants
    dd = an.drawdown_series(e.to_numpy())
    r = pd.Series(an.returns_from_equity(e.to_numpy(), init), index=t)
    window = max(2, min(30, len(r) // 4 or 2))
    rs = an.rolling_sharpe(r, window, ann).replace([np.inf, -np.inf], np.nan)
    src = ColumnDataSource({"t": t, "equity": e.to_numpy(), "dd": dd, "rs": rs.to_numpy()})
    p_eq = figure(title="Equity", x_axis_type="datetime", height=250, sizing_mode="stretch_width")
    p_eq.line("t", "equity", source=src)
    p_dd = figure(title="Drawdown", x_axis_type="datetime", height=200, sizing_mode="stretch_width",
                  x_range=p_eq.x_range)
    p_dd.varea(x="t", y1="dd", y2=0, source=src, fill_alpha=0.4)
    p_rs = figure(title=f"Rolling Sharpe ({window} periods)", x_axis_type="datetime", height=200,
                  sizing_mode="stretch_width", x_range=p_eq.x_range)
    p_rs.line("t", "rs", source=src)
    monthly = an.monthly_returns(e, init)
    cells = "".join(
        f"<tr><th>{y}</th>" + "".join(f"<td>{_fmt(monthly.loc[y, mth])}</td>" for mth in range(1, 13))
        + "</tr>" for y in monthly.index)
    heat = Div(text="<h3>Monthly returns</h3><table class='monthly'><tr><th></th>"
               + "".join(f"<th>{mth}</th>" for mth in range(1, 13)) + f"</tr>{cells}</table>")
    pnl = np.asarray(trade_pnl or [], dtype="float64")
    p_tr: Any = Div(text="<h3>Trade P&amp;L after fees</h3><p>No closed round trip.</p>")
    if pnl.size:
        p_tr = figure(title="Trade P&L after fees (round trips)", height=200, sizing_mode="stretch_width")
        hist, edges = np.histogram(pnl, bins=min(30, max(5, pnl.size // 3)))
        p_tr.quad(top=hist, bottom=0, left=edges[:-1], right=edges[1:])
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td class='metric' data-metric='{html.escape(k)}'>"
                   f"{_fmt(v)}</td></tr>" for k, v in metrics.items())
    table = Div(text=f"<h2>{html.escape(title)}</h2><p>Conventions: lyra.analytics (365-day year, "
                     f"{ann:g} periods per year; max drawdown a positive fraction).</p>"
                     f"<table class='metrics'>{rows}</table>")
    return file_html(column(table, p_eq, p_dd, p_rs, heat, p_tr, sizing_mode="stretch_width"),
                     _RESOURCES, title)


def session_tearsheet(curve: pd.DataFrame, fills: pd.DataFrame, title: str,
                      start_equity: float | None = None) -> str:
    """A session's tear sheet from its read-model curve and fills (the read side's figures)."""
    from lyra.readside.analytics import session_metrics

    m = session_metrics(curve, fills, start_equity)
    v, init, _ts = an.session_curve(curve, start_equity)
    c = curve.drop_duplicates("ts", keep="last")
    times = pd.to_datetime(c["ts"].to_numpy()[len(c) - len(v):], unit="ms", utc=True)
    trips = an.round_trips(an.fills_from_frame(fills)) if len(fills) else []
    return tearsheet_html(title, pd.Series(v, index=times), m, init, m["periods_per_year"],
                          [float(t.pnl) for t in trips if t.closed])


def backtest_tearsheet(result: Any, title: str = "Backtest") -> str:
    """A research backtest result's tear sheet (its ``metrics``, ``equity`` and trades)."""
    tr = result.portfolio.trades.records_arr
    return tearsheet_html(title, result.equity, dict(result.metrics), result.init_cash,
                          an.ann_factor(result.freq), list(tr[tr["status"] == 1]["pnl"]))


def write_session_tearsheet(engine: Any, session_id: str, out: Path, market_dir: Path | None = None) -> Path:
    """Write a session's tear sheet to ``out`` (for notebooks and ``lyra report tearsheet``)."""
    from lyra.readside import ReadModel

    rm = ReadModel(engine, market_dir or Path("."))
    curve = rm.equity_curve(session_id)
    if curve.empty:
        from lyra.core.errors import ValidationError

        raise ValidationError("session_id", session_id, "has no equity snapshots")
    out.write_text(session_tearsheet(curve, rm.fills(session_id), f"Session {session_id}"), encoding="utf-8")
    return out
