"""Attack tests against the real running `lyra serve` stack (auth proxy + Panel child process)
on SQLite and PostgreSQL: each attack must fail to get in, and nothing secret may leak."""

from __future__ import annotations

import base64
import concurrent.futures
import json
import logging
import os
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import jwt
import pytest
import sqlalchemy as sa
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy.engine import make_url

from lyra.auth import InMemoryRefreshTokenStore, Role, TokenConfig, TokenService, is_allowed
from lyra.auth.identity import IDENTITY_HEADER, IdentitySigner
from lyra.auth.panel_auth import discover_apps
from lyra.auth.serve import LyraServer, default_apps_dir
from lyra.auth.totp import totp_code
from lyra.bootstrap import initialise
from lyra.core.clock import ManualClock
from lyra.settings import load_settings

from .conftest import PASSWORD, SIGNING_KEY

# A real server: the auth proxy in this process, Panel in a subprocess; ~1 min in all.
pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

PG_ADMIN_URL = os.environ.get("LYRA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


class Stack:
    """The running server plus helpers to make users and sessions."""

    def __init__(self, server: LyraServer, log_path: Path) -> None:
        self.server = server
        self.url = server.url
        self.log_path = log_path
        self.secrets: list[str] = [PASSWORD, SIGNING_KEY]
        self._clients: list[httpx.Client] = []

    def client(self, **kwargs: object) -> httpx.Client:
        """An httpx client on the server, closed after the test (see ``_close_clients``)."""
        c = httpx.Client(base_url=self.url, **kwargs)
        self._clients.append(c)
        return c

    def close_clients(self) -> None:
        while self._clients:
            self._clients.pop().close()

    def user(self, role: str) -> tuple[str, str]:
        name = f"{role[:6]}{uuid.uuid4().hex[:8]}"
        enrol = self.server.service.add_user(name, PASSWORD, role, actor="test")
        self.secrets += [enrol.totp_secret, *enrol.recovery_codes]
        return name, enrol.totp_secret

    def login(self, role: str) -> tuple[httpx.Client, str, str]:
        """A client holding the cookies of a fresh session of a new user of ``role``."""
        name, seed = self.user(role)
        c = self.client(timeout=30)
        r = c.post("/auth/api/login", json={"username": name, "password": PASSWORD})
        assert r.status_code == 200, r.text
        r = c.post(
            "/auth/api/mfa", json={"ticket": r.json()["ticket"], "code": totp_code(seed, datetime.now(UTC))}
        )
        assert r.status_code == 200, r.text
        self.secrets += [c.cookies["lyra_at"], c.cookies["lyra_rt"]]
        return c, name, seed

    def csrf(self, c: httpx.Client) -> str:
        return c.get("/api/whoami").json()["csrf"]

    def kinds(self) -> list[str]:
        return [r.kind for r in self.server.service.event_log.read()]


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def stack(request, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("serve")
    admin = None
    if request.param == "sqlite":
        db_url = f"sqlite:///{tmp / 'lyra.db'}"
    else:
        admin = request.getfixturevalue("pg_admin")
        name = f"lyra_test_{uuid.uuid4().hex[:12]}"
        with admin.connect() as c:
            c.execute(sa.text(f'CREATE DATABASE "{name}"'))
        db_url = make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    settings = load_settings(env={}, home=str(tmp / "home"), database_url=db_url, jwt_secret=SIGNING_KEY)
    initialise(load_samples=False, settings=settings)
    log_path = tmp / "server.log"
    handler = logging.FileHandler(log_path)
    handler.setLevel(logging.DEBUG)
    root = logging.getLogger()
    old_level = root.level
    root.setLevel(logging.INFO)
    root.addHandler(handler)
    server = LyraServer(
        settings, port=0, panel_log=log_path, iterations=20_000, refresh_grace=1.0, per_client_logins=10_000
    )
    server.start()
    try:
        yield Stack(server, log_path)
    finally:
        server.stop()
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()
        if admin is not None:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{make_url(db_url).database}" WITH (FORCE)'))


@pytest.fixture(autouse=True)
def _close_clients(stack):
    """Close every client a test opened, so no socket is left for the garbage collector."""
    yield
    stack.close_clients()


def b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def claims_for(sub: str, role: str, sid: str, **over) -> dict:
    now = int(time.time())
    base = {
        "iss": "lyra",
        "aud": "lyra-apps",
        "sub": sub,
        "role": role,
        "sid": sid,
        "jti": uuid.uuid4().hex,
        "iat": now,
        "nbf": now,
        "exp": now + 600,
    }
    base.update(over)
    return base


def refused_with(stack: Stack, token: str) -> None:
    """The proxy refuses a request carrying only this access token (no refresh token)."""
    r = httpx.get(stack.url + "/api/whoami", cookies={"lyra_at": token})
    assert r.status_code == 401, r.text
    page = httpx.get(stack.url + "/audit", cookies={"lyra_at": token}, headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"].startswith("/auth/login")


# --------------------------------------------------------------------------- tokens


def test_no_token_is_refused_everywhere(stack):
    assert httpx.get(stack.url + "/api/whoami").status_code == 401
    page = httpx.get(stack.url + "/audit", headers={"Accept": "text/html"})
    assert page.status_code == 303 and page.headers["location"] == "/auth/login?next=/audit"
    assert httpx.get(stack.url + "/static/js/bokeh.min.js").status_code == 401
    assert (
        httpx.get(
            stack.url + "/audit/ws", headers={"Upgrade": "websocket", "Connection": "Upgrade"}
        ).status_code
        == 401
    )


def test_forged_tokens_are_refused(stack):
    c, name, _ = stack.login("admin")
    good = c.cookies["lyra_at"]
    sid = jwt.decode(good, options={"verify_signature": False})["sid"]
    assert httpx.get(stack.url + "/api/whoami", cookies={"lyra_at": good}).status_code == 200
    key = SIGNING_KEY.encode()
    # expired (signed with the real key, valid session)
    refused_with(
        stack,
        jwt.encode(
            claims_for(
                name,
                "admin",
                sid,
                iat=int(time.time()) - 3600,
                nbf=int(time.time()) - 3600,
                exp=int(time.time()) - 1800,
            ),
            key,
            headers={"typ": "at+jwt"},
        ),
    )
    # tampered payload: a viewer's token edited to say admin, signature kept
    v, _vname, _ = stack.login("viewer")
    head, _payload, sig = v.cookies["lyra_at"].split(".")
    vclaims = jwt.decode(v.cookies["lyra_at"], options={"verify_signature": False})
    refused_with(stack, f"{head}.{b64({**vclaims, 'role': 'admin'})}.{sig}")
    # alg none
    refused_with(stack, f"{b64({'alg': 'none', 'typ': 'at+jwt'})}.{b64(claims_for(name, 'admin', sid))}.")
    # HS/RS confusion: RS256 with an attacker key, and HS256 keyed with a public key
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    refused_with(
        stack,
        jwt.encode(claims_for(name, "admin", sid), private, algorithm="RS256", headers={"typ": "at+jwt"}),
    )
    head = b64({"alg": "HS256", "typ": "at+jwt"})
    body = b64(claims_for(name, "admin", sid))
    import hashlib
    import hmac as _hmac

    sig = (
        base64.urlsafe_b64encode(_hmac.new(pem, f"{head}.{body}".encode(), hashlib.sha256).digest())
        .rstrip(b"=")
        .decode()
    )
    refused_with(stack, f"{head}.{body}.{sig}")
    # wrong audience (right key)
    refused_with(
        stack, jwt.encode(claims_for(name, "admin", sid, aud="other-app"), key, headers={"typ": "at+jwt"})
    )
    # a well-formed token of another installation's key
    other = TokenService(
        TokenConfig(key="another-installation-key-9f8e7d6c5b4a39281"), InMemoryRefreshTokenStore()
    )
    refused_with(stack, other.issue_access_token(name, Role.ADMIN, sid))


def test_replayed_totp_code_is_refused(stack):
    name, seed = stack.user("analyst")
    code = totp_code(seed, datetime.now(UTC))
    c = stack.client()
    t1 = c.post("/auth/api/login", json={"username": name, "password": PASSWORD}).json()["ticket"]
    assert c.post("/auth/api/mfa", json={"ticket": t1, "code": code}).status_code == 200
    t2 = c.post("/auth/api/login", json={"username": name, "password": PASSWORD}).json()["ticket"]
    r = c.post("/auth/api/mfa", json={"ticket": t2, "code": code})
    assert r.status_code == 401 and r.json() == {"error": "Username, password or code not accepted."}


def test_reused_refresh_token_revokes_the_family(stack, monkeypatch):
    # the proxy's grace window runs on a clock the test moves (started where the real one is)
    grace = ManualClock(round(time.monotonic() * 1000))
    monkeypatch.setattr(stack.server.proxy, "clock", grace)
    c, _name, _ = stack.login("trader")
    old_rt = c.cookies["lyra_rt"]
    # Only the refresh cookie: the proxy refreshes silently and hands out a new pair.
    r = httpx.get(stack.url + "/api/whoami", cookies={"lyra_rt": old_rt})
    assert r.status_code == 200
    new_rt = r.cookies["lyra_rt"]
    new_at = r.cookies["lyra_at"]
    stack.secrets += [new_rt, new_at]
    assert new_rt != old_rt
    grace.advance(1.2)  # past the proxy's in-flight grace (1 s): now a replay is a replay
    assert httpx.get(stack.url + "/api/whoami", cookies={"lyra_rt": old_rt}).status_code == 401
    # ...and the whole family is gone: the legitimate new tokens die too.
    assert httpx.get(stack.url + "/api/whoami", cookies={"lyra_rt": new_rt}).status_code == 401
    assert httpx.get(stack.url + "/api/whoami", cookies={"lyra_at": new_at}).status_code == 401
    assert "auth.token_reuse" in stack.kinds()


def test_concurrent_refresh_by_one_browser_is_not_reuse(stack):
    c, name, _ = stack.login("analyst")
    rt = c.cookies["lyra_rt"]
    before = stack.kinds().count("auth.token_reuse")

    def hit(_i):
        return httpx.get(stack.url + "/api/whoami", cookies={"lyra_rt": rt})

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        results = list(pool.map(hit, range(6)))
    assert [r.status_code for r in results] == [200] * 6
    # One refresh, shared by the requests in flight with it; a request that came after it (in
    # the grace window, same client) is served but gets no pair: the pair is handed out once
    # per refresh, never again for the spent token.
    with_pair = [r for r in results if "lyra_rt" in r.cookies]
    assert with_pair and len({r.cookies["lyra_rt"] for r in with_pair}) == 1
    stack.secrets += [with_pair[0].cookies["lyra_rt"], with_pair[0].cookies["lyra_at"]]
    assert stack.kinds().count("auth.token_reuse") == before
    assert (
        httpx.get(stack.url + "/api/whoami", cookies={"lyra_at": with_pair[0].cookies["lyra_at"]}).json()[
            "subject"
        ]
        == name
    )


def test_brute_force_locks_out_without_revealing_users(stack):
    name, _seed = stack.user("viewer")
    c = stack.client()
    answers = [
        c.post("/auth/api/login", json={"username": name, "password": f"guess number {i} wrong"})
        for i in range(5)
    ]
    assert [a.status_code for a in answers] == [401] * 5
    assert len({a.text for a in answers}) == 1
    locked = c.post("/auth/api/login", json={"username": name, "password": PASSWORD})
    assert locked.status_code == 429 and "too many login attempts" in locked.json()["error"]
    ghost = f"ghost{uuid.uuid4().hex[:6]}"
    ghost_answers = [
        c.post("/auth/api/login", json={"username": ghost, "password": f"guess number {i} wrong"})
        for i in range(5)
    ]
    assert [a.text for a in ghost_answers] == [a.text for a in answers]  # same words for a non-user
    assert c.post("/auth/api/login", json={"username": ghost, "password": PASSWORD}).status_code == 429
    assert stack.kinds().count("auth.lockout") >= 2


# --------------------------------------------------------------------------- Panel side


def test_direct_request_to_panel_port_is_refused_by_panel_itself(stack):
    panel = stack.server.panel_url
    direct = httpx.Client(timeout=60)  # a new Panel session on a loaded machine takes seconds
    r = direct.get(panel + "/audit")
    assert r.status_code == 302 and "auth/login" in r.headers["location"] and "Audit log" not in r.text
    v, _, _ = stack.login("viewer")
    # The access token is not what Panel accepts: neither as a cookie nor as the identity header.
    assert httpx.get(panel + "/audit", cookies={"lyra_at": v.cookies["lyra_at"]}, timeout=60).status_code == 302
    assert direct.get(panel + "/audit", headers={IDENTITY_HEADER: v.cookies["lyra_at"]}).status_code == 302
    signer = IdentitySigner(stack.server.service.signing_secret())
    viewer_id = signer.sign("viewer1", Role.VIEWER, "s-1")
    r = direct.get(panel + "/audit", headers={IDENTITY_HEADER: viewer_id})
    assert r.status_code == 403  # a genuine identity, wrong role: Panel's own check
    bad = direct.get(panel + "/audit", headers={IDENTITY_HEADER: viewer_id[:-4] + "AAAA"})
    assert bad.status_code == 302
    stale = signer.sign("auditor1", Role.AUDITOR, "s-2", now=datetime.now(UTC) - timedelta(minutes=2))
    assert direct.get(panel + "/audit", headers={IDENTITY_HEADER: stale}).status_code == 302  # a minute only
    ok = direct.get(panel + "/audit", headers={IDENTITY_HEADER: signer.sign("auditor1", Role.AUDITOR, "s-2")})
    assert ok.status_code == 200 and "bokeh" in ok.text.lower()
    assert stack.server.panel_url.startswith("http://127.0.0.1:")
    direct.close()


def test_the_page_holds_no_token_cookie_or_identity(stack):
    """Bokeh embeds a session token in the page (headers, cookies of the request): through the
    proxy it must hold none of the access/refresh tokens, cookies or the identity header."""
    from bokeh.util.token import get_token_payload

    a, _, _ = stack.login("auditor")
    page = a.get("/audit", headers={"Accept": "text/html", IDENTITY_HEADER: "forged-by-the-browser"})
    assert page.status_code == 200
    tokens = re.findall(r'"token":\s*"([^"]+)"', page.text)
    assert tokens, "no Bokeh session token in the page"
    payload = get_token_payload(tokens[0])
    assert payload["cookies"] == {}
    assert {k.lower() for k in payload["headers"]} <= {"host", "user-agent", "accept-language", "x-forwarded-proto"}
    text = page.text + json.dumps(payload)
    for secret in (a.cookies["lyra_at"], a.cookies["lyra_rt"], "lyra_at", "lyra_rt", "forged-by-the-browser"):
        assert secret not in text
    csp = page.headers["content-security-policy"]
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'nonce-" in script_src


def test_viewer_cannot_call_a_trader_action(stack):
    v, _, _ = stack.login("viewer")
    assert v.post("/api/ping-order", headers={"X-Lyra-CSRF": stack.csrf(v)}).status_code == 403
    assert v.post("/api/ping-order").status_code == 403  # no CSRF header either
    t, tname, _ = stack.login("trader")
    assert t.post("/api/ping-order").status_code == 403  # trader, but no CSRF header
    r = t.post("/api/ping-order", headers={"X-Lyra-CSRF": stack.csrf(t)})
    assert r.status_code == 200 and r.json()["subject"] == tname
    evil = t.post("/api/ping-order", headers={"X-Lyra-CSRF": stack.csrf(t), "Origin": "https://evil.example"})
    assert evil.status_code == 403
    assert "auth.permission_denied" in stack.kinds()


def test_api_keys_revoked_or_expired_are_refused(stack, monkeypatch):
    name, _ = stack.user("trader")
    svc = stack.server.service
    key = svc.create_api_key(name, ["place_order"], actor="test").key
    short = svc.create_api_key(name, ["place_order"], ttl=timedelta(seconds=60), actor="test").key
    viewer_name, _ = stack.user("viewer")
    viewer_key = svc.create_api_key(viewer_name, ["view_trading"], actor="test").key
    stack.secrets += [key, short, viewer_key]
    auth = lambda k: {"Authorization": f"Bearer {k}"}  # noqa: E731
    assert httpx.post(stack.url + "/api/ping-order", headers=auth(key)).status_code == 200
    assert httpx.post(stack.url + "/api/ping-order", headers=auth(viewer_key)).status_code == 403
    svc.revoke_api_key(key.split("_")[1], actor="test")
    assert httpx.post(stack.url + "/api/ping-order", headers=auth(key)).status_code == 401
    assert httpx.post(stack.url + "/api/ping-order", headers=auth(short)).status_code == 200
    # a minute later (the service's clock, moved instead of waited for) the short key is dead
    real = svc.clock
    monkeypatch.setattr(svc, "clock", lambda: real() + timedelta(seconds=61))
    assert httpx.post(stack.url + "/api/ping-order", headers=auth(short)).status_code == 401
    for bad in ("lyra_abc", key[:-1] + "x", "Basic Zm9vOmJhcg==", "Bearer " + "A" * 5000):
        h = {"Authorization": bad if " " in bad else f"Bearer {bad}"}
        assert httpx.post(stack.url + "/api/ping-order", headers=h).status_code in (400, 401)


def test_each_app_opens_for_exactly_the_roles_the_table_allows(stack):
    apps = discover_apps(default_apps_dir())
    assert len(apps) == 10  # the audit log, the admin page and the eight dashboards
    # Every role × app through the proxy. A refused pair gets 403 for the page (the proxy
    # answers before Panel). An allowed pair is checked on the app's Bokeh metadata endpoint:
    # the same route, past the same two checks (the proxy's role, Panel's token check), 200
    # without building a Panel session. Full page loads build the app (seconds each), so they
    # are bounded: each app once, by the first role (in the table's order) allowed to open it;
    # on PostgreSQL two apps (one open to all, one narrow): the role check does not depend on
    # the database.
    pg = "postgresql" in str(stack.server.settings.db_url)
    full = {spec.route: next(r for r in Role if is_allowed(r, spec.requires)) for spec in apps
            if not pg or spec.route in ("audit", "trading")}
    for role in Role:
        c, _, _ = stack.login(role.value)
        for spec in apps:
            allowed = is_allowed(role, spec.requires)
            meta = c.get(f"/{spec.route}/metadata")
            assert meta.status_code == (200 if allowed else 403), (role, spec.route, meta.text[:200])
            if allowed:
                assert meta.json()["url"].rstrip("/").endswith(f"/{spec.route}"), meta.text
            if not allowed or full.get(spec.route) is role:
                r = c.get(f"/{spec.route}", headers={"Accept": "text/html"})
                assert r.status_code == (200 if allowed else 403), (role, spec.route)
                if allowed:
                    assert "<html" in r.text.lower() and "bokeh" in r.text.lower(), (role, spec.route)
        index = c.get("/", headers={"Accept": "text/html"}).text
        assert ("/audit" in index) == is_allowed(role, "view_audit")
    assert all(any(full.get(spec.route) is r for r in Role) for spec in apps if spec.route in full)


# --------------------------------------------------------------------------- input, CSRF, headers


def test_bad_input_is_refused_clearly_and_writes_only_the_audit_entry(stack):
    svc = stack.server.service
    svc.flush_failures()  # earlier tests' pending counts: written now, not during this test
    malformed_before = _malformed_usernames(svc)
    with svc.engine.connect() as conn:
        count = lambda t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar()  # noqa: E731
        before = {t: count(t) for t in ("auth_users", "auth_sessions", "auth_login_attempts", "events")}
    c = stack.client()
    secret_typed = "hunter2-typed-into-the-username-field-" + "x" * 60
    r = c.post("/auth/api/login", json={"username": secret_typed, "password": "x"})
    assert r.status_code == 400 and "username" in r.text and secret_typed[:20] not in r.text
    r = c.post("/auth/api/login", json={"username": "аdmin", "password": "whatever password"})  # Cyrillic а
    assert r.status_code == 400 and "look-alike" in r.json()["error"]
    r = c.post("/auth/api/login", json={"username": "ad\u202emin", "password": "whatever password"})
    assert r.status_code == 400 and "invisible" in r.json()["error"]
    r = c.post("/auth/api/login", json={"username": "alice", "password": "pw", "role": "admin"})
    assert r.status_code == 400 and r.json()["error"] == "role: unknown field"
    assert (
        c.post(
            "/auth/api/login", content=b"{not json", headers={"Content-Type": "application/json"}
        ).status_code
        == 400
    )
    assert (
        c.post("/auth/api/login", content=b"username=a", headers={"Content-Type": "text/plain"}).status_code
        == 400
    )
    assert (
        c.post(
            "/auth/api/login",
            content=b"{" + b" " * 100_000 + b"}",
            headers={"Content-Type": "application/json"},
        ).status_code
        == 413
    )
    r = httpx.get(stack.url + "/api/whoami", headers={"Cookie": 'lyra_at="\x7f;;==; lyra_rt=%%%; =; lyra_at'})
    assert r.status_code in (400, 401)
    with svc.engine.connect() as conn:
        after = {t: conn.execute(sa.text(f"SELECT count(*) FROM {t}")).scalar() for t in before}
    assert after["auth_users"] == before["auth_users"] and after["auth_sessions"] == before["auth_sessions"]
    assert after["auth_login_attempts"] == before["auth_login_attempts"]
    # At most one audit row for the three malformed usernames (aggregated per source and
    # minute), and their count arrives with the flush: nothing else was written.
    assert after["events"] - before["events"] <= 1
    svc.flush_failures()
    assert _malformed_usernames(svc) - malformed_before == 3


def _malformed_usernames(svc) -> int:
    """Malformed-username failures the log accounts for (a row each, or its count)."""
    n = 0
    for e in svc.event_log.read():
        if e.kind == "auth.login_failed":
            d = json.loads(e.payload)["detail"]
            n += d.get("count", 1) if d.get("reason") == "malformed username" else 0
    return n


def test_login_form_needs_csrf_token_and_same_origin(stack):
    name, _ = stack.user("viewer")
    c = stack.client()
    page = c.get("/auth/login")
    import re

    csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', page.text).group(1)
    assert c.post("/auth/login", data={"username": name, "password": PASSWORD}).status_code == 403
    assert (
        c.post("/auth/login", data={"username": name, "password": PASSWORD, "csrf": "0" * 64}).status_code
        == 403
    )
    foreign = c.post(
        "/auth/login",
        data={"username": name, "password": PASSWORD, "csrf": csrf},
        headers={"Origin": "https://evil.example"},
    )
    assert foreign.status_code == 403
    ok = c.post("/auth/login", data={"username": name, "password": PASSWORD, "csrf": csrf})
    assert ok.status_code == 303 and ok.headers["location"] == "/auth/mfa?next=/"
    assert "lyra_mfa" in ok.headers["set-cookie"] and "HttpOnly" in ok.headers["set-cookie"]


def test_security_headers_and_cookie_flags(stack):
    login = httpx.get(stack.url + "/auth/login")
    csp = login.headers["content-security-policy"]
    assert "frame-ancestors 'none'" in csp and "script-src" not in csp  # our pages run no script
    assert login.headers["x-frame-options"] == "DENY" and login.headers["x-content-type-options"] == "nosniff"
    assert "strict-transport-security" not in login.headers  # plain HTTP here
    assert login.headers["server"] == "lyra"
    c, _, _ = stack.login("auditor")
    app_page = c.get("/audit", headers={"Accept": "text/html"})
    assert app_page.status_code == 200
    assert "frame-ancestors 'none'" in app_page.headers["content-security-policy"]
    assert "connect-src 'self'" in app_page.headers["content-security-policy"]
    name, seed = stack.user("viewer")
    t = c.post("/auth/api/login", json={"username": name, "password": PASSWORD}).json()["ticket"]
    r = c.post("/auth/api/mfa", json={"ticket": t, "code": totp_code(seed, datetime.now(UTC))})
    cookies = r.headers.get_list("set-cookie")
    assert len(cookies) == 2
    for ck in cookies:
        assert "HttpOnly" in ck and "SameSite=Strict" in ck and "Path=/" in ck
    stack.secrets += [r.cookies["lyra_at"], r.cookies["lyra_rt"]]


def test_no_secret_in_logs_or_event_log(stack):
    c, _, _ = stack.login("admin")
    c.get("/audit", headers={"Accept": "text/html"})
    key = stack.server.service.create_api_key(
        c.get("/api/whoami").json()["subject"], ["manage_users"], actor="t"
    ).key
    httpx.get(stack.url + "/api/whoami", headers={"Authorization": f"Bearer {key}"})
    stack.secrets += [key]
    for handler in logging.getLogger().handlers:
        handler.flush()
    logs = stack.log_path.read_text(errors="replace")
    assert "GET /api/whoami" in logs or "whoami" in logs  # the log did capture the traffic
    events = "\n".join(r.payload + r.actor for r in stack.server.service.event_log.read())
    mirror = (stack.server.settings.audit_dir / "events.jsonl").read_text()
    assert "auth.login_ok" in mirror
    for secret in set(stack.secrets):
        assert secret not in logs, "a secret reached the server log"
        assert secret not in events and secret not in mirror, "a secret reached the event log"


def _bokeh_socket(stack, role: str):
    """(client, an aiohttp websocket to /audit/ws through the proxy, its event loop)."""
    import asyncio

    import aiohttp

    c, _, _ = stack.login(role)
    page = c.get("/audit", headers={"Accept": "text/html"})
    assert page.status_code == 200
    token = re.findall(r'"token":\s*"([^"]+)"', page.text)[0]
    loop = asyncio.new_event_loop()

    async def connect():
        session = aiohttp.ClientSession(cookies={"lyra_at": c.cookies["lyra_at"]})
        ws = await session.ws_connect(
            stack.url.replace("http", "ws") + "/audit/ws",
            protocols=["bokeh", token],
            headers={"Origin": stack.url},
            max_msg_size=0,
        )
        return session, ws

    session, ws = loop.run_until_complete(connect())
    return c, session, ws, loop


def _closed_within(loop, ws, seconds: float = 60.0):
    """Read until the proxy closes the socket (a deadline, not a pause); the close message."""
    import asyncio

    from aiohttp import WSMsgType

    async def drain():
        while True:
            msg = await ws.receive()
            if msg.type in (WSMsgType.CLOSE, WSMsgType.CLOSED, WSMsgType.CLOSING, WSMsgType.ERROR):
                return msg

    return loop.run_until_complete(asyncio.wait_for(drain(), seconds))


def test_oversized_websocket_frames_are_refused_and_logout_closes_the_socket(stack):
    _c, session, ws, loop = _bokeh_socket(stack, "auditor")
    try:
        cap = stack.server.proxy.config.max_ws_frame
        cut = False
        try:
            loop.run_until_complete(ws.send_str("x" * (cap + 1)))  # one frame over the cap
        except ConnectionError:
            cut = True  # the proxy cut the connection mid-frame: refused before reading it all
        _closed_within(loop, ws)
        # Cut by the proxy's cap: mid-frame, 1009 (message too big) or 1006 (dropped while the
        # frame was still arriving). Bokeh refusing junk would close normally via the proxy.
        assert ws.closed and (cut or ws.close_code in (1006, 1009)), ws.close_code
    finally:
        loop.run_until_complete(ws.close())
        loop.run_until_complete(session.close())
    config = stack.server.proxy.config
    old, config.ws_check_interval = config.ws_check_interval, 0.1  # the binding's timer
    try:
        c2, session, ws, loop2 = _bokeh_socket(stack, "auditor")
        claims = stack.server.service.tokens.verify_access_token(c2.cookies["lyra_at"])
        stack.server.service.logout(claims.session_id, claims.subject)
        _closed_within(loop2, ws)  # nothing sent: the proxy's check of the session closes it
        assert ws.closed
    finally:
        config.ws_check_interval = old
        loop2.run_until_complete(ws.close())
        loop2.run_until_complete(session.close())
        loop.close()
        loop2.close()
