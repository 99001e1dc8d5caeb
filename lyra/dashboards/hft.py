"""HFT / microstructure: the session's order flow (buy/sell volume, imbalance), order-to-fill
latency histogram, fill ratio, slippage vs the arrival price; spread and depth over time from
recorded level-2 data (the session's instrument, else another one with a note; paper sessions
replaying bars have none, and the page says so when no instrument has any).

Query parameters: ``?session=<id>``, ``?freq=1D`` (order-flow bucket: 1h, 4h, 1D, 1W).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from lyra.core.timeutil import timeframe_to_ms
from lyra.dashboards.base import (
    SESSION_PARAM,
    LiveView,
    chart,
    choice_param,
    empty_source,
    kpi_card,
    kpi_html,
    page,
    read_model,
    read_query,
)
from lyra.dashboards.book import SpreadDepthView
from lyra.readside import SessionInfo, execution_quality, fmt_num, fmt_pct, order_flow

ROUTE = "hft"
TITLE = "HFT / microstructure"
REQUIRES = "view_hft"

FREQS = {"1h": "1h", "4h": "4h", "1D": "1D", "1W": "1W"}


class HftView(LiveView):
    """Order flow, latency, fill ratio and slippage of one session."""

    freq = param.Selector(default="1D", objects=list(FREQS), doc="Order-flow bucket.")
    LISTEN = ("order.",)

    def __init__(self, rm: Any = None, session_id: str | None = None, **params: Any) -> None:
        self.flow = pd.DataFrame()
        self.quality = pd.DataFrame()
        self.figures: dict[str, float] = {}
        super().__init__(rm, session_id, **params)
        self.param.watch(lambda _e: self.reload(), ["freq"])

    def _build(self) -> pn.viewable.Viewable:
        self._cards = {
            k: kpi_card(k, "–", name=f"kpi-{k}")
            for k in ("Orders", "Fill ratio", "Denied", "Median latency", "Mean slippage")
        }
        self._flow = empty_source("time", "buy", "sell", "imbalance")
        f1 = chart("Order flow: buy / sell volume", height=240)
        f1.vbar(
            "time", top="buy", width=3_600_000 * 12, source=self._flow, color="#26a69a", legend_label="buy"
        )
        f1.vbar(
            "time",
            top="sell",
            width=3_600_000 * 12,
            source=self._flow,
            color="#ef5350",
            alpha=0.7,
            legend_label="sell",
        )
        f2 = chart("Trade imbalance (buy−sell)/(buy+sell)", height=180, x_range=f1.x_range)
        f2.scatter("time", "imbalance", source=self._flow, size=5, color="#ffb74d")
        self._lat = empty_source("left", "right", "count")
        f3 = chart("Order-to-fill latency (ms)", datetime=False, height=220)
        self._lat_note = pn.pane.Markdown("", name="latency-note", css_classes=["lyra-note"])
        f3.quad(left="left", right="right", top="count", bottom=0, source=self._lat, color="#4f8cc9")
        self._slip = empty_source("time", "slippage_bps")
        f4 = chart("Slippage vs arrival price (bps, + = paid more)", height=220)
        f4.scatter("time", "slippage_bps", source=self._slip, size=5, color="#ba68c8")
        book = self._book = SpreadDepthView(self.rm, load=False)  # level-2: fallback, empty state
        self._figs = (f1, f2)
        return pn.Column(
            pn.Row(*self._cards.values()),
            pn.widgets.RadioButtonGroup.from_param(self.param.freq, label="Bucket"),
            pn.pane.Bokeh(f1, sizing_mode="stretch_width"),
            pn.pane.Bokeh(f2, sizing_mode="stretch_width"),
            pn.Row(
                pn.Column(pn.pane.Bokeh(f3, sizing_mode="stretch_width"), self._lat_note,
                          sizing_mode="stretch_width"),
                pn.pane.Bokeh(f4, sizing_mode="stretch_width"),
                sizing_mode="stretch_width",
            ),
            book,
            sizing_mode="stretch_width",
        )

    def tick(self) -> None:
        """Poll the log (orders, fills) and the recorded book (not in the log)."""
        super().tick()
        self._book.refresh()

    def clear(self) -> None:
        self._book.show_instrument(None)
        for s in (self._flow, self._lat, self._slip):
            s.data = {k: [] for k in s.data}

    def _quality(self, info: SessionInfo, fills: pd.DataFrame, orders: pd.DataFrame, tf: int) -> pd.DataFrame:
        """Latency and slippage per fill, each instrument against its own bars' arrival price."""
        parts = []
        for symbol, iid in zip(info.symbols, info.instrument_ids, strict=True):
            mine = orders[orders["instrument_id"] == iid]
            if mine.empty:
                continue
            bars = self.rm.bars(info.venue, symbol, info.timeframe, start=int(mine["created_ts"].min()) - tf,
                                end=int(mine["created_ts"].max()) + 1)
            parts.append(execution_quality(fills, mine, bars, tf))
        if not parts:
            return execution_quality(fills.iloc[:0], orders.iloc[:0], None, tf)
        return pd.concat(parts, ignore_index=True).sort_values("time", kind="stable").reset_index(drop=True)

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        if full:
            self._book.show_instrument(info.instrument_ids[0])
        fills = self.rm.fills(self.session_id)
        orders = self.rm.orders(self.session_id)
        tf = timeframe_to_ms(info.timeframe)
        self.flow = order_flow(fills, FREQS[self.freq])
        self.quality = q = self._quality(info, fills, orders, tf)
        width = pd.Timedelta(FREQS[self.freq]).total_seconds() * 1000 * 0.8
        for r in self._figs[0].renderers:
            r.glyph.width = width
        self._flow.data = {c: self.flow[c] for c in ("time", "buy", "sell", "imbalance")}
        lat = q["latency_ms"].to_numpy(dtype="float64")
        if lat.size:
            counts, edges = np.histogram(lat, bins=min(30, max(1, len(np.unique(lat)))))
            if edges[0] == edges[-1]:
                edges = np.array([edges[0] - 0.5, edges[0] + 0.5])
            self._lat.data = {"left": edges[:-1], "right": edges[1:], "count": counts}
        else:
            self._lat.data = {"left": [], "right": [], "count": []}
        modelled = int((info.config or {}).get("latency_ms", 0) or 0)
        self._lat_note.object = (
            "_No latency is modelled in this paper session (`latency_ms = 0`): an order is filled "
            "at the bar it was sent on, so its order-to-fill time is 0 ms. Set `latency_ms` in the "
            "session config to model the network; on bars, an order that arrives after the open "
            "then fills at the next bar._" if info.mode == "paper" and modelled == 0 and lat.size else "")
        self._slip.data = (
            {"time": q["time"], "slippage_bps": q["slippage_bps"]}
            if len(q)
            else {"time": [], "slippage_bps": []}
        )
        n = len(orders)
        filled = int((orders["status"] == "filled").sum())
        denied = int((orders["status"] == "denied").sum())
        self.figures = {
            "orders": n,
            "fill_ratio": filled / n if n else float("nan"),
            "denied": denied,
            "median_latency_ms": float(np.median(lat)) if lat.size else float("nan"),
            "mean_slippage_bps": float(q["slippage_bps"].mean()) if len(q) else float("nan"),
        }
        c = self._cards
        c["Orders"].object = kpi_html("Orders", f"{n:,}")
        c["Fill ratio"].object = kpi_html("Fill ratio", fmt_pct(self.figures["fill_ratio"]))
        c["Denied"].object = kpi_html("Denied by risk", f"{denied:,}")
        median = fmt_duration_ms(self.figures["median_latency_ms"])
        c["Median latency"].object = kpi_html("Median latency", median)
        c["Mean slippage"].object = kpi_html(
            "Mean slippage", f"{fmt_num(self.figures['mean_slippage_bps'])} bps"
        )


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh HFT page for one browser session."""
    rm, _jsonl = read_model()
    query = read_query(SESSION_PARAM, choice_param("freq", tuple(FREQS)))
    view = HftView(rm, query.get("session"))
    if query.get("freq") is not None:
        view.freq = query.get("freq")
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)


def fmt_duration_ms(ms: float) -> str:
    """``35 ms``, ``2.5 s``, ``4 min``, ``1 h``, ``1 d``: a bar-driven replay fills at the next
    bar, so its order-to-fill time is a bar (an hour, a day), which reads badly in ms."""
    if ms != ms:  # NaN: no fills
        return "–"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("min", 60_000), ("s", 1_000)):
        if abs(ms) >= size:
            return f"{fmt_num(ms / size, 1).removesuffix('.0')} {unit}"
    return f"{fmt_num(ms, 0)} ms"
