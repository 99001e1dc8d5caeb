"""books: level-2 order-book snapshots (market data for the dashboards)

Revision ID: 0006_books
Revises: 0005_ops
Create Date: 2026-12-03
"""
import sqlalchemy as sa
from alembic import op

revision = "0006_books"
down_revision = "0005_ops"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "book_snapshots",
        sa.Column("session_id", sa.String(64), primary_key=True, server_default=""),
        sa.Column("instrument_id", sa.String(96), primary_key=True),
        sa.Column("ts", sa.BigInteger, primary_key=True),
        sa.Column("sequence", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bids", sa.Text, nullable=False),
        sa.Column("asks", sa.Text, nullable=False),
        sa.Column("best_bid", sa.Float),
        sa.Column("best_ask", sa.Float),
        sa.Column("mid", sa.Float),
        sa.Column("spread_bps", sa.Float),
        sa.Column("bid_depth_10bps", sa.Float),
        sa.Column("ask_depth_10bps", sa.Float),
        sa.Column("bid_depth_50bps", sa.Float),
        sa.Column("ask_depth_50bps", sa.Float),
    )
    op.create_index("ix_book_snapshots_instrument_ts", "book_snapshots", ["instrument_id", "ts"])


def downgrade() -> None:
    op.drop_index("ix_book_snapshots_instrument_ts", table_name="book_snapshots")
    op.drop_table("book_snapshots")
