"""Real-browser tests of `lyra serve`: headless Debian Chromium driven by Playwright through the
auth proxy to the Panel server. Login with password + TOTP, role-filtered apps, the websocket
through the proxy (a widget updates live), logout, session expiry, and no console errors.

Screenshots go to ``test-artifacts/auth/`` (git-ignored) and are checked to be non-blank.
Runs on SQLite: the database paths are covered on both backends by tests/integration/auth.
"""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from lyra.auth import AuthEventKind
from lyra.auth.serve import LyraServer, default_apps_dir
from lyra.bootstrap import initialise
from lyra.settings import load_settings
from lyra.testing.serving import KEY, new_user, sign_in
from lyra.testing.serving import shot as _shot

from .conftest import new_page

ARTIFACTS = (
    Path(os.environ.get("LYRA_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
    / "auth"
)

# A second app, written the way apps/README.md says, so role filtering has something to filter.
TRADING_APP = """
import panel as pn
from lyra.dashboards.base import page

ROUTE = "trading"
TITLE = "Trading"
REQUIRES = "view_trading"


def create_app():
    return page(TITLE, pn.pane.Markdown("## Orders and fills", name="trading-body"), route=ROUTE)
"""


class OffsetClock:
    """The wall clock plus an offset the test can move (session expiry without waiting)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


@pytest.fixture(scope="module")
def clock() -> OffsetClock:
    return OffsetClock()


@pytest.fixture(scope="module")
def server(tmp_path_factory, clock):
    tmp = tmp_path_factory.mktemp("browser")
    apps = tmp / "apps"
    apps.mkdir()
    for name in ("audit_log.py",):
        shutil.copy(default_apps_dir() / name, apps / name)
    (apps / "trading.py").write_text(TRADING_APP)
    settings = load_settings(env={}, home=str(tmp / "home"), jwt_secret=KEY)
    initialise(load_samples=False, settings=settings)
    srv = LyraServer(
        settings,
        port=0,
        apps_dir=apps,
        clock=clock,
        iterations=20_000,
        panel_log=tmp / "panel.log",
        per_client_logins=10_000,
    )
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture
def page(browser):
    pg = new_page(browser, width=1280, height=800)
    yield pg
    pg.context.close()


def shot(page: Page, name: str) -> Path:
    """Save a screenshot under ``test-artifacts/auth/`` and check it is not blank."""
    return _shot(page, ARTIFACTS, name)


def test_login_shows_only_the_apps_the_role_allows(page, server):
    name, seed = new_user(server, "viewer")
    sign_in(page, server, name, seed)
    links = page.locator("a.app-link").all_inner_texts()
    assert links == ["Trading"]  # a viewer may not open the audit log
    page.click("text=Trading")
    page.wait_for_selector("text=Orders and fills")
    assert page.locator(".lyra-nav a").all_inner_texts() == ["Trading"]  # the template's navigation
    assert page.locator(f"text={name}").count() >= 1
    shot(page, "viewer-trading")
    response = page.goto(server.url + "/audit")
    assert response is not None and response.status == 403
    assert page.console_errors == [] or all("403" in e for e in page.console_errors)


def test_websocket_through_the_proxy_updates_a_widget(page, server):
    name, seed = new_user(server, "auditor")
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    sign_in(page, server, name, seed, "/audit")
    assert page.url == server.url + "/audit"
    page.wait_for_selector("text=Verify chain")
    live = page.locator(".lyra-head-seq input")  # "Last entry (live)"
    before = int(live.input_value())
    server.service.emit(AuthEventKind.LOGIN_FAILED, "nobody", reason="browser test")  # a new entry
    expect(live).to_have_value(str(before + 1), timeout=10_000)  # pushed over the websocket
    page.click("text=Verify chain")
    page.wait_for_selector("text=chain intact")
    assert sockets and all(s.startswith(server.url.replace("http", "ws") + "/audit/ws") for s in sockets)
    shot(page, "auditor-audit-log")
    assert page.console_errors == []


def test_logout_ends_the_session(page, server):
    name, seed = new_user(server, "auditor")
    sign_in(page, server, name, seed, "/audit")
    page.wait_for_selector("text=Verify chain")
    token = next(c["value"] for c in page.context.cookies() if c["name"] == "lyra_at")
    page.click("#lyra-logout")
    page.click("#confirm-logout")
    page.wait_for_url("**/auth/login?bye=1")
    assert "signed out" in page.locator("body").inner_text()
    page.goto(server.url + "/audit")
    assert "/auth/login" in page.url
    import httpx

    assert httpx.get(server.url + "/api/whoami", cookies={"lyra_at": token}).status_code == 401
    shot(page, "after-logout")
    assert page.console_errors == []


def test_session_expires_after_an_hour_idle(page, server, clock):
    name, seed = new_user(server, "admin")
    sign_in(page, server, name, seed)
    assert page.locator("a.app-link").count() == 2  # admin sees both apps
    try:
        clock.offset = timedelta(minutes=61)
        page.goto(server.url + "/")
        assert "/auth/login" in page.url
    finally:
        clock.offset = timedelta(0)
    kinds = [r.kind for r in server.service.event_log.read()]
    assert "auth.session_expired" in kinds
    assert page.console_errors == []
