"""The auth proxy (aiohttp) in front of the Panel server.

* ``/auth/login`` -> ``/auth/mfa``: password, then TOTP (or a recovery code). Tokens go into
  HttpOnly, SameSite=Strict cookies (Secure when TLS): ``lyra_at`` (15-min access JWT) and
  ``lyra_rt`` (rotating refresh token). Forms carry a CSRF token bound to a cookie, and the
  Origin header of every state-changing request must be our own. (:mod:`.proxy_pages`)
* Everything else needs a live session: pages without one redirect to the login page,
  anything else gets 401. An expired access token is silently refreshed with the refresh
  token; concurrent requests of one browser share a single refresh (so our own proxy never
  trips the refresh-token reuse detector). For ``refresh_grace`` seconds a just-spent token
  still lets a request through *from the same client* (address and User-Agent: requests
  already in flight when the cookie changed) but never hands out the new pair again: only the
  response to the refresh itself carries it. Anyone else presenting it is a replay.
* Authorised requests are forwarded to Panel, HTTP **and websocket**, without the browser's
  cookies: Panel gets a signed one-minute identity header instead; websockets are bound to
  the session (idle timeout, lifetime, logout). App paths also need the app's role (403
  otherwise). The Panel server checks the identity again (panel_auth). (:mod:`.proxy_forward`)
* ``/api/*``: programmatic endpoints that take ``Authorization: Bearer lyra_...`` API keys (or
  the session cookie plus an ``X-Lyra-CSRF`` header: a token of *this login session*, given by
  ``GET /api/whoami``; a new login gets a new one, a form's CSRF nonce is renewed at login).
* Over TLS (direct or ``--behind-tls-proxy``) every cookie is ``__Host-``-prefixed (Secure,
  ``Path=/``, no Domain: a sibling subdomain cannot plant or shadow it) and unprefixed cookies
  are ignored. Requests whose ``Host`` is not in ``ProxyConfig.allowed_hosts`` get 400.
  ``X-Forwarded-For`` is believed only from ``ProxyConfig.trusted_proxies``.
* Security headers on every response: a CSP with no inline script allowance beyond the hashes
  of the page's own scripts, frame-ancestors 'none', nosniff, same-origin referrers, HSTS when
  TLS. Error messages never say which credential was wrong, and never echo input.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import html
import ipaddress
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
from lyra.auth.proxy_account import AccountRoutes
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
    #: Addresses or networks (``127.0.0.1``, ``10.0.0.0/8``) whose ``X-Forwarded-For`` is
    #: believed. Empty (the default): never; the client is the connection's peer.
    trusted_proxies: Sequence[str] = ()
    #: Host names (without port) requests may be addressed to; empty: any (tests, notebooks).
    allowed_hosts: Sequence[str] = ()
    refresh_grace: float = 10.0  # seconds a spent refresh token still serves its own client
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
        self._recent: dict[str, tuple[float, TokenPair, str]] = {}  # token -> (when, pair, client)
        self._trusted = [ipaddress.ip_network(a, strict=False) for a in config.trusted_proxies]
        self._hosts = {h.lower().strip("[]") for h in config.allowed_hosts}
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
        AccountRoutes(self).routes(app.router)  # /auth/keys: one's own API keys
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
        if self._hosts and _host_name(request) not in self._hosts:
            return self._error(request, 400, "unknown host")
        try:
            return await handler(request)
        except web.HTTPRequestEntityTooLarge:
            return self._error(request, 413, "request too large")
        except web.HTTPException:
            raise
        except (TimeoutError, aiohttp.ClientConnectionError):
            return self._error(request, 502, "dashboard server unavailable")
        except UnicodeError:
            # A body, form field or header that is not UTF-8: the client's fault, said briefly.
            return self._error(request, 400, "request is not valid UTF-8")
        except Exception:
            # Anything else is ours: the details go to the server log, never to the client.
            log.exception("unexpected error on %s %s", request.method, request.path)
            return self._error(request, 500, "internal error")

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

    def _is_trusted(self, address: str | None) -> bool:
        try:
            ip = ipaddress.ip_address(address or "")
        except ValueError:
            return False
        return any(ip in net for net in self._trusted)

    def _client_ip(self, request: web.Request) -> str:
        """The client's address: the peer, or (only when the peer is a trusted proxy) the
        right-most ``X-Forwarded-For`` entry that is not itself a trusted proxy."""
        peer = request.remote or "unknown"
        if not self._trusted or not self._is_trusted(peer):
            return peer
        fwd = request.headers.get("X-Forwarded-For", "")
        if len(fwd) > 1024:
            return peer
        for entry in reversed(fwd.split(",")):
            candidate = entry.strip()
            try:
                ipaddress.ip_address(candidate)
            except ValueError:
                return peer  # junk: believe nothing further left
            if not self._is_trusted(candidate):
                return candidate
        return peer

    def _client_key(self, request: web.Request) -> str:
        """Who a refresh grace belongs to: address and User-Agent."""
        ua = request.headers.get("User-Agent", "")
        return hashlib.sha256(f"{self._client_ip(request)}|{ua}".encode("utf-8", "replace")).hexdigest()

    def cookie_name(self, base: str) -> str:
        """Over TLS, ``__Host-<base>``: Secure, Path=/, no Domain (browsers enforce it)."""
        return "__Host-" + base if self.config.tls else base

    def read_cookie(self, request: web.Request, base: str) -> str:
        """Our cookie ``base`` from the request ('' if absent); unprefixed ones are ignored
        over TLS."""
        return request.cookies.get(self.cookie_name(base), "")

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
            self.cookie_name(name),
            value,
            max_age=max_age,
            path="/" if self.config.tls else path,  # __Host- cookies must have Path=/
            httponly=True,
            secure=self.config.tls,
            samesite="Strict",
        )

    def _drop_cookie(self, resp: web.StreamResponse, name: str, path: str = "/") -> None:
        resp.del_cookie(self.cookie_name(name), path="/" if self.config.tls else path)

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
            self._drop_cookie(resp, name)

    def _csrf_for(self, nonce: str) -> str:
        return hmac.new(self._csrf_key, nonce.encode(), "sha256").hexdigest()

    def _csrf_form(self, request: web.Request, resp_holder: list[str]) -> str:
        nonce = self.read_cookie(request, COOKIE_CSRF)
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
        nonce = self.read_cookie(request, COOKIE_CSRF)
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

    def session_csrf(self, session_id: str) -> str:
        """The API CSRF token of one login session (a new login, a new token)."""
        return self._csrf_for("api-session:" + session_id)

    async def _refresh(self, token: str, client: str, client_key: str) -> tuple[TokenPair, bool]:
        """(pair, fresh): ``fresh`` False means a request of the same client within the grace
        window after the refresh: it may be served, but the pair must not be handed out."""
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock.monotonic_s()
        recent = self._recent.get(key)
        if recent is not None and now - recent[0] <= self.config.refresh_grace and recent[2] == client_key:
            return recent[1], False
        running = self._inflight.get(key)
        if running is not None:
            return await asyncio.shield(running), True  # the same browser's parallel requests
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
        self._recent[key] = (now, pair, client_key)
        for k, (t, _p, _c) in list(self._recent.items()):
            if now - t > self.config.refresh_grace:
                del self._recent[k]
        return pair, True

    async def _session_claims(self, request: web.Request) -> tuple[AccessClaims | None, TokenPair | None]:
        """(claims of the live session, new pair to set) from the cookies; (None, None) when
        there is no live session."""
        access = self.read_cookie(request, COOKIE_ACCESS)
        if access:
            try:
                return await self._run(self.service.authenticate, access), None
            except InvalidToken as exc:
                if exc.reason not in ("expired", "session ended", "no token"):
                    log.info("access token refused: %s", exc.reason)
        refresh = self.read_cookie(request, COOKIE_REFRESH)
        if refresh:
            try:
                client = self._client_ip(request)
                pair, fresh = await self._refresh(refresh, client, self._client_key(request))
                claims = await self._run(self.service.authenticate, pair.access_token)
                return claims, (pair if fresh else None)
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
        access = pair.access_token if pair is not None else self.read_cookie(request, COOKIE_ACCESS)
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


def _host_name(request: web.Request) -> str:
    """The Host header's name part, lower case, without port or IPv6 brackets."""
    host = (request.headers.get("Host") or "").strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


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
