"""Lockout, rate limiting, session timeouts, usernames and secret-free auth events."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from lyra.auth.apikeys import ApiKeyManager, InMemoryApiKeyRepository
from lyra.auth.passwords import PasswordRejected, check_password_policy, hash_password
from lyra.auth.permissions import Action, Role
from lyra.auth.policy import (
    AuthEvent,
    AuthEventKind,
    LockoutPolicy,
    LoginAttempts,
    LoginGuard,
    LoginThrottled,
    RateLimiter,
    SessionStatus,
    SessionTimes,
    is_locked,
    lock_remaining,
    record_failure,
    record_success,
    session_expires_at,
    session_status,
    touch_session,
    validate_username,
)
from lyra.auth.tokens import (
    InMemoryRefreshTokenStore,
    TokenConfig,
    TokenService,
    generate_signing_key,
)
from lyra.auth.totp import generate_recovery_codes, generate_totp_secret
from lyra.core.errors import LyraError, ValidationError

T0 = datetime(2025, 6, 1, 9, 0, tzinfo=UTC)
POLICY = LockoutPolicy(max_failures=5, window=timedelta(minutes=15), lockout=timedelta(minutes=15))


def fail_n(state: LoginAttempts, n: int, start: datetime, step: timedelta) -> LoginAttempts:
    for i in range(n):
        state = record_failure(state, start + i * step, POLICY)
    return state


# ---------------------------------------------------------------- lockout


def test_lockout_after_n_failures_in_window() -> None:
    state = fail_n(LoginAttempts(), 4, T0, timedelta(minutes=1))
    assert not is_locked(state, T0 + timedelta(minutes=4))
    state = record_failure(state, T0 + timedelta(minutes=4), POLICY)  # 5th within 15 min
    assert is_locked(state, T0 + timedelta(minutes=4))
    assert lock_remaining(state, T0 + timedelta(minutes=10)) == timedelta(minutes=9)
    # Cool-down over: unlocked, counter fresh.
    assert not is_locked(state, T0 + timedelta(minutes=19))
    state = record_failure(state, T0 + timedelta(minutes=19), POLICY)
    assert not is_locked(state, T0 + timedelta(minutes=19))


def test_failures_spread_beyond_window_do_not_lock() -> None:
    state = fail_n(LoginAttempts(), 10, T0, timedelta(minutes=4))  # at most 4 in any 15 min
    assert not is_locked(state, T0 + timedelta(minutes=36))


def test_failures_while_locked_do_not_extend() -> None:
    state = fail_n(LoginAttempts(), 5, T0, timedelta(seconds=1))
    until = state.locked_until
    state = fail_n(state, 20, T0 + timedelta(minutes=1), timedelta(seconds=10))
    assert state.locked_until == until


def test_success_resets_but_not_while_locked() -> None:
    state = fail_n(LoginAttempts(), 3, T0, timedelta(seconds=1))
    assert record_success(state, T0) == LoginAttempts()
    locked = fail_n(LoginAttempts(), 5, T0, timedelta(seconds=1))
    assert record_success(locked, T0 + timedelta(minutes=1)) == locked


def test_login_guard_brute_force_and_no_enumeration() -> None:
    guard = LoginGuard(POLICY, per_client=1000)
    for name in ("alice", "no-such-user"):
        for i in range(5):
            guard.check(name, "10.0.0.1", T0 + timedelta(seconds=i))
            locked_now = guard.failure(name, T0 + timedelta(seconds=i))
            assert locked_now is (i == 4)
    messages = set()
    for name in ("alice", "ALICE", "no-such-user"):
        with pytest.raises(LoginThrottled) as info:
            guard.check(name, "10.0.0.2", T0 + timedelta(minutes=1))
        messages.add(str(info.value))
    assert len(messages) == 1  # same text for a real and an unknown user
    guard.check("alice", "10.0.0.2", T0 + timedelta(minutes=16))  # cool-down over
    guard.success("alice", T0 + timedelta(minutes=16))
    assert guard.state("alice") == LoginAttempts()


def test_rate_limiter_sliding_window() -> None:
    limiter = RateLimiter(3, timedelta(minutes=1))
    assert [limiter.hit("ip", T0 + timedelta(seconds=s)) for s in (0, 10, 20, 30)] == [
        True,
        True,
        True,
        False,
    ]
    assert limiter.retry_after("ip", T0 + timedelta(seconds=30)) == timedelta(seconds=30)
    assert limiter.hit("other", T0)
    assert limiter.hit("ip", T0 + timedelta(seconds=60))  # the first event left the window
    guard = LoginGuard(POLICY, per_client=2)
    guard.check("a", "1.2.3.4", T0)
    guard.check("b", "1.2.3.4", T0)
    with pytest.raises(LoginThrottled, match="try again"):
        guard.check("c", "1.2.3.4", T0)


def test_rate_limiter_memory_is_bounded() -> None:
    limiter = RateLimiter(1, timedelta(hours=1), max_keys=100)
    for i in range(1000):
        limiter.hit(f"ip{i}", T0)
    assert len(limiter._events) == 100


# ---------------------------------------------------------------- sessions


def test_session_idle_and_absolute_timeouts() -> None:
    times = SessionTimes(T0, T0)
    assert session_status(times, T0 + timedelta(minutes=59)) is SessionStatus.ACTIVE
    assert session_status(times, T0 + timedelta(minutes=60)) is SessionStatus.IDLE_EXPIRED
    t = T0
    for _ in range(23):  # active every 30 minutes for 11.5 h
        t += timedelta(minutes=30)
        times = touch_session(times, t)
    assert session_status(times, T0 + timedelta(hours=11, minutes=59)) is SessionStatus.ACTIVE
    assert session_expires_at(times) == T0 + timedelta(hours=12)
    assert session_status(times, T0 + timedelta(hours=12)) is SessionStatus.LIFETIME_EXPIRED
    with pytest.raises(LyraError, match="lifetime_expired"):
        touch_session(times, T0 + timedelta(hours=12))


def test_naive_now_refused() -> None:
    with pytest.raises(ValidationError, match="naive"):
        session_status(SessionTimes(T0, T0), datetime(2025, 6, 1, 9, 30))


# ---------------------------------------------------------------- usernames


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("alice", "alice"), ("Alice.Smith", "alice.smith"), ("ｂｏｂ_99", "bob_99"), (" x-y-z ", "x-y-z")],
)
def test_valid_usernames(raw: str, canonical: str) -> None:
    assert validate_username(raw) == canonical


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        ("аlice", "CYRILLIC SMALL LETTER A"),  # Cyrillic а looks like Latin a
        ("alice\u200b", "invisible"),  # zero-width space
        ("ali\u202ecE", "invisible"),  # right-to-left override
        ("bob\x00", "control"),
        ("bob\n", "control"),
        ("ab", "3-32"),
        ("a" * 33, "3-32"),
        ("a" * 10_000, "longer than 32"),
        ("-alice", "shape"),
        ("al..ice", "shape"),
        ("al ice", "shape"),
        ("al'ice", "shape"),
        ("ǆemal", "not allowed"),  # NFKC turns ǆ into 'dž': still non-ASCII
    ],
)
def test_invalid_usernames(raw: str, fragment: str) -> None:
    with pytest.raises(ValidationError) as info:
        validate_username(raw)
    assert fragment in str(info.value)
    if len(raw) > 3:
        assert raw.strip() not in str(info.value)  # the input is described, never echoed


def test_username_error_does_not_echo_long_input() -> None:
    typed_password = "Correct-Horse-Battery-Staple-Velvet-99"
    with pytest.raises(ValidationError) as info:
        validate_username(typed_password)
    assert typed_password not in str(info.value)


# ---------------------------------------------------------------- auth events


def all_secrets() -> dict[str, str]:
    svc = TokenService(TokenConfig(generate_signing_key()), InMemoryRefreshTokenStore())
    pair = svc.start_session("alice", Role.TRADER)
    key = ApiKeyManager(InMemoryApiKeyRepository()).create("alice", Role.TRADER, [Action.VIEW_TRADING])
    password = "Velvet-Orbit-Lantern-42"
    return {
        "password_hash": hash_password(password, iterations=1000),
        "access_token": pair.access_token,
        "refresh_token": pair.refresh_token,
        "api_key": key.key,
        "totp_seed": generate_totp_secret(),
        "recovery_code": generate_recovery_codes(1)[0],
    }


def test_no_secret_survives_into_an_event() -> None:
    secrets = all_secrets()
    for name, secret in secrets.items():
        event = AuthEvent(
            AuthEventKind.LOGIN_FAILED,
            "alice",
            {
                "reason": f"bad {name}: {secret}",
                "user_agent": f"curl/8 {secret}",
                "path": f"/risk?token={secret}",
                "client": secret,
            },
            at=T0,
        )
        for text in (repr(event), str(event), event.to_json(), json.dumps(event.to_dict())):
            assert secret not in text, name
            # Not even a long fragment of it.
            assert not any(secret[i : i + 12] in text for i in range(0, len(secret) - 12, 4)), name
        # A secret as the subject is replaced.
        assert AuthEvent(AuthEventKind.LOGIN_FAILED, secret).subject == "<invalid>"


def test_secret_keys_are_refused_without_echo() -> None:
    for key in ("password", "token", "api_key", "totp_seed", "secret", "notes"):
        with pytest.raises(ValidationError) as info:
            AuthEvent(AuthEventKind.LOGIN_FAILED, "alice", {key: "Velvet-Orbit-Lantern-42"})
        assert "Velvet-Orbit-Lantern-42" not in str(info.value)


def test_event_keeps_useful_detail() -> None:
    event = AuthEvent(
        "role_changed",  # type: ignore[arg-type]
        "Alice",
        {
            "old_role": "viewer",
            "new_role": "trader",
            "actor": "root-admin",
            "count": 2,
            "scopes": frozenset({"view_trading", "place_order"}),
            "locked_until": T0,
        },
        at=T0,
    )
    assert event.kind is AuthEventKind.ROLE_CHANGED
    assert event.to_dict() == {
        "kind": "role_changed",
        "subject": "alice",
        "detail": {
            "old_role": "viewer",
            "new_role": "trader",
            "actor": "root-admin",
            "count": 2,
            "scopes": "place_order,view_trading",
            "locked_until": "2025-06-01T09:00:00+00:00",
        },
        "at": "2025-06-01T09:00:00+00:00",
    }
    with pytest.raises(ValueError):
        AuthEvent("not_a_kind", "alice")  # type: ignore[arg-type]


def test_password_errors_never_echo() -> None:
    for password in ("hunter2", "Alice-Velvet-Orbit", "x" * 2000, "aaaaaaaaaaaaaaaa"):
        with pytest.raises(PasswordRejected) as info:
            check_password_policy(password, username="alice")
        assert password not in str(info.value)
        assert password not in repr(info.value)
