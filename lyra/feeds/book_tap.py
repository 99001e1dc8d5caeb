"""Recording level-2 books for the dashboards: a tap on any market-event stream, and the replay
of a recorded L2 capture into the same table.

>>> from lyra.sample_data import sample_data_dir
>>> from lyra.store import create_engine_for, upgrade
>>> engine = create_engine_for("sqlite://")   # any migrated Lyra database
>>> upgrade(engine)
>>> capture = sample_data_dir() / "orderbook" / "kraken_BTC-CHF_l2.csv.gz"
>>> feed = replay_l2_capture(capture, "kraken:BTC/CHF", checksum_decimals=(5, 8))  # any event stream
>>> tap = BookTap(feed, engine, session_id="s1", every_ms=1000,  # at most one book a second
...               max_delay_s=float("inf"))  # batch by count only: the same batches on any machine
>>> with tap as events:
...     for event in events:   # every event passes on unchanged (a strategy would see it here)
...         pass               # books are recorded on the side
>>> events.stats
BookTapStats(events=290, books=290, throttled=264, recorded=26, batches=1, lost=0)
>>> record_book_capture(engine, capture, "kraken:BTC/CHF", checksum_decimals=(5, 8)).recorded
98
>>> engine.dispose()

Books are market data, not audit decisions: they go to ``book_snapshots``
(:mod:`lyra.store.tables_market`) in batches, one transaction per batch, and never through the
hash-chained event log. A row's key is (session, instrument, ts), so recording the same data
twice (a resumed session, a capture loaded again) writes nothing new.
"""

from __future__ import annotations

import itertools
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.core.errors import IntegrityError, ValidationError
from lyra.core.market import BookLevel, MarketEvent, OrderBookSnapshot
from lyra.feeds.orderbook import OrderBook, kraken_checksum
from lyra.store.tables_market import book_snapshots

log = logging.getLogger(__name__)

#: The bands (basis points either side of the mid) whose resting size is stored per snapshot.
DEPTH_BANDS_BPS = (10, 50)
#: Shipped L2 captures recorded by ``lyra init``: file -> (instrument id, Kraken checksum decimals).
SAMPLE_BOOKS: dict[str, tuple[str, tuple[int, int] | None]] = {
    "kraken_BTC-CHF_l2.csv.gz": ("kraken:BTC/CHF", (5, 8)),
}


# --------------------------------------------------------------------------- figures
def level_text(value: float) -> str:
    """A price or size as the shortest exact decimal string (``1e-05`` -> ``'0.00001'``)."""
    return np.format_float_positional(float(value), trim="-")


def book_figures(snap: OrderBookSnapshot) -> dict[str, float | None]:
    """Best bid/ask, mid, spread (bps of the mid) and the size within 10 and 50 bps of the
    mid on each side, from every level of ``snap``. None where a side is empty."""
    bb, ba = snap.best_bid, snap.best_ask
    out: dict[str, float | None] = {
        "best_bid": None if bb is None else bb.price,
        "best_ask": None if ba is None else ba.price,
        "mid": None,
        "spread_bps": None,
    }
    for band in DEPTH_BANDS_BPS:
        out[f"bid_depth_{band}bps"] = out[f"ask_depth_{band}bps"] = None
    if bb is None or ba is None:
        return out
    mid = (bb.price + ba.price) / 2.0
    out["mid"] = mid
    out["spread_bps"] = (ba.price - bb.price) / mid * 10_000.0
    for band in DEPTH_BANDS_BPS:
        lo, hi = mid * (1.0 - band / 10_000.0), mid * (1.0 + band / 10_000.0)
        out[f"bid_depth_{band}bps"] = float(sum(lv.size for lv in snap.bids if lv.price >= lo))
        out[f"ask_depth_{band}bps"] = float(sum(lv.size for lv in snap.asks if lv.price <= hi))
    return out


def snapshot_row(snap: OrderBookSnapshot, *, session_id: str = "", depth: int = 25) -> dict[str, Any]:
    """The ``book_snapshots`` row of ``snap``: the top ``depth`` levels per side as JSON
    ``[price, size]`` strings, and the figures of :func:`book_figures` (from all levels)."""
    return {
        "session_id": session_id,
        "instrument_id": snap.instrument_id,
        "ts": int(snap.ts),
        "sequence": int(snap.sequence),
        "bids": _levels_json(snap.bids[:depth]),
        "asks": _levels_json(snap.asks[:depth]),
        **book_figures(snap),
    }


def _levels_json(levels: Iterable[BookLevel]) -> str:
    return json.dumps([[level_text(lv.price), level_text(lv.size)] for lv in levels], separators=(",", ":"))


def _insert(engine: Engine) -> Any:
    # ON CONFLICT DO NOTHING on the key: re-recording the same snapshot is a no-op, not an error.
    name = engine.dialect.name
    if name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return sqlite_insert(book_snapshots).on_conflict_do_nothing()
    if name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(book_snapshots).on_conflict_do_nothing()
    return sa.insert(book_snapshots)


def write_book_rows(engine: Engine, rows: list[dict[str, Any]]) -> None:
    """Insert ``rows`` (from :func:`snapshot_row`) in one transaction: all or nothing."""
    if rows:
        with engine.begin() as conn:
            conn.execute(_insert(engine), rows)


# --------------------------------------------------------------------------- the tap
@dataclass
class BookTapStats:
    """What a :class:`BookTap` did so far."""

    events: int = 0  #: events passed on (all kinds)
    books: int = 0  #: order-book snapshots seen
    throttled: int = 0  #: snapshots skipped: less than ``every_ms`` after the last one kept
    recorded: int = 0  #: snapshots written in committed batches (already stored ones: no-ops)
    batches: int = 0  #: committed transactions
    lost: int = 0  #: snapshots of batches that failed to write (dropped)


class BookTap(Iterator[MarketEvent]):
    """Pass every event of ``events`` on unchanged; record its order-book snapshots.

    Per instrument, at most one snapshot per ``every_ms`` of event time is kept (the first,
    then the first at least ``every_ms`` later; 0 keeps every snapshot with a new time), its
    top ``depth`` levels per side and its spread/depth figures; when the stream ends (or on
    :meth:`close`) the last snapshot of each instrument is kept too, so the table ends with the
    final book. Kept snapshots are written in batches, each batch one transaction: when
    ``batch_size`` are waiting or the oldest has waited ``max_delay_s`` (checked before the
    next event is fetched, so a failed write never swallows an event), and on exhaustion or
    :meth:`close`. The figures come from every level the snapshot carries: a feed of 10 levels
    that do not reach 50 bps from the mid under-states the 50 bps depth.

    A batch that fails to write is dropped whole (nothing of it is stored) and counted in
    ``stats.lost``; with ``on_error="raise"`` (default) the error propagates, with ``"log"``
    it is logged and the stream goes on (a dashboard feed must not stop a live session).
    """

    def __init__(
        self,
        events: Iterable[MarketEvent],
        engine: Engine,
        *,
        session_id: str = "",
        every_ms: int = 1000,
        depth: int = 25,
        batch_size: int = 100,
        max_delay_s: float = 1.0,
        on_error: Literal["raise", "log"] = "raise",
    ) -> None:
        for name, value, lo in (("every_ms", every_ms, 0), ("depth", depth, 1),
                                 ("batch_size", batch_size, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < lo:
                raise ValidationError(name, value, f"must be an integer >= {lo}")
        if on_error not in ("raise", "log"):
            raise ValidationError("on_error", on_error, "must be 'raise' or 'log'")
        if not max_delay_s >= 0:
            raise ValidationError("max_delay_s", max_delay_s, "must be >= 0")
        self._events = events
        self._it = iter(events)
        self.engine = engine
        self.session_id = session_id
        self.every_ms = every_ms
        self.depth = depth
        self.batch_size = batch_size
        self.max_delay_s = max_delay_s
        self.on_error = on_error
        self.stats = BookTapStats()
        self._last_ts: dict[str, int] = {}
        self._skipped: dict[str, OrderBookSnapshot] = {}  # newest throttled snapshot per instrument
        self._pending: list[dict[str, Any]] = []
        self._pending_since = 0.0
        self._closed = False

    def __iter__(self) -> BookTap:
        return self

    def __next__(self) -> MarketEvent:
        if self._pending and (
            len(self._pending) >= self.batch_size
            or time.monotonic() - self._pending_since >= self.max_delay_s
        ):
            self.flush()
        try:
            event = next(self._it)
        except StopIteration:
            self._keep_last()
            self.flush()
            raise
        self.stats.events += 1
        if isinstance(event, OrderBookSnapshot):
            self._offer(event)
        return event

    def _offer(self, snap: OrderBookSnapshot) -> None:
        self.stats.books += 1
        last = self._last_ts.get(snap.instrument_id)
        # Strictly later, and every_ms later: one row per (instrument, ts), and stale or
        # out-of-order snapshots never overwrite a newer picture.
        if last is not None and snap.ts < last + max(self.every_ms, 1):
            self.stats.throttled += 1
            prev = self._skipped.get(snap.instrument_id)
            if snap.ts > last and (prev is None or snap.ts > prev.ts):
                self._skipped[snap.instrument_id] = snap
            return
        self._keep(snap)

    def _keep(self, snap: OrderBookSnapshot) -> None:
        self._last_ts[snap.instrument_id] = snap.ts
        self._skipped.pop(snap.instrument_id, None)
        if not self._pending:
            self._pending_since = time.monotonic()
        self._pending.append(snapshot_row(snap, session_id=self.session_id, depth=self.depth))

    def _keep_last(self) -> None:
        # The end of the stream: the newest book of each instrument must not be lost to throttling.
        for snap in list(self._skipped.values()):
            self.stats.throttled -= 1
            self._keep(snap)

    def flush(self) -> int:
        """Write the waiting snapshots now (one transaction); returns how many were written."""
        rows, self._pending = self._pending, []
        if not rows:
            return 0
        try:
            write_book_rows(self.engine, rows)
        except Exception:
            self.stats.lost += len(rows)
            if self.on_error == "raise":
                raise
            log.exception("book tap: a batch of %d snapshots could not be written; dropped", len(rows))
            return 0
        self.stats.recorded += len(rows)
        self.stats.batches += 1
        return len(rows)

    def close(self) -> None:
        """Flush what is waiting and close the underlying stream (if it can be closed)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._keep_last()
            self.flush()
        finally:
            closer = getattr(self._events, "close", None)
            if callable(closer):
                closer()

    def __enter__(self) -> BookTap:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


# --------------------------------------------------------------------------- recorded captures
@dataclass(frozen=True)
class CaptureResult:
    """What :func:`record_book_capture` did."""

    instrument_id: str
    messages: int  #: snapshot + update messages applied
    checksums_verified: int  #: updates whose venue checksum matched the rebuilt book
    recorded: int  #: snapshots kept and written (rows already stored are left as they were)
    first_ts: int
    last_ts: int


_REQUIRED = ("timestamp_ms", "is_snapshot", "side", "price", "size")
_SIDES = {"bid": "bid", "buy": "bid", "b": "bid", "ask": "ask", "sell": "ask", "a": "ask"}


def replay_l2_capture(
    path: Path | str,
    instrument_id: str,
    *,
    checksum_decimals: tuple[int, int] | None = None,
    verify_checksums: bool = True,
    book_depth: int | None = None,
    levels: int | None = None,
    stats: dict[str, int] | None = None,
) -> Iterator[OrderBookSnapshot]:
    """Rebuild the book of a flattened L2 capture (one row per level change: the shipped
    ``data/orderbook/*_l2.csv.gz`` files) with :class:`~lyra.feeds.orderbook.OrderBook`;
    yield the whole book after every message.

    Rows of one message are consecutive and share the optional ``update_id`` /
    ``recv_timestamp_ms`` / ``checksum`` columns. ``update_id`` is checked for gaps
    (:class:`~lyra.feeds.orderbook.SequenceGap`). A Kraken ``checksum`` is verified after each
    update (``checksum_decimals`` = the pair's price and size decimals); a mismatch raises
    :class:`IntegrityError`. ``levels``: levels per side in each snapshot, None for the whole
    book, else at least ``levels`` and every level within the widest depth band (so the
    spread/depth figures stay exact). ``stats`` (a dict) receives ``messages`` and ``checksums``.
    """
    p = Path(path)
    frame = pd.read_csv(p)
    missing = [c for c in _REQUIRED if c not in frame.columns]
    if missing:
        raise ValidationError("capture", str(p), f"missing columns {missing}",
                              f"a flattened L2 capture has {', '.join(_REQUIRED)}")
    has_ck = "checksum" in frame.columns and verify_checksums and bool(frame["checksum"].notna().any())
    if has_ck and checksum_decimals is None:
        raise ValidationError("checksum_decimals", None, f"{p.name} carries Kraken checksums",
                              "pass checksum_decimals=(price decimals, size decimals), "
                              "or verify_checksums=False")
    if frame.empty:
        return
    snap_flag = frame["is_snapshot"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
    keys = [c for c in ("update_id", "recv_timestamp_ms", "checksum") if c in frame.columns]
    key = frame[keys or ["timestamp_ms"]].fillna(-1)
    changed = key.ne(key.shift()).any(axis=1).to_numpy() | (snap_flag != np.roll(snap_flag, 1))
    changed[0] = True
    starts = [*np.flatnonzero(changed).tolist(), len(frame)]
    side = frame["side"].astype(str).str.lower().map(_SIDES)
    if side.isna().any():
        bad = frame["side"][side.isna()].iloc[0]
        raise ValidationError("side", bad, f"unknown book side in {p.name}", "use bid/ask")
    ts_col = frame["timestamp_ms"].to_numpy(dtype="int64")
    price = frame["price"].to_numpy(dtype="float64").tolist()  # Python floats on the events
    size = frame["size"].to_numpy(dtype="float64").tolist()
    is_bid = (side == "bid").to_numpy().tolist()
    uid = frame["update_id"].to_numpy() if "update_id" in frame.columns else None
    ck = frame["checksum"].to_numpy(dtype="float64") if has_ck else None
    book = OrderBook(instrument_id, depth=book_depth)
    counts = stats if stats is not None else {}
    counts.update(messages=0, checksums=0)
    for a, b in itertools.pairwise(starts):
        bids = [(price[i], size[i]) for i in range(a, b) if is_bid[i]]
        asks = [(price[i], size[i]) for i in range(a, b) if not is_bid[i]]
        ts = int(ts_col[a:b].max())
        seq = None if uid is None else int(uid[b - 1])
        if snap_flag[a]:
            book.apply_snapshot(bids, asks, sequence=seq, ts=ts)
        elif not book.apply_delta(bids, asks, last_id=seq, ts=max(ts, book.ts)):
            continue  # stale: already in the book
        counts["messages"] += 1
        if ck is not None and not np.isnan(ck[b - 1]) and not snap_flag[a]:
            assert checksum_decimals is not None
            got = kraken_checksum(book, *checksum_decimals)
            if got != int(ck[b - 1]):
                raise IntegrityError(f"{p.name}: book checksum mismatch after message {counts['messages']} "
                                     f"(ts {ts}): venue {int(ck[b - 1])}, rebuilt book {got}")
            counts["checksums"] += 1
        yield book.snapshot(max(len(book.bids), len(book.asks), 1) if levels is None
                            else _levels_for_bands(book, levels))


def _levels_for_bands(book: OrderBook, levels: int) -> int:
    bb, ba = book.best_bid, book.best_ask
    if bb is None or ba is None:
        return levels
    mid, w = (bb + ba) / 2.0, max(DEPTH_BANDS_BPS) / 10_000.0
    lo, hi = mid * (1.0 - w), mid * (1.0 + w)
    return max(levels, sum(1 for p in book.bids if p >= lo), sum(1 for p in book.asks if p <= hi))


def record_book_capture(
    engine: Engine,
    path: Path | str,
    instrument_id: str,
    *,
    session_id: str = "",
    every_ms: int = 100,
    depth: int = 25,
    checksum_decimals: tuple[int, int] | None = None,
    verify_checksums: bool = True,
) -> CaptureResult:
    """Replay a recorded L2 capture file (see :func:`replay_l2_capture`) into ``book_snapshots``
    through a :class:`BookTap`: one row per ``every_ms`` of book time, the top ``depth``
    levels, spread and depth from the whole book. Loading it twice adds nothing."""
    counts: dict[str, int] = {}
    snaps = replay_l2_capture(path, instrument_id, checksum_decimals=checksum_decimals,
                              verify_checksums=verify_checksums, levels=depth, stats=counts)
    first = last = 0
    with BookTap(snaps, engine, session_id=session_id, every_ms=every_ms, depth=depth,
                 batch_size=500, max_delay_s=60.0) as tap:
        for snap in tap:
            first = first or snap.ts
            last = snap.ts
    return CaptureResult(instrument_id, counts.get("messages", 0), counts.get("checksums", 0),
                         tap.stats.recorded, first, last)


def record_sample_books(engine: Engine, data_dir: Path | None = None) -> list[CaptureResult]:
    """Record the shipped L2 captures (``<sample data>/orderbook``) unless already recorded,
    so the dashboards have a real book to show. Used by ``lyra init``; takes well under 1 s."""
    from lyra.sample_data import sample_data_dir

    folder = (data_dir or sample_data_dir()).expanduser() / "orderbook"
    done: list[CaptureResult] = []
    for name, (iid, decimals) in SAMPLE_BOOKS.items():
        path = folder / name
        if not path.is_file():
            continue
        with engine.connect() as conn:
            present = conn.execute(
                sa.select(book_snapshots.c.ts)
                .where(book_snapshots.c.session_id == "", book_snapshots.c.instrument_id == iid)
                .limit(1)
            ).first()
        if present is None:
            done.append(record_book_capture(engine, path, iid, checksum_decimals=decimals))
    return done
