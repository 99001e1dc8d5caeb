"""ReplayFeed: merge order, event objects, batches, clock and pacing, determinism."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.core.market import AggressorSide, Bar, Trade
from lyra.feeds import KIND_BAR, KIND_TRADE, MarketFeed, MarketStore, ReplayFeed

FIX = Path(__file__).resolve().parents[2] / "fixtures"
M = 60_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % (60 * M)


def bars(ts: list[int], base: float) -> pd.DataFrame:
    c = [base + i for i in range(len(ts))]
    return pd.DataFrame({"ts": ts, "open": c, "high": [x + 1 for x in c],
                         "low": [x - 1 for x in c], "close": c, "volume": [1.0] * len(ts)})


class RecordingClock:
    def __init__(self) -> None:
        self.calls: list[int] = []

    def advance_to(self, ts_ms: int) -> None:
        self.calls.append(ts_ms)


def small_feed(**kw: object) -> ReplayFeed:
    trades = pd.DataFrame({"ts": [T0 + M, T0 + M, T0 + 30_000], "price": [5.0, 6.0, 7.0],
                           "size": [1.0, 2.0, 3.0], "side": ["buy", "sell", ""],
                           "trade_id": ["a", "b", "c"]}).sort_values("ts", kind="stable")
    return ReplayFeed.from_frames([
        ("x:BTC", "trades", trades),
        ("x:BTC", "1m", bars([T0, T0 + M], 100.0)),
        ("x:ETH", "1m", bars([T0, T0 + 2 * M], 10.0)),
        ("x:ETH", "5m", bars([T0], 50.0)),
    ], **kw)  # type: ignore[arg-type]


def key(ev: Bar | Trade) -> tuple[object, ...]:
    if isinstance(ev, Bar):
        return ("bar", ev.instrument_id, ev.timeframe, ev.ts)
    return ("trade", ev.instrument_id, ev.trade_id)


def test_merge_order_by_event_time_with_stable_tiebreak() -> None:
    feed = small_feed()
    assert isinstance(feed, MarketFeed) and len(feed) == 8
    assert feed.instruments == ["x:BTC", "x:ETH"]
    got = [key(ev) for ev in feed]
    assert got == [
        ("trade", "x:BTC", "c"),                 # t0+30s
        ("bar", "x:BTC", "1m", T0),              # closes t0+1m; bars before trades on a tie
        ("bar", "x:ETH", "1m", T0),              # same close time: given source order
        ("trade", "x:BTC", "a"), ("trade", "x:BTC", "b"),   # t0+1m, row order
        ("bar", "x:BTC", "1m", T0 + M),          # closes t0+2m
        ("bar", "x:ETH", "1m", T0 + 2 * M),      # closes t0+3m
        ("bar", "x:ETH", "5m", T0),              # closes t0+5m
    ]
    trade = next(iter(feed))
    assert trade == Trade("x:BTC", T0 + 30_000, 7.0, 3.0, AggressorSide.UNKNOWN, "c")
    assert [key(e) for e in feed] == got  # deterministic, re-iterable


def test_batches_match_iteration() -> None:
    feed = small_feed()
    events = list(feed)
    chunks = list(feed.batches(3))
    assert [len(c) for c in chunks] == [3, 3, 2]
    rec = np.concatenate(chunks)
    assert list(rec["kind"]) == [KIND_TRADE if isinstance(e, Trade) else KIND_BAR for e in events]
    assert list(rec["ts"]) == [e.ts for e in events]
    inst = [feed.instruments[i] for i in rec["instrument"]]
    assert inst == [e.instrument_id for e in events]
    for r, e in zip(rec, events, strict=True):
        if isinstance(e, Bar):
            assert (r["open"], r["close"], r["event_ts"]) == (e.open, e.close, e.ts + (
                5 * M if e.timeframe == "5m" else M))
            assert np.isnan(r["price"])
        else:
            assert (r["price"], r["size"], r["side"]) == (e.price, e.size,
                                                          {"": 0, "buy": 1, "sell": 2}[e.side])
    frames = list(feed.batches(5, as_="pandas"))
    df = pd.concat(frames, ignore_index=True)
    assert list(df["instrument_id"]) == inst and list(df["close"].fillna(-1)) == list(
        np.nan_to_num(rec["close"], nan=-1))


def test_clock_is_advanced_before_each_new_time_and_speed_sleeps_capped() -> None:
    clock = RecordingClock()
    sleeps: list[float] = []
    feed = small_feed(clock=clock, speed=60.0, max_sleep=0.5, sleep=sleeps.append)
    seen = []
    for ev in feed:
        seen.append((clock.calls[-1], ev))
    assert clock.calls == [T0 + 30_000, T0 + M, T0 + 2 * M, T0 + 3 * M, T0 + 5 * M]
    # each event is handed out once the clock has reached its event time
    for now, ev in seen:
        event_time = ev.ts + M * (5 if isinstance(ev, Bar) and ev.timeframe == "5m" else 1) \
            if isinstance(ev, Bar) else ev.ts
        assert now == event_time
    # 30 s / 60 = 0.5 s; 60 s / 60 = 1 s capped to 0.5; 120 s / 60 = 2 s capped
    assert sleeps == [0.5, 0.5, 0.5, 0.5]
    clock2 = RecordingClock()
    list(small_feed(clock=clock2).batches(4))
    assert clock2.calls == [T0 + M, T0 + 5 * M]


def test_real_time_pacing_sleeps() -> None:
    feed = ReplayFeed.from_frames([("x:A", "1m", bars([T0, T0 + M, T0 + 2 * M], 1.0))],
                                  speed=1200.0)  # one minute of data in 50 ms
    t = time.perf_counter()
    assert len(list(feed)) == 3
    assert time.perf_counter() - t >= 0.09


def test_from_store_and_bad_arguments(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    df = pd.read_csv(FIX / "ohlcv" / "binance_XRP-ETH_5m.csv.gz")
    store.write_bars("binance", "XRP/ETH", "5m", df)
    tr = pd.read_csv(FIX / "trades" / "binance_XRP-ETH_trades.csv.gz",
                     dtype={"side": str, "trade_id": str})
    store.write_trades("binance", "XRP/ETH", tr)
    feed = ReplayFeed.from_store(store, [("binance", "XRP/ETH", "5m"),
                                         ("binance", "XRP/ETH", "trades")])
    events = list(feed)
    assert len(events) == 706 + 12477 and feed.instruments == ["binance:XRP/ETH"]
    ets = [e.ts + 300_000 if isinstance(e, Bar) else e.ts for e in events]
    assert ets == sorted(ets)
    # every 5m bar comes after all of its own trades (no look-ahead)
    first_bar = next(i for i, e in enumerate(events) if isinstance(e, Bar))
    assert all(e.ts < events[first_bar].ts + 300_000 for e in events[:first_bar])
    part = ReplayFeed.from_store(store, [("binance", "XRP/ETH", "5m")],
                                 start="2019-10-12", end="2019-10-13")
    assert len(part) == int(((df.timestamp_ms >= 1570838400000)
                             & (df.timestamp_ms < 1570924800000)).sum())
    with pytest.raises(ValidationError, match="speed"):
        ReplayFeed([], speed=0)
    with pytest.raises(ValidationError, match="out of time order"):
        ReplayFeed.from_frames([("x:A", "1m", bars([T0 + M, T0], 1.0))])
    assert list(ReplayFeed([])) == []
