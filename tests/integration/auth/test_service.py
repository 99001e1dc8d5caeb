"""The auth service on a real database (SQLite and PostgreSQL): login, MFA, lockout,
sessions, refresh rotation and reuse, API keys, events, and no secrets at rest or in the log."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
import sqlalchemy as sa

from lyra.auth import InvalidApiKey, InvalidToken, LoginThrottled, RefreshTokenReused, Role
from lyra.auth.passwords import PBKDF2_ITERATIONS, parse_hash
from lyra.auth.repository import SecretBox
from lyra.auth.service import GENERIC_LOGIN_ERROR, AuthService, LoginFailed
from lyra.auth.tokens import RefreshRecord
from lyra.auth.totp import totp_code
from lyra.core.errors import ValidationError
from lyra.store.tables_auth import auth_login_attempts, auth_users

from .conftest import PASSWORD


def events_of(service: AuthService) -> list[tuple[str, dict]]:
    return [(r.kind, json.loads(r.payload)) for r in service.event_log.read()]


def login(service: AuthService, name: str, secret: str, password: str = PASSWORD):
    challenge = service.login_password(name, password, client="10.0.0.1")
    return service.login_mfa(challenge.ticket, totp_code(secret, service.now()), client="10.0.0.1")


def test_full_login_issues_tokens_and_records_events(service, clock):
    enrol = service.add_user("alice", PASSWORD, "trader", actor="admin")
    pair = login(service, "alice", enrol.totp_secret)
    claims = service.authenticate(pair.access_token)
    assert (claims.subject, claims.role) == ("alice", Role.TRADER)
    kinds = [k for k, _ in events_of(service)]
    assert kinds == ["auth.user_created", "auth.mfa_ok", "auth.login_ok"]
    login_ok = events_of(service)[-1][1]
    assert login_ok["subject"] == "alice" and login_ok["detail"]["session_id"] == pair.session_id


def test_replayed_totp_code_is_refused(service, clock):
    enrol = service.add_user("bob", PASSWORD, "viewer", actor="admin")
    code = totp_code(enrol.totp_secret, clock.now)
    ch = service.login_password("bob", PASSWORD)
    service.login_mfa(ch.ticket, code)
    ch2 = service.login_password("bob", PASSWORD)
    with pytest.raises(LoginFailed):
        service.login_mfa(ch2.ticket, code)  # same code, same 30-s step: refused
    clock.advance(seconds=30)
    service.login_mfa(ch2.ticket, totp_code(enrol.totp_secret, clock.now))  # next step works
    assert ("auth.mfa_failed", "wrong or reused code") in [
        (k, p["detail"].get("reason")) for k, p in events_of(service)
    ]


def test_recovery_code_works_once(service):
    enrol = service.add_user("carol", PASSWORD, "auditor", actor="admin")
    code = enrol.recovery_codes[0]
    service.login_mfa(service.login_password("carol", PASSWORD).ticket, code)
    with pytest.raises(LoginFailed):
        service.login_mfa(service.login_password("carol", PASSWORD).ticket, code)
    assert len(service.users.get("carol").recovery_hashes) == 9


def test_brute_force_locks_the_account_and_unknown_users_alike(service, clock):
    service.add_user("dave", PASSWORD, "trader", actor="admin")
    for _ in range(5):
        with pytest.raises(LoginFailed) as err:
            service.login_password("dave", "wrong password guess 1")
        assert str(err.value) == GENERIC_LOGIN_ERROR
    with pytest.raises(LoginThrottled):
        service.login_password("dave", PASSWORD)  # right password, but locked
    for _ in range(5):
        with pytest.raises(LoginFailed) as err2:
            service.login_password("nobody", "wrong password guess 1")
        assert str(err2.value) == GENERIC_LOGIN_ERROR  # same message: no enumeration
    with pytest.raises(LoginThrottled) as thr:
        service.login_password("nobody", PASSWORD)
    assert "too many login attempts" in str(thr.value)
    kinds = [k for k, _ in events_of(service)]
    assert kinds.count("auth.lockout") == 2 and kinds.count("auth.login_throttled") == 2
    clock.advance(minutes=16)  # the lock runs out
    assert service.login_password("dave", PASSWORD).ticket


def test_malformed_usernames_are_refused_without_echo_or_writes(service, engine):
    for bad in ["a" * 500, "ad\u200bmin", "аdmin", "x", "name\x00", "../etc"]:
        with pytest.raises(ValidationError) as err:
            service.login_password(bad, PASSWORD)
        assert bad not in str(err.value)
    with engine.connect() as c:
        assert c.execute(sa.select(sa.func.count()).select_from(auth_login_attempts)).scalar() == 0
    evs = events_of(service)
    assert len(evs) == 1 and evs[0][1]["subject"] == "<invalid>"  # the first; the rest counted
    service.flush_failures()
    evs = events_of(service)
    assert [p["detail"].get("count", 1) for _, p in evs] == [1, 5] and all(
        p["subject"] == "<invalid>" for _, p in evs
    )


def test_refresh_rotates_and_reuse_revokes_the_family(service, clock):
    enrol = service.add_user("erin", PASSWORD, "analyst", actor="admin")
    first = login(service, "erin", enrol.totp_secret)
    clock.advance(minutes=5)
    second = service.refresh(first.refresh_token)
    assert second.session_id == first.session_id and second.refresh_token != first.refresh_token
    with pytest.raises(RefreshTokenReused):
        service.refresh(first.refresh_token)  # the stolen, spent token comes back
    with pytest.raises(InvalidToken):
        service.refresh(second.refresh_token)  # ...and the legitimate one dies with its family
    with pytest.raises(InvalidToken, match="session ended"):
        service.authenticate(second.access_token)
    assert "auth.token_reuse" in [k for k, _ in events_of(service)]


def test_mark_used_is_atomic_under_concurrency(service, clock):
    rec = RefreshRecord(
        "h" * 64, "fam1", "x", Role.VIEWER, clock.now, clock.now + timedelta(hours=1), clock.now
    )
    service.sessions.add(rec)
    wins: list[bool] = []
    barrier = threading.Barrier(8)

    def spend() -> None:
        barrier.wait()
        wins.append(service.sessions.mark_used("h" * 64, clock.now))

    threads = [threading.Thread(target=spend) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(wins) == [False] * 7 + [True]


def test_idle_timeout_and_logout_everywhere(service, clock):
    enrol = service.add_user("fred", PASSWORD, "viewer", actor="admin")
    a = login(service, "fred", enrol.totp_secret)
    clock.advance(seconds=30)
    b = login(service, "fred", enrol.totp_secret)
    clock.advance(minutes=10)
    service.authenticate(b.access_token)  # activity on b at t+10.5 min...
    b_mid = service.refresh(b.refresh_token)  # ...and the proxy's silent refresh
    clock.advance(minutes=55)  # a: idle 65 min; b: idle 55 min
    with pytest.raises(InvalidToken):
        service.refresh(a.refresh_token)
    assert service.sessions.session(a.session_id).revoke_reason == "idle_expired"
    b2 = service.refresh(b_mid.refresh_token)
    assert service.logout_everywhere("fred", actor="admin") == 1
    with pytest.raises(InvalidToken):
        service.authenticate(b2.access_token)
    kinds = [k for k, _ in events_of(service)]
    assert "auth.session_expired" in kinds and "auth.logout_all" in kinds


def test_role_change_ends_sessions_and_is_recorded(service):
    enrol = service.add_user("gina", PASSWORD, "trader", actor="admin")
    pair = login(service, "gina", enrol.totp_secret)
    service.set_role("gina", "viewer", actor="admin")
    with pytest.raises(InvalidToken):
        service.authenticate(pair.access_token)
    kind, payload = events_of(service)[-1]
    assert kind == "auth.role_changed"
    assert payload["detail"] == {"old_role": "trader", "new_role": "viewer"}
    assert service.users.get("gina").role is Role.VIEWER


def test_api_keys_scoped_rotated_revoked_expired(service, clock):
    service.add_user("hank", PASSWORD, "trader", actor="admin")
    new = service.create_api_key("hank", ["place_order"], name="bot", actor="admin")
    p = service.verify_api_key(new.key)
    assert p.can("place_order") and not p.can("cancel_order")
    assert service.keys_repo.get(new.record.key_id).last_used_at == clock.now
    clock.advance(days=1)
    succ = service.rotate_api_key(new.record.key_id, actor="hank")
    assert service.keys_repo.rotated_from(succ.record.key_id) == new.record.key_id
    service.verify_api_key(new.key)  # old key: still inside the 7-day grace
    clock.advance(days=8)
    with pytest.raises(InvalidApiKey, match="expired"):
        service.verify_api_key(new.key)
    service.revoke_api_key(succ.record.key_id, actor="admin")
    with pytest.raises(InvalidApiKey, match="revoked"):
        service.verify_api_key(succ.key)
    kinds = [k for k, _ in events_of(service)]
    for k in ("auth.apikey_created", "auth.apikey_rotated", "auth.apikey_revoked", "auth.apikey_rejected"):
        assert k in kinds


def test_no_secret_at_rest_or_in_the_event_log(service, engine, tmp_path):
    enrol = service.add_user("ivan", PASSWORD, "admin", actor="admin")
    pair = login(service, "ivan", enrol.totp_secret)
    pair2 = service.refresh(pair.refresh_token)
    key = service.create_api_key("ivan", ["manage_users"], actor="ivan")
    with pytest.raises(LoginFailed):
        service.login_password("ivan", "my-secret-guess-" + enrol.totp_secret)
    secrets = [
        PASSWORD,
        enrol.totp_secret,
        *enrol.recovery_codes,
        pair.access_token,
        pair.refresh_token,
        pair2.access_token,
        pair2.refresh_token,
        key.key,
    ]
    with engine.connect() as c:
        dump = repr(
            [
                tuple(r)
                for t in ("auth_users", "auth_sessions", "auth_refresh_tokens", "auth_api_keys", "events")
                for r in c.execute(sa.text(f"SELECT * FROM {t}"))
            ]
        )
        enc = c.execute(sa.select(auth_users.c.totp_secret_enc)).scalar()
    mirror = (tmp_path / "audit" / "events.jsonl").read_text()
    for s in secrets:
        assert s not in dump and s not in mirror
    assert SecretBox is not None and enc and enc != enrol.totp_secret
    assert service.box.decrypt(enc) == enrol.totp_secret


def test_default_cost_is_600k_and_weak_hashes_are_upgraded(service):
    assert PBKDF2_ITERATIONS >= 600_000
    service.add_user("judy", PASSWORD, "viewer", actor="admin")
    service.iterations = 40_000  # policy raised after the account was made
    service.login_password("judy", PASSWORD)
    assert parse_hash(service.users.get("judy").password_hash).iterations == 40_000
