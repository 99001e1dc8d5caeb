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
from lyra.core.errors import ConfigError
from lyra.session import runtime
from lyra.session.config import SessionConfig
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


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_denial_limit_is_a_session_setting(session_home):
    h = session_home
    cfg = demo_config(session_id="denied5", start="2018-01-01", end="2018-04-01", denied_in_row_limit=5,
                      risk={"defaults": {"max_order_qty": "0.01"}})
    r = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market").run()
    log = list(EventLog(h["engine"]).read(session_id="denied5"))
    [alert] = [e.data() for e in log if e.kind == "session.denials"]
    assert alert["count"] == 5 and r.denied == r.orders == 5
    # logged with the config when set; left out at its default, so older logs still verify
    [started] = [e.data() for e in log if e.kind == "session.started"]
    assert started["config"]["denied_in_row_limit"] == 5
    assert "denied_in_row_limit" not in demo_config(session_id="x").model_dump(
        mode="json", exclude=runtime._unlogged(demo_config(session_id="x")))
    assert SessionConfig.model_fields["denied_in_row_limit"].default == DENIED_IN_ROW_LIMIT


@pytest.mark.parametrize("bad", [0, -3, "many", 2.5])
def test_a_bad_denial_limit_is_refused_naming_the_field(bad):
    with pytest.raises(ConfigError) as err:
        demo_config(session_id="x", denied_in_row_limit=bad)
    assert err.value.field == "denied_in_row_limit" and str(bad) in str(err.value)


# The ledger refuses ``order.*`` and ``risk.decision`` writes without an OrderPen (see
# tests/integration/audit/test_ledger.py); a pen is issued only to these modules.
PEN_HOLDERS = {
    "lyra/execution/gateway.py",  # the order gateway's door (sessions, the router's desk)
    "lyra/testing/ledger.py",  # test fixtures that seed a log
}
# Code that passes a pen on: the ledger's own API, the resume verifier.
LEDGER_API = {"lyra/audit/ledger.py", "lyra/session/recorder.py"}


def _files_matching(pattern: re.Pattern[str]) -> set[str]:
    root = Path(lyra.__file__).parent
    return {path.relative_to(root.parent).as_posix() for path in root.rglob("*.py")
            if pattern.search(path.read_text())}


def test_only_the_gateway_records_risk_decisions_and_orders():
    # who may be issued the ledger's pen: the ledger checks the caller, the scan pins the list
    from lyra.audit.ledger import PEN_ISSUERS

    assert PEN_ISSUERS == ("lyra.execution.gateway", "lyra.testing.")
    issuers = _files_matching(re.compile(r"\bissue_order_pen\("))
    assert issuers - LEDGER_API == {"lyra/execution/gateway.py", "lyra/testing/ledger.py"}
    # who writes order entries with it: the gateway's door, and fixtures (through fixture_pen)
    writers = _files_matching(re.compile(r"\btx\.(create_order|order_event)\("
                                         r"|\.append\(\s*[\"'](risk\.decision|order\.[a-z_]+)[\"']"))
    # (lyra/audit/log.py: its docstring's example of a raw log append)
    assert writers - LEDGER_API == {"lyra/execution/gateway.py", "lyra/testing/serving.py", "lyra/audit/log.py"}
    assert "lyra/execution/gateway.py" in writers
    # the session's paths (strategy, algos, tickets, rebalances, kills, live adoption) and the
    # router's desk hold the door, never the pen
    for path in ("lyra/session/gateway.py", "lyra/execution/routed_desk.py", "lyra/session/live.py",
                 "lyra/readside/actions.py"):
        text = (Path(lyra.__file__).parent.parent / path).read_text()
        assert "OrderPen" not in text and "issue_order_pen" not in text and "pen=" not in text, path


def test_operator_tags():
    assert is_operator_tag("manual:alice") and is_operator_tag("rebalance:bob")
    assert not is_operator_tag("") and not is_operator_tag("route:x") and not is_operator_tag("sma")


def test_decimal_sanity():  # the shape test's 11 fields: the engine's RiskDecision
    from lyra.audit.events import RiskDecided

    full = RiskDecided(decision_id="rd-x", client_order_id="x", approved=True, reason="", check="",
                       quantity=Decimal(1), account_id="a", instrument_id="i",
                       requested_quantity=Decimal(1), state="active", ts=0)
    assert len(full.to_payload()) == 11
