"""The auth proxy's forwarding to the Panel server: HTTP and websocket.

* Only a live session gets through; app paths also need the app's role (403 otherwise).
* The browser's cookies are **not** forwarded: Panel learns who asks from a one-minute,
  Panel-only signed header (:mod:`lyra.auth.identity`) that no page can read. The header is
  added here and never comes back (Panel does not copy it into pages: ``include_headers``).
* HTML from Panel gets a Content-Security-Policy without ``'unsafe-inline'`` for scripts: a
  fresh nonce per response, put on each script element *Panel rendered* (Bokeh's page
  bootstrap, Panel's template scripts; es-module-shims picks it up for the scripts it makes),
  so markup that reaches the page later (a message, a table cell) cannot run: an
  ``<img onerror=...>`` or a ``<script>`` inserted into the document is blocked. Panel renders
  no request value into its HTML (apps show them only after strict parsing, as text).
  ``'unsafe-eval'`` stays: Panel's templates compile code with ``new Function`` (measured:
  without it the dashboards do not render). Styles keep ``'unsafe-inline'`` (Bokeh's
  shadow-DOM styles); styles cannot run script.
* A websocket is bound to its session: it is closed when the session is revoked (logout,
  lock, role change), reaches the 60-minute idle timeout or the 12-hour lifetime, checked on a
  timer (``ProxyConfig.ws_check_interval``) **and** before every message from the browser
  (the deadline runs on the service clock). Messages from the browser count as activity.
  Messages from the browser are capped at ``ProxyConfig.max_ws_frame`` bytes.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

from lyra.auth.identity import IDENTITY_HEADER
from lyra.auth.panel_auth import app_for_path
from lyra.auth.permissions import PermissionDenied
from lyra.auth.tokens import AccessClaims, TokenPair

if TYPE_CHECKING:
    from lyra.auth.proxy import AuthProxy

#: Headers never passed between the browser and Panel (hop-by-hop, or ours to decide).
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
        IDENTITY_HEADER.lower(),
        "sec-websocket-key",
        "sec-websocket-version",
        "sec-websocket-extensions",
        "sec-websocket-protocol",
        "sec-websocket-accept",
        "content-length",
    }
)
#: Everything but ``script-src`` of the dashboards' policy (see the module docstring).
_PANEL_CSP_REST = (
    "style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; font-src 'self' data:; "
    "connect-src 'self'; worker-src 'self' blob:; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
#: The policy of non-HTML responses from Panel (JSON, JS, images): no inline script at all.
PANEL_CSP = f"default-src 'self'; script-src 'self' 'unsafe-eval' blob:; {_PANEL_CSP_REST}"
#: HTML bodies larger than this are not rewritten (and get no inline-script allowance).
MAX_HTML = 8 * 1024 * 1024
_SCRIPT = re.compile(rb"<script\b([^>]*)>(.*?)</script\s*>", re.IGNORECASE | re.DOTALL)


def add_nonces(body: bytes, nonce: str) -> bytes:
    """``body`` with ``nonce="..."`` on the start tag of every script element Panel rendered.

    Elements are matched in order, so nothing inside a script (Bokeh's document JSON) is ever
    touched: only the tags the HTML parser will see as script tags get the nonce."""
    attr = f' nonce="{nonce}"'.encode()

    def tag(m: re.Match[bytes]) -> bytes:
        attrs = re.sub(rb"\snonce\s*=\s*(\"[^\"]*\"|'[^']*'|[^\s>]*)", b"", m.group(1), flags=re.IGNORECASE)
        return b"<script" + attr + attrs + b">" + m.group(2) + b"</script>"

    return _SCRIPT.sub(tag, body)


def panel_csp_for(nonce: str) -> str:
    """The policy of one HTML page from Panel: scripts from us, or inline with this nonce."""
    return f"default-src 'self'; script-src 'self' 'nonce-{nonce}' 'unsafe-eval' blob:; {_PANEL_CSP_REST}"


@dataclass
class _Binding:
    """A websocket's session: its deadline on the service clock and recent activity."""

    session_id: str
    deadline: datetime
    active: bool = False


class Forwarder:
    """Forwards authorised requests to Panel (registered by :class:`AuthProxy`)."""

    def __init__(self, proxy: AuthProxy) -> None:
        self.p = proxy

    def routes(self, r: web.UrlDispatcher) -> None:
        """Register the catch-all route."""
        r.add_route("*", "/{tail:.*}", self._forward)

    def _upstream_headers(self, request: web.Request, claims: AccessClaims) -> dict[str, str]:
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        # No cookies at all: Panel needs none, and Bokeh would copy them into the page.
        headers[IDENTITY_HEADER] = self.p.identity.sign(
            claims.subject,
            claims.role,
            claims.session_id,
            reauth_at=self.p.service.reauth.fresh_at(claims.session_id),
        )
        headers["X-Forwarded-For"] = self.p._client_ip(request)
        headers["X-Forwarded-Proto"] = "https" if self.p.config.tls else "http"
        return headers

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        claims, pair = await self.p._session_claims(request)
        if claims is None:
            return self.p._unauthenticated(request)
        principal = self.p.principal_of(claims)
        spec = app_for_path(request.path, self.p.config.apps)
        if spec is not None and not principal.can(spec.requires):
            try:
                await self.p._run(self.p.service.authorize, principal, spec.requires, path=request.path)
            except PermissionDenied:
                return self.p._error(request, 403, "Your role may not open this dashboard.")
        if request.headers.get("Upgrade", "").lower() == "websocket":
            return await self._forward_ws(request, claims)
        return await self._forward_http(request, claims, pair)

    async def _forward_http(
        self, request: web.Request, claims: AccessClaims, pair: TokenPair | None
    ) -> web.StreamResponse:
        assert self.p._client is not None
        url = self.p.config.upstream + request.rel_url.raw_path_qs
        body = await request.read() if request.can_read_body else None
        async with self.p._client.request(
            request.method,
            url,
            headers=self._upstream_headers(request, claims),
            data=body,
            allow_redirects=False,
        ) as up:
            resp = web.StreamResponse(status=up.status, reason=up.reason)
            is_html = up.headers.get("Content-Type", "").startswith("text/html")
            encoded = up.headers.get("Content-Encoding", "identity") not in ("", "identity")
            rewrite = is_html and not encoded
            for k, v in up.headers.items():
                lk = k.lower()
                if lk in ("connection", "keep-alive", "transfer-encoding", "server", "set-cookie"):
                    continue
                if lk == "content-security-policy" or (rewrite and lk == "content-length"):
                    continue  # ours to set (the page grows by its nonces)
                if lk == "location" and v.startswith(self.p.config.upstream):
                    v = v[len(self.p.config.upstream) :] or "/"
                resp.headers.add(k, v)
            if pair is not None:
                self.p._set_tokens(resp, pair)
            if rewrite:
                # Read the page whole (Panel's pages are tens of kB) to put nonces on its scripts.
                parts: list[bytes] = []
                size = 0
                async for chunk in up.content.iter_chunked(65536):
                    parts.append(chunk)
                    size += len(chunk)
                    if size > MAX_HTML:
                        break
                page = b"".join(parts)
                if size <= MAX_HTML:
                    nonce = secrets.token_urlsafe(18)
                    page = add_nonces(page, nonce)
                    resp.headers["Content-Security-Policy"] = panel_csp_for(nonce)
                await resp.prepare(request)
                await resp.write(page)
                async for chunk in up.content.iter_chunked(65536):  # the rest of an oversized page
                    await resp.write(chunk)
                await resp.write_eof()
                return resp
            await resp.prepare(request)
            async for chunk in up.content.iter_chunked(65536):
                await resp.write(chunk)
            await resp.write_eof()
            return resp

    async def _forward_ws(self, request: web.Request, claims: AccessClaims) -> web.StreamResponse:
        assert self.p._client is not None
        if not self.p._origin_ok(request):  # cross-site websocket hijacking
            return self.p._error(request, 403, "websocket origin refused")
        deadline = await self.p._run(self.p.service.session_deadline, claims.session_id)
        if deadline is None:
            return self.p._unauthenticated(request)
        protocols = [
            p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
        ]
        headers = self._upstream_headers(request, claims)
        headers["Origin"] = self.p.config.upstream
        url = "ws" + self.p.config.upstream[4:] + request.rel_url.raw_path_qs
        cap = self.p.config.max_ws_frame
        # Panel's own messages (document patches) may be large; the cap is on the browser's.
        async with self.p._client.ws_connect(
            url, protocols=protocols, headers=headers, max_msg_size=0, autoping=True
        ) as up:
            down = web.WebSocketResponse(protocols=[up.protocol] if up.protocol else (), max_msg_size=cap)
            await down.prepare(request)
            binding = _Binding(claims.session_id, deadline)
            tasks = [
                asyncio.create_task(_pump(up, down)),
                asyncio.create_task(self._pump_from_browser(down, up, binding)),
                asyncio.create_task(self._watch_session(binding)),
            ]
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for t in tasks:
                    t.cancel()
                await down.close()
                await up.close()
            return down

    async def _pump_from_browser(self, src: Any, dst: Any, binding: _Binding) -> None:
        """Browser -> Panel; before each message the session is checked (revoked, idle, too
        old): a message of an ended session goes nowhere and closes the socket."""
        async for msg in src:
            if self.p.service.now() >= binding.deadline:
                return
            # Bokeh sends a message per user action (not a stream): one indexed read each.
            deadline = await self.p._run(self.p.service.session_deadline, binding.session_id)
            if deadline is None:
                return
            binding.deadline = deadline
            binding.active = True
            if msg.type == WSMsgType.TEXT:
                await dst.send_str(msg.data)
            elif msg.type == WSMsgType.BINARY:
                await dst.send_bytes(msg.data)
            else:
                return

    async def _watch_session(self, binding: _Binding) -> None:
        """Returns (closing the websocket) once the session is revoked, idle or too old."""
        while True:
            await asyncio.sleep(self.p.config.ws_check_interval)
            touch, binding.active = binding.active, False
            deadline = await self.p._run(self.p.service.session_deadline, binding.session_id, touch=touch)
            if deadline is None:
                return
            binding.deadline = deadline


async def _pump(src: Any, dst: Any) -> None:
    async for msg in src:
        if msg.type == WSMsgType.TEXT:
            await dst.send_str(msg.data)
        elif msg.type == WSMsgType.BINARY:
            await dst.send_bytes(msg.data)
        else:
            break
