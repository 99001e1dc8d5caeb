"""Database storage for auth: users, login attempts, sessions, refresh tokens and API keys.

These implement the storage protocols of the pure-logic modules on SQLAlchemy Core
(:mod:`lyra.store.tables_auth`), on SQLite and PostgreSQL alike:

* :class:`DbRefreshTokenStore` is a :class:`~lyra.auth.tokens.RefreshTokenStore`; its
  ``mark_used`` is one conditional ``UPDATE ... WHERE used = false`` whose row count decides,
  so two concurrent refreshes with one token cannot both win. A family is a session row.
* :class:`DbApiKeyRepository` is an :class:`~lyra.auth.apikeys.ApiKeyRepository`.
* :class:`DbUserStore` keeps accounts; TOTP replay protection is an atomic
  ``UPDATE ... WHERE totp_last_step < :step``.
* :class:`SecretBox` encrypts TOTP seeds at rest (Fernet, key file 0600).

Times are stored as int ms UTC and returned as aware datetimes.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken as FernetInvalid
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SaIntegrityError

from lyra.auth._util import HIDDEN, sha256_hex
from lyra.auth.apikeys import ApiKeyRecord
from lyra.auth.permissions import Role, parse_action
from lyra.auth.policy import LoginAttempts
from lyra.auth.tokens import RefreshRecord
from lyra.core.errors import ConfigError, IntegrityError, LyraError, ValidationError
from lyra.store.engine import writer
from lyra.store.tables_auth import (
    auth_api_keys,
    auth_login_attempts,
    auth_refresh_tokens,
    auth_sessions,
    auth_users,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_ms(dt: datetime) -> int:
    """Aware datetime -> int ms UTC (exact: no float round trip)."""
    if dt.tzinfo is None:
        raise ValidationError("datetime", dt, "naive datetime", "pass an aware UTC datetime")
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def from_ms(ms: int | None) -> datetime | None:
    """int ms UTC -> aware datetime (None stays None)."""
    return None if ms is None else _EPOCH + timedelta(milliseconds=int(ms))


def _dt(ms: int) -> datetime:
    return _EPOCH + timedelta(milliseconds=int(ms))


# --------------------------------------------------------------------------- secrets at rest


class SecretBox:
    """Encrypts small secrets (TOTP seeds) with Fernet (AES-128-CBC + HMAC-SHA256).

    Keep the key apart from the database: a stolen database dump alone does not give away
    anyone's second factor. ``repr`` never shows the key.
    """

    def __init__(self, key: bytes) -> None:
        try:
            self._fernet = Fernet(key)
        except (ValueError, TypeError) as exc:
            raise ConfigError("auth.totp_key", HIDDEN, "not a Fernet key (32 url-safe base64 bytes)") from exc

    def __repr__(self) -> str:
        return "SecretBox(<key hidden>)"

    @classmethod
    def from_file(cls, path: Path, *, create: bool = False) -> SecretBox:
        """Load the key from ``path`` (mode 0600); with ``create`` make one if it is missing."""
        if not path.exists():
            if not create:
                raise ConfigError(
                    "auth.totp_key_file", str(path), "missing", "run `lyra user add` to create it"
                )
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
        info = path.stat()
        if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
            raise ConfigError(
                "auth.totp_key_file", str(path), "readable by group or others", f"chmod 600 {path}"
            )
        return cls(path.read_bytes().strip())

    def encrypt(self, text: str) -> str:
        """Encrypt ``text``; the result is ASCII, safe to store."""
        return self._fernet.encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """Decrypt what :meth:`encrypt` made; a wrong key or edited value is an IntegrityError."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (FernetInvalid, ValueError) as exc:
            raise IntegrityError(
                "stored TOTP secret cannot be decrypted (wrong totp.key or edited row)"
            ) from exc


# --------------------------------------------------------------------------- users


@dataclass(frozen=True)
class UserRecord:
    """One account. Secret-bearing fields are kept out of the repr."""

    username: str
    role: Role
    password_hash: str = field(repr=False)
    totp_secret_enc: str | None = field(repr=False)
    totp_last_step: int | None
    recovery_hashes: tuple[str, ...] = field(repr=False)
    locked: bool
    failed_attempts: int
    disabled: bool
    created_at: datetime
    updated_at: datetime

    @property
    def mfa_enrolled(self) -> bool:
        """True when a TOTP secret is stored."""
        return self.totp_secret_enc is not None


def _user(row: Any) -> UserRecord:
    return UserRecord(
        username=row.username,
        role=Role(row.role),
        password_hash=row.password_hash,
        totp_secret_enc=row.totp_secret_enc,
        totp_last_step=row.totp_last_step,
        recovery_hashes=tuple(json.loads(row.recovery_hashes or "[]")),
        locked=bool(row.locked),
        failed_attempts=int(row.failed_attempts),
        disabled=bool(row.disabled),
        created_at=_dt(row.created_ms),
        updated_at=_dt(row.updated_ms),
    )


class DbUserStore:
    """Accounts and per-username login attempts in the database."""

    def __init__(self, engine: Engine) -> None:
        # Reads then writes in one transaction: take SQLite's write lock at BEGIN, or a
        # session writing beside it makes the upgrade fail with "database is locked".
        self.engine = writer(engine)

    def add(self, record: UserRecord) -> None:
        """Insert a new account; ValidationError when the username is taken."""
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    auth_users.insert().values(
                        username=record.username,
                        role=record.role.value,
                        password_hash=record.password_hash,
                        totp_secret_enc=record.totp_secret_enc,
                        totp_last_step=record.totp_last_step,
                        recovery_hashes=json.dumps(list(record.recovery_hashes)),
                        locked=record.locked,
                        failed_attempts=record.failed_attempts,
                        disabled=record.disabled,
                        created_ms=to_ms(record.created_at),
                        updated_ms=to_ms(record.updated_at),
                    )
                )
        except SaIntegrityError:
            raise ValidationError("username", record.username, "already exists") from None

    def get(self, username: str) -> UserRecord | None:
        """The account, or None."""
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(auth_users).where(auth_users.c.username == username)).one_or_none()
        return None if row is None else _user(row)

    def list(self) -> list[UserRecord]:
        """Every account, by username."""
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(auth_users).order_by(auth_users.c.username)).all()
        return [_user(r) for r in rows]

    def role_of(self, username: str) -> Role | None:
        """The current role, or None for an unknown, disabled or admin-locked user."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(auth_users.c.role, auth_users.c.locked, auth_users.c.disabled).where(
                    auth_users.c.username == username
                )
            ).one_or_none()
        if row is None or row.locked or row.disabled:
            return None
        return Role(row.role)

    def update(self, username: str, at: datetime, **values: Any) -> None:
        """Set columns of one account (``recovery_hashes`` may be a sequence); must exist."""
        if "recovery_hashes" in values:
            values["recovery_hashes"] = json.dumps(list(values["recovery_hashes"]))
        if "role" in values:
            values["role"] = Role(values["role"]).value
        with self.engine.begin() as conn:
            n = conn.execute(
                auth_users.update()
                .where(auth_users.c.username == username)
                .values(updated_ms=to_ms(at), **values)
            ).rowcount
        if n != 1:
            raise ValidationError("username", username, "no such user")

    def consume_totp_step(self, username: str, step: int, at: datetime) -> bool:
        """Record ``step`` as used if it is later than the stored one; False if it is not
        (a replayed code, or a concurrent login that used the same code first)."""
        c = auth_users.c
        with self.engine.begin() as conn:
            n = conn.execute(
                auth_users.update()
                .where(c.username == username)
                .where(sa.or_(c.totp_last_step.is_(None), c.totp_last_step < step))
                .values(totp_last_step=step, updated_ms=to_ms(at))
            ).rowcount
        return n == 1

    def replace_recovery_hashes(
        self, username: str, old: Sequence[str], new: Sequence[str], at: datetime
    ) -> bool:
        """Compare-and-swap the recovery hashes: False when they changed meanwhile (the same
        code used twice at once)."""
        c = auth_users.c
        with self.engine.begin() as conn:
            n = conn.execute(
                auth_users.update()
                .where(c.username == username)
                .where(c.recovery_hashes == json.dumps(list(old)))
                .values(recovery_hashes=json.dumps(list(new)), updated_ms=to_ms(at))
            ).rowcount
        return n == 1

    def count_failure(self, username: str) -> None:
        """Add one to the account's lifetime failed-login counter (for ``lyra user list``)."""
        with self.engine.begin() as conn:
            conn.execute(
                auth_users.update()
                .where(auth_users.c.username == username)
                .values(failed_attempts=auth_users.c.failed_attempts + 1)
            )

    # ---- login attempts (keyed by the hash of the *typed* name)

    @staticmethod
    def attempt_key(typed_username: str) -> str:
        """The row key for a typed username (hashed: people type passwords into that field)."""
        import unicodedata

        return sha256_hex("login:" + unicodedata.normalize("NFKC", typed_username[:256]).casefold())

    def attempts(self, key: str) -> LoginAttempts:
        """The failed-login state for an attempt key (fresh when unknown)."""
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(auth_login_attempts).where(auth_login_attempts.c.name_hash == key)
            ).one_or_none()
        if row is None:
            return LoginAttempts()
        return LoginAttempts(
            failures=tuple(_dt(t) for t in json.loads(row.failures)),
            locked_until=from_ms(row.locked_until_ms),
        )

    def save_attempts(self, key: str, state: LoginAttempts) -> None:
        """Store (or clear, for a fresh state) the failed-login state of an attempt key."""
        t = auth_login_attempts
        with self.engine.begin() as conn:
            conn.execute(t.delete().where(t.c.name_hash == key))
            if state != LoginAttempts():
                conn.execute(
                    t.insert().values(
                        name_hash=key,
                        failures=json.dumps([to_ms(f) for f in state.failures]),
                        locked_until_ms=None if state.locked_until is None else to_ms(state.locked_until),
                    )
                )


# --------------------------------------------------------------------------- sessions + refresh tokens


@dataclass(frozen=True)
class SessionRecord:
    """One login session (a refresh-token family)."""

    session_id: str
    subject: str
    created_at: datetime
    last_seen_at: datetime
    revoked_at: datetime | None = None
    revoke_reason: str | None = None


def _session(row: Any) -> SessionRecord:
    return SessionRecord(
        session_id=row.session_id,
        subject=row.subject,
        created_at=_dt(row.created_ms),
        last_seen_at=_dt(row.last_seen_ms),
        revoked_at=from_ms(row.revoked_ms),
        revoke_reason=row.revoke_reason,
    )


class DbRefreshTokenStore:
    """A :class:`~lyra.auth.tokens.RefreshTokenStore` (plus session rows) in the database."""

    def __init__(self, engine: Engine) -> None:
        # Reads then writes in one transaction: take SQLite's write lock at BEGIN, or a
        # session writing beside it makes the upgrade fail with "database is locked".
        self.engine = writer(engine)

    def add(self, record: RefreshRecord) -> None:
        t, s = auth_refresh_tokens, auth_sessions
        with self.engine.begin() as conn:
            exists = conn.execute(
                sa.select(s.c.session_id).where(s.c.session_id == record.family_id)
            ).one_or_none()
            if exists is None:
                conn.execute(
                    s.insert().values(
                        session_id=record.family_id,
                        subject=record.subject,
                        created_ms=to_ms(record.family_started_at),
                        last_seen_ms=to_ms(record.issued_at),
                    )
                )
            try:
                conn.execute(
                    t.insert().values(
                        token_hash=record.token_hash,
                        family_id=record.family_id,
                        subject=record.subject,
                        role=Role(record.role).value,
                        issued_ms=to_ms(record.issued_at),
                        expires_ms=to_ms(record.expires_at),
                        family_started_ms=to_ms(record.family_started_at),
                        used=record.used_at is not None,
                        used_ms=None if record.used_at is None else to_ms(record.used_at),
                    )
                )
            except SaIntegrityError:
                raise LyraError("duplicate refresh token hash") from None

    def get(self, token_hash: str) -> RefreshRecord | None:
        t = auth_refresh_tokens
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.token_hash == token_hash)).one_or_none()
        if row is None:
            return None
        return RefreshRecord(
            token_hash=row.token_hash,
            family_id=row.family_id,
            subject=row.subject,
            role=Role(row.role),
            issued_at=_dt(row.issued_ms),
            expires_at=_dt(row.expires_ms),
            family_started_at=_dt(row.family_started_ms),
            used_at=from_ms(row.used_ms) if row.used else None,
        )

    def mark_used(self, token_hash: str, used_at: datetime) -> bool:
        t = auth_refresh_tokens
        with self.engine.begin() as conn:
            n = conn.execute(
                t.update()
                .where(t.c.token_hash == token_hash)
                .where(t.c.used == sa.false())
                .values(used=True, used_ms=to_ms(used_at))
            ).rowcount
        return n == 1

    def revoke_family(self, family_id: str, at: datetime, reason: str = "revoked") -> None:
        s = auth_sessions
        with self.engine.begin() as conn:
            conn.execute(
                s.update()
                .where(s.c.session_id == family_id)
                .where(s.c.revoked_ms.is_(None))
                .values(revoked_ms=to_ms(at), revoke_reason=reason[:32])
            )

    def is_family_revoked(self, family_id: str) -> bool:
        s = auth_sessions
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s.c.revoked_ms).where(s.c.session_id == family_id)).one_or_none()
        # An unknown session counts as revoked: nothing can be valid without its row.
        return row is None or row.revoked_ms is not None

    def families_of(self, subject: str) -> list[str]:
        s = auth_sessions
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(s.c.session_id)
                .where(s.c.subject == subject)
                .where(s.c.revoked_ms.is_(None))
                .order_by(s.c.session_id)
            ).all()
        return [r.session_id for r in rows]

    # ---- sessions

    def session(self, session_id: str) -> SessionRecord | None:
        """The session row, or None."""
        s = auth_sessions
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(s).where(s.c.session_id == session_id)).one_or_none()
        return None if row is None else _session(row)

    def touch(self, session_id: str, at: datetime) -> None:
        """Record activity (only moves ``last_seen`` forward, only on a live session)."""
        s = auth_sessions
        ms = to_ms(at)
        with self.engine.begin() as conn:
            conn.execute(
                s.update()
                .where(s.c.session_id == session_id)
                .where(s.c.revoked_ms.is_(None))
                .where(s.c.last_seen_ms < ms)
                .values(last_seen_ms=ms)
            )

    def sessions_of(self, subject: str) -> list[SessionRecord]:
        """Every session of a user, newest first."""
        s = auth_sessions
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(s).where(s.c.subject == subject).order_by(s.c.created_ms.desc())
            ).all()
        return [_session(r) for r in rows]


# --------------------------------------------------------------------------- API keys


def _key(row: Any) -> ApiKeyRecord:
    scopes = frozenset(parse_action(a) for a in row.scopes.split(",") if a)
    return ApiKeyRecord(
        key_id=row.key_id,
        key_hash=row.key_hash,
        owner=row.owner,
        role=Role(row.role),
        scopes=scopes,
        created_at=_dt(row.created_ms),
        expires_at=_dt(row.expires_ms),
        name=row.name,
        revoked_at=from_ms(row.revoked_ms),
        last_used_at=from_ms(row.last_used_ms),
        replaced_by=row.replaced_by,
    )


def _key_values(record: ApiKeyRecord) -> dict[str, Any]:
    return {
        "key_hash": record.key_hash,
        "owner": record.owner,
        "role": Role(record.role).value,
        "scopes": ",".join(sorted(a.value for a in record.scopes)),
        "name": record.name,
        "created_ms": to_ms(record.created_at),
        "expires_ms": to_ms(record.expires_at),
        "revoked_ms": None if record.revoked_at is None else to_ms(record.revoked_at),
        "last_used_ms": None if record.last_used_at is None else to_ms(record.last_used_at),
        "replaced_by": record.replaced_by,
    }


class DbApiKeyRepository:
    """An :class:`~lyra.auth.apikeys.ApiKeyRepository` in the database.

    ``rotated_from`` is filled in when a key's predecessor records it as ``replaced_by``.
    """

    def __init__(self, engine: Engine) -> None:
        # Reads then writes in one transaction: take SQLite's write lock at BEGIN, or a
        # session writing beside it makes the upgrade fail with "database is locked".
        self.engine = writer(engine)

    def add(self, record: ApiKeyRecord) -> None:
        try:
            with self.engine.begin() as conn:
                conn.execute(auth_api_keys.insert().values(key_id=record.key_id, **_key_values(record)))
        except SaIntegrityError:
            raise LyraError(f"API key id {record.key_id!r} already exists") from None

    def get(self, key_id: str) -> ApiKeyRecord | None:
        t = auth_api_keys
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t).where(t.c.key_id == key_id)).one_or_none()
        return None if row is None else _key(row)

    def update(self, record: ApiKeyRecord) -> None:
        t = auth_api_keys
        with self.engine.begin() as conn:
            n = conn.execute(
                t.update().where(t.c.key_id == record.key_id).values(**_key_values(record))
            ).rowcount
            if n != 1:
                raise LyraError(f"API key id {record.key_id!r} does not exist")
            if record.replaced_by is not None:
                conn.execute(
                    t.update().where(t.c.key_id == record.replaced_by).values(rotated_from=record.key_id)
                )

    def list_for(self, owner: str) -> list[ApiKeyRecord]:
        t = auth_api_keys
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(t).where(t.c.owner == owner).order_by(t.c.created_ms, t.c.key_id)
            ).all()
        return [_key(r) for r in rows]

    def list_all(self) -> list[ApiKeyRecord]:
        """Every key of every owner (for admins), oldest first."""
        t = auth_api_keys
        with self.engine.connect() as conn:
            rows = conn.execute(sa.select(t).order_by(t.c.created_ms, t.c.key_id)).all()
        return [_key(r) for r in rows]

    def rotated_from(self, key_id: str) -> str | None:
        """The key this one replaced, if any."""
        t = auth_api_keys
        with self.engine.connect() as conn:
            row = conn.execute(sa.select(t.c.rotated_from).where(t.c.key_id == key_id)).one_or_none()
        return None if row is None else row.rotated_from
