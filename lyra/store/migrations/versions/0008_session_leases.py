"""session_leases: one owner per session (epoch, expiry), fencing every commit

Revision ID: 0008_session_leases
Revises: 0007_session_commands
Create Date: 2026-12-10
"""
import sqlalchemy as sa
from alembic import op

revision = "0008_session_leases"
down_revision = "0007_session_commands"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_leases",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("epoch", sa.BigInteger, nullable=False),
        sa.Column("owner_pid", sa.BigInteger, nullable=False),
        sa.Column("owner_host", sa.String(128), nullable=False),
        sa.Column("acquired_ts", sa.BigInteger, nullable=False),
        sa.Column("renewed_ts", sa.BigInteger, nullable=False),
        sa.Column("expires_ts", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("session_leases")
