"""The Panel side of the auth check (defence in depth) and the Panel server process.

The auth proxy refuses anything without a valid token, but the Panel server does not rely on
that: it listens on 127.0.0.1 only *and* verifies the identity the proxy signs for each request
(the ``X-Lyra-Identity`` header, :mod:`lyra.auth.identity`: one minute, Panel-only; the
browser's cookies and access token are never forwarded) on every page and websocket request (a
Bokeh auth provider, :class:`LyraAuthProvider`), enforces the per-app role, and answers Panel's
``pn.config.authorize_callback`` with the same table (:func:`authorize`). A request that
reaches the Panel port directly without a valid identity is refused.

Bokeh copies request headers and cookies into the session token it embeds in the page; the
server keeps only an allow-list of harmless headers (:data:`PAGE_HEADERS`) and no cookie, so
nothing that identifies the user to the server can be read by a script in the page.

Apps are discovered in ``apps/`` (see ``apps/README.md``): one file per app, declaring
``ROUTE``, ``TITLE``, ``REQUIRES`` (an action name) as plain constants and a function
``create_app()`` that builds a fresh app per session. Discovery reads the constants with
``ast`` so the proxy can know the apps without importing (running) them.

Run as ``python -m lyra.auth.panel_auth --port P --apps-dir DIR``; the signing key and the
cookie secret come on stdin (never on the command line or in the environment).
"""

from __future__ import annotations

import argparse
import ast
import contextvars
import importlib.util
import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lyra.auth.identity import IDENTITY_HEADER, IdentityVerifier
from lyra.auth.permissions import Action, Principal, is_allowed, parse_action
from lyra.auth.tokens import AccessClaims
from lyra.core.errors import ValidationError

log = logging.getLogger(__name__)

COOKIE_ACCESS = "lyra_at"
COOKIE_REFRESH = "lyra_rt"
COOKIE_CSRF = "lyra_csrf"
COOKIE_MFA = "lyra_mfa"
#: The proxy's own cookies: never forwarded to Panel.
PRIVATE_COOKIES = (COOKIE_ACCESS, COOKIE_REFRESH, COOKIE_CSRF, COOKIE_MFA)
#: The only request headers Bokeh may copy into the session token embedded in the page.
PAGE_HEADERS = ["Host", "User-Agent", "Accept-Language", "X-Forwarded-Proto"]
LOGIN_PATH = "/auth/login"
_ROUTE_CHARS = set("abcdefghijklmnopqrstuvwxyz0123456789_-")


@dataclass(frozen=True)
class AppSpec:
    """One dashboard app: served at ``/<route>``, guarded by ``requires``."""

    route: str
    title: str
    requires: Action
    path: Path


def _constant(tree: ast.Module, name: str) -> str | None:
    for node in tree.body:
        if isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                if isinstance(t, ast.Name) and t.id == name and isinstance(node.value, ast.Constant):
                    value = node.value.value
                    return value if isinstance(value, str) else None
    return None


def discover_apps(apps_dir: Path) -> list[AppSpec]:
    """Every app file in ``apps_dir`` (files starting with ``_`` are helpers), by route.

    Raises ValidationError naming the file when a constant is missing or wrong.
    """
    specs: list[AppSpec] = []
    for path in sorted(Path(apps_dir).glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        route = _constant(tree, "ROUTE") or path.stem
        title = _constant(tree, "TITLE") or route
        requires = _constant(tree, "REQUIRES")
        if requires is None:
            raise ValidationError(str(path), None, "REQUIRES is missing", "e.g. REQUIRES = 'view_audit'")
        if not route or set(route) - _ROUTE_CHARS or route in ("auth", "api", "static"):
            raise ValidationError(str(path), route, "ROUTE must be lowercase letters, digits, '_' or '-'")
        has_builder = any(isinstance(n, ast.FunctionDef) and n.name == "create_app" for n in tree.body)
        if not has_builder:
            raise ValidationError(str(path), None, "no create_app() function")
        specs.append(AppSpec(route, title, parse_action(requires), path))
    routes = [s.route for s in specs]
    if len(set(routes)) != len(routes):
        raise ValidationError("apps", routes, "two apps share a ROUTE")
    return specs


def app_for_path(path: str, apps: Sequence[AppSpec]) -> AppSpec | None:
    """The app a URL path belongs to (``/audit``, ``/audit/ws``, ``/audit/autoload.js``...)."""
    first = path.lstrip("/").split("/", 1)[0]
    for spec in apps:
        if spec.route == first:
            return spec
    return None


# --------------------------------------------------------------------------- the check


class PanelTokenCheck:
    """Verifies the proxy's identity header in the Panel process (signature, typ, audience,
    times) and the role.

    The session table is the proxy's business (it signs an identity only for a live session);
    this check is independent of it, so an attacker who reaches the Panel port still needs a
    genuine identity under a minute old with the right role.
    """

    def __init__(self, key: bytes, apps: Sequence[AppSpec]) -> None:
        self.identities = IdentityVerifier(key)
        self.apps = list(apps)

    def claims(self, token: str | None) -> AccessClaims | None:
        """The verified claims, or None."""
        return self.identities.verify(token)

    def allowed(self, claims: AccessClaims, path: str) -> bool:
        """May this user open ``path``? App paths need the app's action; the rest (static
        files, the index) only a valid token."""
        spec = app_for_path(path, self.apps)
        return spec is None or is_allowed(claims.role, spec.requires)


#: The claims verified for the request being handled (set by the auth provider).
_CLAIMS: contextvars.ContextVar[AccessClaims | None] = contextvars.ContextVar("lyra_claims", default=None)
_CHECK: PanelTokenCheck | None = None
_SESSION_PRINCIPALS: dict[int, Principal] = {}


def _get_user(handler: Any) -> str | None:
    """Bokeh ``get_user``: the user name of a valid token with the right role, else None
    (pages redirect to the login page) or HTTP 403 (valid token, app not allowed)."""
    from tornado.web import HTTPError

    _CLAIMS.set(None)
    if _CHECK is None:
        return None
    claims = _CHECK.claims(handler.request.headers.get(IDENTITY_HEADER))
    if claims is None:
        return None
    if not _CHECK.allowed(claims, handler.request.path):
        raise HTTPError(403, reason="Forbidden")
    _CLAIMS.set(claims)
    # Bokeh's session request proxy forwards public attributes to this request object, so the
    # app being built for this request can see who asked (the token itself stays out of the
    # session payload: only PAGE_HEADERS are copied).
    handler.request.lyra_claims = claims
    return claims.subject


def _request_claims() -> AccessClaims | None:
    import panel as pn

    doc = pn.state.curdoc
    ctx = getattr(doc, "session_context", None) if doc is not None else None
    request = getattr(ctx, "request", None) if ctx is not None else None
    claims = getattr(request, "lyra_claims", None) if request is not None else None
    return claims if isinstance(claims, AccessClaims) else _CLAIMS.get()


def authorize(user_info: dict[str, Any] | None, path: str) -> bool:
    """``pn.config.authorize_callback``: re-check the role for ``path`` with the claims the
    auth provider verified for this very request (no claims -> refused)."""
    claims = _request_claims()
    return claims is not None and _CHECK is not None and _CHECK.allowed(claims, path)


def current_principal() -> Principal | None:
    """Who the current Panel session belongs to (None outside ``lyra serve``, e.g. notebooks).

    Call it while the app is being built (in ``create_app``); it is remembered per document.
    """
    import panel as pn

    doc = pn.state.curdoc
    key = id(doc) if doc is not None else 0
    claims = _request_claims()
    if claims is not None:
        principal = Principal(subject=claims.subject, role=claims.role)
        if doc is not None:
            _SESSION_PRINCIPALS[key] = principal

            def _forget(_ctx: Any) -> None:
                _SESSION_PRINCIPALS.pop(key, None)

            pn.state.on_session_destroyed(_forget)
        return principal
    return _SESSION_PRINCIPALS.get(key)


def current_claims() -> AccessClaims | None:
    """The verified identity of the current Panel session, with its last re-authentication
    (``reauth_at``, for :func:`lyra.auth.reauth.check_fresh`). Call it while the app is being
    built (in ``create_app``); None outside ``lyra serve``."""
    return _request_claims()


_APPS: list[AppSpec] = []


def served_apps() -> list[AppSpec]:
    """The apps this Panel server serves (empty outside ``lyra serve``)."""
    return list(_APPS)


def make_auth_provider() -> Any:
    """A Bokeh AuthProvider that calls :func:`_get_user` and sends strangers to the login page."""
    from bokeh.server.auth_provider import AuthProvider

    class LyraAuthProvider(AuthProvider):
        @property
        def get_user(self) -> Callable[[Any], str | None]:  # type: ignore[override]
            return _get_user

        @property
        def login_url(self) -> str:
            return LOGIN_PATH

    return LyraAuthProvider()


def _load_builder(spec: AppSpec) -> Callable[[], Any]:
    module_name = f"lyra_app_{spec.route.replace('-', '_')}"
    sys.path.insert(0, str(spec.path.parent))  # so an app folder's own helpers import
    loader_spec = importlib.util.spec_from_file_location(module_name, spec.path)
    assert loader_spec is not None
    assert loader_spec.loader is not None
    module = importlib.util.module_from_spec(loader_spec)
    sys.modules[module_name] = module
    loader_spec.loader.exec_module(module)
    builder = module.create_app
    assert callable(builder)
    return builder  # type: ignore[no-any-return]


def run_panel_server(
    apps_dir: Path, port: int, key: bytes, cookie_secret: str, *, public_origins: Sequence[str] = ()
) -> None:
    """Serve every app of ``apps_dir`` on 127.0.0.1:``port`` with the token check (blocks)."""
    global _CHECK
    import panel as pn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s panel %(levelname)s %(message)s", force=True)
    apps = discover_apps(apps_dir)
    _APPS[:] = apps
    _CHECK = PanelTokenCheck(key, apps)
    pn.config.authorize_callback = authorize
    builders = {spec.route: _load_builder(spec) for spec in apps}
    titles = {spec.route: spec.title for spec in apps}
    origins = [f"127.0.0.1:{port}", *public_origins]
    pn.serve(  # type: ignore[no-untyped-call]
        builders,
        port=port,
        address="127.0.0.1",
        websocket_origin=origins,
        title=titles,
        show=False,
        start=True,
        auth_provider=make_auth_provider(),
        cookie_secret=cookie_secret,
        include_headers=list(PAGE_HEADERS),  # never Cookie or X-Lyra-Identity into the page
        include_cookies=[],
        secret_key=cookie_secret,
        sign_sessions=True,
        generate_session_ids=True,
    )


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the Panel child process started by ``lyra serve``."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--apps-dir", type=Path, required=True)
    args = parser.parse_args(argv)
    # Two lines on stdin: the hex signing key and the cookie secret.
    key_hex = sys.stdin.readline().strip()
    cookie_secret = sys.stdin.readline().strip()
    if not key_hex or not cookie_secret:
        raise SystemExit("lyra panel server: signing key and cookie secret expected on stdin")
    threading.Thread(target=_exit_with_parent, name="lyra-parent-watch", daemon=True).start()
    run_panel_server(args.apps_dir, args.port, bytes.fromhex(key_hex), cookie_secret)


def _exit_with_parent() -> None:
    # ``lyra serve`` keeps our stdin open; end-of-file means it is gone: so are we.
    sys.stdin.read()
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover - the child process
    # Run the importable module, not this __main__ copy, so apps that import
    # lyra.auth.panel_auth see the same registry and check.
    from lyra.auth import panel_auth as _module

    _module.main()
