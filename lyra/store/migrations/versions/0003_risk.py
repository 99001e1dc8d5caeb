"""risk: trading state, kill switch, circuit-breaker trips

Revision ID: 0003_risk
Revises: 0002_auth
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0003_risk"
down_revision = "0002_auth"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "trading_state",
        sa.Column("scope", sa.String(128), primary_key=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("version", sa.BigInteger, nullable=False),
        sa.Column("rearms", sa.BigInteger, nullable=False, server_default="0"),
    )
    op.create_table(
        "kill_requests",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("scope", sa.String(128), nullable=False),
        sa.Column("flatten", sa.Boolean, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("closed_ts", sa.BigInteger),
    )
    op.create_index("ix_kill_requests_open", "kill_requests", ["closed_ts", "id"])
    op.create_table(
        "kill_acks",
        sa.Column("request_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("cancelled", sa.Integer, nullable=False),
        sa.Column("flatten_orders", sa.Integer, nullable=False),
    )
    op.create_table(
        "breaker_trips",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(64), nullable=False),
        sa.Column("breaker", sa.String(32), nullable=False),
        sa.Column("instrument_id", sa.String(96), nullable=False, server_default=""),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("until_ts", sa.BigInteger),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False, server_default=""),
    )
    op.create_index("ix_breaker_trips_account", "breaker_trips", ["account_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_breaker_trips_account", table_name="breaker_trips")
    op.drop_table("breaker_trips")
    op.drop_table("kill_acks")
    op.drop_index("ix_kill_requests_open", table_name="kill_requests")
    op.drop_table("kill_requests")
    op.drop_table("trading_state")
