"""The admin dashboard in headless Chromium through `lyra serve`: admin functions authenticate
the person. A live admin session alone (a stolen cookie, an unattended screen) cannot create a
user; after "Confirm it is you" (password and code again) it can, and the audit log names the
admin. Role change, session revocation and the password page work from the browser; other
roles cannot open the page at all. Runs on SQLite (the service is tested on both backends in
tests/integration/auth/test_admin.py)."""

from __future__ import annotations

import json
import os
import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lyra.auth.serve import LyraServer, default_apps_dir
from lyra.auth.totp import totp_code
from lyra.bootstrap import initialise
from lyra.settings import load_settings
from lyra.testing.serving import (
    KEY,
    PASSWORD,
    new_user,
    shot,
    sign_in,
)

from .conftest import new_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.subprocess]

ARTIFACTS = (
    Path(os.environ.get("LYRA_TEST_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))
    / "admin"
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("admin-browser")
    apps = tmp / "apps"
    apps.mkdir()
    for name in ("admin.py", "audit_log.py"):
        shutil.copy(default_apps_dir() / name, apps / name)
    settings = load_settings(env={}, home=str(tmp / "home"), jwt_secret=KEY)
    initialise(load_samples=False, settings=settings)
    srv = LyraServer(
        settings,
        port=0,
        apps_dir=apps,
        iterations=20_000,
        panel_log=tmp / "panel.log",
        per_client_logins=10_000,
    )
    srv.start()
    yield srv
    srv.stop()


def audit(server, kind: str) -> list[tuple[str, dict]]:
    return [(e.actor, json.loads(e.payload)) for e in server.service.event_log.read() if e.kind == kind]


def test_admin_dashboard_needs_the_person_not_just_the_session(page, server):
    svc = server.service
    name, seed = new_user(server, "admin")
    victim, vseed = new_user(server, "viewer")
    sign_in(page, server, name, seed, "/admin")
    result = page.locator(".lyra-admin-result")
    expect(page.locator(".lyra-admin-users")).to_contain_text(victim)
    # The session alone: creating a user is refused, and nothing is created.
    page.locator(".lyra-new-user input").fill("newbie1")
    page.locator(".lyra-new-password input").fill("a long enough passphrase")
    page.click(".lyra-create-user button")
    expect(result).to_contain_text("confirm it is you")
    assert svc.users.get("newbie1") is None
    assert any(
        p["detail"].get("reason") == "re-authentication required"
        for _a, p in audit(server, "auth.permission_denied")
    )
    # Password and the next code again, then back on the page: now it works, as this admin.
    page.click("a.lyra-reauth-link")
    page.wait_for_url("**/auth/reauth**")
    page.fill("#password", PASSWORD)
    page.fill("#code", totp_code(seed, svc.now() + timedelta(seconds=30)))
    page.click("#confirm-reauth")
    page.wait_for_url("**/admin")
    expect(page.locator(".lyra-admin-users")).to_contain_text(victim)
    page.locator(".lyra-new-user input").fill("newbie1")
    page.locator(".lyra-new-password input").fill("a long enough passphrase")
    page.click(".lyra-create-user button")
    expect(result).to_contain_text("Created newbie1 (viewer)")
    assert svc.users.get("newbie1") is not None
    assert audit(server, "auth.user_created")[-1][0] == name
    # Role change of the victim, then revoke a live session of theirs.
    vpage = new_page(page.context.browser)
    vctx = vpage.context
    try:
        sign_in(vpage, server, victim, vseed, "/")
        expect(vpage.locator("body")).to_contain_text(victim)
        page.locator(".lyra-pick-user select").select_option(victim)
        expect(page.locator(".lyra-admin-sessions")).to_contain_text("yes")  # the victim's live session
        page.click(".lyra-revoke-session button")
        expect(result).to_contain_text(f"of {victim} ended")
        vpage.goto(server.url + "/")
        assert "/auth/login" in vpage.url  # the revoked session is gone at once
    finally:
        vctx.close()
    page.locator(".lyra-pick-role select").select_option("analyst")
    page.click(".lyra-change-role button")
    expect(result).to_contain_text(f"{victim} is now analyst")
    assert svc.users.get(victim).role.value == "analyst"
    assert audit(server, "auth.role_changed")[-1][0] == name
    expect(page.locator(".lyra-admin-users")).to_contain_text("newbie1")
    shot(page, ARTIFACTS, "admin")
    assert page.console_errors == []


def test_other_roles_cannot_open_admin_and_anyone_can_change_their_password(page, server):
    name, seed = new_user(server, "risk_manager")
    sign_in(page, server, name, seed, "/")
    assert "/admin" not in page.content()  # not offered in the index
    r = page.goto(server.url + "/admin")
    assert r is not None and r.status == 403
    page.goto(server.url + "/auth/password")
    page.fill("#current", PASSWORD)
    page.fill("#new", "a different long passphrase")
    page.click("#change-password")
    expect(page.locator(".ok")).to_contain_text("Password changed")
    svc = server.service
    assert svc.login_password(name, "a different long passphrase").ticket
    assert audit(server, "auth.password_changed")[-1][0] == name
