"""Tables of the session runtime: one row per session (registry, status, heartbeat), the
operator commands queued for running sessions, and the ownership lease of each session."""

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

#: Who owns a session right now (``lyra.session.lease``): one row per session. A process takes
#: it (a new ``epoch``) only if the previous owner's lease expired or its process is gone, renews
#: ``expires_ts`` with its heartbeat, and every commit of the session's log entries checks that
#: ``epoch`` is still its own (the fence), so a second or a paused old owner can never write.
session_leases = Table(
    "session_leases",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("epoch", BigInteger, nullable=False),  # +1 at every takeover
    Column("owner_pid", BigInteger, nullable=False),
    Column("owner_host", String(128), nullable=False),
    Column("acquired_ts", BigInteger, nullable=False),  # wall clock, ms
    Column("renewed_ts", BigInteger, nullable=False),  # wall clock, ms
    Column("expires_ts", BigInteger, nullable=False),  # wall clock, ms; <= now: free to take
)
