"""User, API-key and session management **as a named person** (the admin dashboard
``apps/admin.py``; the CLI's ``--local-admin`` acts as the OS user).

Every call takes the acting :class:`~lyra.auth.permissions.Principal` (never a typed role) and
checks it against the permission table (``manage_users``; a person's own API keys need only
``manage_api_keys``). The changes that hand out or widen access (create a user, change a role,
unlock, reset a password) also need a fresh re-authentication (:mod:`lyra.auth.reauth`): the
caller passes the session's last re-authentication time (``reauth_at``: from the signed
identity on the dashboard). Refusals are recorded (``auth.permission_denied``); every change
is recorded with the actor by :class:`~lyra.auth.service.AuthService`.

Password changes: :meth:`AdminService.change_own_password` (the current password is needed;
the person's other sessions end) and :meth:`AdminService.reset_password` (an admin sets a
one-time password *and* a new TOTP secret: the person enrols again; every session ends).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from lyra.auth.apikeys import ApiKeyRecord, NewApiKey
from lyra.auth.passwords import check_password_policy, hash_password, verify_and_update
from lyra.auth.permissions import Action, PermissionDenied, Principal, Role
from lyra.auth.policy import AuthEventKind
from lyra.auth.reauth import ReauthRequired, check_fresh
from lyra.auth.repository import SessionRecord
from lyra.auth.service_types import Enrolment, LoginFailed
from lyra.core.errors import ValidationError

if TYPE_CHECKING:
    from lyra.auth.service import AuthService


@dataclass(frozen=True)
class UserRow:
    """What the admin dashboard lists about an account (nothing secret)."""

    username: str
    role: Role
    locked: bool
    disabled: bool
    failed_attempts: int
    created_at: datetime
    live_sessions: int


class AdminService:
    """The admin functions over one :class:`~lyra.auth.service.AuthService`."""

    def __init__(self, service: AuthService) -> None:
        self.service = service

    # ------------------------------------------------------------------ checks

    def _may(self, actor: Principal, action: Action, what: str) -> None:
        self.service.authorize(actor, action, path=f"admin:{what}")

    def _fresh(self, actor: Principal, reauth_at: datetime | None, what: str) -> None:
        """Refuse (and record) a change that needs a re-authentication the actor lacks."""
        try:
            check_fresh(reauth_at, self.service.now(), Action.MANAGE_USERS, policy=self.service.reauth.policy)
        except ReauthRequired:
            self.service.emit(
                AuthEventKind.PERMISSION_DENIED,
                actor.subject,
                action=Action.MANAGE_USERS.value,
                path=f"admin:{what}",
                role=actor.role.value,
                reason="re-authentication required",
            )
            raise

    # ------------------------------------------------------------------ users

    def list_users(self, actor: Principal) -> list[UserRow]:
        """Every account with its state and how many live sessions it has."""
        self._may(actor, Action.MANAGE_USERS, "list_users")
        now = self.service.now()
        rows = []
        for u in self.service.list_users():
            live = sum(1 for s in self.sessions_of_user(u.username) if self._live(s, now))
            rows.append(
                UserRow(u.username, u.role, u.locked, u.disabled, u.failed_attempts, u.created_at, live)
            )
        return rows

    def create_user(
        self, actor: Principal, username: str, password: str, role: Role | str, *, reauth_at: datetime | None
    ) -> Enrolment:
        """A new account; the enrolment (TOTP secret, recovery codes) is shown once."""
        self._may(actor, Action.MANAGE_USERS, "create_user")
        self._fresh(actor, reauth_at, "create_user")
        return self.service.add_user(username, password, role, actor=actor.subject)

    def change_role(
        self, actor: Principal, username: str, role: Role | str, *, reauth_at: datetime | None
    ) -> None:
        """A new role for ``username`` (their sessions end). Nobody changes their own role:
        the last admin cannot lock everyone out by accident."""
        self._may(actor, Action.MANAGE_USERS, "change_role")
        self._fresh(actor, reauth_at, "change_role")
        if username == actor.subject:
            raise ValidationError("username", username, "you cannot change your own role")
        self.service.set_role(username, role, actor=actor.subject)

    def unlock(self, actor: Principal, username: str, *, reauth_at: datetime | None) -> None:
        """Lift an admin lock or a failed-login lock."""
        self._may(actor, Action.MANAGE_USERS, "unlock")
        self._fresh(actor, reauth_at, "unlock")
        self.service.unlock(username, actor=actor.subject)

    def lock(self, actor: Principal, username: str) -> None:
        """Lock an account now (every session ends). Protective: no re-authentication."""
        self._may(actor, Action.MANAGE_USERS, "lock")
        if username == actor.subject:
            raise ValidationError("username", username, "you cannot lock yourself out")
        self.service.lock(username, actor=actor.subject)

    def reset_password(
        self, actor: Principal, username: str, new_password: str, *, reauth_at: datetime | None
    ) -> Enrolment:
        """Set a one-time password and a **new** TOTP secret (the old authenticator stops
        working: the person enrols again with what is returned). Every session ends."""
        self._may(actor, Action.MANAGE_USERS, "reset_password")
        self._fresh(actor, reauth_at, "reset_password")
        user = self.service._require_user(username)
        pw = check_password_policy(new_password, username=user.username)
        svc = self.service
        svc.users.update(user.username, svc.now(), password_hash=hash_password(pw, iterations=svc.iterations))
        svc.emit(AuthEventKind.PASSWORD_CHANGED, user.username, actor=actor.subject, reason="reset by admin")
        return svc.reset_mfa(user.username, actor=actor.subject)

    def change_own_password(
        self,
        subject: str,
        current: str,
        new: str,
        *,
        keep_session: str | None = None,
        client: str = "unknown",
    ) -> int:
        """The signed-in person's new password (the current one is checked; a wrong one counts
        towards the lockout). Their other sessions end; returns how many."""
        svc = self.service
        at = svc.now()
        key = svc.users.attempt_key(subject)
        state = svc._throttle(key, subject, client, at)
        user = svc.users.get(subject)
        cur = current if isinstance(current, str) and len(current) <= 1024 else ""
        if user is None or not verify_and_update(cur, user.password_hash, iterations=svc.iterations)[0]:
            raise svc._fail(
                AuthEventKind.LOGIN_FAILED, key, state, subject, client, "wrong current password", at, user
            ) from LoginFailed()
        pw = check_password_policy(new, username=subject)
        if pw == cur:
            raise ValidationError("new_password", "<hidden>", "must differ from the current password")
        svc.users.update(subject, at, password_hash=hash_password(pw, iterations=svc.iterations))
        ended = 0
        for s in svc.sessions.sessions_of(subject):
            if s.session_id != keep_session and s.revoked_at is None:
                svc.sessions.revoke_family(s.session_id, at, reason="password changed")
                ended += 1
        svc.emit(AuthEventKind.PASSWORD_CHANGED, subject, actor=subject, client=client, count=ended)
        return ended

    # ------------------------------------------------------------------ sessions

    def _live(self, s: SessionRecord, now: datetime) -> bool:
        policy = self.service.session_policy
        return (
            s.revoked_at is None
            and now - s.last_seen_at < policy.idle_timeout
            and now - s.created_at < policy.absolute_lifetime
        )

    def sessions_of_user(self, username: str) -> list[SessionRecord]:
        """Every login session of ``username``, newest first (no permission check: internal)."""
        return self.service.sessions.sessions_of(username)

    def list_sessions(self, actor: Principal, username: str) -> list[tuple[SessionRecord, bool]]:
        """(session, live?) of ``username``, newest first."""
        self._may(actor, Action.MANAGE_USERS, "list_sessions")
        now = self.service.now()
        return [(s, self._live(s, now)) for s in self.sessions_of_user(username)]

    def revoke_session(self, actor: Principal, session_id: str) -> None:
        """End one login session now (its websockets close within the proxy's check)."""
        self._may(actor, Action.MANAGE_USERS, "revoke_session")
        rec = self.service.sessions.session(session_id)
        if rec is None:
            raise ValidationError("session_id", session_id[:16], "no such session")
        self.service.sessions.revoke_family(session_id, self.service.now(), reason="revoked by admin")
        self.service.emit(
            AuthEventKind.LOGOUT,
            rec.subject,
            actor=actor.subject,
            session_id=session_id,
            reason="revoked by admin",
        )

    # ------------------------------------------------------------------ API keys

    def _key_owner_check(self, actor: Principal, owner: str, what: str) -> None:
        if owner == actor.subject and actor.can(Action.MANAGE_API_KEYS):
            return
        self._may(actor, Action.MANAGE_USERS, what)  # someone else's key: an admin's business

    def list_api_keys(self, actor: Principal, owner: str | None = None) -> list[ApiKeyRecord]:
        """Keys of ``owner`` (an admin: anyone's, or all)."""
        if owner is None:
            self._may(actor, Action.MANAGE_USERS, "list_api_keys")
            return self.service.list_api_keys()
        self._key_owner_check(actor, owner, "list_api_keys")
        return self.service.list_api_keys(owner)

    def create_api_key(
        self, actor: Principal, owner: str, scopes: list[str], *, name: str = "", ttl_days: int = 90
    ) -> NewApiKey:
        """A key for ``owner`` within their role; ``.key`` is shown once."""
        self._key_owner_check(actor, owner, "create_api_key")
        if not 1 <= ttl_days <= 366:
            raise ValidationError("ttl_days", ttl_days, "must be between 1 and 366")
        return self.service.create_api_key(
            owner, scopes, name=name, ttl=timedelta(days=ttl_days), actor=actor.subject
        )

    def _owner_of(self, key_id: str) -> str:
        rec = self.service.keys_repo.get(key_id)
        if rec is None:
            raise ValidationError("key_id", key_id[:16], "no such API key")
        return rec.owner

    def rotate_api_key(self, actor: Principal, key_id: str, *, grace_days: int = 7) -> NewApiKey:
        """A successor key; the old one works ``grace_days`` more."""
        self._key_owner_check(actor, self._owner_of(key_id), "rotate_api_key")
        return self.service.rotate_api_key(key_id, actor=actor.subject, grace=timedelta(days=grace_days))

    def revoke_api_key(self, actor: Principal, key_id: str) -> ApiKeyRecord:
        """Revoke a key now."""
        self._key_owner_check(actor, self._owner_of(key_id), "revoke_api_key")
        return self.service.revoke_api_key(key_id, actor=actor.subject)


__all__ = ["AdminService", "PermissionDenied", "ReauthRequired", "UserRow"]
