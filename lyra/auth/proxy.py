"""The auth proxy (aiohttp) in front of the Panel server.

* ``/auth/login`` -> ``/auth/mfa``: password, then TOTP (or a recovery code). Tokens go into
  HttpOnly, SameSite=Strict cookies (Secure when TLS): ``lyra_at`` (15-min access JWT) and
  ``lyra_rt`` (rotating refresh token). Forms carry a CSRF token bound to a cookie, and the
  Origin header of every state-changing request must be our own. (:mod:`.proxy_pages`)
* Everything else needs a live session: pages without one redirect to the login page,
  anything else gets 401. An expired access token is silently refreshed with the refresh
  token; concurrent requests of one browser share a single refresh (so our own proxy never
  trips the refresh-token reuse detector), and a just-spent token keeps yielding the same new
  pair for ``refresh_grace`` seconds (requests already in flight when the cookie changed).
* Authorised requests are forwarded to Panel, HTTP **and websocket**, without the browser's
  cookies: Panel gets a signed one-minute identity header instead; websockets are bound to
  the session (idle timeout, lifetime, logout). App paths also need the app's role (403
  otherwise). The Panel server checks the identity again (panel_auth). (:mod:`.proxy_forward`)
* ``/api/*``: programmatic endpoints that take ``Authorization: Bearer lyra_...`` API keys (or
  the session cookie plus an ``X-Lyra-CSRF`` header).
* Security headers on every response: a CSP with no inline script allowance beyond the hashes
  of the page's own scripts, frame-ancestors 'none', nosniff, same-origin referrers, HSTS when
  TLS. Error messages never say which credential was wrong, and never echo input.
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
from aiohttp import web

from lyra.auth.identity import IdentitySigner
from lyra.auth.panel_auth import (
    COOKIE_ACCESS,
    COOKIE_CSRF,
    COOKIE_REFRESH,
    AppSpec,
)
from lyra.auth.permissions import Principal
from lyra.auth.proxy_forward import HOP_BY_HOP, PANEL_CSP, Forwarder
from lyra.auth.proxy_pages import AUTH_CSP, LoginRoutes, is_page, page, redirect, safe_next
from lyra.auth.service import AuthService
from lyra.auth.tokens import AccessClaims, InvalidToken, TokenPair
from lyra.core.clock import WALL_CLOCK, Clock

log = logging.getLogger(__name__)

MAX_BODY = 64 * 1024  # login forms and API calls are small; Panel talks over the websocket
MAX_FIELD = 2048
_safe_next = safe_next  # the name older callers import


@dataclass
class ProxyConfig:
    """How the proxy reaches Panel and what it knows about the deployment."""

    upstream: str  # http://127.0.0.1:<panel port>
    apps: Sequence[AppSpec] = ()
    tls: bool = False  # served over HTTPS (directly or by a TLS-terminating proxy)
    trust_forwarded: bool = False  # take the client IP from X-Forwarded-For (nginx in front)
    refresh_grace: float = 10.0  # seconds a spent refresh token maps to the same new pair
    ws_check_interval: float = 30.0  # how often a websocket re-checks its session
    max_ws_frame: int = 4 * 1024 * 1024  # largest websocket message either way (bytes)
    public_origins: Sequence[str] = field(default_factory=tuple)  # extra allowed Origins


class AuthProxy:
    """The aiohttp application: login pages, API endpoints and the forwarding to Panel.

    ``clock`` times the refresh grace window (``ProxyConfig.refresh_grace``, its
    ``monotonic_s``); token, session and key lifetimes are the :class:`AuthService`'s clock."""

    def __init__(self, service: AuthService, config: ProxyConfig, *, clock: Clock = WALL_CLOCK) -> None:
        self.service = service
        self.config = config
        self.clock = clock
        self.identity = IdentitySigner(service.signing_secret())
        self._csrf_key = hmac.new(service.signing_secret(), b"lyra-derive:csrf", "sha256").digest()
        self._inflight: dict[str, asyncio.Future[TokenPair]] = {}
        self._recent: dict[str, tuple[float, TokenPair]] = {}
        self._client: aiohttp.ClientSession | None = None
        self.pages = LoginRoutes(self)
        self.forwarder = Forwarder(self)

    # ------------------------------------------------------------------ app

    def make_app(self) -> web.Application:
        """The aiohttp application (start it with an AppRunner or ``web.run_app``)."""
        app = web.Application(client_max_size=MAX_BODY, middlewares=[self._errors])
        app.on_response_prepare.append(self._security_headers)
        app.on_startup.append(self._startup)
        app.on_cleanup.append(self._cleanup)
        self.pages.routes(app.router)
        self.forwarder.routes(app.router)  # the catch-all: last
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
        if request.path.startswith("/api/") or request.path.startswith("/auth/api/") or not is_page(request):
            return web.json_response({"error": message}, status=status, headers={"Cache-Control": "no-store"})
        return page(
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
        resp = page(title, inner.replace("{csrf}", csrf), status)
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

    async def _session_claims(self, request: web.Request) -> tuple[AccessClaims | None, TokenPair | None]:
        """(claims of the live session, new pair to set) from the cookies; (None, None) when
        there is no live session."""
        access = request.cookies.get(COOKIE_ACCESS)
        if access:
            try:
                return await self._run(self.service.authenticate, access), None
            except InvalidToken as exc:
                if exc.reason not in ("expired", "session ended", "no token"):
                    log.info("access token refused: %s", exc.reason)
        refresh = request.cookies.get(COOKIE_REFRESH)
        if refresh:
            try:
                pair = await self._refresh(refresh, self._client_ip(request))
                return await self._run(self.service.authenticate, pair.access_token), pair
            except InvalidToken:
                return None, None
        return None, None

    @staticmethod
    def principal_of(claims: AccessClaims) -> Principal:
        """The principal a session acts as."""
        return Principal(claims.subject, claims.role)

    async def _session(self, request: web.Request) -> tuple[Principal | None, str | None, TokenPair | None]:
        """(principal, access token, new pair to set) from the cookies."""
        claims, pair = await self._session_claims(request)
        if claims is None:
            return None, None, None
        access = pair.access_token if pair is not None else request.cookies.get(COOKIE_ACCESS)
        return self.principal_of(claims), access, pair

    def _unauthenticated(self, request: web.Request) -> web.StreamResponse:
        if is_page(request):
            resp: web.StreamResponse = redirect(
                "/auth/login?next=" + quote(safe_next(request.path_qs), safe="/")
            )
        else:
            resp = web.json_response({"error": "authentication required"}, status=401)
        self._clear_tokens(resp)
        return resp


def json_dumps(value: Any) -> str:
    """Compact JSON (used by tests and the benchmark)."""
    return json.dumps(value, separators=(",", ":"))


def host_port(url: str) -> tuple[str, int]:
    """``http://h:p`` -> ``(h, p)``."""
    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or 80


__all__ = [
    "AUTH_CSP",
    "HOP_BY_HOP",
    "MAX_BODY",
    "PANEL_CSP",
    "AuthProxy",
    "ProxyConfig",
    "host_port",
    "json_dumps",
]
