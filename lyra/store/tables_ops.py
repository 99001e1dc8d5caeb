"""Tables of ``lyra.ops``: notebook runs (the run registry) and their schedules."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from lyra.store.tables import metadata

#: One row per papermill run: created as ``running`` (after its inputs were validated), then
#: ``finished``, ``failed`` or ``timeout``. The files live in ``$LYRA_HOME/runs/<run_id>/``.
runs = Table(
    "runs",
    metadata,
    Column("run_id", String(64), primary_key=True),
    Column("notebook", Text, nullable=False),  # absolute path of the source notebook
    Column("parameters", Text, nullable=False),  # canonical JSON of the parameters passed
    Column("status", String(16), nullable=False),  # running, finished, failed, timeout
    Column("created_ts", BigInteger, nullable=False),  # wall clock, ms UTC
    Column("started_ts", BigInteger, nullable=False),
    Column("ended_ts", BigInteger),
    Column("output_dir", Text, nullable=False),
    Column("error", Text, nullable=False, server_default=""),
    Column("error_cell", Integer),  # index of the failed cell in the executed notebook
    Column("fingerprint", String(64), nullable=False, server_default=""),  # sha256 of the data read
    Column("lyra_version", String(32), nullable=False, server_default=""),
    Column("git_commit", String(64), nullable=False, server_default=""),
    Column("env_hash", String(64), nullable=False, server_default=""),  # sha256 of package versions
    Column("key_results", Text, nullable=False, server_default="{}"),  # JSON the notebook recorded
    Column("rerun_of", String(64), nullable=False, server_default=""),
    Column("comparison", Text, nullable=False, server_default=""),  # JSON: a rerun's verdict
    # Scheduled runs: the schedule, the fire time it serves and the attempt (1 = first try).
    # Unique together, so two daemons can never register the same fire twice (NULLs for ad-hoc
    # runs never collide on SQLite or PostgreSQL).
    Column("schedule_name", String(64)),
    Column("fire_ts", BigInteger),
    Column("attempt", Integer, nullable=False, server_default="1"),
    Column("owner", String(128), nullable=False, server_default=""),  # host:pid that launched it
    Column("pid", BigInteger),
    UniqueConstraint("schedule_name", "fire_ts", "attempt", name="uq_runs_schedule_fire"),
    Index("ix_runs_created", "created_ts"),
    Index("ix_runs_status", "status"),
)

#: Schedules of ``lyra schedule``. ``next_ts`` is the next fire time; a daemon claims a fire
#: with ``UPDATE ... SET next_ts = <following> WHERE name = :n AND next_ts = <due>``: only
#: one daemon's conditional update can match, so a fire starts once however many run.
schedules = Table(
    "schedules",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("cron", String(128), nullable=False, server_default=""),  # 5 or 6 fields (6th = seconds)
    Column("every_s", Float),  # or a plain interval in seconds
    Column("notebook", Text, nullable=False),
    Column("parameters", Text, nullable=False),
    Column("paused", Boolean, nullable=False, server_default=false()),
    Column("missed", String(16), nullable=False, server_default="skip"),  # skip | catchup
    Column("timeout_s", Float),
    Column("retries", Integer, nullable=False, server_default="0"),
    Column("backoff_s", Float, nullable=False, server_default="30"),
    Column("next_ts", BigInteger, nullable=False),
    Column("created_ts", BigInteger, nullable=False),
    Column("last_run_id", String(64), nullable=False, server_default=""),
)
