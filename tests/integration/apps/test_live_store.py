"""The shared live store on a real SQLite home: ten open views cost the database what one
does (statements counted at the engine), a new fill reaches every view after the store's next
poll, the poller stops with its last view, and a failing poll keeps the poller alive while the
views say the database cannot be read. The store is driven by ``poll_once()`` and a frozen
clock where counts are compared; where the real poller thread runs, tests wait on conditions."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa

from lyra.dashboards.base import DB_TROUBLE
from lyra.dashboards.executive import ExecutiveView
from lyra.dashboards.live_store import LiveStore, is_live_source
from lyra.dashboards.trading import TradingView
from lyra.readside import Changes, ReadModel
from lyra.testing.serving import append_fill

# Bokeh's ColumnDataSource.from_df calls reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")

FROZEN: Callable[[], float] = lambda: 0.0  # noqa: E731 - a clock that never moves: no TTL expires


def _until(cond: Callable[[], bool], limit: float = 120.0) -> bool:
    """Wait for ``cond`` (the limit only bounds a failure, it does not time anything)."""
    end = time.monotonic() + limit
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@contextlib.contextmanager
def counting(engine: sa.Engine) -> Iterator[list[int]]:
    """Count the SQL statements ``engine`` sends to the database inside the block."""
    n = [0]

    def count(*_args: Any) -> None:
        n[0] += 1

    sa.event.listen(engine, "before_cursor_execute", count)
    try:
        yield n
    finally:
        sa.event.remove(engine, "before_cursor_execute", count)


def _fills_kpi(v: TradingView) -> str:
    return str(v._kpis["Fills"].object)


def test_ten_views_cost_the_database_what_one_view_does(dash):
    settings, rm = dash
    jsonl = settings.audit_dir / "events.jsonl"

    def one_round(n_views: int, price: str) -> tuple[int, int]:
        store = LiveStore(ReadModel(rm.engine, settings.market_dir), autostart=False, clock=FROZEN)
        views = [TradingView(store.source, "dash", store=store) for _ in range(n_views)]
        assert store.subscribers == n_views and not store.running
        before = len(views[0].fill_frame)
        with counting(rm.engine) as quiet:  # nothing new in the log
            store.poll_once()
            for v in views:
                v.tick()
        fid = append_fill(rm.engine, jsonl, "dash", price=price)
        with counting(rm.engine) as busy:  # a fill arrived: the views re-query, through the cache
            store.poll_once()
            for v in views:
                v.tick()
        for v in views:  # every view shows it, after this one poll
            assert len(v.fill_frame) == before + 1 and v.fill_frame["fill_id"].iloc[-1] == fid
            assert f">{before + 1:,}<" in _fills_kpi(v) and f"{float(price):,.2f}" in str(v._kpis["Last fill"].object)
        for v in views:
            v.close()
        assert store.subscribers == 0
        return quiet[0], busy[0]

    one = one_round(1, "10234.5")
    ten = one_round(10, "10345.6")
    # The reference: a view reading the database itself re-runs every query per view.
    own = ReadModel(rm.engine, settings.market_dir)
    solo = [TradingView(own, "dash", live=False) for _ in range(2)]
    append_fill(rm.engine, jsonl, "dash", price="10456.7")
    with counting(rm.engine) as uncached:
        for v in solo:
            v.tick()
    assert 1 <= one[0] <= 2, one  # a quiet poll is the one log query (and SQLite's BEGIN)
    assert ten == one, (one, ten)
    assert one[1] > one[0] and uncached[0] >= 2 * (one[1] - one[0]), (one, uncached[0])


def test_the_poller_thread_brings_a_new_fill_to_every_view(dash):
    settings, rm = dash
    store = LiveStore(ReadModel(rm.engine, settings.market_dir), interval_s=0.05)
    views = [TradingView(store.source, "dash", store=store) for _ in range(2)]
    try:
        assert store.running
        n = len(views[0].fill_frame)
        head = store.head
        fid = append_fill(rm.engine, settings.audit_dir / "events.jsonl", "dash", price="10567.8")
        assert _until(lambda: store.head > head)  # no poll_once(): the thread saw it
        for v in views:
            v.tick()
            assert len(v.fill_frame) == n + 1 and v.fill_frame["fill_id"].iloc[-1] == fid
            assert f">{n + 1:,}<" in _fills_kpi(v)
    finally:
        for v in views:
            v.close()
    assert _until(lambda: not store.running)


def test_the_poller_stops_with_its_last_view(dash):
    settings, rm = dash
    store = LiveStore(ReadModel(rm.engine, settings.market_dir), interval_s=0.05)
    a = ExecutiveView(store.source, session="dash", store=store)
    b = ExecutiveView(store.source, session="dash", store=store)
    assert store.running and store.subscribers == 2
    a.close()
    polls = store.polls
    assert _until(lambda: store.polls > polls + 2)  # one view left: still polling
    assert store.running and store.subscribers == 1
    b.close()
    assert _until(lambda: not store.running) and store.subscribers == 0
    # A view nobody closes (its page went away) leaves when it is collected.
    c = ExecutiveView(store.source, session="dash", store=store)
    assert store.running and c.session_id == "dash"
    del c
    gc.collect()
    assert _until(lambda: not store.running)
    # A stopped store forgot the log head: the next view starts from the database's.
    head = ReadModel(rm.engine).head_seq()
    d = ExecutiveView(store.source, session="dash", store=store)
    assert d.head_seq == head and store.running
    d.close()
    assert _until(lambda: not store.running)


class _Flaky(ReadModel):
    """A read model whose log query fails while ``broken`` is set."""

    broken = False

    def changes_since(self, seq: int, session_id: str | None = None) -> Changes:
        if self.broken:
            raise sa.exc.OperationalError("SELECT kind FROM events", {}, Exception("disk I/O error"))
        return super().changes_since(seq, session_id)


def test_a_failing_poll_keeps_the_poller_and_the_views_say_so(dash, caplog):
    settings, rm = dash
    source = _Flaky(rm.engine, settings.market_dir)
    store = LiveStore(source, interval_s=0.05)
    v = ExecutiveView(source, session="dash", store=store)
    try:
        assert v.message == ""
        source.broken = True
        assert _until(lambda: store.error is not None)
        polls = store.polls
        assert _until(lambda: store.polls > polls + 2) and store.running  # still polling
        v.tick()
        assert v.message == f"{DB_TROUBLE} (OperationalError); retrying."
        assert sum("reading the event log failed" in r.getMessage() for r in caplog.records) == 1
        source.broken = False
        assert _until(lambda: store.error is None)
        v.tick()
        assert v.message == ""  # the database answers again
    finally:
        v.close()
    assert _until(lambda: not store.running)


class _Static:
    """A finished result held in memory: the dash session's answers, and no live log."""

    live = False

    def __init__(self, rm: ReadModel) -> None:
        self._rm = rm

    def head_seq(self) -> int:
        return 0

    def changes_since(self, seq: int, session_id: str | None = None) -> Changes:
        return Changes(seq)

    def __getattr__(self, name: str) -> Any:
        if name == "engine":
            raise AttributeError(name)
        return getattr(self._rm, name)


def test_a_static_source_and_the_notebook_keywords(dash):
    _settings, rm = dash
    src = _Static(rm)
    assert not is_live_source(src) and is_live_source(rm)
    v = ExecutiveView(None, session="dash", source=src)
    assert v.store is None and v._callback is None and v.rm is src  # no poller, no timer
    assert v.session_id == "dash" and v.message == ""
    v.tick()  # nothing happens, nothing fails
    assert v.message == ""
    with pytest.raises(ValueError, match="not two different"):
        ExecutiveView(rm, "dash", session="other", live=False)
    with pytest.raises(ValueError, match="not both"):
        ExecutiveView(rm, source=src)


class _Slow:
    """A source whose ``fills`` waits for a gate, counting its calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = threading.Event()

    def head_seq(self) -> int:
        return 7

    def changes_since(self, seq: int, session_id: str | None = None) -> Changes:
        return Changes(max(seq, 7))

    def fills(self, session_id: str) -> pd.DataFrame:
        self.calls += 1
        self.gate.wait(120)
        return pd.DataFrame({"price": [1.0, 2.0]})

    def book_instruments(self) -> list[str]:
        self.calls += 1
        return ["kraken:BTC/CHF"]


class _Page:
    """Stands for a subscribed view."""


def test_the_cache_shares_one_query_and_hands_out_copies():
    src = _Slow()
    now = [0.0]
    store = LiveStore(src, autostart=False, ttl_s=1.0, clock=lambda: now[0])
    got: list[pd.DataFrame] = []
    first = threading.Thread(target=lambda: got.append(store.reader.fills("s")))
    first.start()
    assert _until(lambda: src.calls == 1)
    second = threading.Thread(target=lambda: got.append(store.reader.fills("s")))
    second.start()
    assert _until(lambda: store.hits == 1)  # the second caller waits for the first's query
    src.gate.set()
    first.join(120)
    second.join(120)
    assert src.calls == 1 and len(got) == 2 and got[0] is not got[1]
    got[0]["price"] = [9.0, 9.0]  # one view changing its frame changes nobody else's
    assert store.reader.fills("s")["price"].tolist() == [1.0, 2.0] and src.calls == 1
    # Data outside the log lives ttl_s: the clock moves past it, the source is asked again.
    assert store.reader.book_instruments() == ["kraken:BTC/CHF"] and src.calls == 2
    now[0] = 0.5
    store.reader.book_instruments()
    assert src.calls == 2
    now[0] = 1.5
    store.reader.book_instruments()
    assert src.calls == 3
    # The log moved: subscribed pages are woken once, answers tied to the log are asked again.
    page, woken = _Page(), []
    store.subscribe(page, lambda: woken.append(1))
    store.poll_once()
    assert woken == []  # nothing new
    src.head_seq = lambda: 8  # type: ignore[method-assign]
    src.changes_since = lambda seq, session_id=None: Changes(max(seq, 8), {"order.filled": 1})  # type: ignore[method-assign]
    assert store.poll_once() is not None and store.head == 8 and woken == [1]
    assert store.changes_since(7).touches("order.") and not store.changes_since(8).any
    store.reader.fills("s")
    assert src.calls == 4
