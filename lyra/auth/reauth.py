"""Re-authentication: the person at the keyboard proves it is still them (password **and** a
TOTP code) before the most dangerous actions, even inside a live session.

Which actions (:func:`needs_reauth`): pulling and re-arming the kill switch, user management
(role changes, resets, unlocks) and orders whose notional is above
``ReauthPolicy.order_notional``. "Fresh" means a re-authentication of *this login session*
within ``ReauthPolicy.window`` (5 minutes by default).

How it flows:

1. ``/auth/reauth?next=/risk`` (a proxy page) or ``POST /auth/api/reauth`` asks for the
   password and a code; :meth:`Reauthenticator.confirm` checks both (failures count towards
   the account lockout like a login's; a TOTP code is still good once only) and remembers the
   time for the session. The audit log gets ``auth.mfa_ok`` / ``auth.mfa_failed`` with
   ``reason: re-authentication``.
2. The proxy puts that time into the signed identity it sends Panel (claim ``rat``), so a page
   opened after the re-authentication knows it (:func:`lyra.auth.panel_auth.current_claims`).
3. The action calls :func:`check_fresh` with that time; :class:`ReauthRequired` says where
   to go.

The window and the notional come from the environment (both the proxy and the Panel process
read it): ``LYRA_REAUTH_MINUTES`` (default 5) and ``LYRA_REAUTH_ORDER_NOTIONAL`` (default
100000; ``none`` switches the order check off).

>>> from datetime import UTC, datetime, timedelta
>>> now = datetime(2026, 1, 1, 12, tzinfo=UTC)
>>> policy = ReauthPolicy()
>>> needs_reauth(Action.PLACE_ORDER, notional=Decimal("5000"), policy=policy)
False
>>> check_fresh(now - timedelta(minutes=4), now, Action.REARM_KILL_SWITCH, policy=policy)
>>> check_fresh(now - timedelta(minutes=6), now, Action.REARM_KILL_SWITCH, policy=policy)
Traceback (most recent call last):
...
lyra.auth.reauth.ReauthRequired: re-authenticate (password and code) to rearm_kill_switch: /auth/reauth
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING

from lyra.auth.passwords import verify_and_update
from lyra.auth.permissions import Action
from lyra.auth.policy import AuthEventKind, LoginAttempts
from lyra.auth.service_types import LoginFailed
from lyra.auth.totp import verify_totp
from lyra.core.errors import ConfigError, LyraError

if TYPE_CHECKING:
    from lyra.auth.service import AuthService

REAUTH_PATH = "/auth/reauth"
DEFAULT_WINDOW = timedelta(minutes=5)
DEFAULT_ORDER_NOTIONAL = Decimal("100000")
#: Always need a fresh re-authentication (orders only above the notional).
REAUTH_ACTIONS = frozenset({Action.PULL_KILL_SWITCH, Action.REARM_KILL_SWITCH, Action.MANAGE_USERS})


class ReauthRequired(LyraError):
    """The action needs a fresh re-authentication; ``path`` is where to get one."""

    def __init__(self, action: str, path: str = REAUTH_PATH) -> None:
        self.action = action
        self.path = path
        super().__init__(f"re-authenticate (password and code) to {action}: {path}")


@dataclass(frozen=True)
class ReauthPolicy:
    """How recent a re-authentication must be, and from which order notional it is needed."""

    window: timedelta = DEFAULT_WINDOW
    order_notional: Decimal | None = DEFAULT_ORDER_NOTIONAL

    def __post_init__(self) -> None:
        if not timedelta(seconds=30) <= self.window <= timedelta(hours=1):
            raise ConfigError("reauth.window", self.window, "must be between 30 seconds and 1 hour")
        if self.order_notional is not None and self.order_notional < 0:
            raise ConfigError("reauth.order_notional", self.order_notional, "must not be negative")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> ReauthPolicy:
        """``LYRA_REAUTH_MINUTES`` and ``LYRA_REAUTH_ORDER_NOTIONAL`` (see the module doc)."""
        e = os.environ if env is None else env
        minutes_text = e.get("LYRA_REAUTH_MINUTES", "").strip()
        notional_text = e.get("LYRA_REAUTH_ORDER_NOTIONAL", "").strip()
        try:
            window = timedelta(minutes=float(minutes_text)) if minutes_text else DEFAULT_WINDOW
        except ValueError:
            raise ConfigError("LYRA_REAUTH_MINUTES", minutes_text, "not a number of minutes") from None
        notional: Decimal | None = DEFAULT_ORDER_NOTIONAL
        if notional_text.lower() == "none":
            notional = None
        elif notional_text:
            try:
                notional = Decimal(notional_text)
            except InvalidOperation:
                raise ConfigError("LYRA_REAUTH_ORDER_NOTIONAL", notional_text, "not a number") from None
        return cls(window=window, order_notional=notional)


def needs_reauth(action: Action | str, *, notional: Decimal | None = None, policy: ReauthPolicy) -> bool:
    """Does ``action`` (an order of ``notional``) need a fresh re-authentication?"""
    act = Action(action)
    if act in REAUTH_ACTIONS:
        return True
    if act in (Action.PLACE_ORDER, Action.SUBMIT_REBALANCE) and policy.order_notional is not None:
        return notional is not None and abs(notional) > policy.order_notional
    return False


def is_fresh(reauth_at: datetime | None, now: datetime, policy: ReauthPolicy) -> bool:
    """Was there a re-authentication within the policy window before ``now``?"""
    return reauth_at is not None and now - reauth_at <= policy.window


def check_fresh(
    reauth_at: datetime | None,
    now: datetime,
    action: Action | str,
    *,
    notional: Decimal | None = None,
    policy: ReauthPolicy,
) -> None:
    """Raise :class:`ReauthRequired` when ``action`` needs a re-authentication and the last
    one (``reauth_at``, None: never) is older than the window."""
    if needs_reauth(action, notional=notional, policy=policy) and not is_fresh(reauth_at, now, policy):
        raise ReauthRequired(str(Action(action)))


class Reauthenticator:
    """Checks re-authentications for an :class:`~lyra.auth.service.AuthService` and remembers
    when each login session last did one (in the proxy's process: the identity it signs for
    Panel carries it)."""

    def __init__(self, service: AuthService, policy: ReauthPolicy | None = None) -> None:
        self.service = service
        self.policy = policy or ReauthPolicy.from_env()
        self._lock = threading.Lock()
        self._at: dict[str, datetime] = {}

    def fresh_at(self, session_id: str) -> datetime | None:
        """When session ``session_id`` last re-authenticated, if within the window; else None."""
        with self._lock:
            at = self._at.get(session_id)
        return at if is_fresh(at, self.service.now(), self.policy) else None

    def require(self, session_id: str, action: Action | str, *, notional: Decimal | None = None) -> None:
        """Raise :class:`ReauthRequired` unless the session may do ``action`` now."""
        with self._lock:
            at = self._at.get(session_id)
        check_fresh(at, self.service.now(), action, notional=notional, policy=self.policy)

    def confirm(
        self, session_id: str, subject: str, password: str, code: str, *, client: str = "unknown"
    ) -> datetime:
        """Check ``password`` and a TOTP ``code`` of ``subject`` in live session ``session_id``;
        returns the re-authentication time. Raises LoginFailed / LoginThrottled (a failure
        counts towards the lockout) or InvalidToken (the session has ended)."""
        from lyra.auth.tokens import InvalidToken

        svc = self.service
        at = svc.now()
        if svc.session_deadline(session_id) is None:
            raise InvalidToken("session ended")
        key = svc.users.attempt_key(subject)
        state = svc._throttle(key, subject, client, at)
        user = svc.users.get(subject)
        pw = password if isinstance(password, str) and len(password) <= 1024 else ""
        text = code.strip() if isinstance(code, str) and len(code) <= 16 else ""
        ok = (
            user is not None
            and not user.locked
            and not user.disabled
            and user.totp_secret_enc is not None
            and verify_and_update(pw, user.password_hash, iterations=svc.iterations)[0]
        )
        step = None
        if ok and user is not None and user.totp_secret_enc is not None:
            secret = svc.box.decrypt(user.totp_secret_enc)
            step = verify_totp(secret, text, now=at, last_used_step=user.totp_last_step)
        if step is None or not svc.users.consume_totp_step(subject, step, at):
            raise svc._fail(
                AuthEventKind.MFA_FAILED, key, state, subject, client, "re-authentication failed", at, user
            ) from LoginFailed()
        svc.users.save_attempts(key, LoginAttempts())
        with self._lock:
            self._at[session_id] = at
            if len(self._at) > 10_000:  # forget the stale ones (memory stays bounded)
                for sid, t in list(self._at.items()):
                    if not is_fresh(t, at, self.policy):
                        del self._at[sid]
        svc.emit(
            AuthEventKind.MFA_OK, subject, client=client, session_id=session_id, reason="re-authentication"
        )
        return at


__all__ = [
    "DEFAULT_ORDER_NOTIONAL",
    "DEFAULT_WINDOW",
    "REAUTH_ACTIONS",
    "REAUTH_PATH",
    "ReauthPolicy",
    "ReauthRequired",
    "Reauthenticator",
    "check_fresh",
    "is_fresh",
    "needs_reauth",
]
