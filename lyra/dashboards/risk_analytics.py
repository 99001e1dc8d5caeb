"""Risk analytics: correlation heatmap (every session's equity returns and every marked
instrument's returns, daily), rolling volatility, the drawdown (underwater) chart and the
return distribution with the VaR lines. VaR/ES here are historical quantiles of the session's
equity returns from one equity snapshot to the next (the live risk page shows the 1-day VaR
of the current positions).

Query parameters: ``?session=<id>``, ``?window=20`` (rolling window in snapshots, 2..500).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import LinearColorMapper
from bokeh.models.annotations import Span

from lyra.dashboards.base import (
    SESSION_PARAM,
    LiveView,
    chart,
    empty_source,
    int_param,
    kpi_card,
    kpi_html,
    page,
    read_model,
    read_query,
)
from lyra.readside import ReadModel, drawdown, fmt_pct, periods_per_year, returns, rolling_volatility, var_es

ROUTE = "risk_analytics"
TITLE = "Risk analytics"
REQUIRES = "view_risk_analytics"


def daily_returns(rm: ReadModel) -> pd.DataFrame:
    """Daily returns of every session's equity (``equity:<id>``) and of every instrument's mark."""
    cols: dict[str, pd.Series] = {}
    for s in rm.sessions():
        c = rm.equity_curve(s.session_id)
        if len(c) < 3:
            continue
        idx = pd.DatetimeIndex(c["time"])
        cols[f"equity:{s.session_id}"] = pd.Series(c["equity"].to_numpy(), index=idx).resample("1D").last()
        for iid in {k for m in c["marks"] for k in m}:
            marks = pd.Series([m.get(iid, np.nan) for m in c["marks"]], index=idx).resample("1D").last()
            cols.setdefault(iid, marks)
    frame = pd.DataFrame(cols).ffill()
    return frame.pct_change(fill_method=None).iloc[1:].dropna(how="all")


class RiskAnalyticsView(LiveView):
    """Correlations, rolling volatility, underwater curve, return distribution with VaR."""

    window = param.Integer(default=20, bounds=(2, 500), doc="Rolling-volatility window (snapshots).")
    LISTEN = ("session.equity", "session.")

    def __init__(self, rm: Any = None, session_id: str | None = None, **params: Any) -> None:
        self.corr = pd.DataFrame()
        self.figures: dict[str, float] = {}
        super().__init__(rm, session_id, **params)
        self.param.watch(lambda _e: self.reload(), ["window"])

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}")
            for k in ("VaR 95%", "VaR 99%", "ES 95%", "Max drawdown", "Volatility (ann.)")
        }
        self._heat = empty_source("x", "y", "rho", "label")
        self._fh = chart(
            "Correlation of daily returns",
            datetime=False,
            x_range=[""],
            y_range=[""],
            height=300,
            tooltips=[("pair", "@x / @y"), ("ρ", "@label")],
        )
        mapper = LinearColorMapper(palette="RdBu11", low=-1, high=1)
        self._fh.rect(
            "x",
            "y",
            1,
            1,
            source=self._heat,
            fill_color={"field": "rho", "transform": mapper},
            line_color=None,
        )
        self._fh.text(
            "x",
            "y",
            text="label",
            source=self._heat,
            text_align="center",
            text_baseline="middle",
            text_color="#111111",
            text_font_size="11px",
        )
        self._vol = empty_source("time", "vol")
        f2 = chart("Rolling volatility (annualised)", height=220)
        f2.line("time", "vol", source=self._vol, color="#ffb74d", line_width=2)
        self._dd = empty_source("time", "dd")
        f3 = chart("Drawdown (underwater)", height=220)
        f3.varea("time", y1=0, y2="dd", source=self._dd, color="#ef5350", alpha=0.6)
        self._hist = empty_source("left", "right", "count")
        self._f4 = chart("Return distribution with VaR lines", datetime=False, height=260)
        self._f4.quad(left="left", right="right", top="count", bottom=0, source=self._hist, color="#4f8cc9")
        self._spans = {
            c: Span(location=0, dimension="height", line_color=col, line_dash="dashed", line_width=2)
            for c, col in ((0.95, "#ffb74d"), (0.99, "#ef5350"))
        }
        for s in self._spans.values():
            self._f4.add_layout(s)
        return pn.Column(
            pn.Row(*self._cards.values()),
            pn.widgets.IntInput.from_param(self.param.window, label="Window", width=120),
            pn.Row(
                pn.pane.Bokeh(self._fh, sizing_mode="stretch_width"),
                pn.pane.Bokeh(self._f4, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            pn.pane.Bokeh(f2, sizing_mode="stretch_width"),
            pn.pane.Bokeh(f3, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )

    def clear(self) -> None:
        for s in (self._heat, self._vol, self._dd, self._hist):
            s.data = {k: [] for k in s.data}

    def update(self, full: bool = True) -> None:
        curve = self.rm.equity_curve(self.session_id)
        rets = returns(curve["equity"])
        per_year = periods_per_year(curve["ts"])
        vol = rolling_volatility(rets, self.window, per_year) if len(rets) else rets
        self._vol.data = {"time": curve["time"].iloc[1:], "vol": vol}
        dd = drawdown(curve["equity"])
        self._dd.data = {"time": curve["time"], "dd": dd}
        v95, e95 = var_es(rets, 0.95)
        v99, _ = var_es(rets, 0.99)
        self.figures = {
            "var95": v95,
            "var99": v99,
            "es95": e95,
            "max_dd": float(dd.min()) if len(dd) else 0.0,
            "vol": float(rets.std(ddof=1) * np.sqrt(per_year)) if len(rets) > 1 else float("nan"),
        }
        if len(rets):
            counts, edges = np.histogram(rets.to_numpy(), bins=40)
            self._hist.data = {"left": edges[:-1], "right": edges[1:], "count": counts}
        self._spans[0.95].location = -v95 if np.isfinite(v95) else 0
        self._spans[0.99].location = -v99 if np.isfinite(v99) else 0
        c = self._cards
        # Historical figures of the strategy's own equity returns between snapshots (not of
        # the positions: the risk page has that 1-day figure); the label says which.
        c["VaR 95%"].object = kpi_html("VaR 95% · equity, per snapshot", fmt_pct(v95))
        c["VaR 99%"].object = kpi_html("VaR 99% · equity, per snapshot", fmt_pct(v99))
        c["ES 95%"].object = kpi_html("ES 95% · equity, per snapshot", fmt_pct(e95))
        c["Max drawdown"].object = kpi_html("Max drawdown", fmt_pct(self.figures["max_dd"]))
        c["Volatility (ann.)"].object = kpi_html("Volatility (ann.)", fmt_pct(self.figures["vol"]))
        self.corr = corr = daily_returns(self.rm).corr()
        names = [str(c) for c in corr.columns]
        xs, ys, rho = [], [], []
        for i, a in enumerate(names):
            for j, b in enumerate(names):
                xs.append(a)
                ys.append(b)
                rho.append(float(corr.iloc[i, j]))
        self._heat.data = {"x": xs, "y": ys, "rho": rho, "label": [f"{r:.2f}" for r in rho]}
        self._fh.x_range.factors = names or [""]
        self._fh.y_range.factors = names or [""]


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh risk-analytics page for one browser session."""
    rm, _jsonl = read_model()
    lo, hi = RiskAnalyticsView.param.window.bounds
    query = read_query(SESSION_PARAM, int_param("window", lo, hi))
    view = RiskAnalyticsView(rm, query.get("session"))
    if query.get("window") is not None:
        view.window = query.get("window")
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
