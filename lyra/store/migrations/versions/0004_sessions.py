"""sessions: registry, status and heartbeat of session runs

Revision ID: 0004_sessions
Revises: 0003_risk
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0004_sessions"
down_revision = "0003_risk"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("config", sa.Text, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pid", sa.BigInteger),
        sa.Column("host", sa.String(128), nullable=False, server_default=""),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("heartbeat_ts", sa.BigInteger, nullable=False),
        sa.Column("data_ts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("events_processed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("stop_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
    )


def downgrade() -> None:
    op.drop_table("sessions")
