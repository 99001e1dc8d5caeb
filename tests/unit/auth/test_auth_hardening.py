"""The pieces of issue 14's hardening, without a server: the proxy's identity header, the
script nonces it adds to Panel's HTML, the failure aggregator, and the strict query-parameter
validator every dashboard uses (lyra.dashboards.base.read_query)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import jwt
import pytest

from lyra.auth.failures import FailureAggregator
from lyra.auth.identity import IDENTITY_TTL, IdentitySigner, IdentityVerifier
from lyra.auth.permissions import Role
from lyra.auth.proxy_forward import add_nonces, panel_csp_for
from lyra.dashboards import base as tpl

KEY = b"unit-test-signing-key-" + b"k" * 20
NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)



def test_identity_header_round_trip_and_refusals():
    token = IdentitySigner(KEY).sign("rita", Role.RISK_MANAGER, "sess-1", now=NOW)
    v = IdentityVerifier(KEY)
    claims = v.verify(token, now=NOW + timedelta(seconds=30))
    assert (claims.subject, claims.role, claims.session_id) == ("rita", Role.RISK_MANAGER, "sess-1")
    assert v.verify(token, now=NOW + IDENTITY_TTL) is None  # a minute: stale
    assert v.verify(token, now=NOW - timedelta(seconds=30)) is None  # from the future
    assert IdentityVerifier(b"another-key-" + b"x" * 30).verify(token, now=NOW) is None
    head, body, sig = token.split(".")
    assert v.verify(f"{head}.{body}.{sig[:-2]}AA", now=NOW) is None
    # Same key, other token kinds: an access-token-shaped JWT (wrong typ/audience) is refused.
    forged = jwt.encode(
        {"sub": "x", "role": "admin", "sid": "s", "aud": "lyra", "iat": 1, "exp": 2**40},
        KEY,
        algorithm="HS256",
    )
    assert v.verify(forged, now=NOW) is None
    assert v.verify("", now=NOW) is None and v.verify("x" * 5000, now=NOW) is None


def test_nonces_go_on_rendered_scripts_only():
    body = (
        b'<html><script type="application/json" id="d">{"t": "<script>no</script"}</script>'
        b"<script>Bokeh.go()</script><SCRIPT src='a.js' nonce=old></SCRIPT><p>&lt;script&gt;</p></html>"
    )
    out = add_nonces(body, "N0nce")
    assert out.count(b'nonce="N0nce"') == 3 and b"nonce=old" not in out
    assert b'{"t": "<script>no</script' in out  # inside a script element: untouched
    assert b"<p>&lt;script&gt;</p>" in out
    csp = panel_csp_for("N0nce")
    script_src = next(d for d in csp.split(";") if d.strip().startswith("script-src"))
    assert "'nonce-N0nce'" in script_src and "unsafe-inline" not in script_src


def test_failure_aggregator_counts_per_key_and_window():
    agg = FailureAggregator(window=timedelta(minutes=1), max_keys=3)
    a = ("apikey_rejected", "unknown key", "10.0.0.1", "system")
    b = ("apikey_rejected", "unknown key", "10.0.0.2", "system")
    assert agg.admit(a, NOW) == (True, [])
    assert agg.admit(a, NOW + timedelta(seconds=59)) == (False, [])
    assert agg.admit(b, NOW + timedelta(seconds=59)) == (True, [])  # another source: its own row
    write, due = agg.admit(a, NOW + timedelta(seconds=61))
    assert write and due == [(a, 1)]
    assert agg.drain() == [] or agg.drain() == []
    for i in range(5):  # full: counted nowhere new, memory stays bounded
        agg.admit((f"k{i}", "r", "c", "s"), NOW + timedelta(minutes=5))
    assert len(agg._open) <= 3


@pytest.mark.parametrize(
    ("search", "values", "problems"),
    [
        ("?session=demo_1&bars=500", {"session": "demo_1", "bars": 500}, 0),
        ("?session=%3Cscript%3Ealert(1)%3C/script%3E", {}, 1),
        ("?bars=1e3", {}, 1),
        ("?bars=5&bars=6", {}, 1),
        ("?bars=99999999999999", {}, 1),
        ("?session=" + "a" * 41, {}, 1),
        ("?session=%C3%BC", {}, 1),
        ("?session=%ff%fe", {}, 1),
        ("?confidence=0.95&freq=1h", {"confidence": 0.95, "freq": "1h"}, 0),
        ("?confidence=javascript:alert(1)&freq=<b>", {}, 2),
        (
            "?targets=coinbase:BTC/USD=0.5,coinbase:ETH/USD=0.25",
            {"targets": "coinbase:BTC/USD=0.5,coinbase:ETH/USD=0.25"},
            0,
        ),
        ("?targets=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E%3D0.5", {}, 1),
        ("?unknown=<script>", {}, 0),
    ],
)
def test_query_parameters_are_typed_or_refused_with_a_fixed_message(search, values, problems):
    specs = (
        tpl.SESSION_PARAM,
        tpl.int_param("bars", 100, 200_000),
        tpl.float_param("confidence", 0.5, 0.999),
        tpl.choice_param("freq", ("1h", "4h")),
        tpl.TARGETS_PARAM,
    )
    q = tpl.read_query(*specs, search=search)
    assert q.values == values and len(q.problems) == problems
    fixed = {s.message for s in specs}
    assert all(p in fixed for p in q.problems)  # never the value: only the spec's own text


def test_md_literal_neutralises_markup():
    from markdown_it import MarkdownIt

    text = tpl.md_literal("<img src=x onerror=alert(1)> [a](javascript:x) ![i](http://e/x) **b**\n# h")
    # HTML enabled here (the message panes also turn it off, and auto-links: linkify=False).
    html = MarkdownIt("gfm-like", {"linkify": False}).render(f"Session **{text}** does not exist")
    assert "<img" not in html and "<a " not in html and "<h1" not in html
    assert html.count("<strong>") == 1  # the app's own emphasis only
    assert "&lt;img src=x onerror=alert(1)&gt;" in html  # shown as text
