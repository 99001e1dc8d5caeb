"""Auth events (``lyra.auth.service``): logins, second factors, tokens, users, roles, API keys.

Every one has the payload of ``lyra.auth.policy.AuthEvent.to_dict()``: its own ``kind`` (the
``AuthEventKind`` value: ``auth.lockout`` says ``account_locked``), the ``subject`` (a user
name, ``key:<id>``, ``system`` or ``<invalid>``), a ``detail`` of scrubbed scalars (keys from
``lyra.auth.policy.EVENT_DETAIL_KEYS``) and the time ``at``. One type per log kind; the
payload's ``kind`` must match it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from lyra.audit._payload import Event, EventPayloadError


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthEntry(Event):
    """The shape every ``auth.*`` entry shares; use the subclass of its kind."""

    AUTH_KIND: ClassVar[str]  #: the payload's ``kind``
    kind: str
    subject: str
    detail: Mapping[str, str | int | bool | None]
    at: datetime | None  #: aware UTC

    def __post_init__(self) -> None:
        want = getattr(type(self), "AUTH_KIND", None)
        if want is None:
            raise TypeError("AuthEntry is abstract: use the type of the entry's kind")
        if self.kind != want:
            raise EventPayloadError(self.KIND, "kind", self.kind, f"an {self.KIND} entry says {want!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthLoginOk(AuthEntry):
    """``auth.login_ok``: password (and MFA) accepted, session started."""

    KIND = "auth.login_ok"
    AUTH_KIND = "login_ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthLoginFailed(AuthEntry):
    """``auth.login_failed``: wrong username or password."""

    KIND = "auth.login_failed"
    AUTH_KIND = "login_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthLoginThrottled(AuthEntry):
    """``auth.login_throttled``: refused before checking: locked or rate-limited."""

    KIND = "auth.login_throttled"
    AUTH_KIND = "login_throttled"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthLockout(AuthEntry):
    """``auth.lockout``: a failure reached the lockout threshold, or an admin locked."""

    KIND = "auth.lockout"
    AUTH_KIND = "account_locked"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthAccountUnlocked(AuthEntry):
    """``auth.account_unlocked``: an admin lifted a lock."""

    KIND = "auth.account_unlocked"
    AUTH_KIND = "account_unlocked"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthMfaOk(AuthEntry):
    """``auth.mfa_ok``: a TOTP or recovery code accepted."""

    KIND = "auth.mfa_ok"
    AUTH_KIND = "mfa_ok"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthMfaFailed(AuthEntry):
    """``auth.mfa_failed``: a TOTP code wrong or replayed."""

    KIND = "auth.mfa_failed"
    AUTH_KIND = "mfa_failed"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthMfaEnrolled(AuthEntry):
    """``auth.mfa_enrolled``: a TOTP secret was confirmed."""

    KIND = "auth.mfa_enrolled"
    AUTH_KIND = "mfa_enrolled"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthMfaReset(AuthEntry):
    """``auth.mfa_reset``: an admin removed a user's TOTP."""

    KIND = "auth.mfa_reset"
    AUTH_KIND = "mfa_reset"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRecoveryCodeUsed(AuthEntry):
    """``auth.recovery_code_used``: a one-time recovery code replaced TOTP."""

    KIND = "auth.recovery_code_used"
    AUTH_KIND = "recovery_code_used"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthTokenRefreshed(AuthEntry):
    """``auth.token_refreshed``: a refresh token was rotated."""

    KIND = "auth.token_refreshed"
    AUTH_KIND = "token_refreshed"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthTokenReuse(AuthEntry):
    """``auth.token_reuse``: a spent refresh token came back; its session was revoked."""

    KIND = "auth.token_reuse"
    AUTH_KIND = "token_reuse"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthTokenRejected(AuthEntry):
    """``auth.token_rejected``: an access token was refused."""

    KIND = "auth.token_rejected"
    AUTH_KIND = "token_rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthSessionExpired(AuthEntry):
    """``auth.session_expired``: idle timeout or absolute lifetime reached."""

    KIND = "auth.session_expired"
    AUTH_KIND = "session_expired"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthLogout(AuthEntry):
    """``auth.logout``: one session ended by the user."""

    KIND = "auth.logout"
    AUTH_KIND = "logout"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthLogoutAll(AuthEntry):
    """``auth.logout_all``: every session of a user ended."""

    KIND = "auth.logout_all"
    AUTH_KIND = "logout_all"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthPasswordChanged(AuthEntry):
    """``auth.password_changed``: a new password set (or rehashed)."""

    KIND = "auth.password_changed"
    AUTH_KIND = "password_changed"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthUserCreated(AuthEntry):
    """``auth.user_created``: an account was added."""

    KIND = "auth.user_created"
    AUTH_KIND = "user_created"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthRoleChanged(AuthEntry):
    """``auth.role_changed``: a role change (old_role, new_role in detail)."""

    KIND = "auth.role_changed"
    AUTH_KIND = "role_changed"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthPermissionDenied(AuthEntry):
    """``auth.permission_denied``: a role or key tried what it may not."""

    KIND = "auth.permission_denied"
    AUTH_KIND = "permission_denied"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthApikeyCreated(AuthEntry):
    """``auth.apikey_created``: an API key was issued (key_id, never the key)."""

    KIND = "auth.apikey_created"
    AUTH_KIND = "key_created"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthApikeyRotated(AuthEntry):
    """``auth.apikey_rotated``: an API key was replaced."""

    KIND = "auth.apikey_rotated"
    AUTH_KIND = "key_rotated"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthApikeyRevoked(AuthEntry):
    """``auth.apikey_revoked``: an API key was revoked."""

    KIND = "auth.apikey_revoked"
    AUTH_KIND = "key_revoked"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthApikeyRejected(AuthEntry):
    """``auth.apikey_rejected``: an API key was refused."""

    KIND = "auth.apikey_rejected"
    AUTH_KIND = "key_rejected"


#: Every auth type, in AuthEventKind's order.
AUTH_TYPES: tuple[type[AuthEntry], ...] = (
    AuthLoginOk, AuthLoginFailed, AuthLoginThrottled, AuthLockout, AuthAccountUnlocked, AuthMfaOk,
    AuthMfaFailed, AuthMfaEnrolled, AuthMfaReset, AuthRecoveryCodeUsed, AuthTokenRefreshed,
    AuthTokenReuse, AuthTokenRejected, AuthSessionExpired, AuthLogout, AuthLogoutAll,
    AuthPasswordChanged, AuthUserCreated, AuthRoleChanged, AuthPermissionDenied, AuthApikeyCreated,
    AuthApikeyRotated, AuthApikeyRevoked, AuthApikeyRejected,
)
