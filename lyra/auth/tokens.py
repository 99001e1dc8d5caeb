"""Access tokens (short-lived JWTs) and rotating refresh tokens.

* **Access token**: an HS256 JWT, 15 minutes, with ``iss aud sub role sid jti iat nbf exp``
  all required and checked; the algorithm is pinned (``alg: none``, RS256 and anything else are
  refused before any key is used) and the header ``typ`` must be ``at+jwt``.
* **Refresh token**: an opaque random string ``lyra_rt_...`` stored only as its SHA-256, valid
  once. Every login starts a *family* (its id is the session id ``sid``); each refresh spends
  the presented token and issues the next one in the family. Presenting a spent token means it
  was stolen (or replayed): the whole family is revoked, so the thief and the user are both
  logged out. A refresh token lives as long as the session idle timeout (60 min) and never past
  the family's absolute lifetime (12 h).

The signing key must be at least 32 random bytes; a missing or weak key is refused unless
``demo=True`` (DESIGN: ``lyra serve`` refuses to start without one outside demo mode).
Storage is a :class:`RefreshTokenStore`; :class:`InMemoryRefreshTokenStore` is the test twin.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import jwt

from lyra.auth._util import HIDDEN, Clock, aware, sha256_hex, utc_now
from lyra.auth.permissions import Role
from lyra.auth.policy import SESSION_ABSOLUTE_LIFETIME, SESSION_IDLE_TIMEOUT
from lyra.core.errors import ConfigError, LyraError

ALGORITHM = "HS256"
TOKEN_TYPE = "at+jwt"  # noqa: S105 - RFC 9068 media type for JWT access tokens
MIN_KEY_BYTES = 32
_MIN_DISTINCT_KEY_BYTES = 10
ACCESS_TOKEN_TTL = timedelta(minutes=15)
REFRESH_TOKEN_TTL = SESSION_IDLE_TIMEOUT
DEFAULT_ISSUER = "lyra"
DEFAULT_AUDIENCE = "lyra-apps"
REQUIRED_CLAIMS = ("iss", "aud", "sub", "role", "sid", "jti", "iat", "nbf", "exp")
REFRESH_PREFIX = "lyra_rt_"
_MAX_TOKEN_CHARS = 4096
_DECODE_OPTIONS: dict[str, Any] = {
    "require": list(REQUIRED_CLAIMS),
    "verify_signature": True,
    "verify_aud": True,
    "verify_iss": True,
    "strict_aud": True,
    # Times are checked below against the injected clock (PyJWT only knows the wall clock).
    "verify_exp": False,
    "verify_nbf": False,
    "verify_iat": False,
    "enforce_minimum_key_length": True,
}


class InvalidToken(LyraError):
    """A token was refused. ``reason`` is short and safe to log; it never contains the token."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"token refused: {reason}")


class RefreshTokenReused(InvalidToken):
    """A spent refresh token came back: its whole family (session) has been revoked."""

    def __init__(self, family_id: str, subject: str) -> None:
        self.family_id = family_id
        self.subject = subject
        super().__init__("refresh token reused; session revoked")


# --------------------------------------------------------------------------- signing key


def generate_signing_key() -> str:
    """A new random signing key (384 bits, URL-safe text) for the settings or a secret file."""
    return secrets.token_urlsafe(48)


def ensure_signing_key_file(path: Path) -> bool:
    """Write a new random signing key to ``path`` (owner-only, in an owner-only folder) unless
    a file is already there: ``lyra init`` calls it so ``lyra serve`` starts without a hand
    step. Returns whether a key was written; an existing key is never replaced."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w") as f:
        f.write(generate_signing_key())
    return True


def validate_signing_key(key: str | bytes | None, *, demo: bool = False) -> bytes:
    """Return ``key`` as bytes if it is fit to sign tokens, else raise ConfigError.

    Refused: missing, shorter than 32 bytes, fewer than 10 distinct bytes (``"aaaa..."``,
    ``"changemechangeme..."``), or a PEM/SSH public key (the HS/RS confusion attack signs with
    the public key as an HMAC secret). With ``demo=True`` a missing key becomes a random
    per-process key and a short one is stretched with SHA-256 (still weak: demo only).
    """
    raw = key.encode("utf-8") if isinstance(key, str) else key
    if raw is not None and not isinstance(raw, bytes):
        raise ConfigError("auth.signing_key", type(key).__name__, "must be str or bytes")
    stripped = raw.strip() if raw else b""
    if stripped.startswith((b"-----BEGIN", b"ssh-", b"ecdsa-")):
        raise ConfigError(
            "auth.signing_key",
            HIDDEN,
            "looks like a public/private key, not an HMAC secret",
            "use generate_signing_key()",
        )
    if not stripped:
        if demo:
            return secrets.token_bytes(MIN_KEY_BYTES)
        raise ConfigError(
            "auth.signing_key",
            None,
            "missing",
            "set a key of at least 32 random bytes (generate_signing_key()), or use demo mode",
        )
    weak = len(stripped) < MIN_KEY_BYTES or len(set(stripped)) < _MIN_DISTINCT_KEY_BYTES
    if weak:
        if demo:
            return hashlib.sha256(b"lyra-demo-key:" + stripped).digest()
        raise ConfigError(
            "auth.signing_key",
            f"<{len(stripped)} bytes>",
            f"too weak: needs at least {MIN_KEY_BYTES} random bytes",
            "use generate_signing_key()",
        )
    return stripped


def load_signing_key(path: str | Path, *, demo: bool = False) -> bytes:
    """Read and validate a signing key from a secret file readable by its owner only."""
    p = Path(path)
    try:
        info = p.stat()
    except OSError as exc:
        raise ConfigError("auth.signing_key_file", str(p), f"cannot read: {exc.strerror}") from exc
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("auth.signing_key_file", str(p), "readable by group or others", f"chmod 600 {p}")
    return validate_signing_key(p.read_bytes(), demo=demo)


@dataclass(frozen=True)
class TokenConfig:
    """How tokens are signed and how long they live. ``key`` is validated on creation."""

    key: bytes | str | None = field(repr=False)
    issuer: str = DEFAULT_ISSUER
    audience: str = DEFAULT_AUDIENCE
    access_ttl: timedelta = ACCESS_TOKEN_TTL
    refresh_ttl: timedelta = REFRESH_TOKEN_TTL
    session_max_age: timedelta = SESSION_ABSOLUTE_LIFETIME
    leeway: timedelta = timedelta(0)
    demo: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", validate_signing_key(self.key, demo=self.demo))
        for name in ("access_ttl", "refresh_ttl", "session_max_age"):
            if getattr(self, name) <= timedelta(0):
                raise ConfigError(f"auth.{name}", getattr(self, name), "must be positive")
        if not timedelta(0) <= self.leeway <= timedelta(minutes=2):
            raise ConfigError("auth.leeway", self.leeway, "must be between 0 and 2 minutes")

    @property
    def secret(self) -> bytes:
        """The validated signing key."""
        assert isinstance(self.key, bytes)
        return self.key


# --------------------------------------------------------------------------- records


@dataclass(frozen=True)
class AccessClaims:
    """What a verified access token says."""

    subject: str
    role: Role
    session_id: str
    jti: str
    issued_at: datetime
    expires_at: datetime
    #: The session's last re-authentication (only in the proxy's identity for Panel).
    reauth_at: datetime | None = None


@dataclass(frozen=True)
class TokenPair:
    """What a login or refresh hands to the client. Tokens are kept out of the repr."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    session_id: str
    subject: str
    role: Role
    access_expires_at: datetime
    refresh_expires_at: datetime


@dataclass(frozen=True)
class RefreshRecord:
    """One stored refresh token (only its hash). ``family_id`` is the session id."""

    token_hash: str = field(repr=False)
    family_id: str
    subject: str
    role: Role
    issued_at: datetime
    expires_at: datetime
    family_started_at: datetime
    used_at: datetime | None = None


class RefreshTokenStore(Protocol):
    """Where refresh tokens live. The database implementation must make ``mark_used`` atomic
    (``UPDATE ... SET used_at=? WHERE token_hash=? AND used_at IS NULL`` and check the row
    count) so two concurrent refreshes with one token cannot both succeed."""

    def add(self, record: RefreshRecord) -> None:
        """Store a new record."""
        ...

    def get(self, token_hash: str) -> RefreshRecord | None:
        """The record for a token hash, or None."""
        ...

    def mark_used(self, token_hash: str, used_at: datetime) -> bool:
        """Set ``used_at`` if it was unset; False when it was already used (or is unknown)."""
        ...

    def revoke_family(self, family_id: str, at: datetime) -> None:
        """Revoke every token of a family (a session): it can never refresh again."""
        ...

    def is_family_revoked(self, family_id: str) -> bool:
        """True once :meth:`revoke_family` was called for it."""
        ...

    def families_of(self, subject: str) -> list[str]:
        """The not-yet-revoked family ids of a user (for logout everywhere)."""
        ...


class InMemoryRefreshTokenStore:
    """A thread-safe in-memory :class:`RefreshTokenStore` (tests, demos, single process)."""

    def __init__(self) -> None:
        self._records: dict[str, RefreshRecord] = {}
        self._revoked: dict[str, datetime] = {}
        self._lock = threading.Lock()

    def add(self, record: RefreshRecord) -> None:
        with self._lock:
            if record.token_hash in self._records:
                raise LyraError("duplicate refresh token hash")
            self._records[record.token_hash] = record

    def get(self, token_hash: str) -> RefreshRecord | None:
        with self._lock:
            return self._records.get(token_hash)

    def mark_used(self, token_hash: str, used_at: datetime) -> bool:
        with self._lock:
            rec = self._records.get(token_hash)
            if rec is None or rec.used_at is not None:
                return False
            self._records[token_hash] = replace(rec, used_at=used_at)
            return True

    def revoke_family(self, family_id: str, at: datetime) -> None:
        with self._lock:
            self._revoked.setdefault(family_id, at)

    def is_family_revoked(self, family_id: str) -> bool:
        with self._lock:
            return family_id in self._revoked

    def families_of(self, subject: str) -> list[str]:
        with self._lock:
            fams = {r.family_id for r in self._records.values() if r.subject == subject}
            return sorted(f for f in fams if f not in self._revoked)


# --------------------------------------------------------------------------- service


def _ts(dt: datetime) -> int:
    return int(dt.timestamp())


def _int_claim(payload: dict[str, Any], name: str) -> int:
    value = payload[name]
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidToken(f"claim {name!r} is not an integer timestamp")
    return value


def _str_claim(payload: dict[str, Any], name: str) -> str:
    value = payload[name]
    if not isinstance(value, str) or not value or len(value) > 256:
        raise InvalidToken(f"claim {name!r} is not a non-empty string")
    return value


class TokenService:
    """Issues and verifies access tokens; starts, refreshes and ends sessions.

    ``is_revoked(jti)`` is an optional revocation-list hook checked on every verification.
    ``role_of(subject)`` (optional) re-reads the user's role at each refresh, so a role change
    or a disabled user (None) takes effect within one access-token lifetime.
    With ``check_session=True`` an access token of a logged-out session is refused at once.
    """

    def __init__(
        self,
        config: TokenConfig,
        store: RefreshTokenStore,
        *,
        clock: Clock = utc_now,
        is_revoked: Callable[[str], bool] | None = None,
        role_of: Callable[[str], Role | None] | None = None,
        check_session: bool = True,
    ) -> None:
        self.config = config
        self.store = store
        self._clock = clock
        self._is_revoked = is_revoked
        self._role_of = role_of
        self._check_session = check_session
        self._jwt = jwt.PyJWT()

    def _now(self, now: datetime | None) -> datetime:
        return aware(self._clock() if now is None else now)

    # ---- access tokens

    def issue_access_token(
        self,
        subject: str,
        role: Role,
        session_id: str,
        *,
        now: datetime | None = None,
        not_after: datetime | None = None,
    ) -> str:
        """A signed access token for ``subject`` in session ``session_id`` (15 min by default;
        never valid past ``not_after``, the session's end)."""
        at = self._now(now)
        exp = at + self.config.access_ttl
        if not_after is not None:
            exp = min(exp, aware(not_after, "not_after"))
        payload = {
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "sub": subject,
            "role": Role(role).value,
            "sid": session_id,
            "jti": secrets.token_urlsafe(16),
            "iat": _ts(at),
            "nbf": _ts(at),
            "exp": _ts(exp),
        }
        return jwt.encode(payload, self.config.secret, algorithm=ALGORITHM, headers={"typ": TOKEN_TYPE})

    def verify_access_token(self, token: str | None, *, now: datetime | None = None) -> AccessClaims:
        """Return the claims of a valid access token, or raise :class:`InvalidToken`."""
        if not token or not isinstance(token, str):
            raise InvalidToken("no token")
        if len(token) > _MAX_TOKEN_CHARS:
            raise InvalidToken("token too long")
        try:
            # One parse (PyJWT checks base64 strictly and is the costly part). ``algorithms``
            # pins HS256: 'none', RS*/ES*/PS* and HS384/512 are refused before any key is used.
            decoded = self._jwt.decode_complete(
                token,
                self.config.secret,
                algorithms=[ALGORITHM],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options=_DECODE_OPTIONS,  # type: ignore[arg-type]
            )
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("algorithm not allowed") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("bad signature") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"missing claim {exc.claim!r}") from None
        except jwt.InvalidAudienceError:
            raise InvalidToken("wrong audience") from None
        except jwt.InvalidIssuerError:
            raise InvalidToken("wrong issuer") from None
        except jwt.PyJWTError:
            raise InvalidToken("malformed token") from None
        header, payload = decoded["header"], decoded["payload"]
        if header.get("alg") != ALGORITHM:  # belt and braces: PyJWT already enforced it
            raise InvalidToken("algorithm not allowed")
        if header.get("typ") != TOKEN_TYPE:
            raise InvalidToken("not an access token")
        at = _ts(self._now(now))
        leeway = int(self.config.leeway.total_seconds())
        exp, nbf, iat = (_int_claim(payload, c) for c in ("exp", "nbf", "iat"))
        if exp <= at - leeway:
            raise InvalidToken("expired")
        if nbf > at + leeway:
            raise InvalidToken("not yet valid")
        if iat > at + leeway:
            raise InvalidToken("issued in the future")
        sub, sid, jti, role_name = (_str_claim(payload, c) for c in ("sub", "sid", "jti", "role"))
        try:
            role = Role(role_name)
        except ValueError:
            raise InvalidToken("unknown role") from None
        if self._is_revoked is not None and self._is_revoked(jti):
            raise InvalidToken("revoked")
        if self._check_session and self.store.is_family_revoked(sid):
            raise InvalidToken("session ended")
        return AccessClaims(
            subject=sub,
            role=role,
            session_id=sid,
            jti=jti,
            issued_at=datetime.fromtimestamp(iat, tz=UTC),
            expires_at=datetime.fromtimestamp(exp, tz=UTC),
        )

    # ---- sessions and refresh tokens

    def _new_pair(
        self, subject: str, role: Role, family_id: str, family_started_at: datetime, at: datetime
    ) -> TokenPair:
        end = family_started_at + self.config.session_max_age
        refresh_token = REFRESH_PREFIX + secrets.token_urlsafe(32)
        refresh_expires = min(at + self.config.refresh_ttl, end)
        self.store.add(
            RefreshRecord(
                token_hash=sha256_hex(refresh_token),
                family_id=family_id,
                subject=subject,
                role=role,
                issued_at=at,
                expires_at=refresh_expires,
                family_started_at=family_started_at,
            )
        )
        access = self.issue_access_token(subject, role, family_id, now=at, not_after=end)
        return TokenPair(
            access_token=access,
            refresh_token=refresh_token,
            session_id=family_id,
            subject=subject,
            role=role,
            access_expires_at=min(at + self.config.access_ttl, end),
            refresh_expires_at=refresh_expires,
        )

    def start_session(self, subject: str, role: Role | str, *, now: datetime | None = None) -> TokenPair:
        """After a successful login (password + TOTP): a new session and its first tokens."""
        at = self._now(now).replace(microsecond=0)  # JWT times are whole seconds
        if not subject:
            raise InvalidToken("empty subject")
        return self._new_pair(subject, Role(role), secrets.token_urlsafe(16), at, at)

    def refresh(self, refresh_token: str | None, *, now: datetime | None = None) -> TokenPair:
        """Spend ``refresh_token`` and return the next pair of the same session.

        Raises :class:`RefreshTokenReused` (and revokes the session) when the token was already
        spent; :class:`InvalidToken` when it is unknown, expired or its session has ended.
        """
        at = self._now(now).replace(microsecond=0)
        if (
            not isinstance(refresh_token, str)
            or not refresh_token.startswith(REFRESH_PREFIX)
            or len(refresh_token) > 128
        ):
            raise InvalidToken("malformed refresh token")
        token_hash = sha256_hex(refresh_token)
        rec = self.store.get(token_hash)
        if rec is None:
            raise InvalidToken("unknown refresh token")
        if self.store.is_family_revoked(rec.family_id):
            raise InvalidToken("session ended")
        if rec.used_at is not None:
            self.store.revoke_family(rec.family_id, at)
            raise RefreshTokenReused(rec.family_id, rec.subject)
        if at >= rec.family_started_at + self.config.session_max_age:
            self.store.revoke_family(rec.family_id, at)
            raise InvalidToken("session lifetime exceeded")
        if at >= rec.expires_at:
            raise InvalidToken("refresh token expired (idle timeout)")
        if not self.store.mark_used(token_hash, at):
            # Lost a race with another refresh of the same token: treat it as reuse.
            self.store.revoke_family(rec.family_id, at)
            raise RefreshTokenReused(rec.family_id, rec.subject)
        role = rec.role
        if self._role_of is not None:
            current = self._role_of(rec.subject)
            if current is None:
                self.store.revoke_family(rec.family_id, at)
                raise InvalidToken("user disabled")
            role = current
        return self._new_pair(rec.subject, role, rec.family_id, rec.family_started_at, at)

    def logout(self, session_id: str, *, now: datetime | None = None) -> None:
        """End one session: its refresh tokens and (with check_session) access tokens die."""
        self.store.revoke_family(session_id, self._now(now))

    def logout_everywhere(self, subject: str, *, now: datetime | None = None) -> int:
        """End every session of ``subject``; returns how many were ended."""
        at = self._now(now)
        families = self.store.families_of(subject)
        for family in families:
            self.store.revoke_family(family, at)
        return len(families)
