"""Unauthenticated floods cannot fill the audit log (SQLite and PostgreSQL): 1,000 bad logins,
1,000 bad API keys and 1,000 forged MFA tickets from one source write a handful of rows, every
distinct failure kind is on record at once, and the counts of the rest arrive as one row per
kind when the minute is over (nothing is lost: the counts add up to the attempts). Also the
session deadline the proxy binds websockets to: idle timeout, lifetime, logout."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from lyra.auth.apikeys import InvalidApiKey
from lyra.auth.policy import LoginThrottled
from lyra.auth.service import LoginFailed
from lyra.auth.totp import totp_code
from lyra.core.errors import ValidationError

from .conftest import PASSWORD

N = 1000


def auth_rows(service) -> list[tuple[str, str, dict]]:
    """(kind, subject, detail) of every auth.* entry, oldest first."""
    out = []
    for e in service.event_log.read():
        if e.kind.startswith("auth."):
            p = json.loads(e.payload)
            out.append((e.kind, p["subject"], p["detail"]))
    return out


def represented(rows, kind: str) -> int:
    """How many failures of ``kind`` the rows account for (one each, or their ``count``)."""
    return sum(d.get("count", 1) for k, _s, d in rows if k == kind)


def test_a_thousand_bad_logins_write_a_bounded_number_of_rows(service, clock):
    service.add_user("erin", PASSWORD, "trader", actor="admin")
    before = len(auth_rows(service))
    outcomes = {"failed": 0, "throttled": 0, "invalid": 0}
    for i in range(N):
        name = f"ghost{i}" if i % 3 else "bad name!"  # unknown users and malformed names
        try:
            service.login_password(name, "wrong guess", client="203.0.113.7")
        except LoginFailed:
            outcomes["failed"] += 1
        except LoginThrottled:
            outcomes["throttled"] += 1
        except ValidationError:
            outcomes["invalid"] += 1
    rows = auth_rows(service)[before:]
    # The per-client limit (30 a minute) lets 30 reach the password check; the rest are
    # refused before it. Rows: at most one per unknown name that got through, one for the
    # malformed names, one for the throttling.
    # 334 malformed names are refused before anything else; of the 666 others 30 are checked.
    assert outcomes == {"failed": 30, "throttled": 636, "invalid": 334}
    assert len(rows) <= 32, [r[:2] for r in rows]
    kinds = {(k, d.get("reason")) for k, _s, d in rows}
    assert ("auth.login_throttled", "client rate limit") in kinds  # each kind is on record at once
    clock.advance(seconds=61)  # the minute is over: the next failure brings the counts out
    with pytest.raises(LoginFailed):  # a new minute: the limiter lets one through again
        service.login_password("erin", "wrong", client="203.0.113.7")
    service.flush_failures()
    rows = auth_rows(service)[before:]
    assert len(rows) <= 36
    # Nothing lost: every attempt is accounted for, by a row or a count.
    total = represented(rows, "auth.login_failed") + represented(rows, "auth.login_throttled")
    assert total == N + 1


def test_a_thousand_bad_api_keys_and_tickets_write_two_rows_each(service, clock):
    before = len(auth_rows(service))
    for i in range(N):
        with pytest.raises(InvalidApiKey):
            service.verify_api_key(f"lyra_fake{i:05d}_" + "x" * 40, client="198.51.100.4", path="/api/x")
        with pytest.raises(LoginFailed):
            service.login_mfa(f"forged.ticket.{i}", "123456", client="198.51.100.4")
    rows = auth_rows(service)[before:]
    assert [k for k, _s, _d in rows] == ["auth.apikey_rejected", "auth.mfa_failed"]  # the first of each
    clock.advance(seconds=61)
    with pytest.raises(InvalidApiKey):  # a new minute: the counts of the ended one come out first
        service.verify_api_key("lyra_another_" + "y" * 40, client="198.51.100.4")
    rows = auth_rows(service)[before:]
    assert [k for k, _s, d in rows[2:4] if d["count"] == N - 1] == ["auth.apikey_rejected", "auth.mfa_failed"]
    assert len(rows) == 5 and "count" not in rows[4][2]  # the new minute's first, written at once
    with pytest.raises(InvalidApiKey):
        service.verify_api_key("lyra_again_" + "y" * 40, client="198.51.100.4")
    assert service.flush_failures() == 1  # pending at shutdown: written then
    rows = auth_rows(service)[before:]
    assert len(rows) == 6
    assert represented(rows, "auth.apikey_rejected") == N + 2
    assert represented(rows, "auth.mfa_failed") == N
    counted = [d for k, _s, d in rows if "count" in d]
    assert all(d["window_s"] == 60 and d["client"] == "198.51.100.4" for d in counted)
    # Another source is its own row at once (one source cannot hide another).
    with pytest.raises(InvalidApiKey):
        service.verify_api_key("lyra_other_" + "z" * 40, client="192.0.2.1")
    assert auth_rows(service)[-1][2]["client"] == "192.0.2.1"


def test_session_deadline_follows_idle_timeout_lifetime_and_logout(service, clock):
    enrol = service.add_user("fay", PASSWORD, "risk_manager", actor="admin")

    def session() -> str:
        ticket = service.login_password("fay", PASSWORD).ticket
        clock.advance(seconds=31)  # a fresh TOTP step for each login (codes are single-use)
        return service.login_mfa(ticket, totp_code(enrol.totp_secret, clock())).session_id

    sid = session()
    start = clock()
    assert service.session_deadline(sid) == start + timedelta(minutes=60)
    clock.advance(minutes=59)
    assert service.session_deadline(sid, touch=True) == clock() + timedelta(minutes=60)  # activity
    clock.advance(minutes=59)
    assert service.session_deadline(sid) is not None
    clock.advance(minutes=2)  # 61 minutes without activity
    assert service.session_deadline(sid) is None
    expired = [d["reason"] for k, _s, d in auth_rows(service) if k == "auth.session_expired"]
    assert expired == ["idle_expired"]

    sid = session()
    for _ in range(14):  # active every 55 minutes: never idle, but 12 hours is the end
        clock.advance(minutes=55)
        if service.session_deadline(sid, touch=True) is None:
            break
    assert service.session_deadline(sid) is None
    expired = [d["reason"] for k, _s, d in auth_rows(service) if k == "auth.session_expired"]
    assert expired == ["idle_expired", "lifetime_expired"]

    sid = session()
    service.logout(sid, "fay")
    assert service.session_deadline(sid) is None
