"""session_commands: operator orders and cancels queued for running sessions

Revision ID: 0007_session_commands
Revises: 0006_books
Create Date: 2026-12-04
"""
import sqlalchemy as sa
from alembic import op

revision = "0007_session_commands"
down_revision = "0006_books"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_commands",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("role", sa.String(32), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("created_ts", sa.BigInteger, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.Text, nullable=False, server_default=""),
        sa.Column("client_order_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("done_ts", sa.BigInteger),
    )
    op.create_index("ix_session_commands_pending", "session_commands", ["session_id", "status", "id"])


def downgrade() -> None:
    op.drop_index("ix_session_commands_pending", table_name="session_commands")
    op.drop_table("session_commands")
