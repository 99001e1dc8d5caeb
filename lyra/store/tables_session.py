"""Tables of the session runtime: one row per session (registry, status, heartbeat) and the
operator commands queued for running sessions."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text, false

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

#: Operator commands for a running session (an order ticket's order, a cancel), queued by the
#: dashboard or a notebook and taken by the session at its heartbeat (``lyra.session.commands``).
#: ``status``: pending -> done | refused; ``result`` says what happened (order id, or why not).
session_commands = Table(
    "session_commands",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("session_id", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # submit / cancel
    Column("payload", Text, nullable=False),  # canonical JSON: the order intent, or the client order id
    Column("actor", String(128), nullable=False),  # the user who asked
    Column("role", String(32), nullable=False),  # their role when they asked
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_ts", BigInteger, nullable=False),  # wall clock, ms
    Column("status", String(16), nullable=False),  # pending / done / refused
    Column("result", Text, nullable=False, server_default=""),
    Column("client_order_id", String(64), nullable=False, server_default=""),
    Column("done_ts", BigInteger),  # wall clock, ms
    Index("ix_session_commands_pending", "session_id", "status", "id"),
)
