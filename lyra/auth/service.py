"""The auth service: users, login (password -> TOTP -> tokens), sessions, API keys, events.

It wires the pure logic of :mod:`lyra.auth` to the database (:mod:`lyra.auth.repository`) and
appends every auth event to the event log (``auth.login_ok``, ``auth.login_failed``,
``auth.mfa_ok``, ``auth.token_reuse``, ``auth.apikey_created``, ``auth.role_changed``,
``auth.lockout``...). Payloads are :class:`~lyra.auth.policy.AuthEvent` dicts, built so no
password, token, key or seed can get in.

On an installation, ``AuthService.from_settings(load_settings())`` opens the configured
database, key files and event log. Here, a throwaway in-memory database:

>>> from datetime import UTC, datetime
>>> from cryptography.fernet import Fernet
>>> from lyra.audit import EventLog
>>> from lyra.auth import generate_signing_key
>>> from lyra.auth.totp import totp_code
>>> from lyra.auth.repository import SecretBox
>>> from lyra.store import create_engine_for, upgrade
>>> engine = create_engine_for("sqlite://")
>>> upgrade(engine)
>>> svc = AuthService(engine, signing_key=generate_signing_key(), event_log=EventLog(engine),
...                   secret_box=SecretBox(Fernet.generate_key()), iterations=1_000)
>>> enrol = svc.add_user("alice", "a long passphrase here", "trader", actor="admin")
>>> challenge = svc.login_password("alice", "a long passphrase here", client="127.0.0.1")
>>> code = totp_code(enrol.totp_secret, datetime.now(UTC))  # what alice's authenticator shows
>>> pair = svc.login_mfa(challenge.ticket, code, client="127.0.0.1")
>>> pair.subject, pair.role.value
('alice', 'trader')
>>> [e.kind for e in svc.event_log.read()]
['auth.user_created', 'auth.mfa_ok', 'auth.login_ok']
>>> engine.dispose()

Failures say as little as possible: a wrong username, a wrong password and a locked account
all raise :class:`LoginFailed` / :class:`~lyra.auth.policy.LoginThrottled` with messages that
are the same whether or not the account exists, and unknown users cost one PBKDF2 run too.
"""

from __future__ import annotations

import hmac
import logging
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from lyra.audit import EventLog
from lyra.audit.events import event_type
from lyra.auth._util import Clock, aware, sha256_hex, utc_now
from lyra.auth.apikeys import ApiKeyManager, ApiKeyRecord, InvalidApiKey, NewApiKey
from lyra.auth.failures import FailureAggregator
from lyra.auth.passwords import (
    PBKDF2_ITERATIONS,
    PasswordRejected,
    check_password_policy,
    dummy_verify,
    hash_password,
    verify_and_update,
)
from lyra.auth.permissions import Action, PermissionDenied, Principal, Role, parse_role
from lyra.auth.policy import (
    DEFAULT_LOCKOUT,
    DEFAULT_SESSION_POLICY,
    AuthEvent,
    AuthEventKind,
    LockoutPolicy,
    LoginAttempts,
    LoginThrottled,
    RateLimiter,
    SessionPolicy,
    SessionStatus,
    SessionTimes,
    is_locked,
    lock_remaining,
    record_failure,
    session_expires_at,
    session_status,
    validate_username,
)
from lyra.auth.reauth import Reauthenticator, ReauthPolicy
from lyra.auth.repository import (
    DbApiKeyRepository,
    DbRefreshTokenStore,
    DbUserStore,
    SecretBox,
    UserRecord,
    to_ms,
)
from lyra.auth.service_types import (  # re-exported: their home was here
    GENERIC_LOGIN_ERROR,
    Enrolment,
    LoginFailed,
    MfaChallenge,
    event_kind,
    load_key_from_settings,
)
from lyra.auth.tickets import MFA_TICKET_TTL, TicketIssuer, factor_fingerprint
from lyra.auth.tokens import (
    REFRESH_PREFIX,
    AccessClaims,
    InvalidToken,
    RefreshTokenReused,
    TokenConfig,
    TokenPair,
    TokenService,
    generate_signing_key,
)
from lyra.auth.totp import (
    consume_recovery_code,
    generate_recovery_codes,
    generate_totp_secret,
    hash_recovery_codes,
    provisioning_uri,
    verify_totp,
)
from lyra.core.errors import ConfigError, ValidationError

log = logging.getLogger(__name__)

#: last_seen is written at most this often per session (one write per request is wasteful).
TOUCH_RESOLUTION = timedelta(seconds=30)


def _derive(key: bytes, label: str) -> bytes:
    return hmac.new(key, b"lyra-derive:" + label.encode(), "sha256").digest()


class AuthService:
    """Everything a login server or the CLI needs, over one database and one event log."""

    def __init__(
        self,
        engine: Engine,
        *,
        signing_key: bytes | str,
        event_log: EventLog,
        secret_box: SecretBox,
        clock: Clock = utc_now,
        lockout: LockoutPolicy = DEFAULT_LOCKOUT,
        session_policy: SessionPolicy = DEFAULT_SESSION_POLICY,
        iterations: int = PBKDF2_ITERATIONS,
        per_client_logins: int = 30,
        demo: bool = False,
        reauth_policy: ReauthPolicy | None = None,
    ) -> None:
        self.engine = engine
        self.users = DbUserStore(engine)
        self.sessions = DbRefreshTokenStore(engine)
        self.keys_repo = DbApiKeyRepository(engine)
        self.event_log = event_log
        self.box = secret_box
        self.clock = clock
        self.lockout = lockout
        self.session_policy = session_policy
        self.iterations = iterations
        self.token_config = TokenConfig(
            key=signing_key,
            refresh_ttl=session_policy.idle_timeout,
            session_max_age=session_policy.absolute_lifetime,
            demo=demo,
        )
        self.tokens = TokenService(
            self.token_config, self.sessions, clock=clock, role_of=self.users.role_of, check_session=False
        )
        self.api_keys = ApiKeyManager(self.keys_repo, clock=clock, role_of=self.users.role_of)
        self.client_limiter = RateLimiter(per_client_logins, timedelta(minutes=1))
        #: MFA tickets: one completed second step each (:mod:`lyra.auth.tickets`).
        self.tickets = TicketIssuer(_derive(self.token_config.secret, "mfa-ticket"))
        self._touched: dict[str, datetime] = {}
        #: Unauthenticated failures: the first per source, kind and minute is written, the rest counted.
        self.failures = FailureAggregator()
        #: Fresh re-authentication (password + TOTP) for the dangerous actions (:mod:`.reauth`).
        self.reauth = Reauthenticator(self, reauth_policy)

    @classmethod
    def from_settings(
        cls,
        settings: Any,
        *,
        engine: Engine | None = None,
        create_totp_key: bool = True,
        need_signing_key: bool = True,
        **kwargs: Any,
    ) -> AuthService:
        """Build from :class:`lyra.settings.Settings` (key file, TOTP key, event log).

        ``need_signing_key=False`` (the user/API-key CLI, which never issues tokens) uses a
        throwaway key when none is configured instead of refusing.
        """
        from lyra.store import create_engine_for

        eng = engine or create_engine_for(settings.db_url)
        try:
            try:
                key = load_key_from_settings(settings.home, settings.jwt_secret, demo=settings.demo)
            except ConfigError:
                if need_signing_key:
                    raise
                key = generate_signing_key().encode()
            # A fresh installation gets its TOTP encryption key on first use (nothing to decrypt yet).
            box = SecretBox.from_file(settings.home / "secrets" / "totp.key", create=True)
            events = EventLog(eng, settings.audit_dir / "events.jsonl")
            return cls(eng, signing_key=key, event_log=events, secret_box=box, demo=settings.demo, **kwargs)
        except BaseException:
            if engine is None:  # ours, and nobody else will ever see it: close its connections
                eng.dispose()
            raise

    # ------------------------------------------------------------------ helpers

    def now(self) -> datetime:
        """The service clock (aware UTC)."""
        return aware(self.clock())

    def emit(self, kind: AuthEventKind, subject: str, *, actor: str | None = None, **detail: Any) -> None:
        """Append one auth event to the event log (and a one-line log record without detail)."""
        at = self.now()
        event = AuthEvent(kind, subject, {k: v for k, v in detail.items() if v is not None}, at=at)
        name = event_kind(event.kind)
        entry = event_type(name).from_payload(event.to_dict())  # the catalogue's shape, checked
        self.event_log.append(name, entry.to_payload(), actor=actor or event.subject, ts=to_ms(at))
        log.info("%s subject=%s", name, event.subject)

    def emit_failure(
        self, kind: AuthEventKind, subject: str, *, reason: str, client: str, **detail: Any
    ) -> None:
        """Record an unauthenticated failure, aggregated: the first of its ``(kind, reason,
        client, subject)`` in a minute is written now; the rest of the minute become one row
        with ``count`` when it is over. Nobody can flood the log from outside."""
        write, due = self.failures.admit((kind.value, reason, client, subject), self.now())
        for (k, why, src, who), n in due:
            self.emit(AuthEventKind(k), who, reason=why, client=src, count=n, window_s=60)
        if write:
            self.emit(kind, subject, reason=reason, client=client, **detail)

    def flush_failures(self) -> int:
        """Write every pending failure count now (at shutdown); returns how many rows."""
        pending = self.failures.drain()
        for (k, why, src, who), n in pending:
            self.emit(AuthEventKind(k), who, reason=why, client=src, count=n, window_s=60)
        return len(pending)

    def signing_secret(self) -> bytes:
        """The validated signing key (for the Panel-side check in the same installation)."""
        return self.token_config.secret

    # ------------------------------------------------------------------ users

    def _new_factor(self, username: str) -> tuple[str, str, list[str]]:
        secret = generate_totp_secret()
        return secret, provisioning_uri(secret, username), generate_recovery_codes()

    def add_user(self, username: str, password: str, role: Role | str, *, actor: str) -> Enrolment:
        """Create an account with a TOTP second factor; returns what to show the user once."""
        name = validate_username(username)
        parsed_role = parse_role(role)
        check_password_policy(password, username=name)
        secret, uri, codes = self._new_factor(name)
        at = self.now()
        self.users.add(
            UserRecord(
                username=name,
                role=parsed_role,
                password_hash=hash_password(password, iterations=self.iterations),
                totp_secret_enc=self.box.encrypt(secret),
                totp_last_step=None,
                recovery_hashes=tuple(hash_recovery_codes(codes)),
                locked=False,
                failed_attempts=0,
                disabled=False,
                created_at=at,
                updated_at=at,
            )
        )
        self.emit(AuthEventKind.USER_CREATED, name, actor=actor, role=parsed_role.value)
        return Enrolment(name, parsed_role, secret, uri, tuple(codes))

    def _require_user(self, username: str) -> UserRecord:
        user = self.users.get(validate_username(username))
        if user is None:
            raise ValidationError("username", username, "no such user")
        return user

    def set_role(self, username: str, role: Role | str, *, actor: str) -> None:
        """Change a user's role; their sessions end so the change applies at once."""
        user = self._require_user(username)
        new = parse_role(role)
        self.users.update(user.username, self.now(), role=new.value)
        self.tokens.logout_everywhere(user.username)
        self.emit(
            AuthEventKind.ROLE_CHANGED,
            user.username,
            actor=actor,
            old_role=user.role.value,
            new_role=new.value,
        )

    def reset_mfa(self, username: str, *, actor: str) -> Enrolment:
        """Replace a user's TOTP secret and recovery codes; their sessions end."""
        user = self._require_user(username)
        secret, uri, codes = self._new_factor(user.username)
        self.users.update(
            user.username,
            self.now(),
            totp_secret_enc=self.box.encrypt(secret),
            totp_last_step=None,
            recovery_hashes=hash_recovery_codes(codes),
        )
        self.tokens.logout_everywhere(user.username)
        self.emit(AuthEventKind.MFA_RESET, user.username, actor=actor)
        return Enrolment(user.username, user.role, secret, uri, tuple(codes))

    def lock(self, username: str, *, actor: str) -> None:
        """Admin lock: no login until unlocked; every session ends now."""
        user = self._require_user(username)
        self.users.update(user.username, self.now(), locked=True)
        self.tokens.logout_everywhere(user.username)
        self.emit(AuthEventKind.ACCOUNT_LOCKED, user.username, actor=actor, reason="admin lock")

    def unlock(self, username: str, *, actor: str) -> None:
        """Lift an admin lock and any failed-login lock."""
        user = self._require_user(username)
        self.users.update(user.username, self.now(), locked=False)
        self.users.save_attempts(self.users.attempt_key(user.username), LoginAttempts())
        self.emit(AuthEventKind.ACCOUNT_UNLOCKED, user.username, actor=actor)

    def list_users(self) -> list[UserRecord]:
        """Every account."""
        return self.users.list()

    # ------------------------------------------------------------------ login

    def _throttle(self, key: str, subject: str, client: str, at: datetime) -> LoginAttempts:
        state = self.users.attempts(key)
        if is_locked(state, at):
            self.emit_failure(AuthEventKind.LOGIN_THROTTLED, subject, reason="account locked", client=client)
            raise LoginThrottled("account locked", lock_remaining(state, at))
        if not self.client_limiter.hit(client, at):
            # Keyed without the name: a flood of invented names is one row per client and minute.
            self.emit_failure(
                AuthEventKind.LOGIN_THROTTLED, "system", reason="client rate limit", client=client
            )
            raise LoginThrottled("client rate limit", self.client_limiter.retry_after(client, at))
        return state

    def _fail(
        self,
        kind: AuthEventKind,
        key: str,
        state: LoginAttempts,
        subject: str,
        client: str,
        reason: str,
        at: datetime,
        user: UserRecord | None,
    ) -> LoginFailed:
        after = record_failure(state, at, self.lockout)
        self.users.save_attempts(key, after)
        if user is not None:
            self.users.count_failure(user.username)
        self.emit_failure(kind, subject, reason=reason, client=client, failures=len(after.failures))
        if not is_locked(state, at) and is_locked(after, at):
            self.emit(
                AuthEventKind.ACCOUNT_LOCKED,
                subject,
                reason="too many failures",
                client=client,
                locked_until=after.locked_until,
            )
        return LoginFailed()

    def login_password(self, username: str, password: str, *, client: str = "unknown") -> MfaChallenge:
        """Step 1: check the password. Returns an MFA challenge, or raises LoginFailed /
        LoginThrottled (same messages whether or not the user exists) / ValidationError for
        input that could never be a username (the message never echoes it)."""
        at = self.now()
        typed = username if isinstance(username, str) else ""
        try:
            name = validate_username(typed)
        except ValidationError as exc:
            self.emit_failure(
                AuthEventKind.LOGIN_FAILED, "<invalid>", reason="malformed username", client=client
            )
            raise exc from None
        key = self.users.attempt_key(name)
        state = self._throttle(key, name, client, at)
        user = self.users.get(name)
        if user is None or user.locked or user.disabled:
            dummy_verify(password, iterations=self.iterations)
            raise self._fail(
                AuthEventKind.LOGIN_FAILED, key, state, name, client, "bad credentials", at, user
            )
        ok, new_hash = verify_and_update(password, user.password_hash, iterations=self.iterations)
        if not ok:
            raise self._fail(
                AuthEventKind.LOGIN_FAILED, key, state, name, client, "bad credentials", at, user
            )
        if new_hash is not None:
            self.users.update(name, at, password_hash=new_hash)
            self.emit(AuthEventKind.PASSWORD_CHANGED, name, reason="rehashed at a higher cost")
        fingerprint = factor_fingerprint(user.totp_last_step, user.recovery_hashes, user.totp_secret_enc)
        ticket, exp = self.tickets.issue(name, fingerprint, at)
        return MfaChallenge(ticket, exp)

    def login_mfa(self, ticket: str, code: str, *, client: str = "unknown") -> TokenPair:
        """Step 2: a TOTP code (or a recovery code) for the ticket; returns the session tokens.
        A code is accepted once (replay protection is an atomic database update)."""
        at = self.now()
        read = self.tickets.read(ticket, at)
        if read is None:
            self.emit_failure(
                AuthEventKind.MFA_FAILED, "<invalid>", reason="bad, expired or spent ticket", client=client
            )
            raise LoginFailed()
        name, fingerprint, ticket_id = read
        key = self.users.attempt_key(name)
        state = self._throttle(key, name, client, at)
        user = self.users.get(name)
        if user is None or user.locked or user.disabled or user.totp_secret_enc is None:
            raise self._fail(AuthEventKind.MFA_FAILED, key, state, name, client, "no usable factor", at, user)
        if fingerprint != factor_fingerprint(user.totp_last_step, user.recovery_hashes, user.totp_secret_enc):
            # The ticket already completed a login (or the factor was reset since): spent.
            self.emit_failure(AuthEventKind.MFA_FAILED, name, reason="spent ticket", client=client)
            raise LoginFailed()
        text = code.strip() if isinstance(code, str) else ""
        factor = "totp"
        if len(text) > 64:
            accepted = False
        elif "-" in text or len(text) > 8:
            factor = "recovery_code"
            remaining = consume_recovery_code(text, user.recovery_hashes)
            accepted = remaining is not None and self.users.replace_recovery_hashes(
                name, user.recovery_hashes, remaining or [], at
            )
        else:
            secret = self.box.decrypt(user.totp_secret_enc)
            step = verify_totp(secret, text, now=at, last_used_step=user.totp_last_step)
            accepted = step is not None and self.users.consume_totp_step(name, step, at)
        if not accepted:
            raise self._fail(
                AuthEventKind.MFA_FAILED, key, state, name, client, "wrong or reused code", at, user
            )
        if not self.tickets.spend(ticket_id, at):  # a concurrent step with another code won
            self.emit_failure(AuthEventKind.MFA_FAILED, name, reason="spent ticket", client=client)
            raise LoginFailed()
        self.users.save_attempts(key, LoginAttempts())
        pair = self.tokens.start_session(name, user.role, now=at)
        if factor == "recovery_code":
            self.emit(AuthEventKind.RECOVERY_CODE_USED, name, client=client)
        self.emit(AuthEventKind.MFA_OK, name, client=client, factor=factor)
        self.emit(
            AuthEventKind.LOGIN_OK, name, client=client, session_id=pair.session_id, role=user.role.value
        )
        return pair

    # ------------------------------------------------------------------ sessions

    def _session_status(self, session_id: str, at: datetime) -> tuple[str, SessionStatus | None]:
        rec = self.sessions.session(session_id)
        if rec is None or rec.revoked_at is not None:
            return ("", None)
        status = session_status(SessionTimes(rec.created_at, rec.last_seen_at), at, self.session_policy)
        if status is not SessionStatus.ACTIVE:
            self.sessions.revoke_family(session_id, at, reason=status.value)
            self.emit(AuthEventKind.SESSION_EXPIRED, rec.subject, reason=status.value, session_id=session_id)
            return (rec.subject, None)
        return (rec.subject, status)

    def authenticate(self, access_token: str | None, *, touch: bool = True) -> AccessClaims:
        """Verify an access token *and* its session (not revoked, not idle for 60 min, within
        its lifetime). Records activity. Raises InvalidToken."""
        at = self.now()
        claims = self.tokens.verify_access_token(access_token, now=at)
        _subject, status = self._session_status(claims.session_id, at)
        if status is None:
            raise InvalidToken("session ended")
        if touch:
            last = self._touched.get(claims.session_id)
            if last is None or at - last >= TOUCH_RESOLUTION:
                self.sessions.touch(claims.session_id, at)
                self._touched[claims.session_id] = at
                if len(self._touched) > 10_000:
                    self._touched.clear()
        return claims

    def session_deadline(self, session_id: str, *, touch: bool = False) -> datetime | None:
        """When session ``session_id`` ends (idle timeout or lifetime, whichever is first), or
        None when it has ended (revoked, expired: recorded). ``touch`` records activity first
        (a websocket message). For the proxy's websocket binding."""
        at = self.now()
        _subject, status = self._session_status(session_id, at)
        if status is None:
            return None
        if touch:
            self.sessions.touch(session_id, at)
            self._touched[session_id] = at
        rec = self.sessions.session(session_id)
        if rec is None:
            return None
        return session_expires_at(SessionTimes(rec.created_at, rec.last_seen_at), self.session_policy)

    def refresh(self, refresh_token: str | None, *, client: str = "unknown") -> TokenPair:
        """Spend a refresh token for a new pair. A reused token revokes its session (and is
        recorded as ``auth.token_reuse``); an idle session cannot be refreshed."""
        at = self.now()
        if (
            isinstance(refresh_token, str)
            and refresh_token.startswith(REFRESH_PREFIX)
            and len(refresh_token) < 129
        ):
            rec = self.sessions.get(sha256_hex(refresh_token))
            if rec is not None and rec.used_at is None:
                _subject, status = self._session_status(rec.family_id, at)
                if status is None:
                    raise InvalidToken("session ended")
        try:
            pair = self.tokens.refresh(refresh_token, now=at)
        except RefreshTokenReused as exc:
            self.emit(AuthEventKind.TOKEN_REUSE, exc.subject, session_id=exc.family_id, client=client)
            raise
        self.sessions.touch(pair.session_id, at)
        self.emit(AuthEventKind.TOKEN_REFRESHED, pair.subject, session_id=pair.session_id, client=client)
        return pair

    def logout(self, session_id: str, subject: str, *, client: str = "unknown") -> None:
        """End one session (its refresh and access tokens stop working at once)."""
        self.sessions.revoke_family(session_id, self.now(), reason="logout")
        self.emit(AuthEventKind.LOGOUT, subject, session_id=session_id, client=client)

    def logout_everywhere(self, username: str, *, actor: str) -> int:
        """End every session of a user; returns how many."""
        user = self._require_user(username)
        n = self.tokens.logout_everywhere(user.username)
        self.emit(AuthEventKind.LOGOUT_ALL, user.username, actor=actor, count=n)
        return n

    # ------------------------------------------------------------------ permissions

    def authorize(self, principal: Principal, action: Action | str, *, path: str = "") -> None:
        """Raise PermissionDenied (and record it) unless ``principal`` may do ``action``."""
        try:
            principal.require(action)
        except PermissionDenied:
            self.emit(
                AuthEventKind.PERMISSION_DENIED,
                principal.subject,
                action=str(action),
                path=path,
                role=principal.role.value,
                key_id=principal.key_id,
            )
            raise

    # ------------------------------------------------------------------ API keys

    def create_api_key(
        self, owner: str, scopes: list[str], *, name: str = "", ttl: timedelta | None = None, actor: str
    ) -> NewApiKey:
        """Issue a key for ``owner`` (scopes within the owner's role). Show ``.key`` once."""
        user = self._require_user(owner)
        if user.locked or user.disabled:
            raise ValidationError("owner", owner, "account is locked or disabled")
        new = self.api_keys.create(user.username, user.role, scopes, name=name, ttl=ttl, now=self.now())
        self.emit(
            AuthEventKind.KEY_CREATED,
            user.username,
            actor=actor,
            key_id=new.record.key_id,
            scopes=sorted(a.value for a in new.record.scopes),
            expires_at=new.record.expires_at,
        )
        return new

    def rotate_api_key(self, key_id: str, *, actor: str, grace: timedelta | None = None) -> NewApiKey:
        """A successor key; the old one keeps working for the grace period (7 days)."""
        new = self.api_keys.rotate(key_id, now=self.now(), grace=grace)
        self.emit(
            AuthEventKind.KEY_ROTATED,
            new.record.owner,
            actor=actor,
            key_id=key_id,
            new_key_id=new.record.key_id,
        )
        return new

    def revoke_api_key(self, key_id: str, *, actor: str) -> ApiKeyRecord:
        """Revoke a key at once."""
        rec = self.api_keys.revoke(key_id, now=self.now())
        self.emit(AuthEventKind.KEY_REVOKED, rec.owner, actor=actor, key_id=key_id)
        return rec

    def list_api_keys(self, owner: str | None = None) -> list[ApiKeyRecord]:
        """Keys of ``owner`` (or all keys)."""
        return self.keys_repo.list_for(owner) if owner else self.keys_repo.list_all()

    def verify_api_key(self, key: str, *, client: str = "unknown", path: str = "") -> Principal:
        """The principal an API key acts for; a refusal is recorded and raises InvalidApiKey."""
        try:
            return self.api_keys.verify(key, now=self.now())
        except InvalidApiKey as exc:
            self.emit_failure(
                AuthEventKind.KEY_REJECTED,
                "system",
                reason=exc.reason,
                client=client,
                key_id=exc.key_id,
                path=path,
            )
            raise


__all__ = [
    "GENERIC_LOGIN_ERROR",
    "MFA_TICKET_TTL",
    "AuthService",
    "Enrolment",
    "LoginFailed",
    "MfaChallenge",
    "PasswordRejected",
    "event_kind",
    "load_key_from_settings",
]
