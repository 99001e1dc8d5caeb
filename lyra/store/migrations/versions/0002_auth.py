"""auth: users, sessions, refresh tokens, API keys, login attempts

Revision ID: 0002_auth
Revises: 0001_core
Create Date: 2026-11-27
"""
import sqlalchemy as sa
from alembic import op

revision = "0002_auth"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "auth_users",
        sa.Column("username", sa.String(32), primary_key=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("totp_secret_enc", sa.Text),
        sa.Column("totp_last_step", sa.BigInteger),
        sa.Column("recovery_hashes", sa.Text, nullable=False, server_default="[]"),
        sa.Column("locked", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("failed_attempts", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("disabled", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("updated_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "auth_login_attempts",
        sa.Column("name_hash", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Text, nullable=False, server_default="[]"),
        sa.Column("locked_until_ms", sa.BigInteger),
    )
    op.create_table(
        "auth_sessions",
        sa.Column("session_id", sa.String(64), primary_key=True),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger),
        sa.Column("revoke_reason", sa.String(32)),
    )
    op.create_index("ix_auth_sessions_subject", "auth_sessions", ["subject"])
    op.create_table(
        "auth_refresh_tokens",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("family_id", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("issued_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("family_started_ms", sa.BigInteger, nullable=False),
        sa.Column("used", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("used_ms", sa.BigInteger),
    )
    op.create_index("ix_auth_refresh_family", "auth_refresh_tokens", ["family_id"])
    op.create_table(
        "auth_api_keys",
        sa.Column("key_id", sa.String(16), primary_key=True),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("owner", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("scopes", sa.Text, nullable=False),
        sa.Column("name", sa.String(100), nullable=False, server_default=""),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("expires_ms", sa.BigInteger, nullable=False),
        sa.Column("revoked_ms", sa.BigInteger),
        sa.Column("last_used_ms", sa.BigInteger),
        sa.Column("replaced_by", sa.String(16)),
        sa.Column("rotated_from", sa.String(16)),
    )
    op.create_index("ix_auth_api_keys_owner", "auth_api_keys", ["owner"])


def downgrade() -> None:
    op.drop_index("ix_auth_api_keys_owner", table_name="auth_api_keys")
    op.drop_table("auth_api_keys")
    op.drop_index("ix_auth_refresh_family", table_name="auth_refresh_tokens")
    op.drop_table("auth_refresh_tokens")
    op.drop_index("ix_auth_sessions_subject", table_name="auth_sessions")
    op.drop_table("auth_sessions")
    op.drop_table("auth_login_attempts")
    op.drop_table("auth_users")
