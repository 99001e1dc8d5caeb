"""The auth proxy (aiohttp) in front of the Panel server.

* ``/auth/login`` -> ``/auth/mfa``: password, then TOTP (or a recovery code). Tokens go into
  HttpOnly, SameSite=Strict cookies (Secure when TLS): ``lyra_at`` (15-min access JWT) and
  ``lyra_rt`` (rotating refresh token). Forms carry a CSRF token bound to a cookie, and the
  Origin header of every state-changing request must be our own.
* Everything else needs a valid access token: pages without one redirect to the login page,
  anything else gets 401. An expired access token is silently refreshed with the refresh
  token; concurrent requests of one browser share a single refresh (so our own proxy never
  trips the refresh-token reuse detector), and a just-spent token keeps yielding the same new
  pair for ``refresh_grace`` seconds (requests already in flight when the cookie changed).
* Authorised requests are forwarded to Panel, HTTP **and websocket**; app paths also need the
  app's role (403 otherwise). The Panel server checks the token again (panel_auth).
* ``/api/*``: programmatic endpoints that take ``Authorization: Bearer lyra_...`` API keys (or
  the session cookie plus an ``X-Lyra-CSRF`` header).
* Security headers on every response: CSP compatible with Bokeh/Panel, frame-ancestors
  'none', nosniff, no-referrer, HSTS when TLS. Error messages never say which credential was
  wrong, and never echo input.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import json
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit

import aiohttp
from aiohttp import WSMsgType, web
from pydantic import BaseModel, ConfigDict, Field
from pydantic import ValidationError as PydanticValidationError

from lyra.auth.apikeys import InvalidApiKey
from lyra.auth.panel_auth import (
    COOKIE_ACCESS,
    COOKIE_CSRF,
    COOKIE_MFA,
    COOKIE_REFRESH,
    PRIVATE_COOKIES,
    AppSpec,
    app_for_path,
)
from lyra.auth.permissions import Action, PermissionDenied, Principal
from lyra.auth.policy import LoginThrottled
from lyra.auth.service import AuthService, LoginFailed
from lyra.auth.tokens import InvalidToken, TokenPair
from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.errors import ValidationError

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # login forms and API calls are small; Panel talks over the websocket
MAX_FIELD = 2048
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailers",
        "transfer-encoding",
        "upgrade",
        "host",
        "cookie",
        "origin",
        "authorization",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-real-ip",
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
        "content-length",
    }
)
#: Bokeh/Panel need inline scripts and styles (the document JSON, shadow-DOM styles),
#: ``new Function`` (Panel's template scripts: 'unsafe-eval', measured: without it rendering
#: fails) and blob: scripts (es-module-shims). Nothing from other origins; no framing.
PANEL_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval' blob:; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: Our own pages: no script at all, one stylesheet.
AUTH_CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)


@dataclass
class ProxyConfig:
    """How the proxy reaches Panel and what it knows about the deployment."""

    upstream: str  # http://127.0.0.1:<panel port>
    apps: Sequence[AppSpec] = ()
    tls: bool = False  # served over HTTPS (directly or by a TLS-terminating proxy)
    trust_forwarded: bool = False  # take the client IP from X-Forwarded-For (nginx in front)
    refresh_grace: float = 10.0  # seconds a spent refresh token maps to the same new pair
    ws_check_interval: float = 30.0  # how often a websocket re-checks its session
    public_origins: Sequence[str] = field(default_factory=tuple)  # extra allowed Origins


class LoginBody(BaseModel):
    """``POST /auth/api/login`` JSON body; unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")
    username: str = Field(max_length=128)
    password: str = Field(max_length=1024)


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


def _page(title: str, body: str, status: int = 200) -> web.Response:
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


def _redirect(location: str) -> web.Response:
    """A 303 See Other (a plain response, so cookies can be set on it)."""
    return web.Response(status=303, headers={"Location": location, "Cache-Control": "no-store"})


def _safe_next(value: str | None) -> str:
    """Only same-site relative paths are followed after login (no open redirect)."""
    if not value or len(value) > 512 or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ord(c) < 33 for c in value) or value.startswith("/auth/"):
        return "/"
    return value


def _is_page(request: web.Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("Accept", "")


class AuthProxy:
    """The aiohttp application: login pages, API endpoints and the forwarding to Panel.

    ``clock`` times the refresh grace window (``ProxyConfig.refresh_grace``, its
    ``monotonic_s``); token and key lifetimes are the :class:`AuthService`'s clock."""

    def __init__(self, service: AuthService, config: ProxyConfig, *, clock: Clock = WALL_CLOCK) -> None:
        self.service = service
        self.config = config
        self.clock = clock
        self._csrf_key = hmac.new(service.signing_secret(), b"lyra-derive:csrf", "sha256").digest()
        self._inflight: dict[str, asyncio.Future[TokenPair]] = {}
        self._recent: dict[str, tuple[float, TokenPair]] = {}
        self._client: aiohttp.ClientSession | None = None

    # ------------------------------------------------------------------ app

    def make_app(self) -> web.Application:
        """The aiohttp application (start it with an AppRunner or ``web.run_app``)."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.on_response_prepare.append(self._security_headers)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        r = app.router
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
        r.add_get("/api/whoami", self._whoami)
        r.add_post("/api/ping-order", self._ping_order)
        r.add_get("/", self._index)
        r.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _startup(self, _app: web.Application) -> None:
        self._client = aiohttp.ClientSession(
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            timeout=aiohttp.ClientTimeout(total=None, connect=10, sock_read=300),
        )

    async def _cleanup(self, _app: web.Application) -> None:
        if self._client is not None:
            await self._client.close()

    async def _run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        # The service is synchronous (database, PBKDF2): keep it off the event loop.
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, lambda: fn(*args, **kwargs))

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return self._error(request, 413, "request too large")
        except web.HTTPException:
            raise
        except (TimeoutError, aiohttp.ClientConnectionError):
            return self._error(request, 502, "dashboard server unavailable")

    async def _security_headers(self, request: web.Request, response: web.StreamResponse) -> None:
        h = response.headers
        h.setdefault("Content-Security-Policy", PANEL_CSP)
        h["X-Frame-Options"] = "DENY"
        h["X-Content-Type-Options"] = "nosniff"
        # Not "no-referrer": with it browsers send "Origin: null" on form posts, and the Origin
        # check is half of the CSRF defence. "same-origin" never leaks URLs to other sites.
        h["Referrer-Policy"] = "same-origin"
        h["Cross-Origin-Opener-Policy"] = "same-origin"
        h["Permissions-Policy"] = "camera=(), microphone=(), geolocation=(), payment=()"
        h["Server"] = "lyra"
        if self.config.tls:
            h["Strict-Transport-Security"] = "max-age=31536000; includeSubDomains"

    # ------------------------------------------------------------------ helpers

    def _client_ip(self, request: web.Request) -> str:
        if self.config.trust_forwarded and request.remote in ("127.0.0.1", "::1"):
            fwd = request.headers.get("X-Forwarded-For", "").split(",")[-1].strip()
            if fwd and len(fwd) <= 64:
                return fwd
        return request.remote or "unknown"

    def _own_origin(self, request: web.Request) -> str:
        scheme = "https" if self.config.tls else "http"
        return f"{scheme}://{request.host}"

    def _origin_ok(self, request: web.Request) -> bool:
        origin = request.headers.get("Origin")
        if origin is None:  # non-browser clients; browsers always send it on POST/websocket
            return True
        return origin == self._own_origin(request) or origin in self.config.public_origins

    def _error(self, request: web.Request, status: int, message: str) -> web.Response:
        if request.path.startswith("/api/") or request.path.startswith("/auth/api/") or not _is_page(request):
            return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})
        return _page(
            "Lyra",
            f'<h1>Lyra</h1><p class="err">{html.escape(message)}</p><p><a href="/">Back</a></p>',
            status,
        )

    def _cookie(self, resp: web.StreamResponse, name: str, value: str, max_age: int, path: str = "/") -> None:
        resp.set_cookie(
            name, value, max_age=max_age, path=path, httponly=True, secure=self.config.tls, samesite="Strict"
        )

    def _set_tokens(self, resp: web.StreamResponse, pair: TokenPair) -> None:
        now = self.service.now()
        self._cookie(
            resp,
            COOKIE_ACCESS,
            pair.access_token,
            max(1, int((pair.access_expires_at - now).total_seconds())),
        )
        self._cookie(
            resp,
            COOKIE_REFRESH,
            pair.refresh_token,
            max(1, int((pair.refresh_expires_at - now).total_seconds())),
        )

    def _clear_tokens(self, resp: web.StreamResponse) -> None:
        for name in (COOKIE_ACCESS, COOKIE_REFRESH):
            resp.del_cookie(name, path="/")

    def _csrf_for(self, nonce: str) -> str:
        return hmac.new(self._csrf_key, nonce.encode(), "sha256").hexdigest()

    def _csrf_form(self, request: web.Request, resp_holder: list[str]) -> str:
        nonce = request.cookies.get(COOKIE_CSRF, "")
        if len(nonce) != 43:
            nonce = secrets.token_urlsafe(32)
            resp_holder.append(nonce)
        return f'<input type="hidden" name="csrf" value="{self._csrf_for(nonce)}">'

    def _form_page(self, request: web.Request, title: str, inner: str, status: int = 200) -> web.Response:
        new_nonce: list[str] = []
        csrf = self._csrf_form(request, new_nonce)
        resp = _page(title, inner.replace("{csrf}", csrf), status)
        if new_nonce:
            self._cookie(resp, COOKIE_CSRF, new_nonce[0], 3600, path="/auth")
        return resp

    def _csrf_ok(self, request: web.Request, form: Any) -> bool:
        nonce = request.cookies.get(COOKIE_CSRF, "")
        sent = form.get("csrf", "") if form is not None else ""
        if not self._origin_ok(request) or len(nonce) != 43 or not isinstance(sent, str):
            return False
        return hmac.compare_digest(self._csrf_for(nonce), sent)

    async def _form(self, request: web.Request) -> dict[str, str] | None:
        if request.content_type != "application/x-www-form-urlencoded":
            return None
        data = await request.post()
        out: dict[str, str] = {}
        for k, v in data.items():
            if not isinstance(v, str) or len(v) > MAX_FIELD or k in out:
                return None
            out[k] = v
        return out

    # ------------------------------------------------------------------ auth resolution

    async def _refresh(self, token: str, client: str) -> TokenPair:
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock.monotonic_s()
        recent = self._recent.get(key)
        if recent is not None and now - recent[0] <= self.config.refresh_grace:
            return recent[1]
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running)
        fut: asyncio.Future[TokenPair] = asyncio.get_running_loop().create_future()
        self._inflight[key] = fut
        try:
            pair: TokenPair = await self._run(self.service.refresh, token, client=client)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(key, None)
        fut.set_result(pair)
        self._recent[key] = (now, pair)
        for k, (t, _p) in list(self._recent.items()):
            if now - t > self.config.refresh_grace:
                del self._recent[k]
        return pair

    async def _session(self, request: web.Request) -> tuple[Principal | None, str | None, TokenPair | None]:
        """(principal, access token to forward, new pair to set) from the cookies."""
        access = request.cookies.get(COOKIE_ACCESS)
        if access:
            try:
                claims = await self._run(self.service.authenticate, access)
                return Principal(claims.subject, claims.role), access, None
            except InvalidToken as exc:
                if exc.reason not in ("expired", "session ended", "no token"):
                    log.info("access token refused: %s", exc.reason)
        refresh = request.cookies.get(COOKIE_REFRESH)
        if refresh:
            try:
                pair = await self._refresh(refresh, self._client_ip(request))
                claims = await self._run(self.service.authenticate, pair.access_token)
                return Principal(claims.subject, claims.role), pair.access_token, pair
            except InvalidToken:
                return None, None, None
        return None, None, None

    def _unauthenticated(self, request: web.Request) -> web.StreamResponse:
        if _is_page(request):
            resp: web.StreamResponse = _redirect(
                "/auth/login?next=" + quote(_safe_next(request.path_qs), safe="/")
            )
        else:
            resp = web.json_response({"error": "authentication required"}, status=401)
        self._clear_tokens(resp)
        return resp

    # ------------------------------------------------------------------ pages

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
        nxt = _safe_next(request.query.get("next"))
        msg = "You have been signed out." if "bye" in request.query else ""
        return self._form_page(request, "Sign in · Lyra", self._login_inner(nxt, msg))

    async def _login_post(self, request: web.Request) -> web.StreamResponse:
        nxt = _safe_next(request.query.get("next"))
        form = await self._form(request)
        if form is None or not self._csrf_ok(request, form):
            return self._form_page(
                request, "Sign in · Lyra", self._login_inner(nxt, "The form expired; please try again."), 403
            )
        try:
            challenge = await self._run(
                self.service.login_password,
                form.get("username", ""),
                form.get("password", ""),
                client=self._client_ip(request),
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            message = _login_message(exc)
            return self._form_page(request, "Sign in · Lyra", self._login_inner(nxt, message), status)
        resp = _redirect("/auth/mfa?next=" + quote(nxt, safe="/"))
        self._cookie(resp, COOKIE_MFA, challenge.ticket, 300, path="/auth")
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
        nxt = _safe_next(request.query.get("next"))
        if not request.cookies.get(COOKIE_MFA):
            raise web.HTTPSeeOther("/auth/login")
        return self._form_page(request, "Code · Lyra", self._mfa_inner(nxt))

    async def _mfa_post(self, request: web.Request) -> web.StreamResponse:
        nxt = _safe_next(request.query.get("next"))
        form = await self._form(request)
        if form is None or not self._csrf_ok(request, form):
            return self._form_page(request, "Code · Lyra", self._mfa_inner(nxt, "The form expired."), 403)
        ticket = request.cookies.get(COOKIE_MFA, "")
        try:
            pair = await self._run(
                self.service.login_mfa, ticket, form.get("code", ""), client=self._client_ip(request)
            )
        except (LoginFailed, LoginThrottled) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401
            if isinstance(exc, LoginFailed) and not ticket:
                raise web.HTTPSeeOther("/auth/login") from None
            return self._form_page(request, "Code · Lyra", self._mfa_inner(nxt, _login_message(exc)), status)
        resp = _redirect(nxt)
        self._set_tokens(resp, pair)
        resp.del_cookie(COOKIE_MFA, path="/auth")
        return resp

    async def _logout_form(self, request: web.Request) -> web.StreamResponse:
        inner = (
            '<h1>Sign out</h1><form method="post" action="/auth/logout">{csrf}'
            '<button type="submit" id="confirm-logout">Sign out</button></form>'
        )
        return self._form_page(request, "Sign out · Lyra", inner)

    async def _logout_post(self, request: web.Request) -> web.StreamResponse:
        form = await self._form(request)
        if form is None or not self._csrf_ok(request, form):
            return self._error(request, 403, "The form expired; please try again.")
        principal, access, _pair = await self._session(request)
        if principal is not None and access is not None:
            claims = await self._run(self.service.tokens.verify_access_token, access)
            await self._run(
                self.service.logout, claims.session_id, claims.subject, client=self._client_ip(request)
            )
        resp = _redirect("/auth/login?bye=1")
        self._clear_tokens(resp)
        return resp

    async def _index(self, request: web.Request) -> web.StreamResponse:
        principal, _access, pair = await self._session(request)
        if principal is None:
            return self._unauthenticated(request)
        allowed = [a for a in self.config.apps if principal.can(a.requires)]
        items = (
            "".join(
                f'<li><a class="app-link" href="/{html.escape(a.route)}">{html.escape(a.title)}</a></li>'
                for a in allowed
            )
            or "<li>No dashboards for your role.</li>"
        )
        resp = _page(
            "Lyra",
            f"<h1>Lyra dashboards</h1><p>Signed in as <b>{html.escape(principal.subject)}"
            f"</b> ({principal.role.value})</p><ul>{items}</ul>"
            '<p><a href="/auth/logout">Sign out</a></p>',
        )
        if pair is not None:
            self._set_tokens(resp, pair)
        return resp

    # ------------------------------------------------------------------ JSON API

    async def _json(self, request: web.Request, model: type[BaseModel]) -> Any:
        if request.content_type != "application/json" or not self._origin_ok(request):
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
            challenge = await self._run(
                self.service.login_password, body.username, body.password, client=self._client_ip(request)
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            return web.json_response({"error": _login_message(exc)}, status=status)
        return web.json_response(
            {"ticket": challenge.ticket, "expires_at": challenge.expires_at.isoformat()},
            headers={"Cache-Control": "no-store"},
        )

    async def _api_mfa(self, request: web.Request) -> web.Response:
        try:
            body = await self._json(request, MfaBody)
            pair = await self._run(
                self.service.login_mfa, body.ticket, body.code, client=self._client_ip(request)
            )
        except (LoginFailed, LoginThrottled, ValidationError) as exc:
            status = 429 if isinstance(exc, LoginThrottled) else 401 if isinstance(exc, LoginFailed) else 400
            return web.json_response({"error": _login_message(exc)}, status=status)
        resp = web.json_response(
            {
                "subject": pair.subject,
                "role": pair.role.value,
                "access_expires_at": pair.access_expires_at.isoformat(),
            },
            headers={"Cache-Control": "no-store"},
        )
        self._set_tokens(resp, pair)
        return resp

    async def _principal(
        self, request: web.Request, *, state_changing: bool
    ) -> tuple[Principal, TokenPair | None]:
        auth = request.headers.get("Authorization", "")
        if auth:
            scheme, _, key = auth.partition(" ")
            if scheme.lower() != "bearer" or not key.startswith("lyra_"):
                raise web.HTTPUnauthorized(
                    text='{"error": "unsupported authorization"}', content_type="application/json"
                )
            try:
                p = await self._run(
                    self.service.verify_api_key,
                    key.strip(),
                    client=self._client_ip(request),
                    path=request.path,
                )
            except InvalidApiKey:
                raise web.HTTPUnauthorized(
                    text='{"error": "invalid API key"}', content_type="application/json"
                ) from None
            return p, None
        principal, _access, pair = await self._session(request)
        if principal is None:
            raise web.HTTPUnauthorized(
                text='{"error": "authentication required"}', content_type="application/json"
            )
        if state_changing:
            sent = request.headers.get("X-Lyra-CSRF", "")
            expected = self._csrf_for("api:" + principal.subject)
            if not self._origin_ok(request) or not hmac.compare_digest(sent.encode(), expected.encode()):
                raise web.HTTPForbidden(
                    text='{"error": "missing or wrong X-Lyra-CSRF header"}', content_type="application/json"
                )
        return principal, pair

    async def _whoami(self, request: web.Request) -> web.Response:
        p, pair = await self._principal(request, state_changing=False)
        body: dict[str, Any] = {"subject": p.subject, "role": p.role.value, "via": p.via}
        if p.via == "session":
            body["csrf"] = self._csrf_for("api:" + p.subject)
        resp = web.json_response(body, headers={"Cache-Control": "no-store"})
        if pair is not None:
            self._set_tokens(resp, pair)
        return resp

    async def _ping_order(self, request: web.Request) -> web.Response:
        """A protected trader action that only checks the permission (for tests and probes)."""
        p, _pair = await self._principal(request, state_changing=True)
        try:
            await self._run(self.service.authorize, p, Action.PLACE_ORDER, path=request.path)
        except PermissionDenied:
            return web.json_response({"error": "forbidden"}, status=403)
        return web.json_response({"ok": True, "subject": p.subject, "action": Action.PLACE_ORDER.value})

    # ------------------------------------------------------------------ forwarding

    def _upstream_headers(self, request: web.Request, access: str) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        others = "; ".join(f"{k}={v.value}" for k, v in _cookies(request).items() if k not in PRIVATE_COOKIES)
        headers["Cookie"] = f"{COOKIE_ACCESS}={access}" + (f"; {others}" if others else "")
        headers["X-Forwarded-For"] = self._client_ip(request)
        headers["X-Forwarded-Proto"] = "https" if self.config.tls else "http"
        return headers

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        principal, access, pair = await self._session(request)
        if principal is None or access is None:
            return self._unauthenticated(request)
        spec = app_for_path(request.path, self.config.apps)
        if spec is not None and not principal.can(spec.requires):
            try:
                await self._run(self.service.authorize, principal, spec.requires, path=request.path)
            except PermissionDenied:
                return self._error(request, 403, "Your role may not open this dashboard.")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._forward_ws(request, access, principal)
        return await self._forward_http(request, access, pair)

    async def _forward_http(
        self, request: web.Request, access: str, pair: TokenPair | None
    ) -> web.StreamResponse:
        assert self._client is not None
        url = self.config.upstream + request.rel_url.raw_path_qs
        body = await request.read() if request.can_read_body else None
        async with self._client.request(
            request.method,
            url,
            headers=self._upstream_headers(request, access),
            data=body,
            allow_redirects=False,
        ) as up:
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            for k, v in up.headers.items():
                lk = k.lower()
                if lk in ("connection", "keep-alive", "transfer-encoding", "server", "set-cookie"):
                    continue
                if lk == "location" and v.startswith(self.config.upstream):
                    v = v[len(self.config.upstream) :] or "/"
                resp.headers.add(k, v)
            if pair is not None:
                self._set_tokens(resp, pair)
            await resp.prepare(request)
            async for chunk in up.content.iter_chunked(65536):
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def _forward_ws(
        self, request: web.Request, access: str, principal: Principal
    ) -> web.StreamResponse:
        assert self._client is not None
        if not self._origin_ok(request):  # cross-site websocket hijacking
            return self._error(request, 403, "websocket origin refused")
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        headers = self._upstream_headers(request, access)
        headers["Origin"] = self.config.upstream
        url = "ws" + self.config.upstream[4:] + request.rel_url.raw_path_qs
        async with self._client.ws_connect(
            url, protocols=protocols, headers=headers, max_msg_size=0, autoping=True
        ) as up:
            down = web.WebSocketResponse(protocols=[up.protocol] if up.protocol else (), max_msg_size=0)
            await down.prepare(request)
            claims = await self._run(self.service.tokens.verify_access_token, access)
            tasks = [
                asyncio.create_task(_pump(up, down)),
                asyncio.create_task(_pump(down, up)),
                asyncio.create_task(self._watch_session(claims.session_id)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await down.close()
                await up.close()
            return down

    async def _watch_session(self, session_id: str) -> None:
        """Returns (closing the websocket) once the session is revoked or expired."""
        while True:
            await asyncio.sleep(self.config.ws_check_interval)
            if await self._run(self.service.sessions.is_family_revoked, session_id):
                return


def _cookies(request: web.Request) -> Any:
    from http.cookies import SimpleCookie

    jar: SimpleCookie = SimpleCookie()
    try:
        jar.load(request.headers.get("Cookie", ""))
    except Exception:  # malformed cookie header: forward none of the extra cookies
        return {}
    return jar


async def _pump(src: Any, dst: Any) -> None:
    async for msg in src:
        if msg.type == WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        else:
            break


def _login_message(exc: Exception) -> str:
    if isinstance(exc, LoginThrottled):
        return str(exc)
    if isinstance(exc, ValidationError):
        # Name the field and the problem, never the value (people type passwords into the
        # username field).
        text = f"{exc.field}: {exc.problem}" + (f" ({exc.hint})" if exc.hint else "")
        return text[:300]
    return "Username, password or code not accepted."


def json_dumps(value: Any) -> str:
    """Compact JSON (used by tests and the benchmark)."""
    return json.dumps(value, separators=(",", ":"))


def host_port(url: str) -> tuple[str, int]:
    """``http://h:p`` -> ``(h, p)``."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80
