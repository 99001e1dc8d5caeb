"""Operator orders for running sessions (``lyra.session.commands``): a command queued from this
process is executed by a real paper session in another process through risk and its broker;
refusals (risk, permissions, a stopped session, bad input) say why; a crashed and resumed session
re-does a command at the same event and reproduces the log; a live session never applies a
command twice across a restart."""

from __future__ import annotations

import collections
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog, verify
from lyra.auth.permissions import PermissionDenied, Principal, Role
from lyra.core.clock import ManualClock
from lyra.core.enums import OrderType, Side
from lyra.core.errors import InvalidOrder, ValidationError
from lyra.core.orders import OrderIntent
from lyra.core.values import plain_str
from lyra.session import runtime
from lyra.session.commands import COMMAND_TTL_MS, CommandQueue, SessionCommands
from lyra.session.factory import open_session
from lyra.session.recorder import is_operational
from lyra.session.registry import SessionRegistry
from lyra.store import create_engine_for, upgrade
from lyra.store.tables_session import session_commands
from lyra.testing.sessions import demo_config, paced_toml, session_process, wait_for

D = Decimal
IID = "coinbase:BTC/USD"
TRADER = Principal("tina", Role.TRADER)
VIEWER = Principal("vic", Role.VIEWER)
RISK_MANAGER = Principal("rita", Role.RISK_MANAGER)

def config_toml(sid: str) -> str:
    """3.6 ms of sleep per hourly bar, over a minute of data (the test stops it long before: it
    asserts it was stopped, not finished); risk refuses more than 1 BTC."""
    return paced_toml(sid, speed=1_000_000.0, fast=10, slow=30, max_order_qty="1")


def market(qty: str, side: Side = Side.BUY) -> OrderIntent:
    return OrderIntent(IID, side, D(qty))


def limit(qty: str, price: str) -> OrderIntent:
    return OrderIntent(IID, Side.BUY, D(qty), OrderType.LIMIT, D(price))


def entries(engine, sid: str, *kinds: str) -> list[Any]:
    return list(EventLog(engine).read(session_id=sid, kinds=tuple(kinds)))


def deterministic(engine, sid: str) -> list[tuple[str, int, str]]:
    """The session's own stream: what a resumed run must reproduce exactly."""
    return [(e.kind, e.ts, e.payload) for e in EventLog(engine).read(session_id=sid)
            if not is_operational(e.kind) and e.kind != "session.stopped"]


def of_order(engine, sid: str, cid: str) -> list[str]:
    return [e.kind for e in EventLog(engine).read(session_id=sid)
            if e.kind.startswith(("order.", "risk.decision")) and e.data().get("client_order_id") == cid]


# ---------------------------------------------------------------------- a session in another process
@pytest.mark.subprocess
@pytest.mark.slow
def test_a_running_paper_session_executes_operator_orders(session_home, tmp_path):
    h = session_home
    eng = h["engine"]
    sid = "desk1"
    cfg = tmp_path / f"{sid}.toml"
    cfg.write_text(config_toml(sid))
    proc = session_process(h["env"], "start", "--config", str(cfg))
    q = CommandQueue(eng, h["home"] / "audit" / "events.jsonl")
    reg = SessionRegistry(eng)
    try:
        wait_for(lambda: (r := reg.get(sid)) is not None and r["status"] == "running"
                 and r["events_processed"] > 0, 60, "the session to run", procs=[proc])

        # Three orders at once: a market order, one risk refuses (more than 1 BTC), and a limit
        # order resting far below the market. Taken at the next heartbeat, within ~2 s.
        t0 = time.monotonic()
        cmd = q.submit_order(sid, market("0.05"), TRADER, "hedge")
        big_id = q.submit_order(sid, market("2"), TRADER).id
        rest_id = q.submit_order(sid, limit("0.02", "100.00"), TRADER).id
        assert (cmd.status, cmd.actor, cmd.role, cmd.kind) == ("pending", "tina", "trader", "submit")
        done = q.wait(cmd.id, timeout_s=60)
        taken_s = time.monotonic() - t0
        assert done.status == "done", done.result
        # How fast a paced session answers is checked in its own event counts by
        # test_control_plane.py and measured by benchmarks/bench_control_plane.py; here only
        # that it answered (a wall-clock limit would depend on the machine's load).
        print(f"ticket answered in {taken_s:.2f} s")
        cid = done.client_order_id
        assert cid.startswith(f"{sid}-")
        # the answer: accepted by risk at once, then (the ticket follows its order) filled
        assert done.result.startswith(f"order {cid} accepted by risk (status accepted)"), [
            (e.kind, e.ts, e.data().get("reason")) for e in EventLog(eng).read(session_id=sid)
            if e.data().get("client_order_id") == cid]
        assert done.describe() == f"sent to session {sid}: {done.result}"
        [logged] = [e for e in entries(eng, sid, "session.command") if e.data()["command_id"] == cmd.id]
        assert logged.actor == "user:tina" and logged.data()["payload"]["quantity"] == "0.05"
        [created] = [e.data() for e in entries(eng, sid, "order.created") if e.data()["client_order_id"] == cid]
        assert created["tag"] == "manual:tina" and created["quantity"] == "0.05"
        [decision] = [e.data() for e in entries(eng, sid, "risk.decision") if e.data()["client_order_id"] == cid]
        assert decision["approved"] is True
        # the fill arrives with the next bar
        kinds = wait_for(lambda: (k := of_order(eng, sid, cid)) and k[-1] == "order.fill" and k,
                         what="the operator's fill")
        assert kinds[:3] == ["risk.decision", "order.created", "order.submit"]
        [fill] = [e.data()["fill"] for e in entries(eng, sid, "order.fill") if e.data()["client_order_id"] == cid]
        followed = wait_for(lambda: " filled " in (c := q.get(cmd.id)).result and c, what="the ticket's fill")
        assert followed.status == "done" and followed.result.endswith(
            f"; {cid} filled 0.05 at {Decimal(fill['price']):.2f}, fee {plain_str(Decimal(fill['fee']))} USD"), (
            followed.result, fill)
        requested = [e.data() for e in entries(eng, sid, "command.requested")]
        assert requested[0]["command_id"] == cmd.id and requested[0]["reason"] == "hedge"

        # Refused by risk: the row says why, the log has the denial.
        big = q.wait(big_id, timeout_s=60)
        assert big.status == "refused"
        assert big.result.startswith(f"order {big.client_order_id} denied by risk: ")
        assert "max_order_qty" in big.result
        assert of_order(eng, sid, big.client_order_id) == ["risk.decision", "order.created", "order.deny"]

        # The resting limit order, then its cancel (a risk manager may cancel).
        rest = q.wait(rest_id, timeout_s=60)
        assert rest.status == "done", rest.result
        gone = q.wait(q.cancel_order(sid, rest.client_order_id, RISK_MANAGER, "stale").id, timeout_s=60)
        assert (gone.status, gone.result) == ("done", f"order {rest.client_order_id} cancelled")
        assert of_order(eng, sid, rest.client_order_id)[-2:] == ["order.request_cancel", "order.cancel"]
        with eng.connect() as c:
            status = c.execute(sa.text("SELECT status FROM orders WHERE client_order_id = :c"),
                               {"c": rest.client_order_id}).scalar_one()
        assert status == "cancelled"
        again = q.wait(q.cancel_order(sid, rest.client_order_id, TRADER).id, timeout_s=60)
        assert (again.status, again.result) == (
            "refused", f"refused: order {rest.client_order_id} is cancelled, nothing to cancel")

        # Who may not, and what cannot be traded, is refused at once: nothing is queued.
        with eng.connect() as c:
            before = c.execute(sa.select(sa.func.count()).select_from(session_commands)).scalar_one()
        with pytest.raises(PermissionDenied):
            q.submit_order(sid, market("0.01"), VIEWER)
        with pytest.raises(PermissionDenied):
            q.cancel_order(sid, cid, VIEWER)
        with pytest.raises(PermissionDenied):
            q.submit_order(sid, market("0.01"), RISK_MANAGER)  # who limits trading does not trade
        with pytest.raises(ValidationError, match="not traded by session desk1") as e:
            q.submit_order(sid, OrderIntent("coinbase:ETH/USD", Side.BUY, D("1")), TRADER)
        assert e.value.field == "instrument_id"
        with pytest.raises(InvalidOrder, match="lot size") as e:
            q.submit_order(sid, market("0.000000005"), TRADER)
        assert e.value.field == "quantity"
        with pytest.raises(InvalidOrder, match="tick grid"):
            q.submit_order(sid, limit("0.01", "100.001"), TRADER)
        with pytest.raises(ValidationError, match="no such session"):
            q.submit_order("nope", market("0.01"), TRADER)
        with pytest.raises(ValidationError, match="not an order of session desk1"):
            q.cancel_order(sid, "other-00000001", TRADER)
        with eng.connect() as c:
            assert c.execute(sa.select(sa.func.count()).select_from(session_commands)).scalar_one() == before
    finally:
        reg.request_stop(sid)
        _out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    # A stopped session takes nothing: refused with what to do.
    with pytest.raises(ValidationError, match="session is stopped, not running") as e:
        q.submit_order(sid, market("0.01"), TRADER)
    assert "lyra session resume desk1" in str(e.value)
    with eng.connect() as c:
        rows = c.execute(sa.select(session_commands.c.status)).scalars().all()
    assert "pending" not in rows
    assert verify(eng, h["home"] / "audit" / "events.jsonl").ok


# ---------------------------------------------------------------------- crash and resume (in process)
def _run(engine, home, *, crash_at: int | None = None) -> dict[str, Any]:
    """The session ``cmdres`` with operator commands queued at fixed heartbeats (every 1024
    events with no pacing): a market buy and a resting limit at 2048 (taken at 3072), the
    limit's cancel at 3072 (taken at 4096), an order risk refuses at 4096 (taken at 5120)."""
    cfg = demo_config(session_id="cmdres", end="2018-03-01", risk={"defaults": {"max_order_qty": "1"}})
    s = open_session(cfg, engine=engine, market_dir=home / "market", jsonl_path=home / "audit" / "events.jsonl")
    q = CommandQueue(engine)
    ids: dict[str, int] = {}

    def progress(n: int) -> None:
        if n == 2048:
            ids["buy"] = q.submit_order("cmdres", market("0.05"), TRADER, "manual buy").id
            ids["rest"] = q.submit_order("cmdres", limit("0.02", "1000.00"), TRADER).id
        elif n == 3072:
            ids["cancel"] = q.cancel_order("cmdres", q.get(ids["rest"]).client_order_id, TRADER).id
        elif n == 4096:
            ids["big"] = q.submit_order("cmdres", market("3", Side.SELL), TRADER).id
        if crash_at is not None and n == crash_at:
            raise RuntimeError("the process dies here")

    try:
        s.run(on_progress=progress)
    except RuntimeError:
        assert crash_at is not None
    return ids


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_resumed_session_redoes_operator_orders_at_the_same_event(session_home, tmp_path, monkeypatch):
    h = session_home
    monkeypatch.setattr(runtime, "POLL_INTERVAL_S", 0.0)
    ref_engine = create_engine_for(f"sqlite:///{tmp_path / 'ref.db'}")
    upgrade(ref_engine)
    ref_ids = _run(ref_engine, h["home"])
    want = deterministic(ref_engine, "cmdres")

    eng = h["engine"]
    ids = _run(eng, h["home"], crash_at=5120)
    assert SessionRegistry(eng).get("cmdres")["status"] == "failed"
    q = CommandQueue(eng)
    # Crashed after all four were taken; one row was left pending (the process died between
    # logging the command and marking its row): the resume gives it its outcome, once.
    assert ids == ref_ids and [q.get(i).status for i in ids.values()] == ["done", "done", "done", "refused"]
    big = q.get(ids["big"])
    with eng.begin() as c:
        c.execute(session_commands.update().where(session_commands.c.id == big.id)
                  .values(status="pending", result="", client_order_id="", done_ts=None))
    s2 = open_session(demo_config(session_id="cmdres", end="2018-03-01",
                                  risk={"defaults": {"max_order_qty": "1"}}),
                      engine=eng, market_dir=h["home"] / "market", jsonl_path=h["home"] / "audit" / "events.jsonl")
    assert s2.recorder.resuming
    r2 = s2.run()
    assert not r2.stopped and r2.replayed_entries > 100
    got = deterministic(eng, "cmdres")
    assert got == want  # the resumed log is the uninterrupted one, operator orders included

    cmds = [json.loads(p) for k, _, p in got if k == "session.command"]
    assert [(c["command_id"], c["kind"], c["at_event"]) for c in cmds] == [
        (ids["buy"], "submit", 3072), (ids["rest"], "submit", 3072), (ids["cancel"], "cancel", 4096),
        (ids["big"], "submit", 5120)]
    again = q.get(big.id)
    assert (again.status, again.client_order_id) == ("refused", big.client_order_id)
    assert again.result == big.result and "denied by risk" in big.result
    created = collections.Counter(json.loads(p)["client_order_id"] for k, _, p in got if k == "order.created")
    assert max(created.values()) == 1
    buy, rest = q.get(ids["buy"]).client_order_id, q.get(ids["rest"]).client_order_id
    assert of_order(eng, "cmdres", buy)[-1] == "order.fill"
    assert of_order(eng, "cmdres", rest)[-1] == "order.cancel"
    tags = {json.loads(p)["client_order_id"]: json.loads(p)["tag"] for k, _, p in got if k == "order.created"}
    assert tags[buy] == tags[rest] == tags[big.client_order_id] == "manual:tina"
    # an outcome is written once: the resume marked only the row left pending
    done = collections.Counter(e.data()["command_id"] for e in entries(eng, "cmdres", "command.done"))
    # (the buy and the resting order: answered when taken, then when filled / cancelled)
    assert done == {ids["buy"]: 2, ids["rest"]: 2, ids["cancel"]: 1, ids["big"]: 2}
    assert q.get(ids["buy"]).result.startswith(f"order {buy} accepted by risk (status accepted); {buy} filled 0.05 at ")
    assert q.get(ids["rest"]).result.startswith(f"order {rest} accepted by risk (status accepted); {rest} cancelled")
    ref_engine.dispose()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_commands_left_when_a_session_ends_are_refused_not_run_later(session_home, monkeypatch):
    h = session_home
    monkeypatch.setattr(runtime, "POLL_INTERVAL_S", 0.0)
    cfg = demo_config(session_id="ends", end="2017-09-01")
    s = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market")
    q = CommandQueue(h["engine"])
    late: list[int] = []
    s.run(on_progress=lambda n: late.append(q.submit_order("ends", market("0.01"), TRADER).id) if n == 1024
          else None)
    [cmd] = [q.get(i) for i in late]
    assert s.result.events < 2048  # it ended before another heartbeat could take the command
    assert (cmd.status, cmd.result) == ("refused", "refused: session ends finished before taking it")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_heartbeat_age_and_time_to_live_are_judged_on_the_clock(session_home):
    """No waiting a minute: the queue and the session's command taker read a ManualClock."""
    h = session_home
    eng = h["engine"]
    clock = ManualClock(1_700_000_000_000)
    s = open_session(demo_config(session_id="ttl", end="2017-09-01"), engine=eng,
                     market_dir=h["home"] / "market")
    registry = SessionRegistry(eng, clock=clock)  # the session's heartbeat, on the same clock
    registry.upsert("ttl", s.config, status="running")
    q = CommandQueue(eng, clock=clock)
    taker = SessionCommands(s, clock=clock)  # what the session's heartbeat runs

    old = q.cancel_order("ttl", "ttl-00000001", TRADER)
    assert old.created_ts == clock.now_ms()
    clock.advance(30.0)  # a heartbeat 30 s old is still a running session...
    registry.update("ttl")  # ...and now it beats again
    young = q.cancel_order("ttl", "ttl-00000002", TRADER)
    clock.advance(COMMAND_TTL_MS / 1000 - 30.0 + 0.001)  # ``old`` waited just past its time
    registry.update("ttl")
    taker.take(1024, 0)
    old, young = q.get(old.id), q.get(young.id)
    assert (old.status, old.result) == (
        "refused", f"refused: expired: not taken within {COMMAND_TTL_MS // 1000} s (the session was not running)")
    assert old.done_ts == clock.now_ms()
    # ``young`` (30 s old) was taken: the session looked for the order and said why not
    assert (young.status, young.result) == ("refused", "refused: order ttl-00000002 is not an order of session ttl")
    assert [e.data()["command_id"] for e in entries(eng, "ttl", "session.command")] == [young.id]

    # A session whose heartbeat stopped takes no new command (its owner may be dead).
    clock.advance(60.0)
    with pytest.raises(ValidationError, match="heartbeat was 60 s ago") as e:
        q.cancel_order("ttl", "ttl-00000003", TRADER)
    assert e.value.field == "session_id"
    registry.update("ttl")  # it beats again: commands are welcome
    assert q.cancel_order("ttl", "ttl-00000003", TRADER).status == "pending"


# ---------------------------------------------------------------------- live: never twice across a restart
FIX = Path(__file__).parents[2] / "fixtures"
LIVE = {
    "session_id": "lv1", "mode": "live", "live_confirm": True, "venue": "binance", "symbols": ["XRP/USDT"],
    "timeframe": "1m", "quantity": "10",
    "instruments": {"XRP/USDT": {"price_increment": "0.0001", "size_increment": "1", "min_size": "1",
                                 "min_notional": "5"}},
}


def _live(engine, fake) -> Any:
    """A live session on the fake Binance (real ccxt), as tests/integration/session/test_live_session.py."""
    import ccxt

    from lyra.execution.ccxt_broker import RetryPolicy
    from lyra.session.config import load_session_config
    from lyra.session.factory import open_live_session

    ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(apiKey="k", secret="s", timeout=2000)))
    ex.load_markets()
    s = open_live_session(load_session_config(LIVE), engine=engine, exchange=ex, feed=[])
    s.broker.retry = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, settle_s=0.0)
    return s


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_a_live_session_never_applies_a_command_twice(engine):
    from lyra.testing.fake_account import FakeAccount, load_book_csv
    from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded

    info = exchange_info_from_recorded(
        json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
        json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
    bids, asks = load_book_csv(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz")
    acct = FakeAccount({"USDT": "50000", "XRP": "1000"}, books={"XRPUSDT": (bids, asks)})
    xrp = "binance:XRP/USDT"
    with FakeExchange(info, account=acct) as f:
        s1 = _live(engine, f)
        s1.start()
        s1.registry.upsert("lv1", s1.config, status="running")
        now = int(time.time() * 1000)
        s1.clock.advance_to(now)
        s1.marks[xrp] = 1.953
        s1.last_data_ts[xrp] = now
        q = CommandQueue(engine)
        cmd = q.submit_order("lv1", OrderIntent(xrp, Side.BUY, D("100"), OrderType.LIMIT, D("1.9000")), TRADER)
        s1.commands.take(7, now)  # what its heartbeat does
        done = q.get(cmd.id)
        assert done.status == "done", done.result
        cid = done.client_order_id
        assert [o["clientOrderId"] for o in acct.orders].count(cid) == 1
        # The process dies between logging the command and marking its row.
        with engine.begin() as c:
            c.execute(session_commands.update().where(session_commands.c.id == cmd.id)
                      .values(status="pending", result="", client_order_id="", done_ts=None))
        s1.broker.close()
        del s1

        s2 = _live(engine, f)
        s2.start()
        assert s2.commands.schedule() == {}  # a live session continues; it does not replay
        seq = s2.seq
        s2.commands.take(8, int(time.time() * 1000))
        s2.broker.close()
        again = q.get(cmd.id)
        assert (again.status, again.result) == ("done", "applied before the session restarted (see its log)")
        assert s2.seq == seq and [o["clientOrderId"] for o in acct.orders].count(cid) == 1
        assert len(entries(engine, "lv1", "session.command")) == 1


# ---------------------------------------------------------------------- the migration
def test_migration_0007_adds_and_removes_the_commands_table(db_url):
    from lyra.store import current_revision, downgrade

    eng = create_engine_for(db_url)
    try:
        upgrade(eng, "0006_books")
        assert "session_commands" not in sa.inspect(eng).get_table_names()
        upgrade(eng, "0007_session_commands")
        insp = sa.inspect(eng)
        assert {c["name"] for c in insp.get_columns("session_commands")} == {
            "id", "session_id", "kind", "payload", "actor", "role", "reason", "created_ts", "status", "result",
            "client_order_id", "done_ts"}
        assert [ix["column_names"] for ix in insp.get_indexes("session_commands")] == [["session_id", "status", "id"]]
        downgrade(eng, "0006_books")
        assert "session_commands" not in sa.inspect(eng).get_table_names()
        assert current_revision(eng) == "0006_books"
    finally:
        eng.dispose()
