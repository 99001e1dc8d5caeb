"""Database tables (SQLAlchemy Core). Schema changes go through Alembic migrations only:
``lyra/store/migrations/versions``. ``create_all`` is never used outside tests of migrations."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, MetaData, String, Table, Text

from lyra.store.types import DecimalText

metadata = MetaData()

#: The event log: append-only, hash-chained. ``seq`` is assigned by the log, not the database.
events = Table(
    "events",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("ts", BigInteger, nullable=False),  # ms UTC
    Column("actor", String(128), nullable=False),
    Column("kind", String(64), nullable=False),
    Column("session_id", String(64), nullable=False, server_default=""),
    Column("payload", Text, nullable=False),  # canonical JSON text, hashed as stored
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_events_kind", "kind"),
    Index("ix_events_ts", "ts"),
    Index("ix_events_session", "session_id"),
)

#: One row: the head of the chain. Appenders lock it so that the chain stays linear.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(64), nullable=False),
)

#: Projection: orders as of the last event.
orders = Table(
    "orders",
    metadata,
    Column("client_order_id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("instrument_id", String(96), nullable=False),
    Column("side", String(8), nullable=False),
    Column("order_type", String(16), nullable=False),
    Column("time_in_force", String(8), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("limit_price", DecimalText),
    Column("stop_price", DecimalText),
    Column("status", String(24), nullable=False),
    Column("filled_quantity", DecimalText, nullable=False),
    Column("avg_fill_price", DecimalText),
    Column("fees", DecimalText, nullable=False),
    Column("venue_order_id", String(96), nullable=False, server_default=""),
    Column("created_ts", BigInteger, nullable=False),
    Column("updated_ts", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Index("ix_orders_session_status", "session_id", "status"),
)

#: Projection: every fill.
fills = Table(
    "fills",
    metadata,
    # Venue fill ids are unique per venue order stream, not across sessions: key on both.
    Column("fill_id", String(96), primary_key=True),
    Column("client_order_id", String(64), primary_key=True),
    Column("session_id", String(64), nullable=False),
    Column("instrument_id", String(96), nullable=False),
    Column("side", String(8), nullable=False),
    Column("quantity", DecimalText, nullable=False),
    Column("price", DecimalText, nullable=False),
    Column("fee", DecimalText, nullable=False),
    Column("fee_currency", String(16), nullable=False),
    Column("liquidity", String(8), nullable=False),
    Column("ts", BigInteger, nullable=False),
    Column("seq", BigInteger, nullable=False),
    Index("ix_fills_session_ts", "session_id", "ts"),
)

#: Projection: net position per session and instrument.
positions = Table(
    "positions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("instrument_id", String(96), primary_key=True),
    Column("quantity", DecimalText, nullable=False),
    Column("avg_price", DecimalText, nullable=False),
    Column("realized_pnl", DecimalText, nullable=False),
    Column("fees", DecimalText, nullable=False),
    Column("last_ts", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
)
