"""core: event log, chain head, order/fill/position projections

Revision ID: 0001_core
Revises:
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = None
depends_on = None

dec = sa.String(64)


def upgrade() -> None:
    op.create_table(
        "events",
        sa.Column("seq", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_events_kind", "events", ["kind"])
    op.create_index("ix_events_ts", "events", ["ts"])
    op.create_index("ix_events_session", "events", ["session_id"])
    op.create_table(
        "audit_head",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
    )
    op.bulk_insert(
        sa.table("audit_head", sa.column("id"), sa.column("seq"), sa.column("hash")),
        [{"id": 1, "seq": 0, "hash": "0" * 64}],
    )
    op.create_table(
        "orders",
        sa.Column("client_order_id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("instrument_id", sa.String(96), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("order_type", sa.String(16), nullable=False),
        sa.Column("time_in_force", sa.String(8), nullable=False),
        sa.Column("quantity", dec, nullable=False),
        sa.Column("limit_price", dec),
        sa.Column("stop_price", dec),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("filled_quantity", dec, nullable=False),
        sa.Column("avg_fill_price", dec),
        sa.Column("fees", dec, nullable=False),
        sa.Column("venue_order_id", sa.String(96), nullable=False, server_default=""),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("updated_ts", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_orders_session_status", "orders", ["session_id", "status"])
    op.create_table(
        "fills",
        sa.Column("fill_id", sa.String(96), primary_key=True),
        sa.Column("client_order_id", sa.String(64), primary_key=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("instrument_id", sa.String(96), nullable=False),
        sa.Column("side", sa.String(8), nullable=False),
        sa.Column("quantity", dec, nullable=False),
        sa.Column("price", dec, nullable=False),
        sa.Column("fee", dec, nullable=False),
        sa.Column("fee_currency", sa.String(16), nullable=False),
        sa.Column("liquidity", sa.String(8), nullable=False),
        sa.Column("ts", sa.BigInteger, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_fills_session_ts", "fills", ["session_id", "ts"])
    op.create_table(
        "positions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("instrument_id", sa.String(96), primary_key=True),
        sa.Column("quantity", dec, nullable=False),
        sa.Column("avg_price", dec, nullable=False),
        sa.Column("realized_pnl", dec, nullable=False),
        sa.Column("fees", dec, nullable=False),
        sa.Column("last_ts", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("positions")
    op.drop_index("ix_fills_session_ts", table_name="fills")
    op.drop_table("fills")
    op.drop_index("ix_orders_session_status", table_name="orders")
    op.drop_table("orders")
    op.drop_table("audit_head")
    op.drop_index("ix_events_session", table_name="events")
    op.drop_index("ix_events_ts", table_name="events")
    op.drop_index("ix_events_kind", table_name="events")
    op.drop_table("events")
