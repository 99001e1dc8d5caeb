"""Auth tables (SQLAlchemy Core, on the shared ``metadata``): users, sessions, refresh tokens,
API keys and login attempts. Created by migration ``0002_auth``.

Times are int milliseconds UTC, like the event log. No column holds a secret in the clear:
passwords are PBKDF2 hashes, refresh tokens / API keys / recovery codes are SHA-256 hashes, and
the TOTP secret is encrypted (Fernet, key in ``$LYRA_HOME/secrets/totp.key``).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, String, Table, Text, false

from lyra.store.tables import metadata

#: One row per account. ``locked`` is an admin lock (indefinite, ``lyra user lock``); the
#: throttling lock after failed logins lives in ``auth_login_attempts``.
auth_users = Table(
    "auth_users",
    metadata,
    Column("username", String(32), primary_key=True),
    Column("role", String(16), nullable=False),
    Column("password_hash", String(255), nullable=False),  # pbkdf2_sha256$iter$salt$hash
    Column("totp_secret_enc", Text),  # Fernet token of the base32 seed; NULL = not enrolled
    Column("totp_last_step", BigInteger),  # last accepted RFC 6238 step (replay protection)
    Column("recovery_hashes", Text, nullable=False, server_default="[]"),  # JSON list of sha256
    Column("locked", Boolean, nullable=False, server_default=false()),
    Column("failed_attempts", BigInteger, nullable=False, server_default="0"),  # lifetime count
    Column("disabled", Boolean, nullable=False, server_default=false()),
    Column("created_ms", BigInteger, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)

#: Failed-login state per *typed* username (hashed), whether or not the account exists, so the
#: lockout cannot be used to tell which usernames exist.
auth_login_attempts = Table(
    "auth_login_attempts",
    metadata,
    Column("name_hash", String(64), primary_key=True),
    Column("failures", Text, nullable=False, server_default="[]"),  # JSON list of ms times
    Column("locked_until_ms", BigInteger),
)

#: A login session (= refresh-token family). Idle timeout and absolute lifetime are checked
#: against ``created_ms`` / ``last_seen_ms``.
auth_sessions = Table(
    "auth_sessions",
    metadata,
    Column("session_id", String(64), primary_key=True),
    Column("subject", String(64), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("last_seen_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
    Column("revoke_reason", String(32)),
    Index("ix_auth_sessions_subject", "subject"),
)

#: Rotating refresh tokens, stored as SHA-256. ``used_ms`` is set once, atomically.
auth_refresh_tokens = Table(
    "auth_refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("family_id", String(64), nullable=False),
    Column("subject", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("issued_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("family_started_ms", BigInteger, nullable=False),
    Column("used", Boolean, nullable=False, server_default=false()),
    Column("used_ms", BigInteger),
    Index("ix_auth_refresh_family", "family_id"),
)

#: API keys: ``key_id`` is the public prefix, ``key_hash`` the SHA-256 of the whole key.
auth_api_keys = Table(
    "auth_api_keys",
    metadata,
    Column("key_id", String(16), primary_key=True),
    Column("key_hash", String(64), nullable=False),
    Column("owner", String(64), nullable=False),
    Column("role", String(16), nullable=False),
    Column("scopes", Text, nullable=False),  # comma-separated actions
    Column("name", String(100), nullable=False, server_default=""),
    Column("created_ms", BigInteger, nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("revoked_ms", BigInteger),
    Column("last_used_ms", BigInteger),
    Column("replaced_by", String(16)),
    Column("rotated_from", String(16)),
    Index("ix_auth_api_keys_owner", "owner"),
)
