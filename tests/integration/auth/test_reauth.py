"""Re-authentication (password + TOTP within the last N minutes) before the kill switch,
re-arm, user management and large orders (SQLite and PostgreSQL): the service's rules, the
proxy's page and JSON endpoint, and the re-authentication time reaching Panel in the signed
identity (an upstream that echoes what the proxy sends stands in for Panel)."""

from __future__ import annotations

import asyncio
import json
import re
from datetime import timedelta
from decimal import Decimal

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from lyra.auth.identity import IDENTITY_HEADER, IdentityVerifier
from lyra.auth.permissions import Action
from lyra.auth.policy import LoginThrottled
from lyra.auth.proxy import AuthProxy, ProxyConfig
from lyra.auth.reauth import ReauthPolicy, ReauthRequired
from lyra.auth.service import AuthService, LoginFailed
from lyra.auth.tokens import InvalidToken
from lyra.auth.totp import totp_code
from lyra.core.errors import ConfigError

from .conftest import PASSWORD, SIGNING_KEY, TEST_ITERATIONS
from .test_hardening import api_login, cookie_value, jar, set_cookies


def reauth_events(service: AuthService) -> list[tuple[str, str | None]]:
    out = []
    for e in service.event_log.read():
        d = json.loads(e.payload).get("detail", {})
        if e.kind in ("auth.mfa_ok", "auth.mfa_failed") and "re-auth" in str(d.get("reason")):
            out.append((e.kind, d.get("reason")))
    return out


def test_reauth_rules_on_the_service(service, clock):
    enrol = service.add_user("rosa", PASSWORD, "risk_manager", actor="admin")
    ch = service.login_password("rosa", PASSWORD)
    login_code = totp_code(enrol.totp_secret, clock.now)
    pair = service.login_mfa(ch.ticket, login_code)
    sid, r = pair.session_id, service.reauth
    with pytest.raises(ReauthRequired, match="/auth/reauth"):  # a fresh login is not a re-auth
        r.require(sid, Action.REARM_KILL_SWITCH)
    for password, code in (
        ("not my password at all", totp_code(enrol.totp_secret, clock.now + timedelta(seconds=30))),
        (PASSWORD, login_code),  # the login's code again: a replay
        (PASSWORD, "12345"),
    ):
        with pytest.raises(LoginFailed):
            r.confirm(sid, "rosa", password, code, client="10.0.0.1")
    assert r.fresh_at(sid) is None
    clock.advance(seconds=30)
    at = r.confirm(sid, "rosa", PASSWORD, totp_code(enrol.totp_secret, clock.now), client="10.0.0.1")
    assert at == clock.now and r.fresh_at(sid) == at
    for action in (Action.PULL_KILL_SWITCH, Action.REARM_KILL_SWITCH, Action.MANAGE_USERS):
        r.require(sid, action)
    clock.advance(minutes=5, seconds=1)  # the default window is 5 minutes
    assert r.fresh_at(sid) is None
    with pytest.raises(ReauthRequired):
        r.require(sid, Action.PULL_KILL_SWITCH)
    # Orders: only above the notional (default 100,000); cancels never.
    r.require(sid, Action.PLACE_ORDER, notional=Decimal("99999.99"))
    r.require(sid, Action.CANCEL_ORDER)
    with pytest.raises(ReauthRequired):
        r.require(sid, Action.PLACE_ORDER, notional=Decimal("-100000.01"))
    # Another login session of the same person is not re-authenticated by this one.
    assert r.fresh_at("another-session") is None
    # An ended session cannot re-authenticate.
    service.logout(sid, "rosa")
    clock.advance(seconds=30)
    with pytest.raises(InvalidToken):
        r.confirm(sid, "rosa", PASSWORD, totp_code(enrol.totp_secret, clock.now))
    # Failures count towards the lockout like a login's: the fifth locks the account.
    pair = service.login_mfa(
        service.login_password("rosa", PASSWORD).ticket, totp_code(enrol.totp_secret, clock.now)
    )
    outcomes = []
    for _ in range(6):
        try:
            r.confirm(pair.session_id, "rosa", "wrong password again", "000000")
        except LoginFailed:
            outcomes.append("failed")
        except LoginThrottled:
            outcomes.append("throttled")
    assert outcomes == ["failed"] * 5 + ["throttled"], outcomes
    with pytest.raises(LoginThrottled):
        r.confirm(pair.session_id, "rosa", PASSWORD, totp_code(enrol.totp_secret, clock.now))
    kinds = reauth_events(service)
    assert kinds.count(("auth.mfa_ok", "re-authentication")) == 1
    assert ("auth.mfa_failed", "re-authentication failed") in kinds


def test_policy_window_and_notional_are_configurable(service, clock):
    p = ReauthPolicy.from_env({"LYRA_REAUTH_MINUTES": "2", "LYRA_REAUTH_ORDER_NOTIONAL": "5000"})
    assert p.window == timedelta(minutes=2) and p.order_notional == Decimal("5000")
    assert ReauthPolicy.from_env({"LYRA_REAUTH_ORDER_NOTIONAL": "none"}).order_notional is None
    assert ReauthPolicy.from_env({}).window == timedelta(minutes=5)
    for bad in (
        {"LYRA_REAUTH_MINUTES": "soon"},
        {"LYRA_REAUTH_MINUTES": "0"},
        {"LYRA_REAUTH_ORDER_NOTIONAL": "x"},
    ):
        with pytest.raises(ConfigError):
            ReauthPolicy.from_env(bad)
    svc = AuthService(
        service.engine,
        signing_key=SIGNING_KEY,
        event_log=service.event_log,
        secret_box=service.box,
        clock=clock,
        iterations=TEST_ITERATIONS,
        reauth_policy=p,
    )
    enrol = svc.add_user("otto", PASSWORD, "trader", actor="admin")
    pair = svc.login_mfa(svc.login_password("otto", PASSWORD).ticket, totp_code(enrol.totp_secret, clock.now))
    with pytest.raises(ReauthRequired):
        svc.reauth.require(pair.session_id, Action.PLACE_ORDER, notional=Decimal("5000.01"))
    clock.advance(seconds=30)
    svc.reauth.confirm(pair.session_id, "otto", PASSWORD, totp_code(enrol.totp_secret, clock.now))
    clock.advance(minutes=2)
    svc.reauth.require(pair.session_id, Action.PLACE_ORDER, notional=Decimal("5000.01"))
    clock.advance(seconds=1)
    with pytest.raises(ReauthRequired):
        svc.reauth.require(pair.session_id, Action.PLACE_ORDER, notional=Decimal("5000.01"))


def test_reauth_through_the_proxy_reaches_panel_in_the_identity(service, clock):
    enrol = service.add_user("rick", PASSWORD, "risk_manager", actor="admin")
    verifier = IdentityVerifier(service.signing_secret())

    async def echo(request: web.Request) -> web.Response:  # stands in for Panel
        return web.json_response({"identity": request.headers.get(IDENTITY_HEADER)})

    async def main() -> None:
        upstream = web.Application()
        upstream.router.add_get("/risk", echo)
        async with TestServer(upstream) as panel:
            proxy = AuthProxy(service, ProxyConfig(upstream=str(panel.make_url("")).rstrip("/")))
            async with TestClient(TestServer(proxy.make_app()), cookie_jar=aiohttp.DummyCookieJar()) as c:
                cookies = await api_login(c, service, "rick", enrol.totp_secret)

                async def identity():
                    r = await c.get("/risk", headers=jar(cookies))
                    assert r.status == 200
                    return verifier.verify((await r.json())["identity"])  # Panel: wall clock

                assert (await identity()).reauth_at is None
                csrf = (await (await c.get("/api/whoami", headers=jar(cookies))).json())["csrf"]
                clock.advance(seconds=30)
                body = {"password": PASSWORD, "code": totp_code(enrol.totp_secret, clock.now)}
                r = await c.post("/auth/api/reauth", json=body, headers=jar(cookies))
                assert r.status == 403  # no CSRF header: refused before anything is checked
                r = await c.post("/auth/api/reauth", json=body, headers={**jar(cookies), "X-Lyra-CSRF": csrf})
                assert r.status == 200, await r.text()
                assert (await identity()).reauth_at == clock.now
                # The page step: a form with CSRF, back to next= afterwards.
                anon = await c.get(
                    "/auth/reauth?next=/risk", headers={"Accept": "text/html"}, allow_redirects=False
                )
                assert anon.status == 303 and anon.headers["Location"].startswith("/auth/login")
                page = await c.get("/auth/reauth?next=/risk", headers=jar(cookies))
                text = await page.text()
                assert page.status == 200 and "Confirm it is you" in text and "rick" in text
                nonce = cookie_value(set_cookies(page)["lyra_csrf"])
                form_csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', text).group(1)
                clock.advance(minutes=6)  # the API re-auth has gone stale
                assert (await identity()).reauth_at is None
                form = {
                    "password": PASSWORD,
                    "code": totp_code(enrol.totp_secret, clock.now),
                    "csrf": form_csrf,
                }
                page_cookies = {**jar(cookies), "Cookie": jar(cookies)["Cookie"] + f"; lyra_csrf={nonce}"}
                bad = await c.post(
                    "/auth/reauth?next=/risk",
                    data={**form, "password": "wrong wrong wrong"},
                    headers=page_cookies,
                    allow_redirects=False,
                )
                assert bad.status == 401 and "not accepted" in await bad.text()
                ok = await c.post(
                    "/auth/reauth?next=/risk", data=form, headers=page_cookies, allow_redirects=False
                )
                assert ok.status == 303 and ok.headers["Location"] == "/risk"
                assert (await identity()).reauth_at == clock.now

    asyncio.run(main())
    assert reauth_events(service).count(("auth.mfa_ok", "re-authentication")) == 2
