"""metrics_endpoints: where each long-running process serves Prometheus /metrics

Revision ID: 0009_metrics_endpoints
Revises: 0008_session_leases
Create Date: 2026-12-07
"""
import sqlalchemy as sa
from alembic import op

revision = "0009_metrics_endpoints"
down_revision = "0008_session_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metrics_endpoints",
        sa.Column("target", sa.String(160), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("host", sa.String(128), nullable=False),
        sa.Column("pid", sa.BigInteger, nullable=False),
        sa.Column("address", sa.String(64), nullable=False),
        sa.Column("port", sa.Integer, nullable=False),
        sa.Column("started_ts", sa.BigInteger, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("metrics_endpoints")
