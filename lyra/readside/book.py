"""Level-2 books on the read side: the latest recorded snapshot of an instrument as a
:class:`BookView` (ladder and cumulative depth), and spread/depth over time, downsampled in
the database. :class:`~lyra.readside.model.ReadModel` exposes these as ``book``,
``spread_depth`` and ``book_instruments``; the rows are written by
:mod:`lyra.feeds.book_tap`.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lyra.core.errors import ValidationError
from lyra.store.tables_market import book_snapshots as bs

#: The per-snapshot figures stored as columns (see ``lyra.store.tables_market``).
DEPTH_COLUMNS = ("bid_depth_10bps", "ask_depth_10bps", "bid_depth_50bps", "ask_depth_50bps")
SERIES_COLUMNS = ("mid", "spread_bps", *DEPTH_COLUMNS)
MAX_POINTS = 100_000

Level = tuple[float, float]


@dataclass(frozen=True)
class BookView:
    """One recorded order-book snapshot: levels best first, as floats for display, with the
    figures stored alongside (spread in bps of the mid, size within 10 / 50 bps of the mid)."""

    instrument_id: str
    session_id: str
    ts: int  #: ms UTC
    sequence: int
    bids: tuple[Level, ...]  #: (price, size), highest price first
    asks: tuple[Level, ...]  #: (price, size), lowest price first
    best_bid: float | None
    best_ask: float | None
    mid: float | None
    spread_bps: float | None
    depth: dict[str, float | None] = field(default_factory=dict)  #: bid_depth_10bps, ...
    price_decimals: int = 2  #: decimals the venue quoted prices with (as stored)
    size_decimals: int = 4

    @property
    def time(self) -> pd.Timestamp:
        """The snapshot time, naive UTC (like the ``time`` columns of the read model)."""
        return pd.Timestamp(self.ts, unit="ms")

    @property
    def spread(self) -> float | None:
        """Best ask minus best bid, in price units."""
        return None if self.best_bid is None or self.best_ask is None else self.best_ask - self.best_bid

    def ladder(self, levels: int | None = None) -> pd.DataFrame:
        """The ladder as a trader reads it: asks above bids, both from the far end of the shown
        range to the inside, i.e. prices descending top to bottom. Columns: side, price, size,
        cum_size (cumulative from the best price outwards), level (0 = best)."""
        n = levels if levels is not None else max(len(self.bids), len(self.asks))
        asks = _side_frame("ask", self.asks[:n]).iloc[::-1]
        bids = _side_frame("bid", self.bids[:n])
        return pd.concat([asks, bids], ignore_index=True)

    def depth_curve(self, levels: int | None = None) -> pd.DataFrame:
        """Cumulative size from the best price outwards, per side (side, price, size,
        cum_size, level): what a depth chart draws."""
        n = levels if levels is not None else max(len(self.bids), len(self.asks))
        return pd.concat([_side_frame("bid", self.bids[:n]), _side_frame("ask", self.asks[:n])],
                         ignore_index=True)


def _side_frame(side: str, levels: tuple[Level, ...]) -> pd.DataFrame:
    price = np.array([p for p, _ in levels], dtype="float64")
    size = np.array([s for _, s in levels], dtype="float64")
    return pd.DataFrame({"side": np.full(len(levels), side, dtype=object), "price": price, "size": size,
                         "cum_size": np.cumsum(size), "level": np.arange(len(levels), dtype="int64")})


def _decimals(texts: list[str]) -> int:
    return max((len(t.partition(".")[2]) for t in texts), default=0)


def _opt(v: Any) -> float | None:
    return None if v is None else float(v)


def book_view(m: Any) -> BookView:
    """A ``book_snapshots`` row (mapping) as a :class:`BookView`."""
    raw_b, raw_a = json.loads(m["bids"]), json.loads(m["asks"])
    return BookView(
        instrument_id=m["instrument_id"],
        session_id=m["session_id"],
        ts=int(m["ts"]),
        sequence=int(m["sequence"] or 0),
        bids=tuple((float(p), float(s)) for p, s in raw_b),
        asks=tuple((float(p), float(s)) for p, s in raw_a),
        best_bid=_opt(m["best_bid"]),
        best_ask=_opt(m["best_ask"]),
        mid=_opt(m["mid"]),
        spread_bps=_opt(m["spread_bps"]),
        depth={c: _opt(m[c]) for c in DEPTH_COLUMNS},
        price_decimals=_decimals([p for p, _ in raw_b + raw_a]),
        size_decimals=_decimals([s for _, s in raw_b + raw_a]),
    )


def _check_ts(name: str, value: int | None) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValidationError(name, value, "must be an int ms UTC timestamp or None")
    return int(value)


def query_book(conn: Connection, instrument_id: str, at_ts: int | None = None,
               session_id: str | None = None) -> BookView | None:
    """The latest snapshot of ``instrument_id`` at or before ``at_ts`` (any session unless
    ``session_id``); None when there is none."""
    at = _check_ts("at_ts", at_ts)
    q = sa.select(bs).where(bs.c.instrument_id == instrument_id)
    if at is not None:
        q = q.where(bs.c.ts <= at)
    if session_id is not None:
        q = q.where(bs.c.session_id == session_id)
    row = conn.execute(q.order_by(bs.c.ts.desc(), bs.c.session_id).limit(1)).first()
    return None if row is None else book_view(row._mapping)


def query_spread_depth(conn: Connection, instrument_id: str, start: int | None = None,
                       end: int | None = None, max_points: int = 2000,
                       session_id: str | None = None) -> pd.DataFrame:
    """Spread and depth over time (see ``ReadModel.spread_depth``)."""
    lo_ts, hi_ts = _check_ts("start", start), _check_ts("end", end)
    if isinstance(max_points, bool) or not isinstance(max_points, int) or not 2 <= max_points <= MAX_POINTS:
        raise ValidationError("max_points", max_points, f"must be an integer in 2..{MAX_POINTS:,}")
    where = [bs.c.instrument_id == instrument_id]
    if lo_ts is not None:
        where.append(bs.c.ts >= lo_ts)
    if hi_ts is not None:
        where.append(bs.c.ts <= hi_ts)
    if session_id is not None:
        where.append(bs.c.session_id == session_id)
    n, first, last = conn.execute(sa.select(sa.func.count(), sa.func.min(bs.c.ts), sa.func.max(bs.c.ts))
                                  .where(*where)).one()
    columns = ["ts", *SERIES_COLUMNS, "spread_bps_max", "snapshots"]
    if not n:
        frame = pd.DataFrame({c: pd.Series(dtype="int64" if c in ("ts", "snapshots") else "float64")
                              for c in columns})
    elif n <= max_points:
        rows = conn.execute(sa.select(bs.c.ts, *(bs.c[c] for c in SERIES_COLUMNS))
                            .where(*where).order_by(bs.c.ts)).all()
        frame = pd.DataFrame(rows, columns=["ts", *SERIES_COLUMNS])
        frame["spread_bps_max"] = frame["spread_bps"]
        frame["snapshots"] = 1
    else:
        # Equal time buckets, averaged in the database: the chart never pulls every row. The
        # widest spread of each bucket is kept too, so a short blow-out stays visible.
        width = math.ceil((int(last) - int(first) + 1) / max_points)
        bucket = ((bs.c.ts - int(first)) // width).label("bucket")
        q = (sa.select(bucket, sa.func.min(bs.c.ts), *(sa.func.avg(bs.c[c]) for c in SERIES_COLUMNS),
                       sa.func.max(bs.c.spread_bps), sa.func.count())
             .where(*where).group_by(bucket).order_by(bucket))
        frame = pd.DataFrame([r[1:] for r in conn.execute(q).all()], columns=columns)
    for c in (*SERIES_COLUMNS, "spread_bps_max"):
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    frame["ts"] = frame["ts"].astype("int64")
    frame["snapshots"] = frame["snapshots"].astype("int64")
    frame["time"] = pd.to_datetime(frame["ts"], unit="ms")
    return frame[["ts", "time", *SERIES_COLUMNS, "spread_bps_max", "snapshots"]]


def query_book_instruments(conn: Connection) -> list[str]:
    """Instruments with recorded snapshots, the most recently updated first."""
    last = sa.func.max(bs.c.ts)
    rows = conn.execute(sa.select(bs.c.instrument_id, last).group_by(bs.c.instrument_id)
                        .order_by(last.desc(), bs.c.instrument_id)).all()
    return [str(r[0]) for r in rows]
