"""Portfolio overview: allocation by asset and by strategy, performance attribution (realised,
unrealised, fees per session and instrument), and cash and balances by venue.

Money is in each session's quote currency; sessions in different quote currencies are listed
side by side, not summed.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets import NumberFormatter

from lyra.dashboards.base import (
    NUMBER,
    SESSION_PARAM,
    TABLE_OPTS,
    LiveView,
    chart,
    empty_source,
    kpi_card,
    kpi_html,
    page,
    read_model,
    read_query,
)
from lyra.readside import ReadModel, fmt_money

ROUTE = "portfolio"
TITLE = "Portfolio"
REQUIRES = "view_portfolio"

_FMT = {
    c: NumberFormatter(format=NUMBER)
    for c in (
        "value",
        "realized_pnl",
        "unrealized_pnl",
        "fees",
        "net_pnl",
        "cash",
        "equity",
        "positions_value",
        "quantity",
        "mark",
    )
}
_FMT["weight"] = NumberFormatter(format="0.00%")


def allocation(rm: ReadModel) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(by asset, by strategy, balances by venue) over every session's last equity snapshot."""
    assets, strategies, venues = [], [], []
    for s in rm.sessions():
        curve = rm.equity_curve(s.session_id)
        if curve.empty:
            continue
        last = curve.iloc[-1]
        eq = float(last["equity"])
        held = sum(q * last["marks"].get(iid, 0.0) for iid, q in last["positions"].items())
        cash = eq - held
        ccy = s.quote or "?"
        for iid, q in last["positions"].items():
            v = q * last["marks"].get(iid, 0.0)
            assets.append({"asset": iid.partition(":")[2].split("/")[0], "currency": ccy,
                           "session": s.session_id, "value": v})
        assets.append({"asset": s.quote or "cash", "currency": ccy, "session": s.session_id, "value": cash})
        strategies.append({"strategy": s.strategy, "currency": ccy, "session": s.session_id, "equity": eq})
        venues.append(
            {
                "venue": s.venue,
                "session": s.session_id,
                "currency": s.quote,
                "cash": cash,
                "positions_value": held,
                "equity": eq,
            }
        )
    # Values are in each session's quote currency: summed and weighted within a currency only
    # (no conversion is stored to add USD to USDT honestly).
    a = pd.DataFrame(assets, columns=["asset", "currency", "session", "value"])
    a = a.groupby(["currency", "asset"], as_index=False)["value"].sum()[["asset", "currency", "value"]]
    a["weight"] = _weights(a, "value")
    st = pd.DataFrame(strategies, columns=["strategy", "currency", "session", "equity"])
    st = st.groupby(["currency", "strategy"], as_index=False)["equity"].sum()
    st = st[["strategy", "currency", "equity"]]
    st["weight"] = _weights(st, "equity")
    return (
        a,
        st,
        pd.DataFrame(venues, columns=["venue", "session", "currency", "cash", "positions_value", "equity"]),
    )


def _weights(frame: pd.DataFrame, col: str) -> pd.Series:
    """Each row's share of its currency's total (0 where that total is 0)."""
    if frame.empty:
        return pd.Series(dtype="float64")
    total = frame.groupby("currency")[col].transform("sum")
    return (frame[col] / total.where(total != 0)).fillna(0.0)


def _labels(frame: pd.DataFrame, col: str) -> list[str]:
    """Chart categories: the name, with its currency when sessions use several (BTC USD, BTC USDT)."""
    if frame.empty:
        return []
    if frame["currency"].nunique() == 1:
        return [str(x) for x in frame[col]]
    return [f"{x} {c}" for x, c in zip(frame[col], frame["currency"], strict=True)]


def money_by_currency(frame: pd.DataFrame, col: str) -> str:
    """``12,000.00 USD`` — or, over sessions in several quote currencies, one total per
    currency (``12,000.00 USD · 5,000.00 USDT``): never one number across currencies."""
    if frame.empty:
        return "–"
    sums = frame.groupby("currency")[col].sum()
    return " · ".join(fmt_money(float(v), str(c)) for c, v in sums.items())


def attribution(rm: ReadModel) -> pd.DataFrame:
    """Realised and unrealised PnL and fees per session and instrument; net = realised + unrealised − fees."""
    pos = rm.positions()
    out = pos[["session_id", "symbol", "quantity", "mark", "realized_pnl", "unrealized_pnl", "fees"]].copy()
    quotes = {s.session_id: s.quote or "?" for s in rm.sessions()}
    out["currency"] = out["session_id"].map(quotes).fillna("?")
    out["unrealized_pnl"] = out["unrealized_pnl"].fillna(0.0)
    out["net_pnl"] = out["realized_pnl"] + out["unrealized_pnl"] - out["fees"]
    return out


class PortfolioView(LiveView):
    """Allocation, attribution and balances over every session (the picker sets the headline)."""

    LISTEN = ("order.fill", "session.")

    def __init__(self, rm: Any = None, session_id: str | None = None, **params: Any) -> None:
        self.by_asset = self.by_strategy = self.balances = self.attribution = pd.DataFrame()
        super().__init__(rm, session_id, **params)

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}") for k in ("Total equity", "Cash", "In positions", "Net PnL")
        }
        self._asset_src = empty_source("asset", "value")
        self._fa = chart("Allocation by asset", datetime=False, x_range=[""], height=240)
        self._fa.vbar("asset", top="value", width=0.6, source=self._asset_src, color="#4f8cc9")
        self._strat_src = empty_source("strategy", "equity")
        self._fs = chart("Allocation by strategy", datetime=False, x_range=[""], height=240)
        self._fs.vbar("strategy", top="equity", width=0.6, source=self._strat_src, color="#26a69a")
        self._t_asset = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "by-asset"], **TABLE_OPTS
        )
        self._t_attr = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "attribution"], **TABLE_OPTS
        )
        self._t_bal = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "balances"], **TABLE_OPTS
        )
        return pn.Column(
            pn.Row(*self._cards.values()),
            pn.Row(
                pn.pane.Bokeh(self._fa, sizing_mode="stretch_width"),
                pn.pane.Bokeh(self._fs, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            pn.Tabs(
                ("Allocation", self._t_asset),
                ("Performance attribution", self._t_attr),
                ("Cash and balances by venue", self._t_bal),
                dynamic=True,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

    def clear(self) -> None:
        for t in (self._t_asset, self._t_attr, self._t_bal):
            t.value = pd.DataFrame()

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        self.by_asset, self.by_strategy, self.balances = allocation(self.rm)
        self.attribution = attribution(self.rm)
        assets, strategies = _labels(self.by_asset, "asset"), _labels(self.by_strategy, "strategy")
        self._asset_src.data = {"asset": assets, "value": list(self.by_asset["value"])}
        self._fa.x_range.factors = assets or ["(none)"]
        self._strat_src.data = {"strategy": strategies, "equity": list(self.by_strategy["equity"])}
        self._fs.x_range.factors = strategies or ["(none)"]
        self._t_asset.value = self.by_asset
        self._t_attr.value = self.attribution
        self._t_bal.value = self.balances
        b = self.balances
        self._cards["Total equity"].object = kpi_html("Total equity", money_by_currency(b, "equity"))
        self._cards["Cash"].object = kpi_html("Cash", money_by_currency(b, "cash"))
        self._cards["In positions"].object = kpi_html("In positions", money_by_currency(b, "positions_value"))
        self._cards["Net PnL"].object = kpi_html("Net PnL", money_by_currency(self.attribution, "net_pnl"))


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh portfolio page for one browser session."""
    rm, _jsonl = read_model()
    query = read_query(SESSION_PARAM)
    view = PortfolioView(rm, query.get("session"))
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
