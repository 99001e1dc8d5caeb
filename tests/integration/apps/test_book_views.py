"""The order-book views of the trading and HFT apps, headless, on the shipped Kraken BTC/CHF
L2 capture recorded into a real (SQLite) database: the ladder shows exactly the
read model's levels, the depth chart's cumulative sizes equal a hand computation, spread and
depth over time equal the query layer; the fallback note, the empty state and live refresh."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from lyra.feeds.book_tap import BookTap, record_book_capture, replay_l2_capture
from lyra.readside import ReadModel
from lyra.session.registry import SessionRegistry
from lyra.store import create_engine_for, upgrade
from lyra.testing.sessions import demo_config

# Bokeh's ColumnDataSource.from_df calls reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")

CAPTURE = Path(__file__).resolve().parents[3] / "data" / "orderbook" / "kraken_BTC-CHF_l2.csv.gz"
IID = "kraken:BTC/CHF"
ROW = re.compile(r'<tr class="lyra-(ask|bid)"><td class="px"[^>]*>([^<]+)</td>.*?<span[^>]*>([^<]+)</span>'
                 r'</td><td class="cum">([^<]+)</td></tr>')


@pytest.fixture
def ghost(tmp_path) -> Iterator[ReadModel]:
    """A migrated SQLite database (the queries run on PostgreSQL too, in
    tests/integration/store/test_migration_books.py) with one registered session (the demo
    config: coinbase BTC/USD, no bars, no fills) and no book data yet."""
    engine = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(engine)
    SessionRegistry(engine).upsert("ghost", demo_config(session_id="ghost"), status="finished")
    yield ReadModel(engine, tmp_path)
    engine.dispose()


@pytest.fixture
def booked(ghost) -> ReadModel:
    record_book_capture(ghost.engine, CAPTURE, IID, checksum_decimals=(5, 8))
    return ghost


def test_trading_ladder_shows_exactly_the_read_models_levels(booked):
    from lyra.dashboards import trading

    v = trading.TradingView(booked, "ghost", live=False)
    bv = v._book
    # the session's instrument has no book: the recorded Kraken one, labelled as a sample of
    # another instrument in the note and in the ladder's title (never passed off as BTC/USD)
    assert bv.instrument_id == IID and bv._note.visible
    assert bv.note.startswith("No level-2 data for **coinbase:BTC/USD** is recorded.")
    assert "Sample book: kraken BTC/CHF \\(recorded 2021\\) — not this instrument" in bv.note
    assert 'class="lyra-book-title lyra-sample-book"' in bv._ladder.object
    assert "Sample book (not this instrument) · <b>kraken:BTC/CHF</b>" in bv._ladder.object
    book = booked.book(IID)
    assert book is not None and bv.book == book and bv.shown_ts == book.ts
    n = bv.levels
    expected = [("ask", p, s) for p, s in reversed(book.asks[:n])] + [("bid", p, s) for p, s in book.bids[:n]]
    assert list(bv.ladder_frame[["side", "price", "size"]].itertuples(index=False, name=None)) == expected
    # What the page shows, row by row: prices to the venue's 0.1 tick, sizes to 8 decimals, and
    # the running total from the inside out (hand-summed, not the view's own frame).
    rows = ROW.findall(bv._ladder.object)
    assert [(side, price) for side, price, _s, _c in rows] == [(sd, f"{p:,.1f}") for sd, p, _ in expected]
    assert [size for _sd, _p, size, _c in rows] == [f"{s:.8f}" for _sd, _p, s in expected]
    totals: dict[tuple[str, float], float] = {}
    for side, levels in (("ask", book.asks[:n]), ("bid", book.bids[:n])):
        acc = 0.0
        for p, s in levels:
            acc += s
            totals[(side, p)] = acc
    assert [c for *_x, c in rows] == [f"{totals[(sd, p)]:.8f}" for sd, p, _ in expected]
    assert rows[n - 1][0] == "ask" and rows[n][0] == "bid"  # best ask just above best bid
    spread = re.search(r'class="lyra-spread".*?>spread ([^<]+)</td>', bv._ladder.object)
    assert spread is not None and f"{book.spread_bps:,.2f} bps" in spread.group(1)
    bv.levels = 3
    assert len(bv.ladder_frame) == 6 and len(ROW.findall(bv._ladder.object)) == 6


def test_depth_chart_cumulative_sizes_equal_a_hand_computation(booked):
    from lyra.dashboards import trading

    bv = trading.TradingView(booked, "ghost", live=False)._book
    book = booked.book(IID)
    overlay = bv._dmap[()]  # what the pane renders for the current pipe data
    areas = {a.label: a.dframe() for a in overlay}
    assert set(areas) == {"bids", "asks"}
    for label, levels in (("bids", book.bids[: bv.levels]), ("asks", book.asks[: bv.levels])):
        acc, hand = 0.0, {}
        for p, s in levels:
            acc += s
            hand[p] = acc
        drawn = areas[label].groupby("price")["cum_size"].max().to_dict()  # top of each step
        assert drawn == pytest.approx(hand, rel=1e-12)
        assert areas[label]["price"].is_monotonic_increasing
    assert areas["bids"]["price"].max() == book.best_bid < book.best_ask == areas["asks"]["price"].min()
    # the plot really draws it: Bokeh figure, dark background, two filled areas
    import holoviews as hv

    fig = hv.render(overlay, backend="bokeh")
    assert fig.background_fill_color == "#1b1f24"
    assert len([r for r in fig.renderers if type(r.glyph).__name__ == "Patch"]) == 2


def test_hft_spread_and_depth_equal_the_query_layer(booked):
    from lyra.dashboards import hft

    sv = hft.HftView(booked, "ghost", live=False)._book
    assert sv.instrument_id == IID and "coinbase:BTC/USD" in sv.note
    ref = booked.spread_depth(IID)
    pd.testing.assert_frame_equal(sv.frame, ref)
    assert sv._pipe.data is sv.frame
    curves = {c.label: c.dframe() for c in sv.depth_element(sv.frame)}
    assert curves["bids ≤50 bps"]["bid_depth_50bps"].tolist() == ref["bid_depth_50bps"].tolist()
    spread = {c.label: c.dframe() for c in sv.spread_element(sv.frame)}["spread"]
    assert spread["spread_bps"].tolist() == ref["spread_bps"].tolist()
    assert f"{len(ref):,} snapshots" in sv._caption.object and "drawn as" not in sv._caption.object
    sv.max_points = 20
    assert len(sv.frame) <= 20 and sv.frame["snapshots"].sum() == len(ref)
    assert "drawn as" in sv._caption.object


def test_empty_state_live_refresh_and_the_sessions_own_book(ghost):
    from lyra.dashboards import book as _book_views
    from lyra.dashboards import hft, trading

    t = trading.TradingView(ghost, "ghost", live=False)
    h = hft.HftView(ghost, "ghost", live=False)
    assert t._book.note == _book_views.NO_BOOK.format(instrument="coinbase:BTC/USD")
    assert "no level-2 data is recorded for **coinbase:BTC/USD**" in t._book.note and not t._book._ladder.visible
    assert h._book.note == _book_views.NO_SPREAD.format(instrument="coinbase:BTC/USD")
    assert not h._book._spread.visible
    snaps = list(replay_l2_capture(CAPTURE, IID, checksum_decimals=(5, 8), levels=25))
    with BookTap(snaps[:50], ghost.engine, every_ms=0) as tap:  # a live feed's first snapshots
        list(tap)
    t.tick()
    h.tick()
    assert t._book.instrument_id == IID and t._book.shown_ts == snaps[49].ts and t._book._ladder.visible
    assert h._book.frame["ts"].iloc[-1] == snaps[49].ts
    with BookTap(snaps[50:60], ghost.engine, every_ms=0) as tap:
        list(tap)
    assert not t._book.refresh() and t._book.shown_ts == snaps[49].ts  # asked < 1 s ago: waits
    t._book._asked_at = h._book._asked_at = float("-inf")  # a second later
    assert t._book.refresh() and t._book.shown_ts == snaps[59].ts
    t._book._asked_at = float("-inf")
    assert not t._book.refresh()  # nothing newer: no redraw
    assert ghost.book(IID).bids[0] == (snaps[59].bids[0].price, snaps[59].bids[0].size)
    # The session's own instrument gets a book (a real Kraken snapshot, relabelled for this
    # test): the views leave the fallback for it and drop the note.
    own = replace(snaps[60], instrument_id="coinbase:BTC/USD")
    with BookTap([own], ghost.engine) as tap:
        list(tap)
    t._book._asked_at = h._book._asked_at = float("-inf")
    t.tick()
    h.tick()
    assert t._book.instrument_id == h._book.instrument_id == "coinbase:BTC/USD"
    assert t._book.note == h._book.note == "" and not t._book._note.visible
    assert "lyra-sample-book" not in t._book._ladder.object and "Order book · <b>coinbase:BTC/USD" in (
        t._book._ladder.object)
