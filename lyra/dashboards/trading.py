"""Trading: candlesticks with volume and the session's fills for one instrument at a time (an
instrument and a timeframe picker), the whole session on the chart (its start to its data
time, zoom and pan, extending while it runs), positions, open orders and recent fills of all
its instruments, the order-book ladder and depth chart when the instrument has recorded
level-2 data (else a note, or the sample book clearly labelled as another instrument's), and
(for roles allowed to trade) a risk-checked order ticket and cancel.

Prices and sizes are shown at the instrument's precision from the session config; times are
UTC. Query parameters: ``?session=<id>``, ``?instrument=ETH/USD``, ``?timeframe=1w`` (the
session's or a coarser one, resampled from its bars), ``?bars=<n>`` (only the latest n
candles, 100..200,000). The chart draws at most MAX_CANDLES candles (neighbours merged). In a
notebook: ``TradingView(ReadModel(engine, market_dir), live=False, instrument="ETH/USD")``.
"""

from __future__ import annotations

import html
import re
import time
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource, HoverTool, NumeralTickFormatter, Range1d
from bokeh.plotting import figure

from lyra.auth.permissions import Action, Principal
from lyra.core.errors import LyraError, ValidationError
from lyra.core.timeutil import datetime_to_ms, parse_utc, timeframe_to_ms
from lyra.dashboards.actions import ReauthGate
from lyra.dashboards.base import (
    SESSION_PARAM,
    LiveView,
    QuerySpec,
    choice_param,
    int_param,
    kpi_card,
    kpi_html,
    md_literal,
    page,
    read_model,
    read_query,
)
from lyra.dashboards.blotter import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    POSITION_COLUMNS,
    blotter_table,
    orders_frame,
    positions_frame,
    set_if_changed,
    utc_text,
)
from lyra.dashboards.book import OrderBookView
from lyra.dashboards.theme import Precision, instrument_precision
from lyra.readside import (
    CHART_TIMEFRAMES,
    MANUAL_SESSION,
    ManualDesk,
    SessionInfo,
    downsample_ohlc,
    fmt_money,
    fmt_num,
    resample_ohlc,
    timeframe_choices,
)

ROUTE = "trading"
TITLE = "Trading"
REQUIRES = "view_trading"

MAX_CANDLES = 1500
FILL_ROWS = 200
#: How long the ticket follows an accepted order to its fill before leaving it to the tables (ms)
FOLLOW_MS = 120_000
#: Timeframes the chart offers: the session's, and those coarser ones its bars add up to.
NO_FILLS = "No fills yet: the strategy has not traded."
_SAFE = re.compile(r"[A-Za-z0-9/:._-]{1,64}")

INSTRUMENT_PARAM = QuerySpec(
    "instrument", "pattern", pattern=re.compile(r"[A-Za-z0-9._-]{1,20}/[A-Za-z0-9._:-]{1,20}"),
    message="`instrument` in the link is not an instrument like ETH/USD; showing the session's first one.")
NOT_TRADED = "`instrument` in the link is not traded by this session; showing its first instrument."
TIMEFRAME_PARAM = choice_param("timeframe", CHART_TIMEFRAMES, (
    f"`timeframe` in the link must be one of {', '.join(CHART_TIMEFRAMES)}; "
    "showing the session's timeframe."))
TOO_FINE = ("`timeframe` in the link cannot be made from this session's bars (finer, or not a whole "
            "number of them); showing the session's timeframe.")

def _start_ms(info: SessionInfo) -> int | None:
    raw = info.config.get("start")
    try:
        return datetime_to_ms(parse_utc(str(raw))) if raw else None
    except ValidationError:
        return None


class TradingView(LiveView):
    """Chart, positions, open orders, fills; order ticket when ``principal`` may trade."""

    instrument = param.String(default="", doc="Symbol on the chart (e.g. ETH/USD); '' = the session's first.")
    timeframe = param.String(default="", doc="The session's timeframe or a coarser one ('' = its own).")
    bars = param.Integer(default=None, allow_None=True, bounds=(100, 200_000),
                         doc="Only the latest n candles (None: the whole session).")
    refresh_ms = param.Integer(default=250, bounds=(250, 60_000))
    LISTEN = ("order.", "session.")

    def __init__(
        self,
        rm: Any = None,
        session_id: str | None = None,
        *,
        principal: Principal | None = None,
        desk: ManualDesk | None = None,
        **params: Any,
    ) -> None:
        self.principal = principal
        self.desk = desk
        self.gate = ReauthGate(ROUTE)  # large orders need a fresh re-auth (under lyra serve)
        self._cmd: int | None = None  # the ticket's last command, polled until the session answers
        self._syncing = False
        self.candles = pd.DataFrame()  # the chosen timeframe's candles (before downsampling)
        self.shown_bars = pd.DataFrame()  # what the chart draws
        self.fill_frame = pd.DataFrame()  # the session's fills, all instruments (ReadModel.fills)
        self.chart_fills = pd.DataFrame()  # the fills marked on the chart (the shown instrument)
        self.mark = float("nan")
        self._loaded: tuple[str, str, str, int | None] = ("", "", "", None)  # session, symbol, tf, bars
        self._raw_last_ts = self._loaded_data_ts = 0
        self._data_hi = 0.0  # the right edge of the data on the chart (ms)
        self._bars_note = self._marked_note = ""
        super().__init__(rm, session_id, **params)
        self.param.watch(lambda _e: self._picks_changed(), ["instrument", "timeframe", "bars"])

    # -------------------------------------------------------------- layout
    def _build(self) -> pn.viewable.Viewable:
        self._candles = ColumnDataSource(
            {k: [] for k in ("time", "open", "high", "low", "close", "volume", "color")}
        )
        self._fill_src = ColumnDataSource(
            {k: [] for k in ("time", "price", "side", "color", "marker", "label")}
        )
        self._x = Range1d(start=0, end=1)  # set from the data: the whole session, kept while a person zooms
        price = figure(x_axis_type="datetime", height=430, sizing_mode="stretch_width", x_range=self._x,
                       tools="xpan,xwheel_zoom,box_zoom,reset", active_scroll="xwheel_zoom", title="Price")
        price.segment("time", "high", "time", "low", source=self._candles, color="color")
        self._body_glyph = price.vbar(
            "time", 0.0, "open", "close", source=self._candles, fill_color="color", line_color="color"
        )
        marks = price.scatter("time", "price", source=self._fill_src, marker="marker", size=10, color="color",
                              line_color="white", legend_label="fills")
        price.add_tools(HoverTool(renderers=[marks], tooltips=[("fill", "@label")]))
        price.legend.location = "top_left"
        self._price_fig = price
        vol = figure(x_axis_type="datetime", height=120, sizing_mode="stretch_width", x_range=self._x,
                     tools="", title="Volume")
        self._vol_glyph = vol.vbar("time", 0.0, "volume", 0, source=self._candles, color="color", alpha=0.6)
        vol.yaxis.formatter = NumeralTickFormatter(format="0.[0]a")  # 150k, not 1.500e+5
        self._chart_note = pn.pane.Markdown("", name="chart-note", css_classes=["lyra-chart-note"])
        self._inst_pick = pn.widgets.Select(label="Instrument", options=[], width=160,
                                            css_classes=["lyra-instrument-pick"])
        self._tf_pick = pn.widgets.Select(label="Timeframe", options=[], width=100,
                                          css_classes=["lyra-timeframe-pick"])
        self._inst_pick.param.watch(lambda e: self._picked_widget("instrument", e.new), "value")
        self._tf_pick.param.watch(lambda e: self._picked_widget("timeframe", e.new), "value")
        self._kpis = {
            k: kpi_card(k, "–", name=f"kpi-{k}") for k in ("Fills", "Last fill", "Position", "Mark")
        }
        self._kpis["Fills"].css_classes = ["lyra-kpi", "lyra-fill-count"]
        self._positions = blotter_table("positions", POSITION_COLUMNS)
        self._open = blotter_table("open-orders", ORDER_COLUMNS)
        self._fills = blotter_table("fills", FILL_COLUMNS)
        self._fills_note = pn.pane.Markdown("", name="fills-note", css_classes=["lyra-fills-note"],
                                            visible=False)
        self._book = OrderBookView(self.rm, load=False)  # ladder + depth chart: this instrument's only
        tables = pn.Tabs(
            ("Positions", self._positions),
            ("Open orders", self._open),
            ("Recent fills", pn.Column(self._fills_note, self._fills, sizing_mode="stretch_width")),
            dynamic=True,
            sizing_mode="stretch_width",
        )
        # The chart column holds the blotter under the chart, so it is as tall as the ticket and
        # book beside it: no empty space below the chart.
        return pn.Column(
            pn.Row(self._inst_pick, self._tf_pick, *self._kpis.values(), sizing_mode="stretch_width"),
            pn.Row(
                pn.Column(
                    pn.pane.Bokeh(price, sizing_mode="stretch_width"),
                    pn.pane.Bokeh(vol, sizing_mode="stretch_width"),
                    self._chart_note,
                    tables,
                    sizing_mode="stretch_width",
                ),
                pn.Column(*self._ticket(), self._book, width=340),
                sizing_mode="stretch_width",
            ),
            sizing_mode="stretch_width",
        )

    def _ticket(self) -> list[pn.viewable.Viewable]:
        p = self.principal
        if p is None or self.desk is None or not p.can(Action.PLACE_ORDER):
            return [pn.pane.Markdown("_Your role views only: no order ticket._", name="no-ticket")]
        self._t_inst = pn.widgets.Select(label="Instrument", options=sorted(self.desk.instruments))
        self._t_side = pn.widgets.RadioButtonGroup(label="Side", options=["buy", "sell"], value="buy")
        self._t_qty = pn.widgets.TextInput(label="Quantity", value="0.01")
        self._t_limit = pn.widgets.TextInput(label="Limit price (empty: market)", value="")
        review = pn.widgets.Button(label="Review order", color="primary", css_classes=["lyra-review"])
        self._t_confirm = pn.widgets.Button(
            label="Confirm: send through risk",
            color="danger",
            visible=False,
            css_classes=["lyra-confirm-order"],
        )
        self._t_out = pn.pane.Markdown("", name="ticket-result", css_classes=["lyra-ticket-result"])
        review.on_click(self._review)
        self._t_confirm.on_click(self._send)
        widgets: list[pn.viewable.Viewable] = [
            pn.pane.Markdown("### Order ticket (executed by the session)"),
            self._t_inst,
            self._t_side,
            self._t_qty,
            self._t_limit,
            review,
            self._t_confirm,
            self._t_out,
        ]
        if self.gate.served:  # orders above the re-auth notional need it
            widgets.append(self.gate.widget())
        if p.can(Action.CANCEL_ORDER):
            self._c_pick = pn.widgets.Select(label="Cancel an open order", options=[])
            cancel = pn.widgets.Button(label="Cancel order", color="warning")
            cancel.on_click(self._cancel)
            widgets += [self._c_pick, cancel]
        return [pn.Column(*widgets, css_classes=["lyra-order-ticket"], name="order-ticket")]

    # -------------------------------------------------------------- picks
    def _picked_widget(self, name: str, value: Any) -> None:
        if not self._syncing and value and getattr(self, name) != value:
            setattr(self, name, value)

    def _picks_changed(self) -> None:
        if not self._syncing:
            self.reload()

    def symbol(self) -> str:
        """The symbol on the chart: :attr:`instrument` when the session trades it, else its first."""
        assert self.info is not None
        syms = self.info.symbols
        return self.instrument if self.instrument in syms else syms[0]

    def shown_timeframe(self) -> str:
        """The chart's timeframe: :attr:`timeframe` when the session's bars make it, else theirs."""
        assert self.info is not None
        tf = self.info.timeframe
        return self.timeframe if self.timeframe in timeframe_choices(tf) else tf

    def _sync_picks(self, sym: str, tf: str) -> None:
        assert self.info is not None
        self._syncing = True
        try:
            self._inst_pick.options = list(self.info.symbols)
            self._inst_pick.value = sym
            self._tf_pick.options = timeframe_choices(self.info.timeframe)
            self._tf_pick.value = tf
            if hasattr(self, "_t_inst") and f"{self.info.venue}:{sym}" in self._t_inst.options:
                self._t_inst.value = f"{self.info.venue}:{sym}"  # the ticket follows the chart
        finally:
            self._syncing = False

    # -------------------------------------------------------------- actions
    def _ticket_values(self) -> tuple[str, str, Decimal, Decimal | None]:
        try:
            qty = Decimal((self._t_qty.value or "").strip())
            raw_limit = (self._t_limit.value or "").strip()
            limit = Decimal(raw_limit) if raw_limit else None
        except InvalidOperation:
            raise LyraError("quantity and limit price must be numbers") from None
        if not qty.is_finite() or qty <= 0 or (limit is not None and (not limit.is_finite() or limit <= 0)):
            raise LyraError("quantity and limit price must be positive")
        return self._t_inst.value, self._t_side.value, qty, limit

    def _review(self, _e: Any = None) -> None:
        try:
            inst, side, qty, limit = self._ticket_values()
        except LyraError as exc:
            self._t_out.object = f"Not done: {exc}"
            self._t_confirm.visible = False
            return
        kind = f"limit {fmt_num(float(limit))}" if limit else "market"
        self._t_out.object = f"Send **{side} {qty} {inst}** ({kind})? Risk checks it first."
        self._t_confirm.visible = True

    def _send(self, _e: Any = None) -> None:
        self._t_confirm.visible = False
        assert self.desk is not None
        assert self.principal is not None
        try:
            inst, side, qty, limit = self._ticket_values()
            mark = self.rm.last_marks(self.session_id).get(inst) if limit is None else None
            price = limit if limit is not None else Decimal(str(mark)) if mark is not None else None
            # No price to value a market order: counted as large (re-authenticate to send it).
            notional = qty * price if price is not None and price.is_finite() else Decimal("Infinity")
            refused = self.gate.refusal(Action.PLACE_ORDER, notional=notional)
            if refused:
                self._t_out.object = refused
                return
            cmd = self.desk.submit(
                self.principal,
                instrument_id=inst,
                side=side,
                quantity=qty,
                limit_price=limit,
                session_id=self.session_id,
            )
        except LyraError as exc:
            self._t_out.object = f"Not done: not sent: {exc}"
            return
        self._show_command(cmd)

    def _cancel(self, _e: Any = None) -> None:
        assert self.desk is not None
        assert self.principal is not None
        cid = self._c_pick.value
        if not cid:
            self._t_out.object = "No open order to cancel."
            return
        try:
            self._show_command(self.desk.cancel(self.principal, cid, session_id=self.session_id))
        except LyraError as exc:
            self._t_out.object = f"Not done: {exc}"

    def _show_command(self, cmd: Any) -> None:
        """Show a command's state; keep polling it (``tick``) until the session answered and,
        for an order, until the order ended: the answer then says its fill price and fee (a
        resting order is followed for FOLLOW_MS, then the open-orders table has it)."""
        now = time.time() * 1000
        following = cmd.finished and not cmd.settled and now - (cmd.done_ts or now) <= FOLLOW_MS
        self._cmd = cmd.id if not cmd.finished or following else None
        text = cmd.describe()
        if not cmd.finished and now - cmd.created_ts > 10_000:
            text += " (no answer for 10 s: is the session running?)"
        elif following:
            text += " — working"
        self._t_out.object = text[0].upper() + text[1:] + "."
        if cmd.finished:
            self._safe_update(False)

    def _follow_command(self) -> None:
        if self._cmd is not None and self.desk is not None:
            cmd = self.desk.command(self._cmd)
            if cmd is not None:
                self._show_command(cmd)

    # -------------------------------------------------------------- data
    def tick(self) -> None:
        """Poll the log (fills, orders) and the recorded book (not in the log)."""
        super().tick()
        self._book.refresh()
        self._follow_command()

    def clear(self) -> None:
        self._book.show_instrument(None)
        self._candles.data = {k: [] for k in self._candles.data}
        self._fill_src.data = {k: [] for k in self._fill_src.data}
        self.candles = self.shown_bars = pd.DataFrame()
        self._loaded = ("", "", "", None)
        for t in (self._positions, self._open, self._fills):
            t.value = t.value.iloc[0:0]

    def precision(self, instrument_id: str) -> Precision:
        """Display precision of ``instrument_id`` (``venue:symbol``): the session config's."""
        assert self.info is not None
        venue, _, sym = instrument_id.partition(":")
        return instrument_precision(self.info.config, sym) if venue == self.info.venue else Precision()

    def _load_bars(self, sym: str, tf: str) -> None:
        """The session's bars of ``sym`` from its start to its data time, as ``tf`` candles,
        downsampled to at most MAX_CANDLES; streamed when only the newest candles changed."""
        info = self.info
        assert info is not None
        base_ms = timeframe_to_ms(info.timeframe)
        # data_ts is the close time of the last bar the session saw: bars open before it, by a bar.
        end = info.data_ts - base_ms + 1 if info.data_ts else None
        raw = self.rm.bars(info.venue, sym, info.timeframe, start=_start_ms(info), end=end)
        self._raw_last_ts = int(raw["ts"].iloc[-1]) if len(raw) else 0
        self._loaded_data_ts = info.data_ts
        candles = raw if tf == info.timeframe else resample_ohlc(raw, tf)
        if self.bars:
            candles = candles.iloc[-self.bars :].reset_index(drop=True)
        self.candles = candles
        old = self.shown_bars
        b = self.shown_bars = downsample_ohlc(candles, MAX_CANDLES)
        same_view = self._loaded == (self.session_id, sym, tf, self.bars)
        self._loaded = (self.session_id, sym, tf, self.bars)
        if b.empty:
            # The command names the dataset when its names are plain (they come from the config).
            safe = _SAFE.fullmatch(info.venue + sym + info.timeframe)
            v, sy, t = (info.venue, sym, info.timeframe) if safe else ("VENUE", "SYMBOL", "TIMEFRAME")
            self._chart_note.object = (
                f"**No {md_literal(info.timeframe)} bars for {md_literal(info.venue)} {md_literal(sym)} "
                f"in the market store.** Import them: `lyra data import FILE --exchange {v} --symbol {sy} "
                f"--timeframe {t}` (or fetch them: `lyra data download --exchange {v} --symbol {sy} "
                f"--since YYYY-MM-DD`).")
            self._candles.data = {k: [] for k in self._candles.data}
            self._bars_note = self._chart_note.object
            return
        step = timeframe_to_ms(tf) * len(candles) / len(b)
        self._body_glyph.glyph.width = self._vol_glyph.glyph.width = step * 0.8
        up = b["close"] >= b["open"]
        data = {"time": b["time"], "open": b["open"], "high": b["high"], "low": b["low"], "close": b["close"],
                "volume": b["volume"], "color": np.where(up, "#26a69a", "#ef5350")}
        lo, hi = float(b["ts"].iloc[0]) - step, float(b["ts"].iloc[-1]) + step
        n_old = len(old)
        keep = ["ts", "open", "high", "low", "close", "volume"]
        head = slice(0, n_old - 1)
        if same_view and 0 < n_old <= len(b) and b[keep].iloc[head].equals(old[keep].iloc[head]):
            # A running session moved on: patch the last (partial) candle, stream the new ones.
            last = n_old - 1
            self._candles.patch({k: [(last, v[last] if isinstance(v, np.ndarray) else v.iloc[last])]
                                 for k, v in data.items()})
            if len(b) > n_old:
                self._candles.stream({k: (v[n_old:] if isinstance(v, np.ndarray) else v.iloc[n_old:]).tolist()
                                      for k, v in data.items()})
            right = self._x.end
            if isinstance(right, (int, float)) and abs(right - self._data_hi) < 1:  # on the latest: follow
                self._x.end = hi
            self._data_hi = hi
        else:
            self._candles.data = data
            self._x.start, self._x.end = lo, hi
            self._data_hi = hi
        first, last_t = b["time"].iloc[0], b["time"].iloc[-1]
        drawn = f", drawn as {len(b):,} candles" if len(b) < len(candles) else ""
        self._bars_note = (f"{md_literal(info.venue)} {md_literal(sym)} {tf}: {len(candles):,} "
                           f"candles{drawn}, {first:%Y-%m-%d %H:%M} → {last_t:%Y-%m-%d %H:%M} UTC")

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        sym, tf = self.symbol(), self.shown_timeframe()
        iid = f"{info.venue}:{sym}"
        prec = self.precision(iid)
        if full:
            self._sync_picks(sym, tf)
            self._book.show_instrument(iid)
            if self.instrument and self.instrument != sym:
                self.warn(f"**{md_literal(self.instrument)}** is not traded by this session; "
                          f"showing {md_literal(sym)}.")
        next_close = self._raw_last_ts + 2 * timeframe_to_ms(info.timeframe)
        moved = info.data_ts != self._loaded_data_ts and info.data_ts >= next_close  # a newer bar seen
        if full or moved or self._loaded != (self.session_id, sym, tf, self.bars):
            self._load_bars(sym, tf)  # a new view, or a running session moved on: follow it
        f = self.rm.fills(self.session_id)
        pos = self.rm.positions(self.session_id)
        grew = len(f) != len(self.fill_frame) or full
        self.fill_frame = f
        mine = f[f["instrument_id"] == iid]
        # The headline first: Bokeh sends changes in the order they are made.
        self._kpis["Fills"].object = kpi_html("Fills", f"{len(f):,}")
        last = (f"{mine['side'].iloc[-1]} {prec.size_text(mine['quantity'].iloc[-1])} @ "
                f"{prec.price_text(mine['price'].iloc[-1])}" if len(mine) else "–")
        self._kpis["Last fill"].object = kpi_html("Last fill", last)
        held = pos[pos["instrument_id"] == iid]
        base, _, quote = sym.partition("/")
        qty = float(held["quantity"].sum()) if len(held) else 0.0
        # KPI tiles are HTML: names from the session's config are escaped.
        self._kpis["Position"].object = kpi_html("Position", f"{prec.size_text(qty)} {html.escape(base)}")
        self.mark = self._mark(iid)
        currency = html.escape(quote.split(":")[0] or info.quote)
        self._kpis["Mark"].object = kpi_html("Mark", fmt_money(self.mark, currency, prec.price))
        if grew:
            self._show_fills(f, mine, sym, prec)
        self._chart_note.object = (f"{self._bars_note} · {self._marked_note}." if len(self.shown_bars)
                                   else self._bars_note)
        set_if_changed(self._positions, positions_frame(pos, self.precision))
        open_orders = self.rm.orders([self.session_id, MANUAL_SESSION], open_only=True)
        set_if_changed(self._open, orders_frame(open_orders, self.precision))
        if hasattr(self, "_c_pick"):
            mine_o = [
                c
                for c, s in zip(open_orders["client_order_id"], open_orders["session_id"], strict=True)
                if s == self.session_id
            ]
            self._c_pick.options = mine_o
            if self._c_pick.value not in mine_o:
                self._c_pick.value = mine_o[0] if mine_o else None

    def _mark(self, iid: str) -> float:
        """The instrument's last price: the chart's last close when the bars reach the session's
        data time (a replay), else the session's last equity snapshot mark."""
        assert self.info is not None
        c = self.candles
        reach = self._raw_last_ts + timeframe_to_ms(self.info.timeframe)  # the last bar's close time
        if len(c) and self.info.data_ts and reach >= self.info.data_ts:
            return float(c["close"].iloc[-1])
        return float(self.rm.last_marks(self.session_id).get(iid, float("nan")))

    def _show_fills(self, f: pd.DataFrame, mine: pd.DataFrame, sym: str, prec: Precision) -> None:
        start = int(self.shown_bars["ts"].iloc[0]) if len(self.shown_bars) else None
        on_chart = mine[mine["ts"] >= start] if start is not None else mine
        self.chart_fills = on_chart
        self._fill_src.data = {
            "time": on_chart["time"],
            "price": on_chart["price"],
            "side": on_chart["side"],
            "color": np.where(on_chart["side"] == "buy", "#4fc3f7", "#ffb74d"),
            "marker": np.where(on_chart["side"] == "buy", "triangle", "inverted_triangle"),
            "label": [f"{s} {prec.size_text(q)} @ {prec.price_text(p)}"
                      for s, q, p in zip(on_chart["side"], on_chart["quantity"], on_chart["price"],
                                         strict=True)],
        }
        self._marked_note = (f"{len(on_chart):,} fills of {md_literal(sym)} marked" if len(on_chart)
                             else f"no fills of {md_literal(sym)} yet")
        self._fills_note.object = f"**{NO_FILLS}**" if f.empty else ""
        self._fills_note.visible = f.empty
        recent = f.iloc[::-1].head(FILL_ROWS)
        precs = [self.precision(i) for i in recent["instrument_id"]]
        self._fills.value = pd.DataFrame({
            "Time (UTC)": utc_text(recent["ts"]).to_numpy(),
            "Order id": recent["client_order_id"].to_numpy(),
            "Instrument": recent["symbol"].to_numpy(),
            "Side": recent["side"].to_numpy(),
            "Quantity": [p.size_text(q, ascii=True) for p, q in zip(precs, recent["quantity"], strict=True)],
            "Price": [p.price_text(v, ascii=True) for p, v in zip(precs, recent["price"], strict=True)],
            "Fee": [Precision(2, 8).size_text(v, ascii=True, least=2) for v in recent["fee"]],
            "Liquidity": recent["liquidity"].to_numpy(),
            "Notional": recent["notional"].to_numpy(dtype="float64"),
        }, columns=list(FILL_COLUMNS))




def create_app() -> pn.template.BootstrapTemplate:
    """A fresh trading page for one browser session."""
    from lyra.auth.panel_auth import current_principal
    from lyra.session.config import load_session_config
    from lyra.session.runtime import session_instruments

    rm, jsonl = read_model()
    who = current_principal()
    desk = None
    lo, hi = TradingView.param.bars.bounds
    bars_msg = f"`bars` in the link is out of range (a whole number in {lo:,}..{hi:,}); it was ignored."
    query = read_query(SESSION_PARAM, int_param("bars", lo, hi, bars_msg), INSTRUMENT_PARAM, TIMEFRAME_PARAM)
    sid = query.get("session") or rm.default_session_id()
    info = rm.session(sid) if sid else None
    if who is not None and who.can(Action.PLACE_ORDER) and info is not None:
        # The manual desk trades the instruments of the session on screen, with its definitions.
        instruments = session_instruments(load_session_config(info.config))
        equity = Decimal(repr(sum(info.balances.values())))
        desk = ManualDesk(rm.engine, instruments, session_id=sid, jsonl_path=jsonl, equity=equity)
    picks: dict[str, Any] = {}
    if info is not None:  # a well-formed value the session cannot show: a fixed message too
        if query.get("instrument") is not None:
            if query.get("instrument") in info.symbols:
                picks["instrument"] = query.get("instrument")
            else:
                query.problems.append(NOT_TRADED)
        if query.get("timeframe") is not None:
            if query.get("timeframe") in timeframe_choices(info.timeframe):
                picks["timeframe"] = query.get("timeframe")
            else:
                query.problems.append(TOO_FINE)
    if query.get("bars") is not None:
        picks["bars"] = query.get("bars")
    view = TradingView(rm, query.get("session"), principal=who, desk=desk, **picks)
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
