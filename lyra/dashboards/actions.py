"""The risk manager's actions on the risk page: cancel an open order of the session, re-arm a
halted session (or everything). Shown only to roles the permission table allows
(``cancel_order``, ``rearm_kill_switch``); each action checks the signed-in principal again in
:mod:`lyra.readside.actions` and records who did it. Result lines render no HTML.

Re-arming (and pulling the kill switch, :class:`ReauthGate`) needs a fresh re-authentication
under ``lyra serve``: password and code on ``/auth/reauth`` within the last few minutes
(:mod:`lyra.auth.reauth`). Outside ``lyra serve`` (a notebook) there is no login to repeat.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import panel as pn

from lyra.auth.permissions import Action, Principal
from lyra.auth.reauth import REAUTH_PATH, ReauthPolicy, ReauthRequired, check_fresh
from lyra.core.errors import LyraError
from lyra.readside import ManualDesk, ReadModel
from lyra.readside.actions import rearm_kill_switch

_TEXT_ONLY = {"html": False, "linkify": False}  # HTML shown as text; no auto-links


class ReauthGate:
    """The page's view of its session's last re-authentication, read when the page is built
    (the proxy signs it into the identity Panel sees), checked when a button is pressed."""

    def __init__(self, route: str, *, served: bool | None = None) -> None:
        from lyra.auth.panel_auth import current_claims

        claims = current_claims()
        self.route = route
        self.served = claims is not None if served is None else served
        self.reauth_at = claims.reauth_at if claims is not None else None
        self.policy = ReauthPolicy.from_env()

    @property
    def link(self) -> str:
        """Where to re-authenticate and come back to this page."""
        return f"{REAUTH_PATH}?next=/{self.route}"

    def refusal(self, action: Action, *, notional: Decimal | None = None) -> str | None:
        """None when ``action`` may go ahead; else the text-only reason (with the link)."""
        if not self.served:
            return None
        try:
            check_fresh(self.reauth_at, datetime.now(UTC), action, notional=notional, policy=self.policy)
        except ReauthRequired:
            minutes = int(self.policy.window.total_seconds() // 60)
            return (
                f"Not done: {action.value} needs you to confirm it is you (password and code) "
                f"within the last {minutes} minutes. Use the link 'Confirm it is you' ({self.link}), "
                "then try again."
            )
        return None

    def widget(self) -> pn.viewable.Viewable:
        """A fixed link to the re-authentication page (no input in it)."""
        return pn.pane.HTML(
            f'<a class="lyra-reauth-link" href="{self.link}">Confirm it is you</a>',
            css_classes=["lyra-reauth"],
        )


class RiskActions(pn.viewable.Viewer):
    """Cancel and re-arm controls for ``principal`` (empty for roles allowed neither)."""

    def __init__(self, rm: ReadModel, principal: Principal | None, *, jsonl_path: Path | None = None) -> None:
        super().__init__()
        self.rm = rm
        self.principal = principal
        self.jsonl_path = jsonl_path
        self.session_id = ""
        self.gate = ReauthGate("risk")
        self.can_cancel = principal is not None and principal.can(Action.CANCEL_ORDER)
        self.can_rearm = principal is not None and principal.can(Action.REARM_KILL_SWITCH)
        self._out = pn.pane.Markdown(
            "",
            name="risk-action-result",
            css_classes=["lyra-risk-action-result"],
            renderer_options=_TEXT_ONLY,
        )
        parts: list[Any] = [pn.pane.Markdown("### Risk actions")]
        self._c_pick = pn.widgets.Select(label="Cancel an open order", options=[], width=300)
        if self.can_cancel:
            cancel = pn.widgets.Button(
                label="Cancel order", color="warning", css_classes=["lyra-risk-cancel"]
            )
            cancel.on_click(self.cancel)
            parts += [self._c_pick, cancel]
        self._r_scope = pn.widgets.RadioButtonGroup(
            options=["this session", "everything"], value="this session"
        )
        self._r_reason = pn.widgets.TextInput(
            label="Re-arm reason (required)", placeholder="why trading may resume"
        )
        if self.can_rearm:
            rearm = pn.widgets.Button(label="Re-arm trading", color="success", css_classes=["lyra-rearm"])
            rearm.on_click(self.rearm)
            parts += [self._r_scope, self._r_reason, rearm]
        if self.gate.served and principal is not None and (
            self.can_rearm or principal.can(Action.PULL_KILL_SWITCH)
        ):
            parts.append(self.gate.widget())  # both need a fresh re-authentication
        parts.append(self._out)
        self._layout = pn.Column(
            *parts,
            name="risk-actions",
            css_classes=["lyra-risk-actions"],
            visible=self.can_cancel or self.can_rearm,
        )

    def refresh(self, session_id: str) -> None:
        """Show the open orders of ``session_id`` in the cancel picker."""
        self.session_id = session_id
        if not self.can_cancel or not session_id:
            return
        orders = self.rm.orders([session_id], open_only=True)
        ids = [] if orders.empty else [str(c) for c in orders["client_order_id"]]
        if list(self._c_pick.options) != ids:
            self._c_pick.options = ids
        if self._c_pick.value not in ids:
            self._c_pick.value = ids[0] if ids else None

    def cancel(self, _e: Any = None) -> None:
        """Ask the running session to cancel the picked order (as the signed-in person)."""
        cid = self._c_pick.value
        if self.principal is None or not cid:
            self._out.object = "Not done: no open order picked."
            return
        try:
            desk = ManualDesk(self.rm.engine, {}, session_id=self.session_id, jsonl_path=self.jsonl_path)
            cmd = desk.cancel(self.principal, cid, reason="risk page")
        except LyraError as exc:
            self._out.object = f"Not done: {exc}"
            return
        self._out.object = f"Cancel of {cid} sent to session {self.session_id} (command {cmd.id})."

    def rearm(self, _e: Any = None) -> None:
        """Re-arm this session (or everything) as the signed-in person."""
        if self.principal is None:
            return
        refused = self.gate.refusal(Action.REARM_KILL_SWITCH)
        if refused:
            self._out.object = refused
            return
        sid = None if self._r_scope.value == "everything" else (self.session_id or None)
        try:
            st = rearm_kill_switch(
                self.rm.engine,
                self.principal,
                session_id=sid,
                reason=self._r_reason.value or "",
                jsonl_path=self.jsonl_path,
            )
        except LyraError as exc:
            self._out.object = f"Not done: {exc}"
            return
        self._out.object = f"Re-armed {st.scope} by {st.actor}: {st.state.value}."

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout
