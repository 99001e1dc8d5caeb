"""The kill switch and the shared trading state on a real database (SQLite and PostgreSQL),
across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from decimal import Decimal as D
from itertools import count

import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from lyra.audit import EventLog
from lyra.auth.operator import os_user
from lyra.auth.permissions import PermissionDenied
from lyra.core import Instrument, ManualClock, Order, OrderIntent, ReplayClock
from lyra.risk import (
    KillSwitch,
    RiskConfig,
    RiskContext,
    RiskEngine,
    TradingState,
    TradingStateStore,
    flatten_intents,
)
from lyra.risk.cli import kill_command, risk_app

NOW = 1_700_000_000_000
BTC = Instrument("BTC/USDT", "binance", "BTC", "USDT", D("0.01"), D("0.001"))
ETH = Instrument("ETH/USDT", "binance", "ETH", "USDT", D("0.01"), D("0.01"))
INSTS = {BTC.id: BTC, ETH.id: ETH}
_seq = count(1)


def ctx(account="s1", positions=None):
    return RiskContext(account, positions or {}, {BTC.id: D(100), ETH.id: D(10)}, D(10_000),
                       {"USDT": D(10**6), "BTC": D(100), "ETH": D(100)}, [], INSTS, NOW,
                       {BTC.id: NOW, ETH.id: NOW})


def order(side="buy", qty="1", iid=BTC.id, **kw):
    return Order(f"s1-{next(_seq):08d}", OrderIntent(iid, side, D(qty), **kw), NOW)


def new_engine(db, account="s1", **kw):
    store = TradingStateStore(EventLog(db), **kw)
    return RiskEngine(RiskConfig(), store, clock=ReplayClock(NOW), account_id=account, session_id=account)


def test_halted_survives_restart_and_only_a_permitted_role_rearms(engine):
    e = new_engine(engine)
    assert e.check(order(), ctx()).approved
    req = KillSwitch(e.state).pull(actor="alice", reason="exchange outage")
    assert req.scope == "global" and req.actor == "alice"
    engine.dispose()  # "restart": new connections, new engine, new caches

    e2 = new_engine(engine)
    d = e2.check(order(), ctx())
    assert not d.approved and d.reason == "trading_state: halted (global) by alice: kill switch: exchange outage"
    assert e2.trading_state().state is TradingState.HALTED
    ks = KillSwitch(e2.state)
    for role in ("trader", "analyst", "viewer", "auditor"):
        with pytest.raises(PermissionDenied):
            ks.rearm(actor="tom", role=role)
    assert not new_engine(engine).check(order(), ctx()).approved  # still halted
    ks.rearm(actor="rita", role="risk_manager", reason="venue back")
    assert new_engine(engine).check(order(), ctx()).approved
    log = [(r.kind, r.actor, json.loads(r.payload)) for r in EventLog(engine).read()]
    assert [(k, a) for k, a, _ in log] == [("risk.kill_switch", "alice"), ("risk.rearm", "rita")]
    assert log[0][2]["request_id"] == req.id and log[0][2]["to"] == "halted"
    assert log[1][2]["role"] == "risk_manager" and log[1][2]["to"] == "active"
    assert ks.pending("s1") == []  # a re-arm closes the request


def test_session_kill_halts_that_session_only(engine):
    e = new_engine(engine)
    req = KillSwitch(e.state).pull(session_id="s1", actor="alice")
    assert req.scope == "account:s1"
    assert not e.check(order(), ctx("s1")).approved
    assert e.check(order(), ctx("s2")).approved
    ks = KillSwitch(e.state)
    assert [r.id for r in ks.pending("s1")] == [req.id]
    assert ks.pending("s2") == []


def test_sessions_act_on_a_kill_request_and_acknowledge(engine):
    e = new_engine(engine)
    ks = KillSwitch(e.state)
    req = ks.pull(flatten=True, actor="alice", reason="drill")
    pending = ks.pending("s1")
    assert pending == [req] and pending[0].flatten
    positions = {BTC.id: D("1.2345"), ETH.id: D(-3)}
    intents = flatten_intents(positions, INSTS, req)
    assert [(i.instrument_id, i.side.value, i.quantity, i.reduce_only, i.tag) for i in intents] == [
        (BTC.id, "sell", D("1.234"), True, f"kill-flatten:{req.id}"),  # rounded down to the lot
        (ETH.id, "buy", D(3), True, f"kill-flatten:{req.id}"),
    ]
    for k, it in enumerate(intents):
        d = e.check(Order(f"s1-9{k:07d}", it, NOW), ctx(positions=positions))
        assert d.approved and d.check == "kill_flatten"
    assert not e.check(order("sell", "1"), ctx(positions=positions)).approved  # not the kill's own
    ks.acknowledge(req, "s1", cancelled=4, flatten_orders=2)
    assert ks.pending("s1") == []
    assert ks.pending("s2") == [req]  # another session still has to act
    (got, is_open, acks), = ks.requests()
    assert got == req and is_open and acks == 1
    ack = [json.loads(r.payload) for r in EventLog(engine).read(kinds=("risk.kill_ack",))]
    assert ack == [{"request_id": req.id, "scope": "global", "cancelled": 4, "flatten_orders": 2}]


def test_cached_state_is_reread_only_after_the_poll_interval(engine):
    wall = ManualClock(NOW)
    e = new_engine(engine, clock=wall)
    other = TradingStateStore(EventLog(engine))  # "another process"
    assert e.check(order(), ctx()).approved
    checks0, reads0 = e.state.version_checks, e.state.reads
    for _ in range(100):
        assert e.check(order(), ctx()).approved
    assert (e.state.version_checks, e.state.reads) == (checks0, reads0)  # no database trips
    KillSwitch(other).pull(actor="bob")
    wall.advance(0.249)
    assert e.check(order(), ctx()).approved  # 249 ms: the cached copy is still young enough
    wall.advance(0.001)
    d = e.check(order(), ctx())  # 250 ms: re-read before approving anything
    assert not d.approved and d.reason == "trading_state: halted (global) by bob: kill switch"
    assert (e.state.version_checks, e.state.reads) == (checks0 + 1, reads0 + 1)
    wall.advance(0.250)
    e.check(order(), ctx())
    assert (e.state.version_checks, e.state.reads) == (checks0 + 2, reads0 + 1)  # unchanged: no full read


def _cli_env(tmp_path, db_url):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_") or k == "LYRA_TEST_PG_URL"}
    env.update(LYRA_HOME=str(tmp_path / "home"), LYRA_DATABASE_URL=db_url)
    return env


@pytest.mark.subprocess
def test_kill_from_another_process_is_seen_within_the_poll_interval(engine, db_url, tmp_path):
    wall = ManualClock(NOW)  # this process's clock: the poll interval (250 ms) is exact
    e = new_engine(engine, clock=wall)
    assert e.check(order(), ctx()).approved
    out = subprocess.run(
        [sys.executable, "-m", "lyra.cli", "kill", "--all", "--local-admin", "--reason", "drill"],
        env=_cli_env(tmp_path, db_url), capture_output=True, text=True, timeout=120, check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "HALTED global" in out.stdout
    wall.advance(0.249)  # however long the other process took, our copy is 249 ms old: used
    assert e.check(order(), ctx()).approved
    wall.advance(0.001)  # 250 ms: re-read before approving, and the kill is seen
    d = e.check(order(), ctx())
    who = f"local:{os_user()} (admin)"  # the authenticated person (--local-admin), not a typed name
    assert not d.approved and d.reason == f"trading_state: halted (global) by {who}: kill switch: drill"
    rec = [r for r in EventLog(engine).read() if r.kind == "risk.kill_switch"]
    assert len(rec) == 1 and rec[0].actor == who and json.loads(rec[0].payload)["reason"] == "kill switch: drill"


def test_kill_cli_refuses_without_a_person_or_a_target(db_url, engine, tmp_path, monkeypatch):
    for k, v in _cli_env(tmp_path, db_url).items():
        if k.startswith("LYRA_"):
            monkeypatch.setenv(k, v)
    app = typer.Typer()
    app.command("kill")(kill_command)
    runner = CliRunner()
    res = runner.invoke(app, ["--all"])  # who? nobody said
    assert res.exit_code == 3 and "say who you are" in res.output
    res = runner.invoke(app, ["--actor", "a", "--all"])  # a typed name proves nothing
    assert res.exit_code == 3 and "--actor is not accepted" in " ".join(res.output.split())
    res = runner.invoke(app, ["--local-admin"])
    assert res.exit_code == 2 and "--session" in res.output
    res = runner.invoke(app, ["--local-admin", "--all", "--session", "s1"])
    assert res.exit_code == 2
    res = runner.invoke(app, ["--local-admin", "--session", "s1"])  # no such session: nothing halted
    assert res.exit_code == 2 and "no such session" in res.output
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM kill_requests")).scalar() == 0
    from lyra.session.registry import SessionRegistry
    from lyra.testing.sessions import demo_config

    SessionRegistry(engine).upsert("s1", demo_config(session_id="s1"), status="stopped")
    res = runner.invoke(app, ["--local-admin", "--session", "s1", "--flatten"])
    assert res.exit_code == 0 and "HALTED account:s1" in res.output and "cancel + flatten" in res.output
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT scope, flatten, actor FROM kill_requests")).one() == (
            "account:s1", True, f"local:{os_user()} (admin)")


def test_rearm_and_status_cli(engine, db_url, tmp_path, monkeypatch):
    for k, v in _cli_env(tmp_path, db_url).items():
        if k.startswith("LYRA_"):
            monkeypatch.setenv(k, v)
    ks = KillSwitch(TradingStateStore(EventLog(engine)))
    ks.pull(session_id="s7", actor="alice", reason="fat finger")
    runner = CliRunner()
    res = runner.invoke(risk_app, ["status"])
    assert res.exit_code == 0, res.output
    assert "account:s7" in res.output and "halted" in res.output and "fat finger" in res.output
    # A typed role is not accepted (the person authenticates; tests/integration/auth/test_cli.py).
    res = runner.invoke(risk_app, ["rearm", "--actor", "rita", "--role", "risk_manager", "--session", "s7"])
    assert res.exit_code == 3 and "--role/--actor are not accepted" in res.output
    res = runner.invoke(risk_app, ["rearm", "--session", "s7"])
    assert res.exit_code == 3 and "say who you are" in res.output
    res = runner.invoke(risk_app, ["rearm", "--local-admin", "--session", "s7"])  # the OS owner of the home
    assert res.exit_code == 0, res.output
    assert new_engine(engine, account="s7").check(order(), ctx("s7")).approved
