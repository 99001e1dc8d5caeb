"""The read model against a real paper session: its answers equal the session's own result and
the event log; bad input is refused; the dashboard actions are permission- and risk-checked."""

from __future__ import annotations

from decimal import Decimal

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog
from lyra.auth.permissions import PermissionDenied, Principal, Role
from lyra.core.errors import ValidationError
from lyra.readside import MANUAL_SESSION, ManualDesk, ReadModel, pull_kill_switch
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.session.runtime import session_instruments
from lyra.store.tables import events
from lyra.testing.sessions import demo_config

TRADER = Principal("tina", Role.TRADER)
VIEWER = Principal("vic", Role.VIEWER)


def test_the_read_model_equals_the_session_on_both_backends(session_home):
    engine, home = session_home["engine"], session_home["home"]
    result = open_session(
        demo_config(session_id="rs", end="2017-09-01"),
        engine=engine,
        market_dir=home / "market",
        jsonl_path=home / "audit" / "events.jsonl",
    ).run()
    rm = ReadModel(engine, home / "market")
    fills = rm.fills("rs")
    assert len(fills) == result.fills > 10
    assert Decimal(str(round(fills["fee"].sum(), 6))) == result.fees.quantize(Decimal("0.000001"))
    curve = rm.equity_curve("rs")
    assert curve["equity"].iloc[-1] == pytest.approx(float(result.equity), abs=1e-6)
    with engine.connect() as conn:
        n_snap = conn.execute(
            sa.select(sa.func.count()).select_from(events).where(events.c.kind == "session.equity")
        ).scalar_one()
        head = conn.execute(sa.select(sa.func.max(events.c.seq))).scalar_one()
    assert len(curve) == n_snap and curve["ts"].is_monotonic_increasing
    orders = rm.orders("rs")
    assert len(orders) == result.orders and set(orders["status"]) == {"filled"}
    assert rm.orders("rs", open_only=True).empty
    pos = rm.positions("rs")
    assert pos["quantity"].iloc[0] == pytest.approx(float(result.positions["coinbase:BTC/USD"]))
    assert rm.head_seq() == head
    info = rm.session("rs")
    assert info is not None and info.status == "finished" and info.strategy == "sma_cross"
    assert rm.default_session_id() == "rs" and rm.session("nope") is None
    assert len(rm.risk_decisions("rs")) == result.orders


def test_changes_since_sees_only_new_entries(dash):
    settings, rm = dash
    head = rm.head_seq()
    assert not rm.changes_since(head).any
    log = EventLog(rm.engine, settings.audit_dir / "events.jsonl")
    with log.transaction() as tx:
        tx.append("session.note", {"x": 1}, actor="test", session_id="dash")
        tx.append("session.note", {"x": 2}, actor="test", session_id="dash")
    ch = rm.changes_since(head)
    assert ch.head_seq == head + 2 and ch.kinds == {"session.note": 2}
    assert ch.touches("session.") and not ch.touches("order.")
    assert rm.events(since_seq=head)["kind"].tolist() == ["session.note", "session.note"]


def test_fees_and_bars(dash):
    _settings, rm = dash
    f = rm.fees("dash")
    assert set(f["strategy"]) == {"sma_cross"} and set(f["liquidity"]) == {"taker"}
    assert (f["fee"] > 0).all()
    # the paper broker charges the taker fee on the notional (Coinbase 0.6 %)
    assert (f["fee"] / f["notional"]).round(6).eq(0.006).all()
    bars = rm.bars("coinbase", "BTC/USD", "1h", end=1_500_000_000_000)
    assert len(bars) > 300 and bars["ts"].is_monotonic_increasing and bars["ts"].iloc[-1] < 1_500_000_000_000
    assert rm.bars("coinbase", "ETH/USD", "1h").empty


def test_bad_input_is_refused_with_the_field(dash):
    _settings, rm = dash
    for bad in (0, -1, 10**9):
        with pytest.raises(ValidationError, match="limit"):
            rm.fills("dash", limit=bad)
    assert rm.fills("no-such-session").empty
    assert rm.equity_curve("no-such-session").empty


def test_an_empty_database_gives_empty_answers(engine, tmp_path):
    rm = ReadModel(engine, tmp_path)
    assert rm.sessions() == [] and rm.default_session_id() is None and rm.head_seq() == 0
    assert rm.fills().empty and rm.orders().empty and rm.positions().empty
    assert rm.risk_state().scopes.empty and rm.risk_state().state_of("x") == "active"


def _desk(rm: ReadModel, jsonl) -> ManualDesk:
    info = rm.session("dash")
    assert info is not None
    return ManualDesk(
        rm.engine,
        session_instruments(load_session_config(info.config)),
        jsonl_path=jsonl,
        equity=Decimal(10_000),
    )


def test_ticket_orders_need_a_running_session_and_the_permission(dash):
    settings, rm = dash
    desk = _desk(rm, settings.audit_dir / "events.jsonl")
    order = {"instrument_id": "coinbase:BTC/USD", "side": "buy", "quantity": "0.01", "limit_price": None}
    with pytest.raises(PermissionDenied):
        desk.submit(VIEWER, **order, session_id="dash")
    with pytest.raises(PermissionDenied):
        desk.cancel(VIEWER, "dash-00000001", session_id="dash")
    with pytest.raises(ValidationError, match="no session to send it to"):
        desk.submit(TRADER, **order)
    # "dash" has finished: nothing would execute the order (tests/integration/session/
    # test_session_commands.py has a running session execute them).
    before = rm.head_seq()
    with pytest.raises(ValidationError, match="session is finished, not running"):
        desk.submit(TRADER, **order, session_id="dash")
    with pytest.raises(ValidationError, match="side"):
        desk.submit(TRADER, **{**order, "side": "hold"}, session_id="dash")
    with pytest.raises(ValidationError, match="quantity"):
        desk.submit(TRADER, **{**order, "quantity": "lots"}, session_id="dash")
    assert rm.head_seq() == before  # nothing written


def test_a_rebalance_is_a_session_command_never_a_phantom_order(dash):
    settings, rm = dash
    desk = _desk(rm, settings.audit_dir / "events.jsonl")
    weights = {"coinbase:BTC/USD": "0.5"}
    with pytest.raises(PermissionDenied):
        desk.rebalance(VIEWER, weights, session_id="dash")
    before = rm.head_seq()
    # "dash" has finished: nothing would execute it (a running session does:
    # tests/integration/session/test_operator_book.py); refused, nothing written
    with pytest.raises(ValidationError, match="session is finished, not running"):
        desk.rebalance(TRADER, weights, session_id="dash")
    with pytest.raises(ValidationError, match="no session to send it to"):
        desk.rebalance(TRADER, weights)
    assert rm.head_seq() == before
    assert rm.orders(MANUAL_SESSION, open_only=True).empty  # no phantom orders


def test_the_kill_switch_records_who_and_risk_then_denies(tmp_path_factory):
    from lyra.testing.serving import dashboard_home

    from .conftest import OHLCV

    settings = dashboard_home(tmp_path_factory.mktemp("kill") / "home", OHLCV, end="2017-08-01")
    from lyra.bootstrap import open_engine

    _s, engine = open_engine(settings)
    rm = ReadModel(engine, settings.market_dir)
    jsonl = settings.audit_dir / "events.jsonl"
    with pytest.raises(PermissionDenied):
        pull_kill_switch(engine, VIEWER, session_id=None, flatten=False, reason="no", jsonl_path=jsonl)
    with pytest.raises(ValidationError, match="reason"):
        pull_kill_switch(engine, TRADER, session_id=None, flatten=False, reason=" ", jsonl_path=jsonl)
    req = pull_kill_switch(engine, TRADER, session_id=None, flatten=True, reason="drill", jsonl_path=jsonl)
    state = rm.risk_state()
    assert state.state_of("dash") == "halted"
    assert state.kills["actor"].iloc[0] == "tina (trader)" and bool(state.kills["open"].iloc[0])
    assert int(state.kills["id"].iloc[0]) == req.id
    engine.dispose()
