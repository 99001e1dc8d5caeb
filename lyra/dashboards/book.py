"""Level-2 views shared by the trading and HFT apps: the order-book ladder with its depth chart,
and spread / depth over time. They read ``book_snapshots`` through the read model only
(``ReadModel.book``, ``spread_depth``, ``book_instruments``), which recorded L2 captures
(``lyra init`` records the shipped Kraken BTC/CHF one) and live book feeds
(``lyra.feeds.book_tap.BookTap``) fill.

A view shows the instrument it is asked for (the one on the page). When that one has no
recorded book it never passes another instrument's book off as this one: it shows the most
recently updated recorded book as a *sample*, labelled with its venue, symbol and year ("Sample
book: kraken BTC/CHF (recorded 2021) — not this instrument"), the ladder titled likewise; with
no book data at all it says no level-2 data is recorded for the instrument. The owning app
calls :meth:`show_instrument` on a full update and :meth:`refresh` on every poll: one indexed
query, and a redraw only when a newer snapshot arrived. In a notebook: ``OrderBookView(ReadModel(engine))``.
"""

from __future__ import annotations

import html
import logging
import time
from typing import Any

import holoviews as hv
import holoviews.plotting.bokeh  # registers the Bokeh backend and its options
import numpy as np
import pandas as pd
import panel as pn
import param
from holoviews.streams import Pipe

from lyra.dashboards.base import md_literal
from lyra.readside import ReadModel, fmt_num
from lyra.readside.book import BookView

log = logging.getLogger(__name__)

BID, ASK = "#26a69a", "#ef5350"
#: Empty states (``{instrument}``: the one asked for): no instrument has recorded book data.
NO_BOOK = ("**Order book**: no level-2 data is recorded for **{instrument}**. Paper sessions replaying "
           "bars have no book; a live or recorded L2 feed shows its ladder here.")
NO_SPREAD = ("**Spread and depth**: no level-2 data is recorded for **{instrument}** (bar replay); "
             "they appear here with a live or recorded book feed.")
_DARK = {"bgcolor": "#1b1f24"}


def pick_book_instrument(rm: ReadModel, wanted: str | None) -> tuple[str | None, str]:
    """The instrument to show and a note: ``wanted`` when it has a recorded book, else the most
    recently updated one that has, as a labelled sample (the note says so), else (None, '')."""
    found = rm.book_instruments()
    if wanted and wanted in found:
        return wanted, ""
    if not found:
        return None, ""
    book = rm.book(found[0])
    return found[0], sample_note(wanted, found[0], book.time.year if book is not None else None)


def sample_label(instrument_id: str, year: int | None) -> str:
    """``Sample book: kraken BTC/CHF (recorded 2021) — not this instrument``."""
    venue, _, symbol = instrument_id.partition(":")
    when = f" (recorded {year})" if year else ""
    return f"Sample book: {venue} {symbol or venue}{when} — not this instrument"


def sample_note(wanted: str | None, shown: str, year: int | None) -> str:
    """The note above a sample book: the instrument asked for has no level-2 data."""
    what = f"No level-2 data for **{md_literal(wanted)}** is recorded" if wanted else "No instrument picked"
    return f"{what}. **{md_literal(sample_label(shown, year))}**."


def depth_steps(levels: pd.DataFrame) -> pd.DataFrame:
    """Step outline of one side's cumulative size (``price``, ``cum_size`` best first), x
    ascending: the size available at a price or better is flat between two levels."""
    p = levels["price"].to_numpy(dtype="float64")
    c = levels["cum_size"].to_numpy(dtype="float64")
    if len(p) == 0:
        return pd.DataFrame({"price": [], "cum_size": []}, dtype="float64")
    xs = np.repeat(p, 2)[1:]  # p0, p1, p1, p2, p2, ...
    ys = np.repeat(c, 2)[:-1]  # c0, c0, c1, c1, c2, ...
    out = pd.DataFrame({"price": xs, "cum_size": ys})
    return out.iloc[::-1].reset_index(drop=True) if len(p) > 1 and p[0] > p[-1] else out


def _empty_steps() -> dict[str, pd.DataFrame]:
    return {"bids": depth_steps(pd.DataFrame({"price": [], "cum_size": []})),
            "asks": depth_steps(pd.DataFrame({"price": [], "cum_size": []}))}


class _BookBase(pn.viewable.Viewer):
    """Picks the instrument (with fallback), polls for newer snapshots."""

    EMPTY = NO_BOOK  #: the empty-state message (no book data at all)

    instrument_id = param.String(default="", doc="The instrument shown ('' = none has a book).")
    wanted = param.String(default="", doc="The instrument asked for (the session's).")
    note = param.String(default="", doc="Fallback / empty-state / error text shown above.")
    shown_ts = param.Integer(default=0, doc="Time (ms UTC) of the latest snapshot drawn.")

    def __init__(self, rm: ReadModel, wanted: str | None = None, *, load: bool = True,
                 **params: Any) -> None:
        super().__init__(**params)
        self.rm = rm
        self._asked_at = float("-inf")
        self._note = pn.pane.Markdown("", name="book-note", css_classes=["lyra-book-note"],
                                      sizing_mode="stretch_width", visible=False)
        self._build()
        if load:  # the apps pass load=False: their first update calls show() with the session's
            self.show_instrument(wanted)

    def _build(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _draw(self, latest: BookView | None = None) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _empty(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def _say(self, text: str) -> None:
        self.note = text
        self._note.object = text
        self._note.visible = bool(text)

    def show_instrument(self, wanted: str | None) -> None:
        """Show ``wanted`` (or the fallback) from scratch."""
        try:
            self.wanted = wanted or ""
            iid, note = pick_book_instrument(self.rm, wanted)
            self.instrument_id = iid or ""
            self.shown_ts = 0
            if iid is None:
                self._say(self.EMPTY.format(instrument=md_literal(wanted or "this instrument")))
                self._empty()
                return
            self._say(note)
            self._draw()
        except Exception as exc:  # keep the page alive when the database hiccups
            log.exception("order-book view failed")
            self._say(f"Could not read the order book ({type(exc).__name__}); retrying.")

    def refresh(self) -> bool:
        """Redraw if a newer snapshot was recorded (or a book appeared); True if redrawn.
        Asks the database at most once a second (books are recorded about once a second)."""
        now = time.monotonic()
        if now - self._asked_at < 1.0:
            return False
        self._asked_at = now
        try:
            if not self.instrument_id:
                if self.rm.book_instruments():
                    self.show_instrument(self.wanted or None)
                    return True
                return False
            if self.wanted and self.wanted != self.instrument_id and self.rm.book(self.wanted) is not None:
                self.show_instrument(self.wanted)  # the session's own book appeared: leave the fallback
                return True
            latest = self.rm.book(self.instrument_id)
            if latest is None or latest.ts == self.shown_ts:
                return False
            self._draw(latest)
            return True
        except Exception as exc:
            log.exception("order-book refresh failed")
            self._say(f"Could not read the order book ({type(exc).__name__}); retrying.")
            return False


class OrderBookView(_BookBase):
    """Ladder (asks above bids: price, size, cumulative size, size bars) and depth chart."""

    levels = param.Integer(default=12, bounds=(1, 100), doc="Levels per side on the ladder and chart.")

    def __init__(self, rm: ReadModel, wanted: str | None = None, **params: Any) -> None:
        self.book: BookView | None = None
        self.ladder_frame = pd.DataFrame()
        self.depth_frame = pd.DataFrame()
        super().__init__(rm, wanted, **params)
        self.param.watch(lambda _e: self._draw(self.book) if self.book else None, ["levels"])

    def _build(self) -> None:
        self._ladder = pn.pane.HTML("", name="order-book", css_classes=["lyra-ladder"],
                                    sizing_mode="stretch_width", visible=False)
        self._pipe = Pipe(data=_empty_steps())
        self._dmap = hv.DynamicMap(self.depth_element, streams=[self._pipe])
        self._depth = pn.pane.HoloViews(self._dmap, backend="bokeh", name="depth-chart", height=230,
                                        sizing_mode="stretch_width", visible=False,
                                        css_classes=["lyra-depth-chart"])
        self._layout = pn.Column(self._note, self._ladder, self._depth, sizing_mode="stretch_width")

    def depth_element(self, data: dict[str, pd.DataFrame]) -> hv.Overlay:
        """The depth chart for ``data`` (``bids``/``asks`` step outlines): step areas of
        cumulative size against price, bids green, asks red."""
        areas = [hv.Area(data[side], ("price", "price"), ("cum_size", "cumulative size"), label=side)
                 .opts(color=colour, alpha=0.45, line_color=colour, tools=["hover"])
                 for side, colour in (("bids", BID), ("asks", ASK))]
        # No legend: the ladder above uses the same colours, and the chart is narrow.
        return hv.Overlay(areas).opts(responsive=True, height=220, framewise=True, show_legend=False,
                                      title="Depth (bids green, asks red)", show_grid=True, **_DARK)

    def _empty(self) -> None:
        self.book = None
        self.ladder_frame = self.depth_frame = pd.DataFrame()
        self._ladder.visible = self._depth.visible = False
        self._pipe.send(_empty_steps())

    def _draw(self, book: BookView | None = None) -> None:
        book = book or (self.rm.book(self.instrument_id) if self.instrument_id else None)
        if book is None:
            self._empty()
            return
        self.book = book
        self.shown_ts = book.ts
        self.ladder_frame = book.ladder(self.levels)
        self.depth_frame = curve = book.depth_curve(self.levels)
        sample = bool(self.wanted) and self.wanted != book.instrument_id
        self._ladder.object = ladder_html(book, self.ladder_frame, sample=sample)
        self._pipe.send({"bids": depth_steps(curve[curve["side"] == "bid"]),
                         "asks": depth_steps(curve[curve["side"] == "ask"])})
        self._ladder.visible = self._depth.visible = True

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout


def ladder_html(book: BookView, ladder: pd.DataFrame, *, sample: bool = False) -> str:
    """The ladder as an HTML table: asks (red) above bids (green), price, size with a bar
    proportional to the largest size shown, and the cumulative size from the inside out.
    ``sample``: another instrument's book, titled as a sample (amber, dashed frame)."""
    pd_, sd = book.price_decimals, min(book.size_decimals, 8)
    biggest = float(ladder["size"].max()) if len(ladder) else 0.0
    rows = [_level_row(r.side, r.price, r.size, r.cum_size, biggest, pd_, sd)
            for r in ladder[ladder["side"] == "ask"].itertuples(index=False)]
    rows.append(_spread_row(book))
    rows += [_level_row(r.side, r.price, r.size, r.cum_size, biggest, pd_, sd)
             for r in ladder[ladder["side"] == "bid"].itertuples(index=False)]
    kind = "Sample book (not this instrument)" if sample else "Order book"
    colour = "#ffb74d" if sample else "#9aa4af"
    title = (f'<div class="lyra-book-title{" lyra-sample-book" if sample else ""}" style="color:{colour};'
             f'font-size:12px;margin-bottom:4px">{kind} · <b>{html.escape(book.instrument_id)}</b> · '
             f'{book.time.strftime("%Y-%m-%d %H:%M:%S")} UTC</div>')
    head = ('<tr style="color:#9aa4af"><th style="text-align:right">Price</th>'
            '<th style="text-align:right">Size</th><th style="text-align:right">Total</th></tr>')
    frame = "border:1px dashed #ffb74d;opacity:0.75;" if sample else ""
    return (f'{title}<table class="lyra-ladder-table" style="width:100%;border-collapse:collapse;{frame}'
            f'font-family:monospace;font-size:12px;text-align:right">{head}{"".join(rows)}</table>')


def _level_row(side: str, price: float, size: float, cum: float, biggest: float, pd_: int, sd: int) -> str:
    colour = ASK if side == "ask" else BID
    width = 100.0 * size / biggest if biggest > 0 else 0.0
    return (f'<tr class="lyra-{side}"><td class="px" style="color:{colour}">{fmt_num(price, pd_)}</td>'
            f'<td class="sz" style="position:relative"><div style="position:absolute;right:0;top:1px;'
            f'bottom:1px;width:{width:.1f}%;background:{colour};opacity:0.22"></div>'
            f'<span style="position:relative">{fmt_num(size, sd)}</span></td>'
            f'<td class="cum">{fmt_num(cum, sd)}</td></tr>')


def _spread_row(book: BookView) -> str:
    spread = (f"spread {fmt_num(book.spread, book.price_decimals)} · {fmt_num(book.spread_bps)} bps · "
              f"mid {fmt_num(book.mid, book.price_decimals + 1)}" if book.spread is not None
              else "one side of the book is empty")
    return (f'<tr class="lyra-spread"><td colspan="3" style="text-align:center;color:#9aa4af;'
            f'border-top:1px solid #444;border-bottom:1px solid #444">{spread}</td></tr>')


class SpreadDepthView(_BookBase):
    """Spread (bps) and the size within 10 / 50 bps of the mid over time, downsampled."""

    max_points = param.Integer(default=2000, bounds=(2, 100_000), doc="Most points drawn per curve.")
    EMPTY = NO_SPREAD

    def __init__(self, rm: ReadModel, wanted: str | None = None, **params: Any) -> None:
        self.frame = pd.DataFrame()
        super().__init__(rm, wanted, **params)
        self.param.watch(lambda _e: self.show_instrument(self.wanted or None), ["max_points"])

    def _build(self) -> None:
        self._pipe = Pipe(data=self._no_series())
        self._spread = pn.pane.HoloViews(hv.DynamicMap(self.spread_element, streams=[self._pipe]),
                                         backend="bokeh", name="spread-chart", height=240,
                                         sizing_mode="stretch_width", visible=False,
                                         css_classes=["lyra-spread-chart"])
        self._depthc = pn.pane.HoloViews(hv.DynamicMap(self.depth_element, streams=[self._pipe]),
                                         backend="bokeh", name="depth-series", height=240,
                                         sizing_mode="stretch_width", visible=False,
                                         css_classes=["lyra-depth-series"])
        self._caption = pn.pane.Markdown("", name="spread-caption", css_classes=["lyra-spread-caption"])
        self._layout = pn.Column(pn.pane.Markdown("### Spread and depth"), self._note, self._caption,
                                 pn.Row(self._spread, self._depthc, sizing_mode="stretch_width"),
                                 sizing_mode="stretch_width")

    @staticmethod
    def _no_series() -> pd.DataFrame:
        cols = ("spread_bps", "spread_bps_max", "bid_depth_10bps", "ask_depth_10bps", "bid_depth_50bps",
                "ask_depth_50bps")
        return pd.DataFrame({"time": pd.Series(dtype="datetime64[ns]"), **{c: pd.Series(dtype="float64")
                                                                            for c in cols}})

    def spread_element(self, data: pd.DataFrame) -> hv.Overlay:
        """Spread in bps over time (and each bucket's widest spread when downsampled)."""
        mean = hv.Curve(data, "time", ("spread_bps", "spread (bps)"), label="spread").opts(
            color="#4f8cc9", tools=["hover"])
        widest = hv.Curve(data, "time", ("spread_bps_max", "spread (bps)"), label="widest in bucket").opts(
            color="#4f8cc9", line_dash="dotted", alpha=0.6, tools=["hover"])
        return hv.Overlay([mean, widest]).opts(responsive=True, height=230, framewise=True, xlabel="",
                                               title="Spread (bps of mid)", legend_position="top_left",
                                               show_grid=True, **_DARK)

    def depth_element(self, data: pd.DataFrame) -> hv.Overlay:
        """Size resting within 10 bps (solid) and 50 bps (dashed) of the mid, bids green, asks red."""
        curves = [hv.Curve(data, "time", (f"{side}_depth_{band}bps", "size"),
                           label=f"{side}s ≤{band} bps").opts(color=BID if side == "bid" else ASK,
                                                             line_dash="solid" if band == 10 else "dashed",
                                                             tools=["hover"])
                  for band in (10, 50) for side in ("bid", "ask")]
        return hv.Overlay(curves).opts(responsive=True, height=230, framewise=True, xlabel="",
                                       title="Size within 10 / 50 bps of the mid", legend_position="right",
                                       xticks=4, show_grid=True, **_DARK)

    def _empty(self) -> None:
        self.frame = pd.DataFrame()
        self._spread.visible = self._depthc.visible = False
        self._caption.object = ""
        self._pipe.send(self._no_series())

    def _draw(self, latest: BookView | None = None) -> None:
        latest = latest or self.rm.book(self.instrument_id)
        f = self.rm.spread_depth(self.instrument_id, max_points=self.max_points)
        if f.empty or latest is None:
            self._empty()
            return
        self.frame = f
        self.shown_ts = latest.ts
        self._pipe.send(f)
        n = int(f["snapshots"].sum())
        drawn = f", drawn as {len(f):,} points" if len(f) < n else ""
        self._caption.object = (f"**{self.instrument_id}**: {n:,} snapshots{drawn}, "
                                f"{f['time'].iloc[0]:%Y-%m-%d %H:%M:%S} → {f['time'].iloc[-1]:%H:%M:%S} UTC; "
                                f"median spread {fmt_num(float(f['spread_bps'].median()))} bps.")
        self._spread.visible = self._depthc.visible = True

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
