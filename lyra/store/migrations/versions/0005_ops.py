"""ops: the notebook run registry and the scheduler's schedules

Revision ID: 0005_ops
Revises: 0004_sessions
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0005_ops"
down_revision = "0004_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("notebook", sa.Text, nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("started_ts", sa.BigInteger, nullable=False),
        sa.Column("ended_ts", sa.BigInteger),
        sa.Column("output_dir", sa.Text, nullable=False),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("error_cell", sa.Integer),
        sa.Column("fingerprint", sa.String(64), nullable=False, server_default=""),
        sa.Column("lyra_version", sa.String(32), nullable=False, server_default=""),
        sa.Column("git_commit", sa.String(64), nullable=False, server_default=""),
        sa.Column("env_hash", sa.String(64), nullable=False, server_default=""),
        sa.Column("key_results", sa.Text, nullable=False, server_default="{}"),
        sa.Column("rerun_of", sa.String(64), nullable=False, server_default=""),
        sa.Column("comparison", sa.Text, nullable=False, server_default=""),
        sa.Column("schedule_name", sa.String(64)),
        sa.Column("fire_ts", sa.BigInteger),
        sa.Column("attempt", sa.Integer, nullable=False, server_default="1"),
        sa.Column("owner", sa.String(128), nullable=False, server_default=""),
        sa.Column("pid", sa.BigInteger),
        sa.UniqueConstraint("schedule_name", "fire_ts", "attempt", name="uq_runs_schedule_fire"),
    )
    op.create_index("ix_runs_created", "runs", ["created_ts"])
    op.create_index("ix_runs_status", "runs", ["status"])
    op.create_table(
        "schedules",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("cron", sa.String(128), nullable=False, server_default=""),
        sa.Column("every_s", sa.Float),
        sa.Column("notebook", sa.Text, nullable=False),
        sa.Column("parameters", sa.Text, nullable=False),
        sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("missed", sa.String(16), nullable=False, server_default="skip"),
        sa.Column("timeout_s", sa.Float),
        sa.Column("retries", sa.Integer, nullable=False, server_default="0"),
        sa.Column("backoff_s", sa.Float, nullable=False, server_default="30"),
        sa.Column("next_ts", sa.BigInteger, nullable=False),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("last_run_id", sa.String(64), nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("schedules")
    op.drop_index("ix_runs_status", table_name="runs")
    op.drop_index("ix_runs_created", table_name="runs")
    op.drop_table("runs")
