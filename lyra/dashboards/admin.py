"""Administration: users (create, role, lock/unlock, password reset with a new TOTP
enrolment), their login sessions (list, revoke) and API keys (create, rotate, revoke).

Served by ``lyra serve`` at ``/admin`` for roles with ``manage_users`` (admin only, per the
permission table). Every action goes through :class:`lyra.auth.admin_service.AdminService` as
the signed-in person (recorded as the actor); creating a user, changing a role, unlocking and
resetting a password also need a fresh re-authentication ("Confirm it is you", within the
last few minutes). Secrets (a new user's TOTP secret and recovery codes, a new API key) are
shown once, as text. Nothing typed is ever rendered as HTML.
"""

from __future__ import annotations

import functools
from typing import Any

import pandas as pd
import panel as pn

from lyra.auth.admin_service import AdminService
from lyra.auth.permissions import Action, Principal, Role, actions_for
from lyra.core.errors import LyraError
from lyra.dashboards.actions import ReauthGate
from lyra.dashboards.base import page
from lyra.dashboards.health import HealthPanel

ROUTE = "admin"
TITLE = "Administration"
REQUIRES = "manage_users"

_TEXT_ONLY = {"html": False, "linkify": False}
_ROLES = [r.value for r in Role]


def _table(frame: pd.DataFrame, name: str) -> pn.widgets.Tabulator:
    return pn.widgets.Tabulator(
        frame,
        disabled=True,
        show_index=False,
        sizing_mode="stretch_width",
        css_classes=[f"lyra-admin-{name}"],
        formatters={c: {"type": "plaintext"} for c in frame.columns},
    )


class AdminView(pn.viewable.Viewer):
    """The admin page for ``actor`` (a notebook may build it with any principal: the service
    checks the permission table on every call)."""

    def __init__(self, admin: AdminService, actor: Principal, gate: ReauthGate,
                 health: HealthPanel | None = None) -> None:
        super().__init__()
        self.health = health  #: the control centre (checks, processes), when served on a home
        self.admin = admin
        self.actor = actor
        self.gate = gate
        self.out = pn.pane.Markdown(
            "", css_classes=["lyra-admin-result"], renderer_options=_TEXT_ONLY, sizing_mode="stretch_width"
        )
        self.users = _table(self._users_frame(), "users")
        self.keys = _table(self._keys_frame(), "keys")
        self.sessions = _table(pd.DataFrame(columns=["session", "created", "last seen", "live"]), "sessions")
        names = self._usernames()
        # users
        self.new_name = pn.widgets.TextInput(label="Username", css_classes=["lyra-new-user"])
        self.new_role = pn.widgets.Select(label="Role", options=_ROLES, value="viewer")
        self.new_pw = pn.widgets.PasswordInput(label="Initial password", css_classes=["lyra-new-password"])
        self.pick = pn.widgets.Select(label="User", options=names, css_classes=["lyra-pick-user"])
        self.role = pn.widgets.Select(label="New role", options=_ROLES, css_classes=["lyra-pick-role"])
        self.reset_pw = pn.widgets.PasswordInput(
            label="One-time password", css_classes=["lyra-reset-password"]
        )
        self.session_pick = pn.widgets.Select(label="Session", options=[])
        # keys
        self.key_owner = pn.widgets.Select(label="Owner", options=names)
        self.key_scopes = pn.widgets.MultiChoice(label="Scopes", options=[a.value for a in Action])
        self.key_name = pn.widgets.TextInput(label="Key name")
        self.key_pick = pn.widgets.Select(label="Key", options=self._key_ids())
        self.pick.param.watch(lambda _e: self._load_sessions(), "value")
        self._load_sessions()

    # ------------------------------------------------------------------ data

    def _usernames(self) -> list[str]:
        return [u.username for u in self.admin.list_users(self.actor)]

    def _users_frame(self) -> pd.DataFrame:
        rows = [
            {
                "user": u.username,
                "role": u.role.value,
                "locked": "yes" if u.locked else "",
                "failed logins": u.failed_attempts,
                "live sessions": u.live_sessions,
                "created (UTC)": u.created_at.strftime("%Y-%m-%d %H:%M"),
            }
            for u in self.admin.list_users(self.actor)
        ]
        return pd.DataFrame(
            rows, columns=["user", "role", "locked", "failed logins", "live sessions", "created (UTC)"]
        )

    def _keys_frame(self) -> pd.DataFrame:
        now = self.admin.service.now()
        rows = [
            {
                "key": k.key_id,
                "owner": k.owner,
                "name": k.name,
                "scopes": ", ".join(sorted(a.value for a in k.scopes)),
                "status": k.status(now).value,
                "expires (UTC)": k.expires_at.strftime("%Y-%m-%d"),
            }
            for k in self.admin.list_api_keys(self.actor)
        ]
        return pd.DataFrame(rows, columns=["key", "owner", "name", "scopes", "status", "expires (UTC)"])

    def _key_ids(self) -> list[str]:
        return [k.key_id for k in self.admin.list_api_keys(self.actor)]

    def _load_sessions(self) -> None:
        user = self.pick.value
        rows = self.admin.list_sessions(self.actor, user) if user else []
        self.sessions.value = pd.DataFrame(
            [
                {
                    "session": s.session_id,
                    "created": s.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                    "last seen": s.last_seen_at.strftime("%Y-%m-%d %H:%M:%S"),
                    "live": "yes" if live else "",
                }
                for s, live in rows
            ],
            columns=["session", "created", "last seen", "live"],
        )
        self.session_pick.options = [s.session_id for s, live in rows if live]

    def reload(self) -> None:
        """Re-read users, keys and the picked user's sessions."""
        names = self._usernames()
        self.users.value = self._users_frame()
        self.keys.value = self._keys_frame()
        self.pick.options = names
        self.key_owner.options = names
        self.key_pick.options = self._key_ids()
        self._load_sessions()

    # ------------------------------------------------------------------ actions

    def _do(self, what: str, fn: Any) -> None:
        try:
            message = fn()
        except LyraError as exc:
            text = str(exc)
            if "re-authenticate" in text:
                text = (
                    f"{what} needs you to confirm it is you (password and code) within the last few "
                    f"minutes: use 'Confirm it is you' ({self.gate.link}), then try again."
                )
            self.out.object = f"Not done: {text}"
            return
        self.out.object = message
        self.reload()

    def create_user(self, _e: Any = None) -> None:
        """Create the user typed in; show the enrolment once."""

        def go() -> str:
            enrol = self.admin.create_user(
                self.actor,
                self.new_name.value or "",
                self.new_pw.value or "",
                self.new_role.value,
                reauth_at=self.gate.reauth_at,
            )
            self.new_pw.value = ""
            return (
                f"Created {enrol.username} ({enrol.role.value}). Give them, once: TOTP secret "
                f"{enrol.totp_secret} (or the URI {enrol.provisioning_uri}); recovery codes "
                f"{', '.join(enrol.recovery_codes)}."
            )

        self._do("Creating a user", go)

    def change_role(self, _e: Any = None) -> None:
        """Give the picked user the picked role (their sessions end)."""

        def go() -> str:
            self.admin.change_role(
                self.actor, self.pick.value, self.role.value, reauth_at=self.gate.reauth_at
            )
            return f"{self.pick.value} is now {self.role.value}; their sessions have ended."

        self._do("A role change", go)

    def unlock(self, _e: Any = None) -> None:
        """Unlock the picked user."""

        def go() -> str:
            self.admin.unlock(self.actor, self.pick.value, reauth_at=self.gate.reauth_at)
            return f"{self.pick.value} is unlocked."

        self._do("Unlocking", go)

    def lock(self, _e: Any = None) -> None:
        """Lock the picked user now."""

        def go() -> str:
            self.admin.lock(self.actor, self.pick.value)
            return f"{self.pick.value} is locked; their sessions have ended."

        self._do("Locking", go)

    def reset_password(self, _e: Any = None) -> None:
        """One-time password and a new TOTP enrolment for the picked user."""

        def go() -> str:
            enrol = self.admin.reset_password(
                self.actor, self.pick.value, self.reset_pw.value or "", reauth_at=self.gate.reauth_at
            )
            self.reset_pw.value = ""
            return (
                f"Password of {enrol.username} reset; they must enrol again: TOTP secret "
                f"{enrol.totp_secret}; recovery codes {', '.join(enrol.recovery_codes)}."
            )

        self._do("A password reset", go)

    def revoke_session(self, _e: Any = None) -> None:
        """End the picked session."""

        def go() -> str:
            if not self.session_pick.value:
                raise LyraError("no live session picked")
            self.admin.revoke_session(self.actor, self.session_pick.value)
            return f"Session {self.session_pick.value} of {self.pick.value} ended."

        self._do("Revoking a session", go)

    def create_key(self, _e: Any = None) -> None:
        """A key for the picked owner with the picked scopes; shown once."""

        def go() -> str:
            new = self.admin.create_api_key(
                self.actor, self.key_owner.value, list(self.key_scopes.value), name=self.key_name.value or ""
            )
            return f"Key {new.record.key_id} for {new.record.owner} (shown once): {new.key}"

        self._do("Creating a key", go)

    def rotate_key(self, _e: Any = None) -> None:
        """A successor for the picked key (the old one works 7 more days)."""

        def go() -> str:
            new = self.admin.rotate_api_key(self.actor, self.key_pick.value)
            return f"Key {self.key_pick.value} rotated: new key {new.record.key_id} (shown once): {new.key}"

        self._do("Rotating a key", go)

    def revoke_key(self, _e: Any = None) -> None:
        """Revoke the picked key now."""

        def go() -> str:
            rec = self.admin.revoke_api_key(self.actor, self.key_pick.value)
            return f"Key {rec.key_id} of {rec.owner} revoked."

        self._do("Revoking a key", go)

    # ------------------------------------------------------------------ layout

    def _button(self, label: str, css: str, fn: Any, color: str = "primary") -> pn.widgets.Button:
        b = pn.widgets.Button(label=label, button_type=color, css_classes=[css])
        b.on_click(fn)
        return b

    def __panel__(self) -> pn.viewable.Viewable:
        own = ", ".join(sorted(a.value for a in actions_for(self.actor.role)))[:400]
        users = pn.Column(
            pn.pane.Markdown("### Users"),
            self.users,
            pn.Row(
                self.new_name,
                self.new_role,
                self.new_pw,
                self._button("Create user", "lyra-create-user", self.create_user),
            ),
            pn.Row(
                self.pick,
                self.role,
                self._button("Change role", "lyra-change-role", self.change_role),
                self._button("Unlock", "lyra-unlock", self.unlock, "success"),
                self._button("Lock", "lyra-lock", self.lock, "warning"),
            ),
            pn.Row(
                self.reset_pw,
                self._button("Reset password and TOTP", "lyra-reset", self.reset_password, "danger"),
            ),
            pn.pane.Markdown("#### Login sessions of the picked user"),
            self.sessions,
            pn.Row(
                self.session_pick,
                self._button("Revoke session", "lyra-revoke-session", self.revoke_session, "warning"),
            ),
        )
        keys = pn.Column(
            pn.pane.Markdown("### API keys"),
            self.keys,
            pn.Row(
                self.key_owner,
                self.key_scopes,
                self.key_name,
                self._button("Create key", "lyra-create-key", self.create_key),
            ),
            pn.Row(
                self.key_pick,
                self._button("Rotate key", "lyra-rotate-key", self.rotate_key),
                self._button("Revoke key", "lyra-revoke-key", self.revoke_key, "danger"),
            ),
        )
        return pn.Column(
            pn.pane.Markdown(
                f"Acting as **{self.actor.subject}** ({self.actor.role.value}). Creating users, role "
                "changes, unlocks and password resets need a fresh confirmation:",
                renderer_options=_TEXT_ONLY,
            ),
            pn.Row(self.gate.widget(), pn.pane.HTML('<a href="/auth/password">Change my password</a>')),
            self.out,
            users,
            keys,
            *([self.health] if self.health is not None else []),
            pn.pane.Markdown(f"Your role may: {own}", renderer_options=_TEXT_ONLY),
            sizing_mode="stretch_width",
            name="admin",
            css_classes=["lyra-admin"],
        )


@functools.cache
def _admin() -> AdminService:
    # One service (database pool, secret box, event log) per Panel process.
    from lyra.auth.service import AuthService
    from lyra.settings import load_settings

    return AdminService(AuthService.from_settings(load_settings(), need_signing_key=False))


@functools.cache
def _home() -> tuple[Any, Any]:
    # One engine (connection pool) per Panel process, for the control centre's reads.
    from lyra.bootstrap import open_engine

    return open_engine()


def create_app() -> pn.template.BootstrapTemplate:
    """A fresh admin page for one browser session (the Panel server checked ``manage_users``)."""
    from lyra.auth.panel_auth import current_principal

    who = current_principal()
    if who is None:  # not through lyra serve: nothing to act as
        return page(TITLE, pn.pane.Markdown("Sign in through `lyra serve` to administer."), route=ROUTE)
    settings, engine = _home()
    view = AdminView(_admin(), who, ReauthGate(ROUTE), HealthPanel(settings, engine))
    return page(TITLE, view, route=ROUTE)
