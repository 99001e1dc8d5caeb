"""Replay stored bars and trades as market events, the offline twin of a live feed.

>>> import tempfile
>>> from lyra.feeds import MarketStore, import_file
>>> from lyra.sample_data import sample_ohlcv_dir
>>> store = MarketStore(tempfile.mkdtemp())     # in a notebook: load_settings().market_dir
>>> for name in ("binance_BTC-USDT_1h_2018-04", "binance_ETH-USDT_1h_2018-07"):
...     _ = import_file(sample_ohlcv_dir() / f"{name}.csv.gz", store=store)
>>> feed = ReplayFeed.from_store(store, [("binance", "BTC/USDT", "1h"),
...                                      ("binance", "ETH/USDT", "1h")], start="2018-04-15")
>>> len(feed)
823
>>> events = list(feed)        # lyra.core.market.Bar / Trade, in time order
>>> events[0].instrument_id, events[0].close, events[-1].instrument_id
('binance:BTC/USDT', 8067.87, 'binance:ETH/USDT')
>>> for chunk in feed.batches(65_536):   # numpy structured arrays (BATCH_DTYPE) for vector code
...     print(len(chunk), chunk["close"][0])
823 8067.87

**Event time.** A bar is known only when it closes, so a bar labelled with open time ``ts``
is replayed at ``ts + timeframe``; a trade at its own ``ts``. Events are merged across sources
by event time with a stable tiebreak: bars before trades, then the order in which the sources
were given, then the stored row order. The ``Bar`` objects keep their open-time ``ts``.

**Clock and speed.** ``clock`` (anything with ``advance_to(ts_ms)``, e.g. lyra.core.clock's
ReplayClock) is advanced to each new event time before the event is handed out (to the last
event time of a batch before the batch). ``speed=None`` replays as fast as possible;
``speed=N`` sleeps each time gap divided by N, each sleep capped at ``max_sleep`` seconds.
Replays are deterministic: the same data give the same events in the same order.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from lyra.core.errors import ValidationError
from lyra.core.market import AggressorSide, Bar, MarketEvent, Trade
from lyra.core.timeutil import timeframe_to_ms
from lyra.feeds.schema import (
    TRADES_TIMEFRAME,
    BarArrays,
    DatasetKey,
    coerce_bars,
    coerce_trades,
)
from lyra.feeds.store import MarketStore, TimeLike

KIND_BAR = 0
KIND_TRADE = 1
SIDE_CODES: dict[str, int] = {"": 0, "buy": 1, "sell": 2}
_SIDES = (AggressorSide.UNKNOWN, AggressorSide.BUY, AggressorSide.SELL)
_CHUNK = 65_536

BATCH_DTYPE = np.dtype([
    ("event_ts", "i8"),   # when the event is known (bar close time, trade time), ms UTC
    ("ts", "i8"),         # the data's own ts (bar open time, trade time), ms UTC
    ("source", "i4"),     # index into feed.sources
    ("instrument", "i4"),  # index into feed.instruments
    ("kind", "i1"),       # KIND_BAR or KIND_TRADE
    ("side", "i1"),       # trades: 0 unknown, 1 buy, 2 sell
    ("open", "f8"), ("high", "f8"), ("low", "f8"), ("close", "f8"), ("volume", "f8"),
    ("price", "f8"), ("size", "f8"),  # trades; NaN on bars (and OHLCV NaN on trades)
])
"""The record layout of ``ReplayFeed.batches(as_="numpy")``."""


@runtime_checkable
class AdvanceableClock(Protocol):
    """What a replay drives: a clock it can move forward (lyra.core.clock's ReplayClock and
    ManualClock). Not to be confused with :class:`lyra.core.clock.Clock`, which is read."""

    def advance_to(self, ts_ms: int) -> None: ...


@runtime_checkable
class MarketFeed(Protocol):
    """The interface replay and live feeds share."""

    @property
    def instruments(self) -> list[str]: ...

    def __iter__(self) -> Iterator[MarketEvent]: ...

    def batches(self, size: int = _CHUNK, *, as_: Literal["numpy", "pandas"] = "numpy"
                ) -> Iterator[Any]: ...


@dataclass(frozen=True)
class ReplaySource:
    """One stream to replay: bars of one timeframe, or trades, of one instrument."""

    instrument_id: str
    timeframe: str
    bars: BarArrays | None = None
    trades: pd.DataFrame | None = None  # ts, price, size, side, trade_id (store form)

    @property
    def kind(self) -> int:
        return KIND_TRADE if self.timeframe == TRADES_TIMEFRAME else KIND_BAR

    def __len__(self) -> int:
        if self.bars is not None:
            return len(self.bars)
        return 0 if self.trades is None else len(self.trades)

    def event_ts(self) -> np.ndarray:
        if self.bars is not None:
            return self.bars.ts + timeframe_to_ms(self.timeframe)
        assert self.trades is not None
        return np.asarray(self.trades["ts"].to_numpy(dtype=np.int64))


class ReplayFeed:
    """Plays sources (bars and/or trades of one or more instruments) in event-time order."""

    def __init__(self, sources: Sequence[ReplaySource], *, clock: AdvanceableClock | None = None,
                 speed: float | None = None, max_sleep: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        if speed is not None and not speed > 0:
            raise ValidationError("speed", speed, "must be positive, or None for full speed")
        if max_sleep < 0:
            raise ValidationError("max_sleep", max_sleep, "must be >= 0")
        if clock is not None and not callable(getattr(clock, "advance_to", None)):
            raise ValidationError("clock", type(clock).__name__, "has no advance_to(ts_ms)")
        # Bars first, then trades, each in the given order: with a stable sort this is the
        # tiebreak documented above.
        self.sources: list[ReplaySource] = ([s for s in sources if s.kind == KIND_BAR]
                                            + [s for s in sources if s.kind == KIND_TRADE])
        self.clock = clock
        self.speed = speed
        self.max_sleep = max_sleep
        self._sleep = sleep
        ids: list[str] = []
        for s in self.sources:
            if s.instrument_id not in ids:
                ids.append(s.instrument_id)
        self._instruments = ids
        self._inst_of = np.array([ids.index(s.instrument_id) for s in self.sources], dtype=np.int32)
        self._merged: tuple[np.ndarray, np.ndarray | None, np.ndarray | None] | None = None

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_store(cls, store: MarketStore, datasets: Iterable[tuple[str, str, str]],
                   start: TimeLike = None, end: TimeLike = None, **kwargs: Any) -> ReplayFeed:
        """Replay datasets ``(exchange, symbol, timeframe)`` (timeframe ``trades`` for ticks)
        with data ts in [start, end). Instrument ids are ``exchange:SYMBOL`` with the symbol
        as given (the unified ccxt form, e.g. ``binance:BTC/USDT``, matching
        ``lyra.core.Instrument.id``), not the store's path-safe form."""
        sources = []
        for exchange, symbol, timeframe in datasets:
            key = DatasetKey.of(exchange, symbol, timeframe)
            if key.kind == "trades":
                tr = store.read_trades(key.exchange, key.symbol, start, end)
                sources.append(ReplaySource(f"{key.exchange}:{symbol}", TRADES_TIMEFRAME,
                                            trades=coerce_trades(tr)))
            else:
                bars = store.read_bars_arrays(key.exchange, key.symbol, key.timeframe, start, end)
                sources.append(ReplaySource(f"{key.exchange}:{symbol}", key.timeframe, bars=bars))
        return cls(sources, **kwargs)

    @classmethod
    def from_frames(cls, frames: Iterable[tuple[str, str, pd.DataFrame]],
                    **kwargs: Any) -> ReplayFeed:
        """Replay in-memory frames ``(instrument_id, timeframe or "trades", df)``; each df in
        store form (``ts`` column or DatetimeIndex), sorted by time."""
        sources = []
        for iid, timeframe, df in frames:
            if timeframe == TRADES_TIMEFRAME:
                tr = coerce_trades(df)
                _check_sorted(tr["ts"].to_numpy(), iid)
                sources.append(ReplaySource(iid, timeframe, trades=tr))
            else:
                timeframe_to_ms(timeframe)
                bars = coerce_bars(df)
                _check_sorted(bars.ts, iid)
                sources.append(ReplaySource(iid, timeframe, bars=bars))
        return cls(sources, **kwargs)

    # ------------------------------------------------------------------ info
    @property
    def instruments(self) -> list[str]:
        """Instrument ids in first-seen order; ``instrument`` in batches indexes this."""
        return list(self._instruments)

    def __len__(self) -> int:
        return sum(len(s) for s in self.sources)

    def _merge(self) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
        """(event_ts, source index, row index) in replay order; None index arrays mean a
        single source replayed row by row."""
        if self._merged is None:
            live = [i for i, s in enumerate(self.sources) if len(s)]
            if len(live) <= 1:
                ets = (self.sources[live[0]].event_ts() if live else np.empty(0, np.int64))
                self._merged = (ets, None, None)
            else:
                ets_all = np.concatenate([self.sources[i].event_ts() for i in live])
                src_all = np.concatenate([np.full(len(self.sources[i]), i, np.int32) for i in live])
                row_all = np.concatenate([np.arange(len(self.sources[i])) for i in live])
                # Stable: ties keep source order (bars first) then row order. Timsort merges
                # the already sorted runs in O(n log k).
                order = np.argsort(ets_all, kind="stable")
                self._merged = (ets_all[order], src_all[order], row_all[order])
        return self._merged

    # ------------------------------------------------------------------ one at a time
    def __iter__(self) -> Iterator[MarketEvent]:
        ets, src, rows = self._merge()
        n = len(ets)
        paced = self.clock is not None or self.speed is not None
        last: int | None = None
        for a in range(0, n, _CHUNK):
            b = min(a + _CHUNK, n)
            # Events are built lazily, one per step of the consumer, by C-level map/zip
            # pipelines: no Python loop per event, and each object dies young (a list of
            # 65k live objects would keep the cyclic GC busy and halve the throughput).
            events: Iterator[Any]
            if src is None:
                events = self._objects(self._single_index(), slice(a, b))
            else:
                assert rows is not None
                s_chunk, r_chunk = src[a:b], rows[a:b]
                streams: dict[int, Iterator[Any]] = {}
                for i in np.unique(s_chunk).tolist():
                    # rows of one source stay in order inside the merged chunk (stable sort)
                    streams[i] = self._objects(i, r_chunk[s_chunk == i])
                events = map(next, map(streams.__getitem__, s_chunk.tolist()))
            if not paced:
                yield from events
                continue
            for ev, t in zip(events, ets[a:b].tolist(), strict=True):
                if t != last:
                    self._pace(last, t)
                    last = t
                yield ev

    def _single_index(self) -> int:
        return next(i for i, s in enumerate(self.sources) if len(s))

    def _objects(self, i: int, sel: slice | np.ndarray) -> Iterator[Any]:
        """A lazy iterator of events for the selected rows of source i."""
        s = self.sources[i]
        if s.bars is not None:
            bars = s.bars
            return map(Bar, repeat(s.instrument_id), repeat(s.timeframe), bars.ts[sel].tolist(),
                       bars.open[sel].tolist(), bars.high[sel].tolist(), bars.low[sel].tolist(),
                       bars.close[sel].tolist(), bars.volume[sel].tolist())
        assert s.trades is not None
        t = s.trades
        sides = map(_SIDES.__getitem__, _side_codes(t["side"].to_numpy()[sel]).tolist())
        return map(Trade, repeat(s.instrument_id), t["ts"].to_numpy()[sel].tolist(),
                   t["price"].to_numpy()[sel].tolist(), t["size"].to_numpy()[sel].tolist(), sides,
                   t["trade_id"].to_numpy()[sel].tolist())

    def _pace(self, last: int | None, t: int) -> None:
        if self.speed is not None and last is not None and t > last:
            self._sleep(min((t - last) / 1000.0 / self.speed, self.max_sleep))
        if self.clock is not None:
            self.clock.advance_to(t)

    # ------------------------------------------------------------------ batches
    def batches(self, size: int = _CHUNK, *, as_: Literal["numpy", "pandas"] = "numpy"
                ) -> Iterator[Any]:
        """Events in chunks of ``size``: numpy structured arrays (``BATCH_DTYPE``) or, with
        ``as_="pandas"``, DataFrames with an ``instrument_id`` column."""
        if size <= 0:
            raise ValidationError("size", size, "must be positive")
        if as_ not in ("numpy", "pandas"):
            raise ValidationError("as_", as_, "use 'numpy' or 'pandas'")
        ets, src, rows = self._merge()
        last: int | None = None
        for a in range(0, len(ets), size):
            b = min(a + size, len(ets))
            out = np.empty(b - a, dtype=BATCH_DTYPE)
            out["event_ts"] = ets[a:b]
            if src is None:
                self._fill(out, self._single_index(), slice(a, b), slice(None))
            else:
                assert rows is not None
                s_chunk, r_chunk = src[a:b], rows[a:b]
                for i in np.unique(s_chunk).tolist():
                    pos = np.flatnonzero(s_chunk == i)
                    self._fill(out, i, r_chunk[pos], pos)
            if self.clock is not None or self.speed is not None:
                t = int(ets[b - 1])
                self._pace(last, t)
                last = t
            if as_ == "numpy":
                yield out
            else:
                df = pd.DataFrame(out)
                df.insert(0, "instrument_id", pd.Categorical.from_codes(
                    out["instrument"], categories=self._instruments))
                yield df

    def _fill(self, out: np.ndarray, i: int, rows: slice | np.ndarray,
              pos: slice | np.ndarray) -> None:
        s = self.sources[i]
        sub = out[pos] if isinstance(pos, np.ndarray) else None
        tgt = sub if sub is not None else out
        tgt["source"] = i
        tgt["instrument"] = self._inst_of[i]
        tgt["kind"] = s.kind
        if s.bars is not None:
            tgt["ts"] = s.bars.ts[rows]
            for c in ("open", "high", "low", "close", "volume"):
                tgt[c] = getattr(s.bars, c)[rows]
            tgt["side"] = 0
            tgt["price"] = np.nan
            tgt["size"] = np.nan
        else:
            assert s.trades is not None
            t = s.trades
            tgt["ts"] = t["ts"].to_numpy()[rows]
            tgt["price"] = t["price"].to_numpy()[rows]
            tgt["size"] = t["size"].to_numpy()[rows]
            tgt["side"] = _side_codes(t["side"].to_numpy()[rows])
            for c in ("open", "high", "low", "close", "volume"):
                tgt[c] = np.nan
        if sub is not None:
            out[pos] = sub


def _side_codes(sides: np.ndarray) -> np.ndarray:
    codes = np.zeros(len(sides), dtype=np.int8)
    codes[sides == "buy"] = 1
    codes[sides == "sell"] = 2
    return codes


def _check_sorted(ts: np.ndarray, iid: str) -> None:
    bad = np.flatnonzero(ts[1:] < ts[:-1])
    if bad.size:
        raise ValidationError(f"{iid}.ts", int(ts[bad[0] + 1]), "out of time order",
                              "sort the frame (or validate it) before replaying")
