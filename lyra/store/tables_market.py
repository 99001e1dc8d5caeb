"""Market-data tables: level-2 order-book snapshots for the dashboards (ladder, depth chart,
spread and depth over time). Created by migration ``0006_books``.

This is market data, not an audit decision: it is written in batches by
:class:`lyra.feeds.book_tap.BookTap` (and ``record_book_capture``), never through the
hash-chained event log. Prices and sizes are measurements (float64 upstream); the levels are
kept as JSON text of ``[price, size]`` string pairs exactly as the snapshot carried them, and
the figures the time-series charts need are plain float columns, so a spread/depth series is
one indexed range scan with no JSON parsing.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Float, Index, String, Table, Text

from lyra.store.tables import metadata

#: One row per recorded snapshot. The key makes re-recording the same data (a resumed
#: session, a capture loaded twice) a no-op instead of a duplicate.
book_snapshots = Table(
    "book_snapshots",
    metadata,
    Column("session_id", String(64), primary_key=True, server_default=""),  # '' = not a session's
    Column("instrument_id", String(96), primary_key=True),
    Column("ts", BigInteger, primary_key=True),  # ms UTC, the snapshot's (venue) time
    Column("sequence", BigInteger, nullable=False, server_default="0"),
    Column("bids", Text, nullable=False),  # JSON [[price, size], ...] strings, best (highest) first
    Column("asks", Text, nullable=False),  # JSON [[price, size], ...] strings, best (lowest) first
    # NULL when a side is empty (no best price, so no mid or spread).
    Column("best_bid", Float),
    Column("best_ask", Float),
    Column("mid", Float),
    Column("spread_bps", Float),  # (ask - bid) / mid * 10_000
    # Size (base units) resting within 10 / 50 bps of the mid, from every level received.
    Column("bid_depth_10bps", Float),
    Column("ask_depth_10bps", Float),
    Column("bid_depth_50bps", Float),
    Column("ask_depth_50bps", Float),
    Index("ix_book_snapshots_instrument_ts", "instrument_id", "ts"),
)
