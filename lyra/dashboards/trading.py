"""Trading: candlesticks with volume and the session's fills, positions, open orders, recent
fills, the order-book ladder and depth chart (recorded level-2 data: the session's instrument,
else another one with a note), and (for roles allowed to trade) a risk-checked order ticket
and cancel.

Query parameters: ``?session=<id>`` and ``?bars=<n>`` (how many latest bars, 100..200,000;
drawn downsampled to at most 1,500 candles). In a notebook: ``TradingView(ReadModel(engine,
market_dir), live=False)``.
"""

from __future__ import annotations

import time
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.models import ColumnDataSource
from bokeh.models.widgets import NumberFormatter
from bokeh.plotting import figure

from lyra.auth.permissions import Action, Principal
from lyra.core.errors import LyraError
from lyra.core.timeutil import timeframe_to_ms
from lyra.dashboards.actions import ReauthGate
from lyra.dashboards.base import (
    NUMBER,
    SESSION_PARAM,
    TABLE_OPTS,
    LiveView,
    int_param,
    kpi_card,
    kpi_html,
    page,
    read_model,
    read_query,
)
from lyra.dashboards.book import OrderBookView
from lyra.readside import MANUAL_SESSION, ManualDesk, ReadModel, downsample_ohlc, fmt_money, fmt_num

ROUTE = "trading"
TITLE = "Trading"
REQUIRES = "view_trading"

MAX_CANDLES = 1500
FILL_ROWS = 200
#: How long the ticket follows an accepted order to its fill before leaving it to the tables (ms)
FOLLOW_MS = 120_000
_FMT = {
    c: NumberFormatter(format=NUMBER)
    for c in (
        "price",
        "quantity",
        "fee",
        "notional",
        "avg_price",
        "mark",
        "market_value",
        "realized_pnl",
        "unrealized_pnl",
        "filled_quantity",
        "avg_fill_price",
        "limit_price",
        "fees",
    )
}


class TradingView(LiveView):
    """Chart, positions, open orders, fills; order ticket when ``principal`` may trade."""

    bars = param.Integer(default=5000, bounds=(100, 200_000), doc="Latest bars on the chart.")
    refresh_ms = param.Integer(default=250, bounds=(250, 60_000))
    LISTEN = ("order.", "session.")

    def __init__(
        self,
        rm: ReadModel,
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
        self.shown_bars = pd.DataFrame()
        self.fill_frame = pd.DataFrame()
        super().__init__(rm, session_id, **params)
        self.param.watch(lambda _e: self.reload(), ["bars"])

    # -------------------------------------------------------------- layout
    def _build(self) -> pn.viewable.Viewable:
        self._candles = ColumnDataSource(
            {k: [] for k in ("time", "open", "high", "low", "close", "volume", "color")}
        )
        self._fill_src = ColumnDataSource({"time": [], "price": [], "side": [], "color": [], "marker": []})
        price = figure(
            x_axis_type="datetime",
            height=360,
            sizing_mode="stretch_width",
            tools="xpan,xwheel_zoom,box_zoom,reset",
            active_scroll="xwheel_zoom",
            title="Price",
        )
        price.segment("time", "high", "time", "low", source=self._candles, color="color")
        self._body_glyph = price.vbar(
            "time", 0.0, "open", "close", source=self._candles, fill_color="color", line_color="color"
        )
        price.scatter(
            "time",
            "price",
            source=self._fill_src,
            marker="marker",
            size=9,
            color="color",
            line_color="white",
            legend_label="fills",
        )
        price.legend.location = "top_left"
        vol = figure(
            x_axis_type="datetime",
            height=110,
            sizing_mode="stretch_width",
            x_range=price.x_range,
            tools="",
            title="Volume",
        )
        self._vol_glyph = vol.vbar("time", 0.0, "volume", 0, source=self._candles, color="color", alpha=0.6)
        self._chart_note = pn.pane.Markdown("", name="chart-note")
        self._kpis = {
            k: kpi_card(k, "–", name=f"kpi-{k}") for k in ("Fills", "Last fill", "Position", "Mark")
        }
        self._kpis["Fills"].css_classes = ["lyra-kpi", "lyra-fill-count"]
        self._positions = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "positions"], **TABLE_OPTS
        )
        self._open = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "open-orders"], **TABLE_OPTS
        )
        self._fills = pn.widgets.Tabulator(
            pd.DataFrame(), formatters=_FMT, css_classes=["lyra-table", "fills"], **TABLE_OPTS
        )
        self._book = OrderBookView(self.rm, load=False)  # ladder + depth chart (level-2 data, with fallback)
        side = [self._book, *self._ticket()]
        return pn.Column(
            pn.Row(*self._kpis.values()),
            pn.Row(
                pn.Column(
                    pn.pane.Bokeh(price, sizing_mode="stretch_width"),
                    pn.pane.Bokeh(vol, sizing_mode="stretch_width"),
                    self._chart_note,
                    sizing_mode="stretch_width",
                ),
                pn.Column(*side, width=320),
            ),
            pn.Tabs(
                ("Positions", self._positions),
                ("Open orders", self._open),
                ("Recent fills", self._fills),
                dynamic=True,
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
        for t in (self._positions, self._open, self._fills):
            t.value = pd.DataFrame()

    def _load_bars(self) -> None:
        info = self.info
        assert info is not None
        sym = info.symbols[0]
        tf = timeframe_to_ms(info.timeframe)
        end = info.data_ts + 1 if info.data_ts else None
        raw = self.rm.bars(info.venue, sym, info.timeframe, end=end)
        raw = raw.iloc[-self.bars :]
        self.shown_bars = downsample_ohlc(raw, MAX_CANDLES)
        b = self.shown_bars
        if b.empty:
            self._chart_note.object = f"No {info.timeframe} bars for {info.venue} {sym} in the market store."
            self._candles.data = {k: [] for k in self._candles.data}
            return
        width = (len(raw) / max(len(b), 1)) * tf * 0.8
        self._body_glyph.glyph.width = width
        self._vol_glyph.glyph.width = width
        up = b["close"] >= b["open"]
        self._candles.data = {
            "time": b["time"],
            "open": b["open"],
            "high": b["high"],
            "low": b["low"],
            "close": b["close"],
            "volume": b["volume"],
            "color": np.where(up, "#26a69a", "#ef5350"),
        }
        note = f"{len(raw):,} bars" + (f", drawn as {len(b):,} candles" if len(b) < len(raw) else "")
        self._chart_note.object = f"{info.venue} {sym} {info.timeframe}: {note}."

    def update(self, full: bool = True) -> None:
        info = self.info
        assert info is not None
        if full:
            self._book.show_instrument(info.instrument_ids[0])
        if full or self.shown_bars.empty:
            self._load_bars()
        elif (
            not self.shown_bars.empty
            and info.data_ts > int(self.shown_bars["ts"].iloc[-1]) + 60 * 60_000 * 24
        ):
            self._load_bars()  # a running session moved on: follow it (at most daily granularity)
        f = self.rm.fills(self.session_id)
        pos = self.rm.positions(self.session_id)
        marks = self.rm.last_marks(self.session_id)
        grew = len(f) != len(self.fill_frame) or full
        self.fill_frame = f
        # The headline first: Bokeh sends changes in the order they are made.
        q = info.quote or ""
        self._kpis["Fills"].object = kpi_html("Fills", f"{len(f):,}")
        last = (
            f"{f['side'].iloc[-1]} {fmt_num(f['quantity'].iloc[-1], 4)} @ {fmt_num(f['price'].iloc[-1])}"
            if len(f)
            else "–"
        )
        self._kpis["Last fill"].object = kpi_html("Last fill", last)
        self._kpis["Position"].object = kpi_html(
            "Position", fmt_num(float(pos["quantity"].sum()), 4) if len(pos) else "0"
        )
        mark = marks.get(info.instrument_ids[0], float("nan"))
        self._kpis["Mark"].object = kpi_html("Mark", fmt_money(mark, q))
        if grew:
            f_chart = f[f["ts"] >= int(self.shown_bars["ts"].iloc[0])] if len(self.shown_bars) else f
            self._fill_src.data = {
                "time": f_chart["time"],
                "price": f_chart["price"],
                "side": f_chart["side"],
                "color": np.where(f_chart["side"] == "buy", "#4fc3f7", "#ffb74d"),
                "marker": np.where(f_chart["side"] == "buy", "triangle", "inverted_triangle"),
            }
            recent = f.iloc[::-1].head(FILL_ROWS)
            self._fills.value = recent[
                [
                    "time",
                    "client_order_id",
                    "symbol",
                    "side",
                    "quantity",
                    "price",
                    "fee",
                    "liquidity",
                    "notional",
                ]
            ].reset_index(drop=True)
        _set_if_changed(
            self._positions,
            pos[
                [
                    "venue",
                    "symbol",
                    "quantity",
                    "avg_price",
                    "mark",
                    "market_value",
                    "realized_pnl",
                    "unrealized_pnl",
                    "fees",
                ]
            ],
        )
        open_orders = self.rm.orders([self.session_id, MANUAL_SESSION], open_only=True)
        _set_if_changed(
            self._open,
            open_orders[
                [
                    "time",
                    "client_order_id",
                    "session_id",
                    "symbol",
                    "side",
                    "order_type",
                    "quantity",
                    "limit_price",
                    "filled_quantity",
                    "status",
                ]
            ],
        )
        if hasattr(self, "_c_pick"):
            mine = [
                c
                for c, s in zip(open_orders["client_order_id"], open_orders["session_id"], strict=True)
                if s == self.session_id
            ]
            self._c_pick.options = mine
            if self._c_pick.value not in mine:
                self._c_pick.value = mine[0] if mine else None


def _set_if_changed(table: pn.widgets.Tabulator, frame: pd.DataFrame) -> None:
    # Re-sending an unchanged table costs the browser a full re-render.
    old = table.value
    if old is None or list(old.columns) != list(frame.columns) or not old.equals(frame):
        table.value = frame


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
    query = read_query(SESSION_PARAM, int_param("bars", lo, hi, bars_msg))
    sid = query.get("session") or rm.default_session_id()
    info = rm.session(sid) if sid else None
    if who is not None and who.can(Action.PLACE_ORDER) and info is not None:
        # The manual desk trades the instruments of the session on screen, with its definitions.
        instruments = session_instruments(load_session_config(info.config))
        equity = Decimal(repr(sum(info.balances.values())))
        desk = ManualDesk(rm.engine, instruments, session_id=sid, jsonl_path=jsonl, equity=equity)
    view = TradingView(rm, query.get("session"), principal=who, desk=desk)
    if query.get("bars") is not None:
        view.bars = query.get("bars")
    view.show_problems(query)
    return page(TITLE, view, route=ROUTE)
