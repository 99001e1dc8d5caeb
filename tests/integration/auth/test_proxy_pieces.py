"""Pieces of the proxy and the app registry without the Panel server: HSTS over TLS, the
open-redirect guard, app discovery errors, the per-client login rate limit."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp.test_utils import TestClient, TestServer

from lyra.auth import LoginThrottled
from lyra.auth.panel_auth import app_for_path, discover_apps
from lyra.auth.proxy import AuthProxy, ProxyConfig, _safe_next
from lyra.auth.serve import default_apps_dir
from lyra.auth.service import LoginFailed
from lyra.core.errors import ValidationError


def test_hsts_and_secure_cookies_when_tls(service):
    async def run() -> tuple[dict, list[str]]:
        proxy = AuthProxy(service, ProxyConfig(upstream="http://127.0.0.1:9", tls=True))
        async with TestClient(TestServer(proxy.make_app())) as client:
            r = await client.get("/auth/login")
            return dict(r.headers), r.headers.getall("Set-Cookie")

    headers, cookies = asyncio.run(run())
    assert headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert cookies and all("Secure" in c and "HttpOnly" in c and "SameSite=Strict" in c for c in cookies)


@pytest.mark.parametrize(
    ("value", "expected"),
    [("/audit?x=1", "/audit?x=1"), ("//evil.example/x", "/"), ("https://evil.example", "/"),
     ("/\\evil.example", "/"), ("/auth/logout", "/"), ("/a\r\nSet-Cookie: x", "/"), (None, "/")],
)
def test_next_parameter_cannot_redirect_off_site(value, expected):
    assert _safe_next(value) == expected


def test_app_discovery_reads_constants_and_names_bad_files(tmp_path):
    apps = discover_apps(default_apps_dir())
    by_route = {a.route: a for a in apps}
    assert sorted(by_route) == ["admin", "audit", "executive", "fees", "hft", "portfolio", "rebalancing",
                                "risk", "risk_analytics", "trading"]
    assert (by_route["audit"].title, by_route["audit"].requires.value) == ("Audit log", "view_audit")
    assert by_route["admin"].requires.value == "manage_users"  # admin only, per the table
    assert all(a.requires.value == f"view_{a.route}" for a in apps if a.route != "admin")
    assert app_for_path("/audit/ws", apps) is by_route["audit"] and app_for_path("/auditx", apps) is None
    (tmp_path / "_helper.py").write_text("x = 1\n")  # helpers are skipped
    (tmp_path / "bad.py").write_text("ROUTE = 'bad'\ndef create_app():\n    pass\n")
    with pytest.raises(ValidationError, match="REQUIRES is missing"):
        discover_apps(tmp_path)
    (tmp_path / "bad.py").write_text("ROUTE = 'Bad Route'\nREQUIRES = 'view_risk'\ndef create_app(): ...\n")
    with pytest.raises(ValidationError, match="ROUTE must be"):
        discover_apps(tmp_path)
    (tmp_path / "bad.py").write_text("REQUIRES = 'fly_to_the_moon'\ndef create_app(): ...\n")
    with pytest.raises(ValidationError, match="unknown action"):
        discover_apps(tmp_path)


def test_per_client_rate_limit(service):
    service.client_limiter.max_events = 3
    for _ in range(3):
        with pytest.raises(LoginFailed):
            service.login_password(f"someone{_}", "not the password at all", client="203.0.113.9")
    with pytest.raises(LoginThrottled, match="too many login attempts"):
        service.login_password("someone9", "not the password at all", client="203.0.113.9")
    with pytest.raises(LoginFailed):  # another client is not affected
        service.login_password("someone9", "not the password at all", client="203.0.113.10")
