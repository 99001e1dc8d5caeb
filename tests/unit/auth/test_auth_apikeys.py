"""API keys: shown once, stored hashed, scoped, expiring, rotated with overlap, revoked."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime, timedelta

import pytest

from lyra.auth.apikeys import (
    ApiKeyManager,
    ApiKeyStatus,
    InMemoryApiKeyRepository,
    InvalidApiKey,
    parse_api_key,
)
from lyra.auth.permissions import Action, PermissionDenied, Role
from lyra.core.errors import ValidationError

T0 = datetime(2025, 1, 1, tzinfo=UTC)
SCOPES = [Action.VIEW_TRADING, Action.PLACE_ORDER]


@pytest.fixture
def manager() -> ApiKeyManager:
    return ApiKeyManager(InMemoryApiKeyRepository(), clock=lambda: T0)


def test_create_shows_key_once_and_stores_hash(manager: ApiKeyManager) -> None:
    new = manager.create("alice", Role.TRADER, SCOPES, name="bot", now=T0)
    assert re.fullmatch(r"lyra_[a-z0-9]{8}_[A-Za-z0-9]{32}", new.key)
    key_id, secret = parse_api_key(new.key)
    record = manager.repo.get(key_id)
    assert record is not None
    assert record.key_hash == hashlib.sha256(new.key.encode()).hexdigest()
    assert secret not in repr(record)
    assert new.key not in repr(new)
    assert record.expires_at == T0 + timedelta(days=90)
    assert record.scopes == frozenset(SCOPES)


def test_verify_returns_scoped_principal_and_touches_last_used(manager: ApiKeyManager) -> None:
    new = manager.create("alice", Role.TRADER, SCOPES, now=T0)
    t1 = T0 + timedelta(hours=1)
    who = manager.verify(new.key, now=t1)
    assert (who.subject, who.role, who.via) == ("alice", Role.TRADER, "api_key")
    assert who.key_id == new.record.key_id
    assert who.can(Action.PLACE_ORDER)
    assert not who.can(Action.CANCEL_ORDER)
    assert manager.repo.get(new.record.key_id).last_used_at == t1  # type: ignore[union-attr]
    # Within a minute: no write; after a minute: updated.
    manager.verify(new.key, now=t1 + timedelta(seconds=30))
    assert manager.repo.get(new.record.key_id).last_used_at == t1  # type: ignore[union-attr]
    manager.verify(new.key, now=t1 + timedelta(seconds=60))
    assert manager.repo.get(new.record.key_id).last_used_at == t1 + timedelta(seconds=60)  # type: ignore[union-attr]


def test_scopes_must_be_subset_of_role(manager: ApiKeyManager) -> None:
    with pytest.raises(PermissionDenied):
        manager.create("victor", Role.VIEWER, [Action.PLACE_ORDER], now=T0)
    with pytest.raises(ValidationError):
        manager.create("victor", Role.VIEWER, [], now=T0)
    with pytest.raises(ValidationError):
        manager.create("victor", Role.VIEWER, ["fly_to_moon"], now=T0)


@pytest.mark.parametrize(
    "bad",
    ["", "lyra_", "lyra_ABCDEFGH_" + "a" * 32, "lyra_abcdefgh_" + "a" * 31, "Bearer x", "x" * 500],
)
def test_malformed_keys(manager: ApiKeyManager, bad: str) -> None:
    with pytest.raises(InvalidApiKey, match="malformed"):
        manager.verify(bad, now=T0)


def test_unknown_id_and_wrong_secret_look_the_same(manager: ApiKeyManager) -> None:
    new = manager.create("alice", Role.TRADER, SCOPES, now=T0)
    key_id, secret = parse_api_key(new.key)
    wrong_secret = f"lyra_{key_id}_{'A' * 32}"
    unknown_id = f"lyra_zzzzzzzz_{secret}"
    reasons = set()
    for bad in (wrong_secret, unknown_id):
        with pytest.raises(InvalidApiKey) as info:
            manager.verify(bad, now=T0)
        reasons.add(info.value.reason)
        assert secret not in str(info.value)
    assert reasons == {"unknown key or wrong secret"}


def test_expiry(manager: ApiKeyManager) -> None:
    new = manager.create("alice", Role.TRADER, SCOPES, now=T0)
    assert manager.verify(new.key, now=T0 + timedelta(days=90) - timedelta(seconds=1))
    with pytest.raises(InvalidApiKey, match="expired"):
        manager.verify(new.key, now=T0 + timedelta(days=90))
    short = manager.create("alice", Role.TRADER, SCOPES, ttl=timedelta(days=1), now=T0)
    assert short.record.expires_at == T0 + timedelta(days=1)
    with pytest.raises(ValidationError):
        manager.create("alice", Role.TRADER, SCOPES, ttl=timedelta(days=400), now=T0)


def test_revocation_is_immediate(manager: ApiKeyManager) -> None:
    new = manager.create("alice", Role.TRADER, SCOPES, now=T0)
    record = manager.revoke(new.record.key_id, now=T0 + timedelta(hours=1))
    assert record.status(T0 + timedelta(hours=1)) is ApiKeyStatus.REVOKED
    with pytest.raises(InvalidApiKey, match="revoked"):
        manager.verify(new.key, now=T0 + timedelta(hours=1))
    assert manager.revoke(new.record.key_id).revoked_at == T0 + timedelta(hours=1)  # idempotent


def test_rotation_overlaps_for_grace_period(manager: ApiKeyManager) -> None:
    old = manager.create("alice", Role.TRADER, SCOPES, name="bot", now=T0)
    t_rot = T0 + timedelta(days=80)
    new = manager.rotate(old.record.key_id, now=t_rot)
    assert new.key != old.key
    assert (new.record.owner, new.record.scopes, new.record.name) == ("alice", frozenset(SCOPES), "bot")
    assert new.record.expires_at == t_rot + timedelta(days=90)
    # Both work during the grace period (old expires at min(own expiry, rotation + 7 d)).
    during = t_rot + timedelta(days=5)
    assert manager.verify(old.key, now=during).subject == "alice"
    assert manager.verify(new.key, now=during).subject == "alice"
    after = t_rot + timedelta(days=7)
    with pytest.raises(InvalidApiKey, match="expired"):
        manager.verify(old.key, now=after)
    assert manager.verify(new.key, now=after)
    with pytest.raises(ValidationError, match="already rotated"):
        manager.rotate(old.record.key_id, now=during)


def test_rotation_never_extends_old_key(manager: ApiKeyManager) -> None:
    old = manager.create("alice", Role.TRADER, SCOPES, now=T0)
    manager.rotate(old.record.key_id, now=T0 + timedelta(days=88))
    assert manager.repo.get(old.record.key_id).expires_at == T0 + timedelta(days=90)  # type: ignore[union-attr]


def test_cannot_rotate_revoked_key(manager: ApiKeyManager) -> None:
    old = manager.create("alice", Role.TRADER, SCOPES, now=T0)
    manager.revoke(old.record.key_id, now=T0)
    with pytest.raises(ValidationError, match="revoked"):
        manager.rotate(old.record.key_id, now=T0)


def test_due_for_rotation(manager: ApiKeyManager) -> None:
    a = manager.create("alice", Role.TRADER, SCOPES, now=T0)
    manager.create("alice", Role.TRADER, SCOPES, now=T0 + timedelta(days=30))
    due = manager.due_for_rotation("alice", now=T0 + timedelta(days=77))
    assert [r.key_id for r in due] == [a.record.key_id]


def test_role_downgrade_shrinks_key(manager: ApiKeyManager) -> None:
    roles = {"alice": Role.TRADER}
    mgr = ApiKeyManager(InMemoryApiKeyRepository(), role_of=roles.get)
    new = mgr.create("alice", Role.TRADER, SCOPES, now=T0)
    roles["alice"] = Role.VIEWER
    who = mgr.verify(new.key, now=T0)
    assert who.can(Action.VIEW_TRADING)
    assert not who.can(Action.PLACE_ORDER)
    del roles["alice"]
    with pytest.raises(InvalidApiKey, match="owner disabled"):
        mgr.verify(new.key, now=T0)
