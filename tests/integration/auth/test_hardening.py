"""ASVS L2 hardening of the auth service and proxy (SQLite and PostgreSQL), without the Panel
server: single-use MFA tickets, a refresh grace that never hands the live pair to anyone,
per-session API CSRF tokens, ``__Host-`` cookies over TLS, X-Forwarded-For believed only from
configured proxies, the allowed-host list, and clean 4xx answers to malformed input."""

from __future__ import annotations

import asyncio
import json
import re
import socket
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestClient, TestServer

from lyra.auth.proxy import AuthProxy, ProxyConfig
from lyra.auth.service import AuthService, LoginFailed
from lyra.auth.totp import totp_code
from lyra.core.clock import WALL_CLOCK, Clock, ManualClock

from .conftest import PASSWORD, SIGNING_KEY, TEST_ITERATIONS

NO_UPSTREAM = "http://127.0.0.1:9"  # nothing listens: these tests never reach Panel


def run_proxy(
    service: AuthService,
    body: Callable[[TestClient, AuthProxy], Awaitable[Any]],
    clock: Clock = WALL_CLOCK,
    **config: Any,
) -> Any:
    """Run ``body(client, proxy)`` against a real proxy on a loopback port; cookies are
    handled by hand (no jar), so each request carries exactly what the test says."""

    async def main() -> Any:
        proxy = AuthProxy(service, ProxyConfig(upstream=NO_UPSTREAM, **config), clock=clock)
        async with TestClient(TestServer(proxy.make_app()), cookie_jar=aiohttp.DummyCookieJar()) as client:
            return await body(client, proxy)

    return asyncio.run(main())


def set_cookies(resp: aiohttp.ClientResponse) -> dict[str, str]:
    """name -> the whole Set-Cookie line, for every cookie the response sets."""
    return {line.split("=", 1)[0]: line for line in resp.headers.getall("Set-Cookie", [])}


def cookie_value(line: str) -> str:
    return line.split("=", 1)[1].split(";", 1)[0]


async def api_login(client: TestClient, service: AuthService, name: str, seed: str, ua: str = "t") -> dict:
    """Log in through the JSON API; returns {cookie name: value} of the new session."""
    r = await client.post(
        "/auth/api/login", json={"username": name, "password": PASSWORD}, headers={"User-Agent": ua}
    )
    assert r.status == 200, await r.text()
    ticket = (await r.json())["ticket"]
    r = await client.post(
        "/auth/api/mfa",
        json={"ticket": ticket, "code": totp_code(seed, service.now())},
        headers={"User-Agent": ua},
    )
    assert r.status == 200, await r.text()
    return {k: cookie_value(v) for k, v in set_cookies(r).items()}


def jar(cookies: dict[str, str]) -> dict[str, str]:
    return {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())}


# --------------------------------------------------------------------------- MFA tickets


def test_an_mfa_ticket_completes_one_login_only(service, clock):
    enrol = service.add_user("tina", PASSWORD, "trader", actor="admin")
    # Another process on the same database and key (its own memory of spent tickets).
    other = AuthService(
        service.engine,
        signing_key=SIGNING_KEY,
        event_log=service.event_log,
        secret_box=service.box,
        clock=clock,
        iterations=TEST_ITERATIONS,
    )
    ticket = service.login_password("tina", PASSWORD, client="10.0.0.1").ticket
    wrong = "000000" if totp_code(enrol.totp_secret, clock.now) != "000000" else "111111"
    with pytest.raises(LoginFailed):  # a typo does not spend it...
        service.login_mfa(ticket, wrong)
    first = service.login_mfa(ticket, totp_code(enrol.totp_secret, clock.now), client="10.0.0.1")
    assert first.subject == "tina"
    clock.advance(seconds=30)  # a fresh, never-used code: only the ticket is spent, everywhere
    for svc in (service, other):
        with pytest.raises(LoginFailed):
            svc.login_mfa(ticket, totp_code(enrol.totp_secret, clock.now), client="10.0.0.1")
    assert "spent ticket" in _mfa_failure_reasons(other)  # refused by the factor fingerprint
    # A ticket taken before an MFA reset is dead too (its factor state changed).
    old = service.login_password("tina", PASSWORD, client="10.0.0.1").ticket
    new = service.reset_mfa("tina", actor="admin")
    with pytest.raises(LoginFailed):
        other.login_mfa(old, totp_code(new.totp_secret, clock.now), client="10.0.0.9")
    # A recovery code spends a ticket just the same.
    ticket = service.login_password("tina", PASSWORD, client="10.0.0.1").ticket
    service.login_mfa(ticket, new.recovery_codes[0], client="10.0.0.1")
    with pytest.raises(LoginFailed):
        other.login_mfa(ticket, new.recovery_codes[1], client="10.0.0.2")
    # The spent-id list refuses a ticket even where the factor state still matches (two
    # second steps racing with two valid codes: only one may win).
    ticket = service.login_password("tina", PASSWORD, client="10.0.0.1").ticket
    read = service.tickets.read(ticket, service.now())
    assert read is not None and service.tickets.spend(read[2], service.now())
    assert not service.tickets.spend(read[2], service.now())
    assert service.tickets.read(ticket, service.now()) is None
    clock.advance(seconds=30)
    with pytest.raises(LoginFailed):
        service.login_mfa(ticket, totp_code(new.totp_secret, clock.now), client="10.0.0.1")
    # ...while a new ticket still works: the account itself is fine.
    ticket = service.login_password("tina", PASSWORD, client="10.0.0.1").ticket
    assert service.login_mfa(ticket, totp_code(new.totp_secret, clock.now)).subject == "tina"


def _mfa_failure_reasons(service: AuthService) -> list[str]:
    return [
        json.loads(e.payload)["detail"].get("reason")
        for e in service.event_log.read()
        if e.kind == "auth.mfa_failed"
    ]


# --------------------------------------------------------------------------- refresh grace, CSRF


def test_a_spent_refresh_token_never_yields_the_live_pair_again(service, clock):
    enrol = service.add_user("rita", PASSWORD, "trader", actor="admin")
    grace = ManualClock(1_000_000)  # the proxy's grace window runs on it

    async def body(client: TestClient, proxy: AuthProxy) -> None:
        cookies = await api_login(client, service, "rita", enrol.totp_secret, ua="browser-A")
        old_rt = {"lyra_rt": cookies["lyra_rt"]}
        r = await client.get("/api/whoami", headers={**jar(old_rt), "User-Agent": "browser-A"})
        assert r.status == 200 and {"lyra_at", "lyra_rt"} <= set(set_cookies(r))  # the refresh
        new = {k: cookie_value(v) for k, v in set_cookies(r).items()}
        # The same browser's request already in flight with the old cookie: served, but no pair.
        grace.advance(0.5)
        late = await client.get("/api/whoami", headers={**jar(old_rt), "User-Agent": "browser-A"})
        assert late.status == 200 and (await late.json())["subject"] == "rita"
        assert "lyra_at" not in set_cookies(late) and "lyra_rt" not in set_cookies(late)
        # Anyone else with the spent token, inside the window: a replay; the session is gone.
        thief = await client.get("/api/whoami", headers={**jar(old_rt), "User-Agent": "curl/8"})
        assert thief.status == 401 and "lyra_rt" not in {
            k for k, v in set_cookies(thief).items() if "Max-Age=0" not in v
        }
        for probe in ({"lyra_at": new["lyra_at"]}, {"lyra_rt": new["lyra_rt"]}):
            assert (
                await client.get("/api/whoami", headers={**jar(probe), "User-Agent": "browser-A"})
            ).status == 401

    run_proxy(service, body, clock=grace, refresh_grace=10.0)
    assert "auth.token_reuse" in [e.kind for e in service.event_log.read()]


def test_api_csrf_token_belongs_to_one_login_session(service, clock):
    enrol = service.add_user("tom", PASSWORD, "trader", actor="admin")

    async def body(client: TestClient, proxy: AuthProxy) -> None:
        s1 = await api_login(client, service, "tom", enrol.totp_secret)
        clock.advance(seconds=30)  # the next TOTP step for the second login
        s2 = await api_login(client, service, "tom", enrol.totp_secret)
        csrf1 = (await (await client.get("/api/whoami", headers=jar(s1))).json())["csrf"]
        csrf2 = (await (await client.get("/api/whoami", headers=jar(s2))).json())["csrf"]
        assert re.fullmatch("[0-9a-f]{64}", csrf1) and csrf1 != csrf2  # same user, two sessions
        order = "/api/ping-order"
        assert (await client.post(order, headers={**jar(s1), "X-Lyra-CSRF": csrf1})).status == 200
        assert (await client.post(order, headers={**jar(s2), "X-Lyra-CSRF": csrf1})).status == 403
        assert (await client.post(order, headers={**jar(s2), "X-Lyra-CSRF": csrf2})).status == 200
        # The login form's nonce cookie is dropped at login: a fresh one per login session.
        page = await client.get("/auth/login")
        nonce = cookie_value(set_cookies(page)["lyra_csrf"])
        form_csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', await page.text()).group(1)
        r = await client.post(
            "/auth/login",
            data={"username": "tom", "password": PASSWORD, "csrf": form_csrf},
            headers={"Cookie": f"lyra_csrf={nonce}"},
            allow_redirects=False,
        )
        ticket = cookie_value(set_cookies(r)["lyra_mfa"])
        clock.advance(seconds=30)
        r = await client.post(
            "/auth/mfa",
            data={"code": totp_code(enrol.totp_secret, service.now()), "csrf": form_csrf},
            headers={"Cookie": f"lyra_csrf={nonce}; lyra_mfa={ticket}"},
            allow_redirects=False,
        )
        assert r.status == 303 and "Max-Age=0" in set_cookies(r)["lyra_csrf"]

    run_proxy(service, body)


# --------------------------------------------------------------------------- TLS cookies, hosts, XFF


def test_over_tls_cookies_are_host_prefixed_and_unprefixed_ones_ignored(service, clock):
    enrol = service.add_user("hana", PASSWORD, "viewer", actor="admin")

    async def body(client: TestClient, proxy: AuthProxy) -> None:
        page = await client.get("/auth/login")
        csrf_line = set_cookies(page)["__Host-lyra_csrf"]
        assert "Secure" in csrf_line and "Path=/;" in csrf_line + ";" and "Domain" not in csrf_line
        cookies = await api_login(client, service, "hana", enrol.totp_secret)
        assert set(cookies) == {"__Host-lyra_at", "__Host-lyra_rt"}
        r = await client.get("/api/whoami", headers=jar(cookies))
        assert r.status == 200 and (await r.json())["subject"] == "hana"
        plain = {k.removeprefix("__Host-"): v for k, v in cookies.items()}  # planted by a subdomain
        assert (await client.get("/api/whoami", headers=jar(plain))).status == 401

    run_proxy(service, body, tls=True)


def test_unknown_host_headers_are_refused(service):
    async def body(client: TestClient, proxy: AuthProxy) -> None:
        ok = await client.get("/auth/login", headers={"Host": "lyra.example.org:443"})
        assert ok.status == 200
        assert (await client.get("/auth/login", headers={"Host": "127.0.0.1:8080"})).status == 200
        for host in ("evil.example", "lyra.example.org.evil.example", "[::2]:80", ""):
            r = await client.get("/auth/login", headers={"Host": host})
            assert r.status == 400 and "unknown host" in await r.text(), host

    run_proxy(service, body, allowed_hosts=("127.0.0.1", "lyra.example.org", "::1"))


def _login_failure_clients(service: AuthService) -> list[str]:
    return [
        json.loads(e.payload)["detail"]["client"]
        for e in service.event_log.read()
        if e.kind == "auth.login_failed"
    ]


@pytest.mark.parametrize("trusted", [(), ("10.9.0.0/16", "127.0.0.1")])
def test_x_forwarded_for_is_believed_only_from_configured_proxies(service, trusted):
    service.client_limiter.max_events = 3
    spoofed = ["198.51.100.1", "198.51.100.2", "198.51.100.3", "198.51.100.4", "198.51.100.5"]

    async def body(client: TestClient, proxy: AuthProxy) -> list[int]:
        out = []
        for i, ip in enumerate(spoofed):
            r = await client.post(
                "/auth/api/login",
                json={"username": f"nobody{i}", "password": "wrong password"},
                headers={"X-Forwarded-For": f"junk, {ip}, 10.9.1.1"},  # right-most: another proxy
            )
            out.append(r.status)
        return out

    statuses = run_proxy(service, body, trusted_proxies=trusted)
    clients = _login_failure_clients(service)
    if trusted:  # five different clients: none throttled, each recorded under its address
        assert statuses == [401] * 5 and sorted(clients) == spoofed
    else:  # one client (the peer), whatever the header says: the fourth is throttled
        assert statuses == [401, 401, 401, 429, 429] and set(clients) == {"127.0.0.1"}


# --------------------------------------------------------------------------- malformed input


def _raw_request(port: int, request: bytes) -> tuple[int, bytes]:
    """Send bytes exactly as given (no client library normalises them); (status, body)."""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as s:
        s.sendall(request)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


def test_malformed_input_gets_a_short_4xx_and_no_traceback(service, clock):
    enrol = service.add_user("nora", PASSWORD, "viewer", actor="admin")

    async def body(client: TestClient, proxy: AuthProxy) -> None:
        page = await client.get("/auth/login")
        nonce = cookie_value(set_cookies(page)["lyra_csrf"])
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', await page.text()).group(1)
        form = {"Content-Type": "application/x-www-form-urlencoded", "Cookie": f"lyra_csrf={nonce}"}
        answers = {
            "form not utf-8": await client.post(
                "/auth/login", data=b"username=\xff\xfe&password=x&csrf=" + csrf.encode(), headers=form
            ),
            "json not utf-8": await client.post(
                "/auth/api/login",
                data=b'{"username":"\xff","password":"x"}',
                headers={"Content-Type": "application/json"},
            ),
            "percent-encoded junk": await client.post(
                "/auth/login", data=b"username=%ff%00&password=x&csrf=" + csrf.encode(), headers=form
            ),
            "oversized body": await client.post(
                "/auth/api/login",
                data=b"{" + b" " * 200_000 + b"}",
                headers={"Content-Type": "application/json"},
            ),
            "oversized form": await client.post("/auth/login", data=b"a=" + b"b" * 100_000, headers=form),
        }
        for what, r in answers.items():
            text = await r.text()
            assert 400 <= r.status < 500, (what, r.status, text[:200])
            assert "Traceback" not in text and len(text) < 2000, (what, text[:200])
        port = client.server.port
        for raw in (
            b"GET /api/whoami HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: lyra_at=\xff\xfe\x00; lyra_rt=\xc3\r\n"
            b"Connection: close\r\n\r\n",
            b"GET /auth/login?next=%ff%fe%00 HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
            b"GET /\xff\xfe HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
        ):
            status, text = await asyncio.get_running_loop().run_in_executor(None, _raw_request, port, raw)
            assert status in (200, 303, 400, 401), (raw, status)
            assert b"Traceback" not in text
        # next= with control characters, DEL or non-ASCII: the login completes, then goes home.
        for nxt in ("/audit%0d%0aSet-Cookie:%20x=1", "/audit%7f", "/caf%C3%A9", "/a%E2%80%A8b"):
            clock.advance(seconds=30)
            ticket = (
                await (
                    await client.post("/auth/api/login", json={"username": "nora", "password": PASSWORD})
                ).json()
            )["ticket"]
            r = await client.post(
                f"/auth/mfa?next={nxt}",
                data={"code": totp_code(enrol.totp_secret, service.now()), "csrf": csrf},
                headers={"Cookie": f"lyra_csrf={nonce}; lyra_mfa={ticket}"},
                allow_redirects=False,
            )
            assert r.status == 303 and r.headers["Location"] == "/", (nxt, r.status)
            assert "lyra_at" in set_cookies(r)

    run_proxy(service, body)
    # nothing above created a session but the four good logins
    assert [e.kind for e in service.event_log.read()].count("auth.login_ok") == 4


def test_ticket_ttl_is_five_minutes(service, clock):
    enrol = service.add_user("tess", PASSWORD, "viewer", actor="admin")
    ticket = service.login_password("tess", PASSWORD).ticket
    clock.advance(minutes=5)
    with pytest.raises(LoginFailed):
        service.login_mfa(ticket, totp_code(enrol.totp_secret, clock.now))
    assert service.tickets.ttl == timedelta(minutes=5)
