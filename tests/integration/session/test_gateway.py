"""The order gateway (``lyra.session.gateway``): a strategy whose orders risk keeps denying is
held back after N denials in a row (recorded as ``session.denials``) instead of burning the
session; every ``risk.decision`` has the risk engine's one shape; and nothing else in
``lyra/`` writes ``risk.decision`` entries or creates orders."""

from __future__ import annotations

import re
from decimal import Decimal
from pathlib import Path

import pytest

import lyra
from lyra.audit import EventLog
from lyra.session.factory import open_session
from lyra.session.gateway import DENIED_IN_ROW_LIMIT, is_operator_tag
from lyra.testing.sessions import demo_config


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_strategy_denied_n_times_in_a_row_is_held_back_and_recorded(session_home):
    h = session_home
    # every order is above the risk limit: each is denied
    cfg = demo_config(session_id="denied", start="2018-01-01", end="2018-04-01",
                      risk={"defaults": {"max_order_qty": "0.01"}})
    s = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market")
    r = s.run()
    log = list(EventLog(h["engine"]).read(session_id="denied"))
    [alert] = [e.data() for e in log if e.kind == "session.denials"]
    assert alert["count"] == DENIED_IN_ROW_LIMIT and alert["side"] == "buy"
    assert "max_order_qty" in alert["reason"]
    decisions = [e.data() for e in log if e.kind == "risk.decision"]
    # after the alert, that intent is no longer sent: the session stopped burning denials
    assert r.denied == r.orders == len(decisions) == DENIED_IN_ROW_LIMIT
    assert decisions[-1]["client_order_id"] == alert["client_order_id"]
    assert {frozenset(d) for d in decisions} == {frozenset(decisions[0])} and len(decisions[0]) == 11


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_without_denials_nothing_is_held_back(session_home):
    h = session_home
    cfg = demo_config(session_id="free", start="2018-01-01", end="2018-04-01")
    s = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market")
    r = s.run()
    assert r.orders > DENIED_IN_ROW_LIMIT and r.denied == 0
    assert not list(EventLog(h["engine"]).read(session_id="free", kinds=("session.denials",)))
    assert not s.gateway.operator_holdings


# Writers of orders and risk decisions: the gateway, and the venue-side modules that record
# what happens *to* an order the gateway created (reports, cancels) -- not new orders.
ORDER_CREATORS = {
    "lyra/session/gateway.py",  # the session's one path
    "lyra/execution/routed_desk.py",  # the smart-order router's children (not yet through the gateway)
    "lyra/audit/ledger.py", "lyra/session/recorder.py", "lyra/audit/log.py",  # the ledger's own API
    "lyra/session/live.py",  # adopts an order found at the venue on restart (no new intent)
    "lyra/testing/serving.py",  # a test fixture's seeded fill (the engine's shape too)
}


def test_only_the_gateway_records_risk_decisions_and_new_orders():
    root = Path(lyra.__file__).parent
    pattern = re.compile(r"""\btx\.create_order\(|["']risk\.decision["']\s*,""")
    found = set()
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).as_posix()
        if pattern.search(path.read_text()):
            found.add(rel)
    assert found <= ORDER_CREATORS, sorted(found - ORDER_CREATORS)
    assert "lyra/session/gateway.py" in found


def test_operator_tags():
    assert is_operator_tag("manual:alice") and is_operator_tag("rebalance:bob")
    assert not is_operator_tag("") and not is_operator_tag("route:x") and not is_operator_tag("sma")


def test_decimal_sanity():  # the shape test's 11 fields: the engine's RiskDecision
    from lyra.audit.events import RiskDecided

    full = RiskDecided(decision_id="rd-x", client_order_id="x", approved=True, reason="", check="",
                       quantity=Decimal(1), account_id="a", instrument_id="i",
                       requested_quantity=Decimal(1), state="active", ts=0)
    assert len(full.to_payload()) == 11
