"""Risk tables: the shared trading state, kill-switch requests and their acknowledgements,
and circuit-breaker trips. Defined on the shared ``lyra.store.tables.metadata``; created by
migration ``0003_risk``."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from lyra.store.tables import metadata

#: One row per scope (``global`` or ``account:<id>``). ``version`` grows on every change so
#: that a process can tell cheaply whether its cached copy is current; ``rearms`` counts
#: re-arms (a breaker trip from before a re-arm no longer applies).
trading_state = Table(
    "trading_state",
    metadata,
    Column("scope", String(128), primary_key=True),
    Column("state", String(16), nullable=False),  # active / reducing / halted
    Column("reason", Text, nullable=False, server_default=""),
    Column("actor", String(128), nullable=False),
    Column("ts", BigInteger, nullable=False),  # ms UTC, wall clock of the change
    Column("version", BigInteger, nullable=False),
    Column("rearms", BigInteger, nullable=False, server_default="0"),
)

#: A pulled kill switch: what running sessions must act on (cancel all, maybe flatten).
#: ``closed_ts`` is set when the scope is re-armed; open requests are what sessions poll.
kill_requests = Table(
    "kill_requests",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("scope", String(128), nullable=False),
    Column("flatten", Boolean, nullable=False),
    Column("actor", String(128), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("ts", BigInteger, nullable=False),
    Column("closed_ts", BigInteger),
    Index("ix_kill_requests_open", "closed_ts", "id"),
)

#: A session saying it has acted on a kill request (orders cancelled, flattening sent).
kill_acks = Table(
    "kill_acks",
    metadata,
    Column("request_id", Integer, primary_key=True, autoincrement=False),
    Column("session_id", String(64), primary_key=True),
    Column("ts", BigInteger, nullable=False),
    Column("cancelled", Integer, nullable=False),
    Column("flatten_orders", Integer, nullable=False),
)

#: Circuit-breaker trips, for ``lyra risk status`` and to restore cool-downs after a restart.
breaker_trips = Table(
    "breaker_trips",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("account_id", String(64), nullable=False),
    Column("breaker", String(32), nullable=False),
    Column("instrument_id", String(96), nullable=False, server_default=""),
    Column("action", String(16), nullable=False),  # halt / reduce
    Column("reason", Text, nullable=False),
    Column("ts", BigInteger, nullable=False),  # session clock, ms UTC
    Column("until_ts", BigInteger),  # None: until re-armed
    Column("epoch", BigInteger, nullable=False),  # re-arms of global + account at the trip
    Column("session_id", String(64), nullable=False, server_default=""),
    Index("ix_breaker_trips_account", "account_id", "id"),
)
