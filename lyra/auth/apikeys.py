"""API keys for programmatic access: scoped, shown once, stored hashed, expiring, rotatable.

A key looks like ``lyra_<key_id>_<secret>``: ``key_id`` (8 lowercase letters/digits) is public
and finds the stored record; ``secret`` (32 letters/digits, ~190 bits) is never stored: only the
SHA-256 of the whole key is (a slow hash adds nothing at this entropy and would make every API
call slow). The full key is returned once, by :meth:`ApiKeyManager.create` / ``rotate``.

* **Scopes**: a key may do a subset of its owner's role's actions, never more
  (:class:`~lyra.auth.permissions.Principal` checks both).
* **Expiry**: 90 days by default. **Rotation**: the new key works at once and the old one keeps
  working for a grace period (7 days) so deployments can switch over, then expires.
* **Revocation** is immediate. ``last_used_at`` is updated on use (at most once a minute by
  default, to spare the database a write per request).

Storage is an :class:`ApiKeyRepository`; :class:`InMemoryApiKeyRepository` is the test twin.
"""

from __future__ import annotations

import re
import secrets
import string
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol

from lyra.auth._util import Clock, aware, same, sha256_hex, utc_now
from lyra.auth.permissions import Action, Principal, Role, actions_for, check_scopes
from lyra.core.errors import LyraError, ValidationError

KEY_PREFIX = "lyra"
KEY_ID_LENGTH = 8
SECRET_LENGTH = 32
DEFAULT_TTL = timedelta(days=90)
MAX_TTL = timedelta(days=365)
ROTATION_GRACE = timedelta(days=7)
LAST_USED_RESOLUTION = timedelta(minutes=1)
_KEY_ID_ALPHABET = string.ascii_lowercase + string.digits
_SECRET_ALPHABET = string.ascii_letters + string.digits
_KEY = re.compile(rf"^{KEY_PREFIX}_([a-z0-9]{{{KEY_ID_LENGTH}}})_([A-Za-z0-9]{{{SECRET_LENGTH}}})$")
# Compared against when the key id is unknown, so both paths do the same work.
_DUMMY_HASH = sha256_hex("lyra-unknown-api-key")


class InvalidApiKey(LyraError):
    """An API key was refused. ``reason`` is safe to log and never contains the key."""

    def __init__(self, reason: str, key_id: str | None = None) -> None:
        self.reason = reason
        self.key_id = key_id
        super().__init__(f"API key refused: {reason}")


class ApiKeyStatus(StrEnum):
    """Where a key stands at a given time."""

    ACTIVE = "active"  # usable
    EXPIRED = "expired"  # past expires_at (including an old key after its rotation grace)
    REVOKED = "revoked"  # revoked by its owner or an admin


@dataclass(frozen=True)
class ApiKeyRecord:
    """The stored side of a key. ``key_hash`` is kept out of the repr."""

    key_id: str
    key_hash: str = field(repr=False)
    owner: str
    role: Role
    scopes: frozenset[Action]
    created_at: datetime
    expires_at: datetime
    name: str = ""
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    replaced_by: str | None = None  # the key_id of the key that rotated this one out

    def status(self, now: datetime) -> ApiKeyStatus:
        """ACTIVE, EXPIRED or REVOKED at ``now``."""
        if self.revoked_at is not None:
            return ApiKeyStatus.REVOKED
        if aware(now) >= self.expires_at:
            return ApiKeyStatus.EXPIRED
        return ApiKeyStatus.ACTIVE


@dataclass(frozen=True)
class NewApiKey:
    """A freshly issued key. Show ``key`` to its owner once; it cannot be recovered."""

    key: str = field(repr=False)
    record: ApiKeyRecord


class ApiKeyRepository(Protocol):
    """Where key records live (the database one comes with the store)."""

    def add(self, record: ApiKeyRecord) -> None:
        """Store a new record; raise :class:`LyraError` when ``key_id`` already exists."""
        ...

    def get(self, key_id: str) -> ApiKeyRecord | None:
        """The record with this key id, or None."""
        ...

    def update(self, record: ApiKeyRecord) -> None:
        """Replace the stored record with the same key id."""
        ...

    def list_for(self, owner: str) -> list[ApiKeyRecord]:
        """Every key of ``owner`` (any status), oldest first."""
        ...


class InMemoryApiKeyRepository:
    """A thread-safe in-memory :class:`ApiKeyRepository` (tests, demos)."""

    def __init__(self) -> None:
        self._records: dict[str, ApiKeyRecord] = {}
        self._lock = threading.Lock()

    def add(self, record: ApiKeyRecord) -> None:
        with self._lock:
            if record.key_id in self._records:
                raise LyraError(f"API key id {record.key_id!r} already exists")
            self._records[record.key_id] = record

    def get(self, key_id: str) -> ApiKeyRecord | None:
        with self._lock:
            return self._records.get(key_id)

    def update(self, record: ApiKeyRecord) -> None:
        with self._lock:
            if record.key_id not in self._records:
                raise LyraError(f"API key id {record.key_id!r} does not exist")
            self._records[record.key_id] = record

    def list_for(self, owner: str) -> list[ApiKeyRecord]:
        with self._lock:
            return sorted((r for r in self._records.values() if r.owner == owner), key=lambda r: r.created_at)


def parse_api_key(key: str) -> tuple[str, str]:
    """Split a key into ``(key_id, secret)``; raises :class:`InvalidApiKey` when malformed."""
    match = _KEY.match(key) if isinstance(key, str) and len(key) < 128 else None
    if match is None:
        raise InvalidApiKey("malformed")
    return match.group(1), match.group(2)


class ApiKeyManager:
    """Creates, verifies, rotates and revokes API keys over an :class:`ApiKeyRepository`.

    ``role_of(owner)`` (optional) returns the owner's current role, or None for a disabled
    user; when given, a key never does more than its owner may do *today*.
    """

    def __init__(
        self,
        repo: ApiKeyRepository,
        *,
        clock: Clock = utc_now,
        default_ttl: timedelta = DEFAULT_TTL,
        rotation_grace: timedelta = ROTATION_GRACE,
        last_used_resolution: timedelta = LAST_USED_RESOLUTION,
        role_of: Callable[[str], Role | None] | None = None,
    ) -> None:
        self.repo = repo
        self._clock = clock
        self.default_ttl = self._check_ttl(default_ttl)
        if rotation_grace < timedelta(0):
            raise ValidationError("rotation_grace", rotation_grace, "must not be negative")
        self.rotation_grace = rotation_grace
        self.last_used_resolution = last_used_resolution
        self._role_of = role_of

    @staticmethod
    def _check_ttl(ttl: timedelta) -> timedelta:
        if not timedelta(0) < ttl <= MAX_TTL:
            raise ValidationError("ttl", ttl, f"must be positive and at most {MAX_TTL.days} days")
        return ttl

    def _now(self, now: datetime | None) -> datetime:
        return aware(self._clock() if now is None else now)

    def _get(self, key_id: str) -> ApiKeyRecord:
        record = self.repo.get(key_id)
        if record is None:
            raise ValidationError("key_id", key_id, "no such API key")
        return record

    def create(
        self,
        owner: str,
        role: Role | str,
        scopes: Iterable[Action | str],
        *,
        name: str = "",
        ttl: timedelta | None = None,
        now: datetime | None = None,
    ) -> NewApiKey:
        """Issue a key for ``owner`` limited to ``scopes`` (a non-empty subset of the role's
        actions; otherwise PermissionDenied). Returns the key (show once) and its record."""
        at = self._now(now)
        if not isinstance(owner, str) or not owner:
            raise ValidationError("owner", owner, "must be a non-empty username")
        if len(name) > 100:
            raise ValidationError("name", name[:20] + "...", "longer than 100 characters")
        parsed_role = Role(role)
        parsed_scopes = check_scopes(parsed_role, scopes)
        if not parsed_scopes:
            raise ValidationError("scopes", [], "a key needs at least one scope")
        expires_at = at + self._check_ttl(self.default_ttl if ttl is None else ttl)
        for _ in range(10):  # a key-id collision is ~1e-12 likely; retry anyway
            key_id = "".join(secrets.choice(_KEY_ID_ALPHABET) for _ in range(KEY_ID_LENGTH))
            if self.repo.get(key_id) is None:
                break
        else:  # pragma: no cover - needs 10 collisions in a row
            raise LyraError("could not allocate a unique API key id")
        secret = "".join(secrets.choice(_SECRET_ALPHABET) for _ in range(SECRET_LENGTH))
        key = f"{KEY_PREFIX}_{key_id}_{secret}"
        record = ApiKeyRecord(
            key_id=key_id,
            key_hash=sha256_hex(key),
            owner=owner,
            role=parsed_role,
            scopes=parsed_scopes,
            created_at=at,
            expires_at=expires_at,
            name=name,
        )
        self.repo.add(record)
        return NewApiKey(key=key, record=record)

    def verify(self, key: str, *, now: datetime | None = None) -> Principal:
        """Check a presented key; return who it acts for, or raise :class:`InvalidApiKey`.

        The hash comparison is constant-time and an unknown key id costs the same as a wrong
        secret. Updates ``last_used_at``.
        """
        at = self._now(now)
        key_id, _secret = parse_api_key(key)
        record = self.repo.get(key_id)
        presented = sha256_hex(key)
        matches = same(presented, record.key_hash if record else _DUMMY_HASH)
        if record is None or not matches:
            raise InvalidApiKey("unknown key or wrong secret", key_id)
        status = record.status(at)
        if status is not ApiKeyStatus.ACTIVE:
            raise InvalidApiKey(status.value, key_id)
        role = record.role
        if self._role_of is not None:
            current = self._role_of(record.owner)
            if current is None:
                raise InvalidApiKey("owner disabled", key_id)
            role = current
        last = record.last_used_at
        if last is None or at - last >= self.last_used_resolution:
            self.repo.update(replace(record, last_used_at=at))
        return Principal(
            subject=record.owner,
            role=role,
            scopes=record.scopes & actions_for(role),
            via="api_key",
            key_id=key_id,
        )

    def rotate(
        self, key_id: str, *, now: datetime | None = None, grace: timedelta | None = None
    ) -> NewApiKey:
        """Issue a successor with the same owner, role, scopes and name; the old key keeps
        working for ``grace`` (default 7 days, never past its own expiry), then expires."""
        at = self._now(now)
        old = self._get(key_id)
        if old.status(at) is not ApiKeyStatus.ACTIVE:
            raise ValidationError("key_id", key_id, f"cannot rotate a key that is {old.status(at)}")
        if old.replaced_by is not None:
            raise ValidationError(
                "key_id",
                key_id,
                f"already rotated (successor {old.replaced_by})",
                "rotate the successor, or revoke it",
            )
        grace_period = self.rotation_grace if grace is None else grace
        if grace_period < timedelta(0):
            raise ValidationError("grace", grace_period, "must not be negative")
        role = old.role
        if self._role_of is not None:
            current = self._role_of(old.owner)
            if current is None:
                raise ValidationError("owner", old.owner, "owner is disabled")
            role = current
        new = self.create(old.owner, role, old.scopes & actions_for(role), name=old.name, now=at)
        self.repo.update(
            replace(old, expires_at=min(old.expires_at, at + grace_period), replaced_by=new.record.key_id)
        )
        return new

    def revoke(self, key_id: str, *, now: datetime | None = None) -> ApiKeyRecord:
        """Revoke a key at once (idempotent); returns the updated record."""
        at = self._now(now)
        record = self._get(key_id)
        if record.revoked_at is None:
            record = replace(record, revoked_at=at)
            self.repo.update(record)
        return record

    def due_for_rotation(
        self, owner: str, *, now: datetime | None = None, within: timedelta = timedelta(days=14)
    ) -> list[ApiKeyRecord]:
        """Active, not-yet-rotated keys of ``owner`` that expire within ``within``."""
        at = self._now(now)
        return [
            r
            for r in self.repo.list_for(owner)
            if r.status(at) is ApiKeyStatus.ACTIVE and r.replaced_by is None and r.expires_at - at <= within
        ]
