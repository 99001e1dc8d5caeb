"""Executive summary: KPIs (equity, PnL today/MTD/YTD, Sharpe, max drawdown, win rate, fees),
the equity curve, and a per-strategy performance table over every session.

"Today", "MTD" and "YTD" are on the session's own clock (a replayed session's last bar).
Query parameter: ``?session=<id>``.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn
from bokeh.models.widgets import NumberFormatter

from lyra.dashboards.base import (
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
from lyra.readside import Kpis, fmt_money, fmt_num, fmt_pct, kpis

ROUTE = "executive"
TITLE = "Executive"
REQUIRES = "view_executive"

_PCT = NumberFormatter(format="0.00%")
_FMT = {
    "equity": NumberFormatter(format="0,0.00"),
    "pnl": NumberFormatter(format="0,0.00"),
    "fees": NumberFormatter(format="0,0.00"),
    "return": _PCT,
    "max_drawdown": _PCT,
    "win_rate": _PCT,
    "sharpe": NumberFormatter(format="0.00"),
}
CARDS = ("Equity", "PnL today", "PnL MTD", "PnL YTD", "Sharpe", "Max drawdown", "Win rate", "Fees")


def start_equity(info: Any) -> float | None:
    """The session's starting equity: its balance when it starts in its quote currency only;
    otherwise None — the first equity snapshot, which values every balance at its mark (balances
    in USD and BTC are never added as numbers)."""
    balances = {k: v for k, v in info.balances.items() if v}
    if set(balances) == {info.quote}:
        return float(balances[info.quote])
    return None


def card_values(k: Kpis, currency: str) -> dict[str, str]:
    """The KPI tiles' texts, as people read them."""
    return {
        "Equity": fmt_money(k.equity, currency),
        "PnL today": fmt_money(k.pnl_today, currency),
        "PnL MTD": fmt_money(k.pnl_mtd, currency),
        "PnL YTD": fmt_money(k.pnl_ytd, currency),
        "Sharpe": fmt_num(k.sharpe),
        "Max drawdown": fmt_pct(k.max_drawdown),
        "Win rate": fmt_pct(k.win_rate),
        "Fees": fmt_money(k.fees, currency),
    }


class ExecutiveView(LiveView):
    """Headline KPIs of the session, its equity curve, every session by strategy."""

    LISTEN = ("order.fill", "session.")

    def __init__(self, rm: Any = None, session_id: str | None = None, **params: Any) -> None:
        self.kpis: Kpis | None = None
        self.table = pd.DataFrame()
        super().__init__(rm, session_id, **params)

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {k: kpi_card(k, "–", name=f"kpi-{k}") for k in CARDS}
        self._src = empty_source("time", "equity")
        fig = chart("Equity", height=320)
        fig.line("time", "equity", source=self._src, line_width=2, color="#4f8cc9")
        self._table = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "strategies"], **TABLE_OPTS
        )
        return pn.Column(
            pn.FlexBox(*self._cards.values()),
            pn.pane.Bokeh(fig, sizing_mode="stretch_width"),
            pn.pane.Markdown("### Performance by strategy (every session)"),
            self._table,
            sizing_mode="stretch_width",
        )

    def clear(self) -> None:
        self._src.data = {"time": [], "equity": []}
        self._table.value = pd.DataFrame()

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        curve = self.rm.equity_curve(self.session_id)
        fills = self.rm.fills(self.session_id)
        self.kpis = k = kpis(curve, fills, start_equity(info))
        for name, text in card_values(k, info.quote).items():
            self._cards[name].object = kpi_html(name, text)
        self._src.data = {"time": curve["time"], "equity": curve["equity"]}
        rows = []
        for s in self.rm.sessions():
            sk = kpis(self.rm.equity_curve(s.session_id), self.rm.fills(s.session_id), start_equity(s))
            rows.append(
                {
                    "strategy": s.strategy,
                    "session": s.session_id,
                    "currency": s.quote,
                    "status": s.status,
                    "equity": sk.equity,
                    "pnl": sk.pnl,
                    "return": sk.pnl / sk.start_equity if sk.start_equity else float("nan"),
                    "sharpe": sk.sharpe,
                    "max_drawdown": sk.max_drawdown,
                    "trades": sk.trades,
                    "win_rate": sk.win_rate,
                    "fees": sk.fees,
                }
            )
        self.table = pd.DataFrame(rows)
        self._table.value = self.table


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh executive page for one browser session."""
    rm, _jsonl = read_model()
    query = read_query(SESSION_PARAM)
    view = ExecutiveView(rm, query.get("session"))
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
