"""The admin functions as a named person (SQLite and PostgreSQL): the permission table decides,
widening changes need a fresh re-authentication, every change names the actor, a password
reset forces a new TOTP enrolment, a password change ends the other sessions."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from lyra.auth.admin_service import AdminService
from lyra.auth.apikeys import InvalidApiKey
from lyra.auth.permissions import PermissionDenied, Principal, Role
from lyra.auth.reauth import ReauthRequired
from lyra.auth.service import LoginFailed
from lyra.auth.tokens import InvalidToken
from lyra.auth.totp import totp_code
from lyra.core.errors import ValidationError

from .conftest import PASSWORD


def login(service, name, seed):
    ch = service.login_password(name, PASSWORD, client="10.0.0.1")
    return service.login_mfa(ch.ticket, totp_code(seed, service.now()), client="10.0.0.1")


def entries(service, kind):
    return [(e.actor, json.loads(e.payload)) for e in service.event_log.read() if e.kind == kind]


def test_admin_functions_act_as_the_person_and_need_a_fresh_reauth(service, clock):
    admin = AdminService(service)
    service.add_user("ada", PASSWORD, "admin", actor="setup")
    ada = Principal("ada", Role.ADMIN)
    fresh = clock.now  # what the dashboard's identity says after /auth/reauth
    # A non-admin may do none of it, and the refusal is recorded.
    service.add_user("tom", PASSWORD, "trader", actor="setup")
    tom = Principal("tom", Role.TRADER)
    for call in (
        lambda: admin.list_users(tom),
        lambda: admin.create_user(tom, "mallory", PASSWORD, "admin", reauth_at=fresh),
        lambda: admin.change_role(tom, "tom", "admin", reauth_at=fresh),
        lambda: admin.revoke_session(tom, "x"),
        lambda: admin.create_api_key(tom, "ada", ["manage_users"]),
    ):
        with pytest.raises(PermissionDenied):
            call()
    assert len(entries(service, "auth.permission_denied")) == 5
    # An admin without a fresh re-authentication: refused, recorded, nothing changed.
    for call in (
        lambda: admin.create_user(ada, "eve", PASSWORD, "viewer", reauth_at=None),
        lambda: admin.change_role(ada, "tom", "viewer", reauth_at=fresh - timedelta(minutes=6)),
        lambda: admin.unlock(ada, "tom", reauth_at=None),
        lambda: admin.reset_password(ada, "tom", "a brand new passphrase", reauth_at=None),
    ):
        with pytest.raises(ReauthRequired):
            call()
    denied = [p["detail"].get("reason") for _a, p in entries(service, "auth.permission_denied")]
    assert denied.count("re-authentication required") == 4
    assert {u.username: u.role for u in admin.list_users(ada)} == {"ada": Role.ADMIN, "tom": Role.TRADER}
    # With it: create, role change (sessions end), each recorded with the actor.
    enrol = admin.create_user(ada, "vic", PASSWORD, "viewer", reauth_at=fresh)
    pair = login(service, "vic", enrol.totp_secret)
    assert [u.live_sessions for u in admin.list_users(ada) if u.username == "vic"] == [1]
    admin.change_role(ada, "vic", "analyst", reauth_at=fresh)
    with pytest.raises(InvalidToken):
        service.authenticate(pair.access_token)
    with pytest.raises(ValidationError, match="own role"):
        admin.change_role(ada, "ada", "viewer", reauth_at=fresh)
    assert entries(service, "auth.role_changed")[-1][0] == "ada"
    assert entries(service, "auth.user_created")[-1][0] == "ada"
    # Sessions: listed, one revoked by the admin.
    clock.advance(seconds=30)
    pair = login(service, "vic", enrol.totp_secret)
    listed = admin.list_sessions(ada, "vic")
    assert [live for _s, live in listed] == [True, False]  # newest first; the role change ended one
    admin.revoke_session(ada, pair.session_id)
    with pytest.raises(InvalidToken):
        service.authenticate(pair.access_token)
    assert entries(service, "auth.logout")[-1][1]["detail"]["reason"] == "revoked by admin"
    # Lock and unlock.
    admin.lock(ada, "vic")
    clock.advance(seconds=30)
    with pytest.raises(LoginFailed):
        login(service, "vic", enrol.totp_secret)
    admin.unlock(ada, "vic", reauth_at=clock.now)
    login(service, "vic", enrol.totp_secret)


def test_password_reset_forces_a_new_totp_and_own_change_ends_other_sessions(service, clock):
    admin = AdminService(service)
    service.add_user("ada", PASSWORD, "admin", actor="setup")
    ada = Principal("ada", Role.ADMIN)
    old = service.add_user("una", PASSWORD, "analyst", actor="setup")
    pair = login(service, "una", old.totp_secret)
    new = admin.reset_password(ada, "una", "temporary passphrase 42", reauth_at=clock.now)
    assert new.totp_secret != old.totp_secret
    with pytest.raises(InvalidToken):  # every session ended
        service.authenticate(pair.access_token)
    clock.advance(seconds=30)
    with pytest.raises(LoginFailed):  # the old password is gone
        service.login_password("una", PASSWORD)
    ch = service.login_password("una", "temporary passphrase 42")
    with pytest.raises(LoginFailed):  # the old authenticator no longer works
        service.login_mfa(ch.ticket, totp_code(old.totp_secret, clock.now))
    keep = service.login_mfa(ch.ticket, totp_code(new.totp_secret, clock.now))
    clock.advance(seconds=30)
    other = login_with(service, "una", "temporary passphrase 42", new.totp_secret)
    # The person's own change: the current password is needed; the other sessions end.
    with pytest.raises(LoginFailed):
        admin.change_own_password("una", "not the current one", "another fine passphrase")
    with pytest.raises(ValidationError):
        admin.change_own_password("una", "temporary passphrase 42", "short")
    ended = admin.change_own_password(
        "una", "temporary passphrase 42", "another fine passphrase", keep_session=keep.session_id
    )
    assert ended == 1
    service.authenticate(keep.access_token)  # this one stays
    with pytest.raises(InvalidToken):
        service.authenticate(other.access_token)
    changed = entries(service, "auth.password_changed")
    assert [(a, p["detail"].get("reason")) for a, p in changed] == [("ada", "reset by admin"), ("una", None)]
    assert "auth.mfa_reset" in [e.kind for e in service.event_log.read()]


def login_with(service, name, password, seed):
    ch = service.login_password(name, password)
    return service.login_mfa(ch.ticket, totp_code(seed, service.now()))


def test_api_keys_own_or_admin(service, clock):
    admin = AdminService(service)
    service.add_user("ada", PASSWORD, "admin", actor="setup")
    service.add_user("tom", PASSWORD, "trader", actor="setup")
    service.add_user("ann", PASSWORD, "analyst", actor="setup")
    ada, tom = Principal("ada", Role.ADMIN), Principal("tom", Role.TRADER)
    mine = admin.create_api_key(tom, "tom", ["place_order"], name="bot")
    assert service.verify_api_key(mine.key).subject == "tom"
    with pytest.raises(PermissionDenied):  # someone else's: an admin's business
        admin.create_api_key(tom, "ann", ["run_notebook"])
    with pytest.raises(PermissionDenied):  # a scope beyond the owner's role
        admin.create_api_key(ada, "ann", ["place_order"])
    theirs = admin.create_api_key(ada, "ann", ["run_notebook"], ttl_days=30)
    assert {k.owner for k in admin.list_api_keys(ada)} == {"tom", "ann"}
    assert [k.key_id for k in admin.list_api_keys(tom, "tom")] == [mine.record.key_id]
    with pytest.raises(PermissionDenied):
        admin.revoke_api_key(tom, theirs.record.key_id)
    rotated = admin.rotate_api_key(ada, theirs.record.key_id, grace_days=1)
    admin.revoke_api_key(ada, theirs.record.key_id)
    with pytest.raises(InvalidApiKey):
        service.verify_api_key(theirs.key)
    assert service.verify_api_key(rotated.key).subject == "ann"
    assert [a for a, _p in entries(service, "auth.apikey_revoked")] == ["ada"]
    with pytest.raises(ValidationError):
        admin.create_api_key(ada, "ann", ["run_notebook"], ttl_days=0)


def test_own_api_keys_page_creates_and_revokes_only_ones_own(service, clock):
    import re

    from .test_hardening import api_login, cookie_value, jar, run_proxy, set_cookies

    tina = service.add_user("tina", PASSWORD, "trader", actor="setup")
    service.add_user("ann", PASSWORD, "analyst", actor="setup")
    theirs = service.create_api_key("ann", ["run_notebook"], actor="setup")
    vera = service.add_user("vera", PASSWORD, "viewer", actor="setup")

    async def body(client, proxy):
        cookies = await api_login(client, service, "tina", tina.totp_secret)
        page = await client.get("/auth/keys", headers=jar(cookies))
        text = await page.text()
        assert page.status == 200 and 'value="place_order"' in text and 'value="manage_users"' not in text
        nonce = cookie_value(set_cookies(page)["lyra_csrf"])
        csrf = re.search(r'name="csrf" value="([0-9a-f]{64})"', text).group(1)
        h = {"Cookie": jar(cookies)["Cookie"] + f"; lyra_csrf={nonce}"}
        form = [("csrf", csrf), ("op", "create"), ("name", "<b>bot</b>"), ("scope", "place_order")]
        r = await client.post("/auth/keys", data=form, headers=h)
        text = await r.text()
        assert (
            r.status == 200
            and "shown once" in text
            and "&lt;b&gt;bot&lt;/b&gt;" in text
            and "<b>bot" not in text
        )
        key = re.search(r"shown once: (lyra_\S+?)<", text).group(1)
        assert service.verify_api_key(key).subject == "tina"
        no_csrf = await client.post(
            "/auth/keys", data=[("op", "create"), ("scope", "place_order")], headers=h
        )
        assert no_csrf.status == 403
        other = await client.post(
            "/auth/keys", data=[("csrf", csrf), ("op", "revoke"), ("key_id", theirs.record.key_id)], headers=h
        )
        assert other.status == 400 and "may not" in await other.text()  # ann's key: not tina's business
        service.verify_api_key(theirs.key)  # still valid
        clock.advance(seconds=30)
        v = await api_login(client, service, "vera", vera.totp_secret)
        assert (await client.get("/auth/keys", headers=jar(v))).status == 403  # viewer: not in the table

    run_proxy(service, body)
    assert [a for a, _p in entries(service, "auth.apikey_created")][-1] == "tina"
