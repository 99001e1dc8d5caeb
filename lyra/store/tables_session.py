"""Tables of the session runtime: one row per session (registry, status, heartbeat)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, String, Table, Text, false

from lyra.store.tables import metadata

sessions = Table(
    "sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("mode", String(16), nullable=False),
    Column("config", Text, nullable=False),  # the SessionConfig as canonical JSON
    Column("status", String(16), nullable=False),  # created, running, stopped, finished, failed
    Column("pid", BigInteger),
    Column("host", String(128), nullable=False, server_default=""),
    Column("created_ts", BigInteger, nullable=False),  # wall clock, ms
    Column("heartbeat_ts", BigInteger, nullable=False),  # wall clock, ms
    Column("data_ts", BigInteger, nullable=False, server_default="0"),  # last market event, ms
    Column("events_processed", BigInteger, nullable=False, server_default="0"),
    Column("stop_requested", Boolean, nullable=False, server_default=false()),
    Column("error", Text, nullable=False, server_default=""),
)
