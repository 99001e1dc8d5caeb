"""An offline HTML tear sheet (of a session, of every session of a strategy or venue, or of
a research backtest): equity, drawdown, monthly returns, rolling Sharpe, trade
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
    return write_tearsheet(engine, out, market_dir, session=session_id)


def select_sessions(rm: Any, *, session: str | None = None, strategy: str | None = None,
                    venue: str | None = None) -> list[Any]:
    """The sessions (:class:`lyra.readside.SessionInfo`, oldest first) a tear sheet covers:
    one session by id, or every session running ``strategy`` and/or trading on ``venue``."""
    from lyra.core.errors import ValidationError

    if session is not None:
        if strategy is not None or venue is not None:
            raise ValidationError("session", session, "give a session, or a strategy and/or venue, not both")
        info = rm.session(session)
        if info is None:
            raise ValidationError("session_id", session, "no such session")
        return [info]
    if strategy is None and venue is None:
        raise ValidationError("tearsheet", "", "name a session, a strategy or a venue")
    found = [s for s in rm.sessions() if (strategy is None or s.strategy == strategy)
             and (venue is None or s.venue == venue)]
    if not found:
        what = " and ".join(f"{k} {v!r}" for k, v in (("strategy", strategy), ("venue", venue)) if v)
        raise ValidationError("strategy" if strategy else "venue", strategy or venue,
                              f"no session with {what}")
    return sorted(found, key=lambda s: (s.created_ts, s.session_id))


def combined_curve(curves: list[pd.DataFrame]) -> pd.DataFrame:
    """Several sessions' equity snapshots as one book (columns ``ts``, ``equity``,
    ``positions``): at every snapshot time of any session, the sum of each session's latest
    equity. Before its first snapshot a session counts at that first value (its start
    equity, not yet put to work) and after its last at its final equity, so money is neither
    created nor lost between sessions; a position is open when any session holds one."""
    eq, held = [], []
    for i, c in enumerate(curves):
        c = c.drop_duplicates("ts", keep="last")
        if c.empty:
            continue
        idx = pd.Index(c["ts"].astype("int64"), name="ts")
        eq.append(pd.Series(c["equity"].to_numpy(dtype="float64"), index=idx, name=i))
        pos = c["positions"] if "positions" in c else pd.Series([{}] * len(c))
        held.append(pd.Series([bool(p) for p in pos], index=idx, name=i, dtype="boolean"))
    if not eq:
        return pd.DataFrame({"ts": pd.Series([], dtype="int64"), "equity": [], "positions": []})
    e = pd.concat(eq, axis=1).sort_index().ffill().bfill()
    h = pd.concat(held, axis=1).sort_index().ffill().fillna(False)
    return pd.DataFrame({"ts": e.index.to_numpy(), "equity": e.sum(axis=1).to_numpy(),
                         "positions": h.any(axis=1).astype(bool).to_numpy()})


def tearsheet_for(engine: Any, market_dir: Path | None = None, *, session: str | None = None,
                  strategy: str | None = None, venue: str | None = None) -> tuple[str, str]:
    """(title, HTML) of the tear sheet of one session, or of every session of a strategy
    and/or venue taken as one book (:func:`combined_curve`; round trips stay per session).
    Sessions valuing equity in different currencies are refused, never summed."""
    from lyra.core.errors import ValidationError
    from lyra.readside import ReadModel

    rm = ReadModel(engine, market_dir or Path("."))
    infos = select_sessions(rm, session=session, strategy=strategy, venue=venue)
    quotes = sorted({i.quote for i in infos})
    if len(quotes) > 1:
        raise ValidationError("sessions", ", ".join(i.session_id for i in infos),
                              f"value equity in different currencies ({', '.join(quotes)})",
                              "narrow the selection (e.g. add --venue) so one currency remains")
    curves = [rm.equity_curve(i.session_id) for i in infos]
    if all(c.empty for c in curves):
        raise ValidationError("session_id", ", ".join(i.session_id for i in infos), "has no equity snapshots")
    if session is not None:
        title = f"Session {session}"
        return title, session_tearsheet(curves[0], rm.fills(session), title)
    label = " · ".join(f"{k} {v}" for k, v in (("Strategy", strategy), ("Venue", venue)) if v)
    ids = ", ".join(i.session_id for i in infos)
    title = f"{label} ({len(infos)} session{'s' if len(infos) != 1 else ''}: {ids}; {quotes[0]})"
    frames = [f for f in (rm.fills(i.session_id) for i in infos) if len(f)]
    fills = pd.concat(frames, ignore_index=True).sort_values(["ts", "seq"], kind="stable") if frames \
        else rm.fills(infos[0].session_id)
    return title, session_tearsheet(combined_curve(curves), fills, title)


def write_tearsheet(engine: Any, out: Path, market_dir: Path | None = None, *, session: str | None = None,
                    strategy: str | None = None, venue: str | None = None) -> Path:
    """Write the tear sheet of :func:`tearsheet_for` to ``out`` (nothing is written on error)."""
    _title, text = tearsheet_for(engine, market_dir, session=session, strategy=strategy, venue=venue)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(out)
    return out
