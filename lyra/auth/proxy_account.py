"""The signed-in person's own API keys: ``/auth/keys`` (a proxy page, like login: no script,
every value escaped, forms with CSRF and the Origin check).

Any role whose table row has ``manage_api_keys`` may list, create (scopes within the role;
the key is shown once) and revoke **their own** keys here; everyone else gets 403. Keys of
other people are the admin dashboard's business (``apps/admin.py``). Every change goes through
:class:`lyra.auth.admin_service.AdminService` with the person as the actor.
"""

from __future__ import annotations

import html
from typing import TYPE_CHECKING

from aiohttp import web

from lyra.auth.admin_service import AdminService
from lyra.auth.permissions import Action, PermissionDenied, Principal, actions_for
from lyra.core.errors import LyraError

if TYPE_CHECKING:
    from lyra.auth.proxy import AuthProxy

KEYS_PATH = "/auth/keys"


class AccountRoutes:
    """``GET/POST /auth/keys`` (registered by :class:`~lyra.auth.proxy.AuthProxy`)."""

    def __init__(self, proxy: AuthProxy) -> None:
        self.p = proxy
        self.admin = AdminService(proxy.service)

    def routes(self, r: web.UrlDispatcher) -> None:
        """Register the handlers on ``r``."""
        r.add_get(KEYS_PATH, self._keys_form)
        r.add_post(KEYS_PATH, self._keys_post)

    def _inner(self, subject: str, role_actions: list[str], message: str = "", ok: bool = False) -> str:
        note = f'<p class="{"ok" if ok else "err"}">{html.escape(message)}</p>' if message else ""
        now = self.p.service.now()
        rows = (
            "".join(
                f"<li><code>{html.escape(k.key_id)}</code> {html.escape(k.name)} "
                f"({html.escape(', '.join(sorted(a.value for a in k.scopes)))}; {k.status(now).value}, "
                f"expires {k.expires_at:%Y-%m-%d})</li>"
                for k in self.p.service.list_api_keys(subject)
            )
            or "<li>No keys yet.</li>"
        )
        boxes = "".join(
            f'<label><input type="checkbox" name="scope" value="{html.escape(a)}"> {html.escape(a)}</label>'
            for a in role_actions
        )
        return (
            f'<h1>Your API keys</h1>{note}<ul id="keys">{rows}</ul>'
            f'<form method="post" action="{KEYS_PATH}">{{csrf}}<input type="hidden" name="op" value="create">'
            '<label for="name">Name</label><input id="name" name="name" maxlength="64">'
            f"<p>Scopes (within your role):</p>{boxes}"
            '<button type="submit" id="create-key">Create key</button></form>'
            f'<form method="post" action="{KEYS_PATH}">{{csrf}}<input type="hidden" name="op" value="revoke">'
            '<label for="key_id">Key id to revoke</label><input id="key_id" name="key_id" maxlength="64">'
            '<button type="submit" id="revoke-key">Revoke key</button></form><p><a href="/">Back</a></p>'
        )

    async def _who(self, request: web.Request) -> tuple[Principal, list[str]] | web.StreamResponse:
        claims, _pair = await self.p._session_claims(request)
        if claims is None:
            return self.p._unauthenticated(request)
        principal = self.p.principal_of(claims)
        if not principal.can(Action.MANAGE_API_KEYS):
            try:
                await self.p._run(self.p.service.authorize, principal, Action.MANAGE_API_KEYS, path=KEYS_PATH)
            except PermissionDenied:
                return self.p._error(request, 403, "Your role may not manage API keys.")
        return principal, sorted(a.value for a in actions_for(claims.role))

    async def _keys_form(self, request: web.Request) -> web.StreamResponse:
        who = await self._who(request)
        if isinstance(who, web.StreamResponse):
            return who
        return self.p._form_page(request, "API keys · Lyra", self._inner(who[0].subject, who[1]))

    async def _keys_post(self, request: web.Request) -> web.StreamResponse:
        who = await self._who(request)
        if isinstance(who, web.StreamResponse):
            return who
        actor, role_actions = who
        subject = actor.subject
        page = "API keys · Lyra"
        if request.content_type != "application/x-www-form-urlencoded":
            return self.p._error(request, 400, "expected a form")
        data = await request.post()
        scopes = [v for v in data.getall("scope", []) if isinstance(v, str)][: len(role_actions)]
        form = {k: v for k, v in data.items() if k != "scope" and isinstance(v, str) and len(v) <= 256}
        if not self.p._csrf_ok(request, form):
            return self.p._form_page(
                request, page, self._inner(subject, role_actions, "The form expired."), 403
            )
        try:
            if form.get("op") == "create":
                name = form.get("name", "")
                new = await self.p._run(self.admin.create_api_key, actor, subject, scopes, name=name)
                message = f"Key {new.record.key_id} created. Copy it now, it is shown once: {new.key}"
            elif form.get("op") == "revoke":
                rec = await self.p._run(self.admin.revoke_api_key, actor, form.get("key_id", "").strip())
                message = f"Key {rec.key_id} revoked."
            else:
                return self.p._error(request, 400, "unknown operation")
        except (LyraError, PermissionDenied) as exc:
            text = self._inner(subject, role_actions, f"Not done: {str(exc)[:200]}")
            return self.p._form_page(request, page, text, 400)
        return self.p._form_page(request, page, self._inner(subject, role_actions, message, ok=True))


__all__ = ["KEYS_PATH", "AccountRoutes"]
