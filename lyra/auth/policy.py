"""Login throttling, account lockout, session timeouts, username rules and auth events.

Everything here is pure logic over an injected ``now`` (an aware UTC datetime), so tests and
replays are deterministic and storage can persist the small immutable state records.

* Lockout: :class:`LoginAttempts` + :func:`record_failure` / :func:`record_success`; after
  ``max_failures`` failures within ``window`` the account is locked for ``lockout``.
  Lock by the *typed* username whether or not the user exists, or the lockout itself would
  reveal which usernames exist.
* Rate limit: :class:`RateLimiter`, a sliding window per client (e.g. per IP address).
* :class:`LoginGuard` puts both together in memory for a single-process server.
* Sessions: 60-minute idle timeout and 12-hour absolute lifetime (:func:`session_status`).
* :func:`validate_username`: NFKC, lowercase ASCII, no look-alikes or invisible characters.
* :class:`AuthEvent`: what gets written to the audit log; built so secrets cannot get in.
"""

from __future__ import annotations

import json
import re
import threading
import unicodedata
from collections import OrderedDict, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from lyra.auth._util import HIDDEN, aware
from lyra.core.errors import LyraError, ValidationError

SESSION_IDLE_TIMEOUT = timedelta(minutes=60)
SESSION_ABSOLUTE_LIFETIME = timedelta(hours=12)

# --------------------------------------------------------------------------- lockout


@dataclass(frozen=True)
class LockoutPolicy:
    """Lock an account after ``max_failures`` failed logins within ``window``, for ``lockout``."""

    max_failures: int = 5
    window: timedelta = timedelta(minutes=15)
    lockout: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        if self.max_failures < 1:
            raise ValidationError("max_failures", self.max_failures, "must be at least 1")
        if self.window <= timedelta(0) or self.lockout <= timedelta(0):
            raise ValidationError("lockout", (self.window, self.lockout), "must be positive")


DEFAULT_LOCKOUT = LockoutPolicy()


@dataclass(frozen=True)
class LoginAttempts:
    """The failed-login state of one account: recent failure times and the lock, if any."""

    failures: tuple[datetime, ...] = ()
    locked_until: datetime | None = None


def is_locked(state: LoginAttempts, now: datetime) -> bool:
    """True while the account is locked (the cool-down has not run out)."""
    return state.locked_until is not None and aware(now) < state.locked_until


def lock_remaining(state: LoginAttempts, now: datetime) -> timedelta:
    """How long the lock still lasts (zero when not locked)."""
    if not is_locked(state, now):
        return timedelta(0)
    assert state.locked_until is not None
    return state.locked_until - aware(now)


def record_failure(
    state: LoginAttempts, now: datetime, policy: LockoutPolicy = DEFAULT_LOCKOUT
) -> LoginAttempts:
    """The state after one more failed login at ``now`` (locks when the limit is reached).

    Failures while locked do not extend the lock, so an attacker cannot keep a user locked out
    for longer than one cool-down after they stop.
    """
    at = aware(now)
    if is_locked(state, at):
        return state
    recent = (*(t for t in state.failures if at - t < policy.window), at)
    if len(recent) >= policy.max_failures:
        return LoginAttempts(failures=(), locked_until=at + policy.lockout)
    return LoginAttempts(failures=recent, locked_until=None)


def record_success(state: LoginAttempts, now: datetime) -> LoginAttempts:
    """The state after a successful login: failures forgotten. A locked account stays locked
    (the caller must not even check the password while locked)."""
    if is_locked(state, now):
        return state
    return LoginAttempts()


class RateLimiter:
    """At most ``max_events`` per ``period`` per key (sliding window), in memory.

    Memory is bounded: beyond ``max_keys`` the least recently used keys are forgotten.
    """

    def __init__(self, max_events: int, period: timedelta, *, max_keys: int = 100_000) -> None:
        if max_events < 1 or period <= timedelta(0):
            raise ValidationError("rate_limit", (max_events, period), "must be positive")
        self.max_events = max_events
        self.period = period
        self.max_keys = max_keys
        self._events: OrderedDict[str, deque[datetime]] = OrderedDict()
        self._lock = threading.Lock()

    def _recent(self, key: str, at: datetime) -> deque[datetime]:
        events = self._events.get(key)
        if events is None:
            events = deque()
            self._events[key] = events
            while len(self._events) > self.max_keys:
                self._events.popitem(last=False)
        self._events.move_to_end(key)
        while events and at - events[0] >= self.period:
            events.popleft()
        return events

    def hit(self, key: str, now: datetime) -> bool:
        """Count one event for ``key``; False (and not counted) when over the limit."""
        at = aware(now)
        with self._lock:
            events = self._recent(key, at)
            if len(events) >= self.max_events:
                return False
            events.append(at)
            return True

    def retry_after(self, key: str, now: datetime) -> timedelta:
        """How long until ``key`` may act again (zero when it may now)."""
        at = aware(now)
        with self._lock:
            events = self._recent(key, at)
            if len(events) < self.max_events:
                return timedelta(0)
            return events[0] + self.period - at


class LoginThrottled(LyraError):
    """A login was refused before any password check: locked account or too many attempts.

    The message is the same whether or not the account exists.
    """

    def __init__(self, reason: str, retry_after: timedelta) -> None:
        self.reason = reason
        self.retry_after = retry_after
        seconds = max(1, int(retry_after.total_seconds()))
        super().__init__(f"too many login attempts; try again in {seconds} s")


class LoginGuard:
    """In-memory lockout per username plus rate limit per client, for one server process.

    Use: ``guard.check(username, client, now)`` before verifying the password (raises
    :class:`LoginThrottled`), then ``guard.failure(...)`` or ``guard.success(...)``.
    A database-backed server persists :class:`LoginAttempts` per user instead.
    """

    def __init__(
        self,
        lockout: LockoutPolicy = DEFAULT_LOCKOUT,
        *,
        per_client: int = 20,
        period: timedelta = timedelta(minutes=1),
        max_keys: int = 100_000,
    ) -> None:
        self.policy = lockout
        self.limiter = RateLimiter(per_client, period, max_keys=max_keys)
        self.max_keys = max_keys
        self._attempts: OrderedDict[str, LoginAttempts] = OrderedDict()
        self._lock = threading.Lock()

    @staticmethod
    def _key(username: str) -> str:
        return unicodedata.normalize("NFKC", username[:256]).casefold()

    def state(self, username: str) -> LoginAttempts:
        """The lockout state of ``username`` (a fresh state when unknown)."""
        with self._lock:
            return self._attempts.get(self._key(username), LoginAttempts())

    def check(self, username: str, client: str, now: datetime) -> None:
        """Raise :class:`LoginThrottled` when this attempt must be refused outright."""
        state = self.state(username)
        if is_locked(state, now):
            raise LoginThrottled("account locked", lock_remaining(state, now))
        if not self.limiter.hit(client, now):
            raise LoginThrottled("client rate limit", self.limiter.retry_after(client, now))

    def failure(self, username: str, now: datetime) -> bool:
        """Record a failed login; True when this failure locked the account."""
        key = self._key(username)
        with self._lock:
            before = self._attempts.get(key, LoginAttempts())
            after = record_failure(before, now, self.policy)
            self._attempts[key] = after
            self._attempts.move_to_end(key)
            while len(self._attempts) > self.max_keys:
                self._attempts.popitem(last=False)
        return not is_locked(before, now) and is_locked(after, now)

    def success(self, username: str, now: datetime) -> None:
        """Record a successful login (clears the failure count)."""
        key = self._key(username)
        with self._lock:
            state = record_success(self._attempts.get(key, LoginAttempts()), now)
            if state == LoginAttempts():
                self._attempts.pop(key, None)
            else:
                self._attempts[key] = state


# --------------------------------------------------------------------------- sessions


class SessionStatus(StrEnum):
    """Where a session stands."""

    ACTIVE = "active"  # within both limits
    IDLE_EXPIRED = "idle_expired"  # no activity for longer than the idle timeout
    LIFETIME_EXPIRED = "lifetime_expired"  # older than the absolute lifetime


@dataclass(frozen=True)
class SessionPolicy:
    """Session limits: idle timeout (60 min) and absolute lifetime (12 h)."""

    idle_timeout: timedelta = SESSION_IDLE_TIMEOUT
    absolute_lifetime: timedelta = SESSION_ABSOLUTE_LIFETIME


DEFAULT_SESSION_POLICY = SessionPolicy()


@dataclass(frozen=True)
class SessionTimes:
    """When a session started and when it was last used."""

    started_at: datetime
    last_seen_at: datetime


def session_status(
    times: SessionTimes, now: datetime, policy: SessionPolicy = DEFAULT_SESSION_POLICY
) -> SessionStatus:
    """ACTIVE, IDLE_EXPIRED or LIFETIME_EXPIRED at ``now`` (the lifetime is checked first)."""
    at = aware(now)
    if at >= times.started_at + policy.absolute_lifetime:
        return SessionStatus.LIFETIME_EXPIRED
    if at >= times.last_seen_at + policy.idle_timeout:
        return SessionStatus.IDLE_EXPIRED
    return SessionStatus.ACTIVE


def session_expires_at(times: SessionTimes, policy: SessionPolicy = DEFAULT_SESSION_POLICY) -> datetime:
    """When the session ends if nothing more happens."""
    return min(times.last_seen_at + policy.idle_timeout, times.started_at + policy.absolute_lifetime)


def touch_session(
    times: SessionTimes, now: datetime, policy: SessionPolicy = DEFAULT_SESSION_POLICY
) -> SessionTimes:
    """Record activity at ``now``; an expired session cannot be revived."""
    status = session_status(times, now, policy)
    if status is not SessionStatus.ACTIVE:
        raise LyraError(f"session cannot be extended: {status.value}")
    return SessionTimes(times.started_at, aware(now))


# --------------------------------------------------------------------------- usernames

USERNAME_MIN_LENGTH = 3
USERNAME_MAX_LENGTH = 32
_USERNAME = re.compile(r"^[a-z0-9](?:[a-z0-9._-]*[a-z0-9])?$")


def _describe(ch: str) -> str:
    return f"U+{ord(ch):04X} ({unicodedata.name(ch, 'unnamed')})"


def validate_username(username: str) -> str:
    """Return the canonical username (NFKC, lowercase) or raise ValidationError.

    Allowed: 3-32 ASCII letters, digits, ``.``, ``_``, ``-``, starting and ending with a letter
    or digit. Refused with a reason: control and invisible characters (zero-width, bidi
    overrides), and letters from other scripts that look like ASCII (Cyrillic ``а``). Errors
    describe the offending character and the length but never echo the whole input (people
    type passwords into username fields).
    """
    if not isinstance(username, str):
        raise ValidationError("username", type(username).__name__, "must be text")
    if len(username) > 4 * USERNAME_MAX_LENGTH:
        raise ValidationError(
            "username", f"<{len(username)} chars>", f"longer than {USERNAME_MAX_LENGTH} characters"
        )
    for i, ch in enumerate(username):
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"):
            raise ValidationError(
                "username",
                f"<{len(username)} chars>",
                f"character {i + 1} {_describe(ch)} is a control or invisible character",
            )
    name = unicodedata.normalize("NFKC", username).strip().lower()
    if not USERNAME_MIN_LENGTH <= len(name) <= USERNAME_MAX_LENGTH:
        raise ValidationError(
            "username",
            f"<{len(name)} chars>",
            f"must be {USERNAME_MIN_LENGTH}-{USERNAME_MAX_LENGTH} characters",
        )
    for i, ch in enumerate(name):
        if not ch.isascii():
            raise ValidationError(
                "username",
                f"<{len(name)} chars>",
                f"character {i + 1} {_describe(ch)} is not allowed (look-alike letters from "
                "other scripts are refused)",
                "use ASCII letters, digits, '.', '_' and '-'",
            )
    if not _USERNAME.match(name) or ".." in name:
        raise ValidationError(
            "username",
            f"<{len(name)} chars>",
            "invalid characters or shape",
            "use ASCII letters, digits, '.', '_' and '-', starting and ending with a letter or digit",
        )
    return name


# --------------------------------------------------------------------------- auth events


class AuthEventKind(StrEnum):
    """Every auth event that goes to the audit log."""

    LOGIN_OK = "login_ok"  # password (and MFA) accepted, session started
    LOGIN_FAILED = "login_failed"  # wrong username or password (never says which)
    LOGIN_THROTTLED = "login_throttled"  # refused before checking: locked or rate-limited
    ACCOUNT_LOCKED = "account_locked"  # this failure reached the lockout threshold
    ACCOUNT_UNLOCKED = "account_unlocked"  # an admin lifted a lock
    MFA_OK = "mfa_ok"  # TOTP code accepted
    MFA_FAILED = "mfa_failed"  # TOTP code wrong, or replayed
    MFA_ENROLLED = "mfa_enrolled"  # a TOTP secret was confirmed
    MFA_RESET = "mfa_reset"  # an admin removed a user's TOTP
    RECOVERY_CODE_USED = "recovery_code_used"  # a one-time recovery code replaced TOTP
    TOKEN_REFRESHED = "token_refreshed"  # noqa: S105 - a refresh token was rotated
    TOKEN_REUSE = "token_reuse"  # noqa: S105 - a spent refresh token came back; its session was revoked
    TOKEN_REJECTED = "token_rejected"  # noqa: S105 - an access token was refused (reason in detail)
    SESSION_EXPIRED = "session_expired"  # idle timeout or absolute lifetime reached
    LOGOUT = "logout"  # one session ended by the user
    LOGOUT_ALL = "logout_all"  # every session of a user ended
    PASSWORD_CHANGED = "password_changed"  # noqa: S105 - new password set (or rehashed at a higher cost)
    USER_CREATED = "user_created"  # an account was added
    ROLE_CHANGED = "role_changed"  # old_role -> new_role in detail
    PERMISSION_DENIED = "permission_denied"  # a role or key tried an action it may not do
    KEY_CREATED = "key_created"  # an API key was issued (key_id in detail, never the key)
    KEY_ROTATED = "key_rotated"  # an API key was replaced; the old one has a grace period
    KEY_REVOKED = "key_revoked"  # an API key was revoked
    KEY_REJECTED = "key_rejected"  # an API key was refused (reason in detail)


#: The only detail keys an event may carry: none of them can name a secret.
EVENT_DETAIL_KEYS = frozenset(
    {
        "reason",
        "client",
        "user_agent",
        "role",
        "old_role",
        "new_role",
        "key_id",
        "new_key_id",
        "session_id",
        "scopes",
        "failures",
        "locked_until",
        "retry_after_s",
        "action",
        "path",
        "method",
        "actor",
        "expires_at",
        "count",
        "factor",
        "window_s",
    }
)
_MAX_DETAIL_CHARS = 200
# Shapes of secrets Lyra makes (JWTs, refresh tokens, API keys, password hashes, TOTP seeds)
# and long random-looking runs in general; any match is replaced before storage.
_SECRET_SHAPES = re.compile(
    r"eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_.-]*"  # JWT
    r"|lyra_[A-Za-z0-9_-]+"  # lyra_rt_... refresh tokens, lyra_<prefix>_<secret> API keys
    r"|pbkdf2_sha256\$\S*"  # password hashes
    r"|[A-Za-z0-9+/=_-]{24,}"  # long random-looking runs (keys, tokens, seeds, hashes)
    r"|\b[A-Z2-7]{16,}=*"  # base32 TOTP seeds
    r"|\b[0-9a-z]{4}(?:-[0-9a-z]{4}){3}\b"  # recovery codes
)
_SUBJECT = re.compile(r"^[a-z0-9][a-z0-9._:@-]{0,63}$")
INVALID_SUBJECT = "<invalid>"
REDACTED = "***"


def _scrub(value: str) -> str:
    text = value.split("?", 1)[0] if value.startswith("/") else value  # drop query strings
    text = _SECRET_SHAPES.sub(REDACTED, text)
    return text if len(text) <= _MAX_DETAIL_CHARS else text[:_MAX_DETAIL_CHARS] + "..."


def _clean_detail(detail: Mapping[str, object]) -> Mapping[str, str | int | bool | None]:
    clean: dict[str, str | int | bool | None] = {}
    for key, value in detail.items():
        if key not in EVENT_DETAIL_KEYS:
            # Never echo the value: an unknown key is exactly where a secret would hide.
            raise ValidationError(
                "detail",
                HIDDEN,
                f"key {str(key)[:32]!r} is not an allowed event detail",
                f"allowed: {', '.join(sorted(EVENT_DETAIL_KEYS))}",
            )
        if value is None or isinstance(value, bool | int):
            clean[key] = value
        elif isinstance(value, datetime):
            clean[key] = aware(value).isoformat()
        elif isinstance(value, str):
            clean[key] = _scrub(value)
        elif isinstance(value, frozenset | set | list | tuple):
            clean[key] = _scrub(",".join(sorted(str(v) for v in value)))
        else:
            raise ValidationError(
                "detail", HIDDEN, f"value of {key!r} must be text, a number, a time or a set"
            )
    return MappingProxyType(clean)


@dataclass(frozen=True)
class AuthEvent:
    """One auth event for the audit log: ``kind``, ``subject`` (a username, ``key:<id>`` or
    ``system``), ``detail`` and ``at``.

    Built so no secret can get in: detail keys come from :data:`EVENT_DETAIL_KEYS` only,
    values are scrubbed of anything shaped like a token, key, hash or seed, a subject that is
    not a plausible username is replaced by ``<invalid>``, and there is no field for a
    password, token or seed at all.
    """

    kind: AuthEventKind
    subject: str
    detail: Mapping[str, str | int | bool | None] = field(default_factory=dict)
    at: datetime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "kind", AuthEventKind(self.kind))
        subject = self.subject if isinstance(self.subject, str) else ""
        subject = unicodedata.normalize("NFKC", subject[:128]).lower()
        if not _SUBJECT.match(subject) or _SECRET_SHAPES.search(subject):
            subject = INVALID_SUBJECT
        object.__setattr__(self, "subject", subject)
        object.__setattr__(self, "detail", _clean_detail(self.detail))
        if self.at is not None:
            object.__setattr__(self, "at", aware(self.at, "at"))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (what the audit log stores)."""
        return {
            "kind": self.kind.value,
            "subject": self.subject,
            "detail": dict(self.detail),
            "at": self.at.isoformat() if self.at else None,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as compact, key-sorted JSON."""
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))

    def __repr__(self) -> str:
        return f"AuthEvent({self.to_json()})"
