"""Table of ``lyra.metrics``: where each long-running process serves its Prometheus ``/metrics``.

One row per process target (``session:<id>``, ``serve:<host>``, ``scheduler:<host>``), written
when the endpoint starts listening and deleted when the process ends cleanly. A row left behind
by a killed process is kept on purpose: ``lyra serve`` still lists it in the ``file_sd`` targets
file, so Prometheus sees the target down and the ``LyraTargetDown`` alert fires.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Integer, String, Table

from lyra.store.tables import metadata

metrics_endpoints = Table(
    "metrics_endpoints",
    metadata,
    Column("target", String(160), primary_key=True),  # <kind>:<name>
    Column("kind", String(16), nullable=False),  # session / serve / scheduler
    Column("name", String(128), nullable=False),  # session id, or the host for serve/scheduler
    Column("host", String(128), nullable=False),  # the machine the process runs on
    Column("pid", BigInteger, nullable=False),
    Column("address", String(64), nullable=False),  # the listening address (loopback)
    Column("port", Integer, nullable=False),
    Column("started_ts", BigInteger, nullable=False),  # wall clock, ms UTC
)
