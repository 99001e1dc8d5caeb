"""The auth service's small public types: login outcomes, enrolments, event kind names, and
the signing-key loader (split out of :mod:`lyra.auth.service`; import them from there or from
:mod:`lyra.auth`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from lyra.auth.permissions import Role
from lyra.auth.policy import AuthEventKind
from lyra.auth.tokens import generate_signing_key, load_signing_key, validate_signing_key
from lyra.core.errors import ConfigError, LyraError

#: Event-log kind names; the rest are ``auth.<AuthEventKind value>``.
_KIND_NAMES = {
    AuthEventKind.ACCOUNT_LOCKED: "auth.lockout",
    AuthEventKind.KEY_CREATED: "auth.apikey_created",
    AuthEventKind.KEY_ROTATED: "auth.apikey_rotated",
    AuthEventKind.KEY_REVOKED: "auth.apikey_revoked",
    AuthEventKind.KEY_REJECTED: "auth.apikey_rejected",
}
GENERIC_LOGIN_ERROR = "username, password or code not accepted"


def event_kind(kind: AuthEventKind) -> str:
    """The event-log ``kind`` for an auth event (``auth.login_ok``, ``auth.lockout``...)."""
    return _KIND_NAMES.get(kind, f"auth.{kind.value}")


class LoginFailed(LyraError):
    """A login step failed. The message never says which part was wrong."""

    def __init__(self) -> None:
        super().__init__(GENERIC_LOGIN_ERROR)


@dataclass(frozen=True)
class MfaChallenge:
    """Password accepted; the ``ticket`` (short-lived, signed) must come back with a code."""

    ticket: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class Enrolment:
    """A new second factor: show it to the user once. Secrets are kept out of the repr."""

    username: str
    role: Role
    totp_secret: str = field(repr=False)
    provisioning_uri: str = field(repr=False)
    recovery_codes: tuple[str, ...] = field(repr=False)


def load_key_from_settings(home: Path, jwt_secret: str | None, *, demo: bool) -> bytes:
    """The signing key: ``settings.jwt_secret``, else ``$LYRA_HOME/secrets/jwt.key`` (0600).

    Demo mode creates and stores a random key when there is none. Outside demo mode a
    missing or weak key is a :class:`~lyra.core.errors.ConfigError` (``lyra serve`` stops).
    """
    if jwt_secret:
        return validate_signing_key(jwt_secret, demo=demo)
    path = home / "secrets" / "jwt.key"
    if not path.exists() and demo:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(generate_signing_key())
    if not path.exists():
        raise ConfigError(
            "jwt_secret",
            None,
            f"no signing key: set LYRA_JWT_SECRET or create {path} (mode 0600)",
            "python -c 'from lyra.auth import generate_signing_key as g; print(g())' > "
            f"{path} && chmod 600 {path}  (or use --demo)",
        )
    return load_signing_key(path, demo=demo)


__all__ = [
    "GENERIC_LOGIN_ERROR",
    "Enrolment",
    "LoginFailed",
    "MfaChallenge",
    "event_kind",
    "load_key_from_settings",
]
