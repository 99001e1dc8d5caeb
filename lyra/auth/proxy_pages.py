"""The auth proxy's own pages and endpoints: login (password, then TOTP or a recovery code),
logout, the index of dashboards, the JSON login API and the small ``/api/*`` endpoints.

Our pages carry no script at all (:data:`AUTH_CSP`), every value in them is escaped, forms
carry a CSRF token bound to a cookie and state-changing requests must come from our own
Origin. Error messages never say which credential was wrong and never echo input.
"""

from __future__ import annotations

import hmac
import html
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from lyra.auth.apikeys import InvalidApiKey
from lyra.auth.panel_auth import COOKIE_CSRF, COOKIE_MFA
from lyra.auth.permissions import Action, PermissionDenied, Principal
from lyra.auth.policy import LoginThrottled
from lyra.auth.service import LoginFailed
from lyra.auth.tokens import InvalidToken, TokenPair
from lyra.core.errors import ValidationError

if TYPE_CHECKING:
    from lyra.auth.proxy import AuthProxy

#: Our own pages: no script at all, one stylesheet.
AUTH_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


class LoginBody(BaseModel):
    """``POST /auth/api/login`` JSON body; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=128)
    password: str = Field(max_length=1024)


class ReauthBody(BaseModel):
    """``POST /auth/api/reauth`` JSON body (with the session's ``X-Lyra-CSRF``)."""

    model_config = ConfigDict(extra="forbid")
    password: str = Field(max_length=1024)
    code: str = Field(max_length=16)


class MfaBody(BaseModel):
    """``POST /auth/api/mfa`` JSON body; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    ticket: str = Field(max_length=1024)
    code: str = Field(max_length=64)


# --------------------------------------------------------------------------- pages

_CSS = """
body{background:#15181d;color:#dde3ea;font:15px system-ui,sans-serif;margin:0}
main{max-width:380px;margin:12vh auto;padding:28px;background:#1f242b;border-radius:8px}
h1{font-size:20px;margin:0 0 18px}label{display:block;margin:12px 0 4px}
input{width:100%;box-sizing:border-box;padding:9px;border-radius:4px;border:1px solid #3a424d;
background:#111418;color:#dde3ea}button{margin-top:18px;width:100%;padding:10px;border:0;
border-radius:4px;background:#4f8cc9;color:#fff;font-weight:600;cursor:pointer}
.err{background:#4a1f24;padding:8px 10px;border-radius:4px}.ok{background:#1f3b2a;padding:8px 10px}
ul{padding-left:20px}a{color:#8cbcf0}
"""


_FAVICON = (
    b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 16 16">'
    b'<circle cx="8" cy="8" r="7" fill="#4f8cc9"/></svg>'
)


def page(title: str, body: str, status: int = 200) -> web.Response:
    doc = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        '</title><meta name="viewport" content="width=device-width,initial-scale=1">'
        '<link rel="stylesheet" href="/auth/static/lyra.css"></head>'
        f"<body><main>{body}</main></body></html>"
    )
    resp = web.Response(text=doc, status=status, content_type="text/html")
    resp.headers["Content-Security-Policy"] = AUTH_CSP
    resp.headers["Cache-Control"] = "no-store"
    return resp


def redirect(location: str) -> web.Response:
    """A 303 See Other (a plain response, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def safe_next(value: str | None) -> str:
    """Only same-site relative paths of printable ASCII are followed after login (no open
    redirect, nothing that could break the redirect after the session is created)."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    # Printable ASCII only: control characters, DEL and anything non-ASCII (which cannot go
    # into a Location header as is) mean "go home", before any session is created.
    if any(not 33 <= ord(c) <= 126 for c in value) or value.startswith("/auth/"):
        return "/"
    return value


def is_page(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


class LoginRoutes:
    """The handlers of the proxy's own pages and API (registered by :class:`AuthProxy`)."""

    def __init__(self, proxy: AuthProxy) -> None:
        self.p = proxy

    def routes(self, r: web.UrlDispatcher) -> None:
        """Register every handler on ``r``."""
        r.add_get("/auth/static/lyra.css", self._css)
        r.add_get("/auth/health", self._health)
        r.add_get("/favicon.ico", self._favicon)
        r.add_get("/auth/login", self._login_form)
        r.add_post("/auth/login", self._login_post)
        r.add_get("/auth/mfa", self._mfa_form)
        r.add_post("/auth/mfa", self._mfa_post)
        r.add_get("/auth/logout", self._logout_form)
        r.add_post("/auth/logout", self._logout_post)
        r.add_post("/auth/api/login", self._api_login)
        r.add_post("/auth/api/mfa", self._api_mfa)
        r.add_get("/auth/reauth", self._reauth_form)
        r.add_post("/auth/reauth", self._reauth_post)
        r.add_post("/auth/api/reauth", self._api_reauth)
        r.add_get("/auth/password", self._password_form)
        r.add_post("/auth/password", self._password_post)
        r.add_get("/api/whoami", self._whoami)
        r.add_post("/api/ping-order", self._ping_order)
        r.add_get("/", self._index)

    async def _css(self, _request: web.Request) -> web.Response:
        return web.Response(text=_CSS, content_type="text/css", headers={"Cache-Control": "max-age=3600"})

    async def _favicon(self, _request: web.Request) -> web.Response:
        # Browsers ask before login; an empty icon avoids a 401 in the console.
        return web.Response(
            body=_FAVICON, content_type="image/svg+xml", headers={"Cache-Control": "max-age=86400"}
        )

    async def _health(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    def _login_inner(self, nxt: str, message: str = "") -> str:
        err = f'<p class="err">{html.escape(message)}</p>' if message else ""
        return (
            f"<h1>Sign in to Lyra</h1>{err}"
            f'<form method="post" action="/auth/login?next={html.escape(quote(nxt, safe="/"))}">{{csrf}}'
            '<label for="username">Username</label><input id="username" name="username" '
            'autocomplete="username" maxlength="128" required autofocus>'
            '<label for="password">Password</label><input id="password" name="password" type="password" '
            'autocomplete="current-password" maxlength="1024" required>'
            '<button type="submit">Continue</button></form>'
        )

    async def _login_form(self, request: web.Request) -> web.Response:
        nxt = safe_next(request.query.get("next"))
        msg = "You have been signed out." if "bye" in request.query else ""
        return self.p._form_page(request, "Sign in · Lyra", self._login_inner(nxt, msg))

    async def _login_post(self, request: web.Request) -> web.StreamResponse:
        nxt = safe_next(request.query.get("next"))
        form = await self.p._form(request)
        if form is None or not self.p._csrf_ok(request, form):
            return self.p._form_page(
                request, "Sign in · Lyra", self._login_inner(nxt, "The form expired; please try again."), 403
            )
        try:
            challenge = await self.p._run(
                self.p.service.login_password,
                form.get("username", ""),
                form.get("password", ""),
                client=self.p._client_ip(request),
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            message = login_message(exc)
            return self.p._form_page(request, "Sign in · Lyra", self._login_inner(nxt, message), status)
        resp = redirect("/auth/mfa?next=" + quote(nxt, safe="/"))
        self.p._cookie(resp, COOKIE_MFA, challenge.ticket, 300, path="/auth")
        return resp

    def _mfa_inner(self, nxt: str, message: str = "") -> str:
        err = f'<p class="err">{html.escape(message)}</p>' if message else ""
        return (
            f"<h1>Two-factor code</h1>{err}"
            f'<form method="post" action="/auth/mfa?next={html.escape(quote(nxt, safe="/"))}">{{csrf}}'
            '<label for="code">6-digit code from your authenticator (or a recovery code)</label>'
            '<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="64" '
            'required autofocus><button type="submit">Sign in</button></form>'
        )

    async def _mfa_form(self, request: web.Request) -> web.Response:
        nxt = safe_next(request.query.get("next"))
        if not self.p.read_cookie(request, COOKIE_MFA):
            raise web.HTTPSeeOther("/auth/login")
        return self.p._form_page(request, "Code · Lyra", self._mfa_inner(nxt))

    async def _mfa_post(self, request: web.Request) -> web.StreamResponse:
        nxt = safe_next(request.query.get("next"))
        form = await self.p._form(request)
        if form is None or not self.p._csrf_ok(request, form):
            return self.p._form_page(request, "Code · Lyra", self._mfa_inner(nxt, "The form expired."), 403)
        ticket = self.p.read_cookie(request, COOKIE_MFA)
        try:
            pair = await self.p._run(
                self.p.service.login_mfa, ticket, form.get("code", ""), client=self.p._client_ip(request)
            )
        except (LoginFailed, LoginThrottled) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401
            if isinstance(exc, LoginFailed) and not ticket:
                raise web.HTTPSeeOther("/auth/login") from None
            return self.p._form_page(request, "Code · Lyra", self._mfa_inner(nxt, login_message(exc)), status)
        resp = redirect(nxt)
        self.p._set_tokens(resp, pair)
        self.p._drop_cookie(resp, COOKIE_MFA, path="/auth")
        # A new login session, a new form nonce: nothing from before the login carries over.
        self.p._drop_cookie(resp, COOKIE_CSRF, path="/auth")
        return resp

    # ------------------------------------------------------------------ re-authentication

    def _reauth_inner(self, nxt: str, who: str, message: str = "") -> str:
        err = f'<p class="err">{html.escape(message)}</p>' if message else ""
        minutes = int(self.p.service.reauth.policy.window.total_seconds() // 60)
        return (
            f"<h1>Confirm it is you</h1>{err}<p>Signed in as <b>{html.escape(who)}</b>. The next "
            f"step (kill switch, re-arm, user management, large orders) needs your password and a "
            f"code again; it stays confirmed for {minutes} minutes.</p>"
            f'<form method="post" action="/auth/reauth?next={html.escape(quote(nxt, safe="/"))}">{{csrf}}'
            '<label for="password">Password</label><input id="password" name="password" type="password" '
            'autocomplete="current-password" maxlength="1024" required autofocus>'
            '<label for="code">6-digit code from your authenticator</label>'
            '<input id="code" name="code" inputmode="numeric" autocomplete="one-time-code" maxlength="16" '
            'required><button type="submit" id="confirm-reauth">Confirm</button></form>'
        )

    async def _reauth_form(self, request: web.Request) -> web.StreamResponse:
        nxt = safe_next(request.query.get("next"))
        claims, pair = await self.p._session_claims(request)
        if claims is None:
            return self.p._unauthenticated(request)
        resp = self.p._form_page(request, "Confirm · Lyra", self._reauth_inner(nxt, claims.subject))
        if pair is not None:
            self.p._set_tokens(resp, pair)
        return resp

    async def _reauth_post(self, request: web.Request) -> web.StreamResponse:
        nxt = safe_next(request.query.get("next"))
        claims, pair = await self.p._session_claims(request)
        if claims is None:
            return self.p._unauthenticated(request)
        form = await self.p._form(request)
        if form is None or not self.p._csrf_ok(request, form):
            inner = self._reauth_inner(nxt, claims.subject, "The form expired; please try again.")
            return self.p._form_page(request, "Confirm · Lyra", inner, 403)
        try:
            await self.p._run(
                self.p.service.reauth.confirm,
                claims.session_id,
                claims.subject,
                form.get("password", ""),
                form.get("code", ""),
                client=self.p._client_ip(request),
            )
        except (LoginFailed, LoginThrottled) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401
            inner = self._reauth_inner(nxt, claims.subject, login_message(exc))
            return self.p._form_page(request, "Confirm · Lyra", inner, status)
        except InvalidToken:
            return self.p._unauthenticated(request)
        resp = redirect(nxt)
        if pair is not None:
            self.p._set_tokens(resp, pair)
        return resp

    async def _api_reauth(self, request: web.Request) -> web.Response:
        """Re-authenticate a browser session (JSON; needs the session's CSRF header)."""
        p, pair, session_id = await self._principal(request, state_changing=True)
        if session_id is None:
            return web.json_response({"error": "API keys cannot re-authenticate"}, status=400)
        try:
            body = await self._json(request, ReauthBody)
            at = await self.p._run(
                self.p.service.reauth.confirm,
                session_id,
                p.subject,
                body.password,
                body.code,
                client=self.p._client_ip(request),
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            return web.json_response({"error": login_message(exc)}, status=status)
        except InvalidToken:
            return web.json_response({"error": "authentication required"}, status=401)
        until = at + self.p.service.reauth.policy.window
        resp = web.json_response({"fresh_until": until.isoformat()}, headers={"Cache-Control": "no-store"})
        if pair is not None:
            self.p._set_tokens(resp, pair)
        return resp

    # ------------------------------------------------------------------ own password

    @staticmethod
    def _password_inner(who: str, message: str = "", ok: bool = False) -> str:
        note = f'<p class="{"ok" if ok else "err"}">{html.escape(message)}</p>' if message else ""
        return (
            f"<h1>Change your password</h1>{note}<p>Signed in as <b>{html.escape(who)}</b>. Your "
            "other sessions end when the password changes.</p>"
            '<form method="post" action="/auth/password">{csrf}'
            '<label for="current">Current password</label><input id="current" name="current" '
            'type="password" autocomplete="current-password" maxlength="1024" required autofocus>'
            '<label for="new">New password (12 characters or more)</label><input id="new" name="new" '
            'type="password" autocomplete="new-password" maxlength="1024" required>'
            '<button type="submit" id="change-password">Change password</button></form>'
            '<p><a href="/">Back</a></p>'
        )

    async def _password_form(self, request: web.Request) -> web.StreamResponse:
        claims, pair = await self.p._session_claims(request)
        if claims is None:
            return self.p._unauthenticated(request)
        resp = self.p._form_page(request, "Password · Lyra", self._password_inner(claims.subject))
        if pair is not None:
            self.p._set_tokens(resp, pair)
        return resp

    async def _password_post(self, request: web.Request) -> web.StreamResponse:
        from lyra.auth.admin_service import AdminService

        claims, _pair = await self.p._session_claims(request)
        if claims is None:
            return self.p._unauthenticated(request)
        form = await self.p._form(request)
        if form is None or not self.p._csrf_ok(request, form):
            inner = self._password_inner(claims.subject, "The form expired; please try again.")
            return self.p._form_page(request, "Password · Lyra", inner, 403)
        try:
            ended = await self.p._run(
                AdminService(self.p.service).change_own_password,
                claims.subject,
                form.get("current", ""),
                form.get("new", ""),
                keep_session=claims.session_id,
                client=self.p._client_ip(request),
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:  # PasswordRejected included
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            inner = self._password_inner(claims.subject, login_message(exc))
            return self.p._form_page(request, "Password · Lyra", inner, status)
        message = f"Password changed; {ended} other session(s) ended."
        done = self._password_inner(claims.subject, message, ok=True)
        return self.p._form_page(request, "Password · Lyra", done)

    async def _logout_form(self, request: web.Request) -> web.StreamResponse:
        inner = (
            '<h1>Sign out</h1><form method="post" action="/auth/logout">{csrf}'
            '<button type="submit" id="confirm-logout">Sign out</button></form>'
        )
        return self.p._form_page(request, "Sign out · Lyra", inner)

    async def _logout_post(self, request: web.Request) -> web.StreamResponse:
        form = await self.p._form(request)
        if form is None or not self.p._csrf_ok(request, form):
            return self.p._error(request, 403, "The form expired; please try again.")
        claims, _pair = await self.p._session_claims(request)
        if claims is not None:
            await self.p._run(
                self.p.service.logout, claims.session_id, claims.subject, client=self.p._client_ip(request)
            )
        resp = redirect("/auth/login?bye=1")
        self.p._clear_tokens(resp)
        self.p._drop_cookie(resp, COOKIE_CSRF, path="/auth")
        return resp

    async def _index(self, request: web.Request) -> web.StreamResponse:
        principal, _access, pair = await self.p._session(request)
        if principal is None:
            return self.p._unauthenticated(request)
        allowed = [a for a in self.p.config.apps if principal.can(a.requires)]
        items = (
            "".join(
                f'<li><a class="app-link" href="/{html.escape(a.route)}">{html.escape(a.title)}</a></li>'
                for a in allowed
            )
            or "<li>No dashboards for your role.</li>"
        )
        keys = ' · <a href="/auth/keys">API keys</a>' if principal.can(Action.MANAGE_API_KEYS) else ""
        resp = page(
            "Lyra",
            f"<h1>Lyra dashboards</h1><p>Signed in as <b>{html.escape(principal.subject)}"
            f"</b> ({principal.role.value})</p><ul>{items}</ul>"
            f'<p><a href="/auth/password">Change password</a>{keys}</p>'
            '<p><a href="/auth/logout">Sign out</a></p>',
        )
        if pair is not None:
            self.p._set_tokens(resp, pair)
        return resp

    # ------------------------------------------------------------------ JSON API

    async def _json(self, request: web.Request, model: type[BaseModel]) -> Any:
        if request.content_type != "application/json" or not self.p._origin_ok(request):
            raise ValidationError("body", request.content_type, "expected application/json")
        try:
            raw = await request.text()
            return model.model_validate_json(raw)
        except PydanticValidationError as exc:
            err = exc.errors()[0]
            fieldname = ".".join(str(p) for p in err["loc"]) or "body"
            problem = "unknown field" if err["type"] == "extra_forbidden" else err["msg"]
            raise ValidationError(fieldname, "<hidden>", problem) from None

    async def _api_login(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request, LoginBody)
            challenge = await self.p._run(
                self.p.service.login_password, body.username, body.password, client=self.p._client_ip(request)
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            return web.json_response({"error": login_message(exc)}, status=status)
        return web.json_response(
            {"ticket": challenge.ticket, "expires_at": challenge.expires_at.isoformat()},
            headers={"Cache-Control": "no-store"},
        )

    async def _api_mfa(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request, MfaBody)
            pair = await self.p._run(
                self.p.service.login_mfa, body.ticket, body.code, client=self.p._client_ip(request)
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            return web.json_response({"error": login_message(exc)}, status=status)
        resp = web.json_response(
            {
                "subject": pair.subject,
                "role": pair.role.value,
                "access_expires_at": pair.access_expires_at.isoformat(),
            },
            headers={"Cache-Control": "no-store"},
        )
        self.p._set_tokens(resp, pair)
        return resp

    async def _principal(
        self, request: web.Request, *, state_changing: bool
    ) -> tuple[Principal, TokenPair | None, str | None]:
        """(who, a refreshed pair to set, the login session id: None for an API key)."""
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, key = auth.partition(" ")
            if scheme.lower() != "bearer" or not key.startswith("lyra_"):
                raise web.HTTPUnauthorized(
                    text='{"error": "unsupported authorization"}', content_type="application/json"
                )
            try:
                p = await self.p._run(
                    self.p.service.verify_api_key,
                    key.strip(),
                    client=self.p._client_ip(request),
                    path=request.path,
                )
            except InvalidApiKey:
                raise web.HTTPUnauthorized(
                    text='{"error": "invalid API key"}', content_type="application/json"
                ) from None
            return p, None, None
        claims, pair = await self.p._session_claims(request)
        if claims is None:
            raise web.HTTPUnauthorized(
                text='{"error": "authentication required"}', content_type="application/json"
            )
        principal = self.p.principal_of(claims)
        if state_changing:
            sent = request.headers.get("X-Lyra-CSRF", "")
            expected = self.p.session_csrf(claims.session_id)
            if not self.p._origin_ok(request) or not hmac.compare_digest(sent.encode(), expected.encode()):
                raise web.HTTPForbidden(
                    text='{"error": "missing or wrong X-Lyra-CSRF header"}', content_type="application/json"
                )
        return principal, pair, claims.session_id

    async def _whoami(self, request: web.Request) -> web.Response:
        p, pair, session_id = await self._principal(request, state_changing=False)
        body: dict[str, Any] = {"subject": p.subject, "role": p.role.value, "via": p.via}
        if session_id is not None:
            body["csrf"] = self.p.session_csrf(session_id)
        resp = web.json_response(body, headers={"Cache-Control": "no-store"})
        if pair is not None:
            self.p._set_tokens(resp, pair)
        return resp

    async def _ping_order(self, request: web.Request) -> web.Response:
        """A protected trader action that only checks the permission (for tests and probes)."""
        p, _pair, _sid = await self._principal(request, state_changing=True)
        try:
            await self.p._run(self.p.service.authorize, p, Action.PLACE_ORDER, path=request.path)
        except PermissionDenied:
            return web.json_response({"error": "forbidden"}, status=403)
        return web.json_response({"ok": True, "subject": p.subject, "action": Action.PLACE_ORDER.value})


def login_message(exc: Exception) -> str:
    if isinstance(exc, LoginThrottled):
        return str(exc)
    if isinstance(exc, ValidationError):
        # Name the field and the problem, never the value (people type passwords into the
        # username field).
        text = f"{exc.field}: {exc.problem}" + (f" ({exc.hint})" if exc.hint else "")
        return text[:300]
    return "Username, password or code not accepted."
