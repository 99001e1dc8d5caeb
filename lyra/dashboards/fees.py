"""Fees: paid by venue, instrument and strategy over time, the maker/taker split, progress
toward the next fee tier (trailing 30-day volume against the venue's recorded tiers), and
fees as a share of gross PnL.

Query parameter: ``?session=<id>`` (the tier progress and share of PnL are the session's; the
breakdowns cover every session).
"""

from __future__ import annotations

from typing import Any

import numpy as np
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
from lyra.readside import ReadModel, fee_tier_progress, fmt_money, fmt_pct

ROUTE = "fees"
TITLE = "Fees"
REQUIRES = "view_fees"

THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000
_FMT = {c: NumberFormatter(format=NUMBER) for c in ("fee", "notional")}
_FMT["share"] = NumberFormatter(format="0.00%")
_COLORS = ("#4f8cc9", "#26a69a", "#ffb74d", "#ba68c8", "#ef5350", "#90a4ae")


def breakdown(fees: pd.DataFrame, by: str) -> pd.DataFrame:
    """Fees and traded notional grouped by ``by`` with each group's share of all fees."""
    g = fees.groupby(by, as_index=False)[["fee", "notional"]].sum()
    total = g["fee"].sum()
    g["share"] = g["fee"] / total if total else 0.0
    return g.sort_values("fee", ascending=False).reset_index(drop=True)


def venue_tiers(venue: str, instrument_id: str) -> list[Any]:
    """30-day volume thresholds of the venue's fee tiers. Venues tier by account volume, not
    by market, so a symbol missing from the recorded markets uses another recorded market of
    the same venue; none recorded: one flat tier (empty list)."""
    from lyra.core.errors import ValidationError
    from lyra.execution.markets import load_fee_schedule, load_markets

    try:
        return [t.min_volume for t in load_fee_schedule(instrument_id).tiers]
    except (ValidationError, KeyError, FileNotFoundError):
        pass
    try:
        markets = load_markets(venue)
    except (ValidationError, KeyError, FileNotFoundError):
        return []
    for sym in sorted(markets):
        try:
            return [t.min_volume for t in load_fee_schedule(f"{venue}:{sym}").tiers]
        except (ValidationError, KeyError):
            continue
    return []


class FeesView(LiveView):
    """Fee breakdowns, cumulative fees by strategy, maker/taker split, tier progress."""

    LISTEN = ("order.fill", "session.")

    def __init__(self, rm: ReadModel, session_id: str | None = None, **params: Any) -> None:
        self.fees = pd.DataFrame()
        self.figures: dict[str, float] = {}
        super().__init__(rm, session_id, **params)

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}")
            for k in ("Fees (all)", "Fees (session)", "Maker share", "Fees / gross PnL", "Fee tier")
        }
        self._fig = chart("Cumulative fees by strategy", height=280)
        self._lines: dict[str, Any] = {}
        self._split = empty_source("liquidity", "fee")
        self._fs = chart("Maker / taker split", datetime=False, x_range=["maker", "taker"], height=280)
        self._fs.vbar("liquidity", top="fee", width=0.6, source=self._split, color="#4f8cc9")
        self._tier = pn.pane.Markdown("", name="tier-progress")
        self._bar = pn.indicators.Progress(value=0, max=100, width=300, bar_color="info")
        tables = {
            k: pn.widgets.Tabulator(
                pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", f"by-{k}"], **TABLE_OPTS
            )
            for k in ("venue", "symbol", "strategy")
        }
        self._tables = tables
        return pn.Column(
            pn.Row(*self._cards.values()),
            pn.Row(pn.pane.Bokeh(self._fig, sizing_mode="stretch_width"), pn.pane.Bokeh(self._fs, width=360)),
            pn.Row(self._bar, self._tier),
            pn.Tabs(
                ("By venue", tables["venue"]),
                ("By instrument", tables["symbol"]),
                ("By strategy", tables["strategy"]),
                dynamic=True,
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

    def clear(self) -> None:
        for t in self._tables.values():
            t.value = pd.DataFrame()

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        self.fees = f = self.rm.fees()
        for k, t in self._tables.items():
            t.value = breakdown(f, k) if len(f) else pd.DataFrame()
        for i, (strategy, grp) in enumerate(f.groupby("strategy")):
            data = {"time": grp["time"], "fee": grp["fee"].cumsum()}
            if strategy in self._lines:
                self._lines[strategy].data_source.data = data
            else:
                self._lines[strategy] = self._fig.line(
                    "time",
                    "fee",
                    source=empty_source("time", "fee"),
                    color=_COLORS[i % len(_COLORS)],
                    line_width=2,
                    legend_label=str(strategy),
                )
                self._lines[strategy].data_source.data = data
        split = f.groupby("liquidity")["fee"].sum() if len(f) else pd.Series(dtype="float64")
        self._split.data = {
            "liquidity": ["maker", "taker"],
            "fee": [float(split.get("maker", 0.0)), float(split.get("taker", 0.0))],
        }
        mine = f[f["session_id"] == self.session_id]
        pos = self.rm.positions(self.session_id)
        gross = (
            float(pos["realized_pnl"].sum() + pos["unrealized_pnl"].fillna(0.0).sum()) if len(pos) else 0.0
        )
        paid = float(mine["fee"].sum())
        total = float(f["fee"].sum())
        now = int(mine["ts"].max()) if len(mine) else 0
        vol30 = float(mine.loc[mine["ts"] > now - THIRTY_DAYS_MS, "notional"].sum()) if len(mine) else 0.0
        tiers = venue_tiers(info.venue, info.instrument_ids[0])
        idx, progress, needed = fee_tier_progress(vol30, tiers) if tiers else (0, 1.0, None)
        self.figures = {
            "total": total,
            "session": paid,
            "gross_pnl": gross,
            "share_of_pnl": paid / gross if gross > 0 else float("nan"),
            "maker_share": float(split.get("maker", 0.0)) / total if total else float("nan"),
            "volume_30d": vol30,
            "tier": idx,
            "progress": progress,
        }
        q = info.quote
        self._cards["Fees (all)"].object = kpi_html("Fees (all sessions)", fmt_money(total, q))
        self._cards["Fees (session)"].object = kpi_html("Fees (this session)", fmt_money(paid, q))
        self._cards["Maker share"].object = kpi_html("Maker share", fmt_pct(self.figures["maker_share"]))
        self._cards["Fees / gross PnL"].object = kpi_html(
            "Fees / gross PnL", fmt_pct(self.figures["share_of_pnl"]) if gross > 0 else "no gross profit"
        )
        self._cards["Fee tier"].object = kpi_html("Fee tier", f"{idx + 1} of {max(len(tiers), 1)}")
        self._bar.value = int(np.clip(progress, 0, 1) * 100)
        nxt = (
            f"{fmt_money(needed, q)} more 30-day volume to the next tier"
            if needed is not None
            else "top tier reached (or the venue has one tier)"
        )
        self._tier.object = f"30-day volume {fmt_money(vol30, q)} · {nxt}"


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh fees page for one browser session."""
    rm, _jsonl = read_model()
    query = read_query(SESSION_PARAM)
    view = FeesView(rm, query.get("session"))
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
