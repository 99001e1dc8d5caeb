"""Every entry the code writes reads back through the event catalogue to the very text the hash
chain covers: paper sessions (operator commands, the kill switch, an execution algorithm, a
breaker), the demo session, the dashboards' manual desk, the auth service, the smart-order
router and a live session's reconciliation. And a log written by the code of commit df70b03
(tests/fixtures/audit, made by make_df70b03_log.py) still verifies, replays to the tables that
code wrote, reads back byte for byte, and takes new entries."""

from __future__ import annotations

import collections
import contextlib
import gzip
import json
import time
from collections.abc import Iterator
from contextlib import ExitStack
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit import (
    EventLog,
    EventRecord,
    Ledger,
    canonical_json,
    parse_record,
    read_tables,
    replay,
    state_as_rows,
    verify,
)
from lyra.auth.permissions import Principal, Role
from lyra.auth.repository import SecretBox
from lyra.auth.service import AuthService, LoginFailed
from lyra.auth.tokens import generate_signing_key
from lyra.core.enums import OrderType, Side
from lyra.core.errors import ValidationError
from lyra.core.orders import Order, OrderIntent
from lyra.readside import MANUAL_SESSION, ManualDesk
from lyra.risk.killswitch import KillSwitch
from lyra.risk.state import TradingStateStore
from lyra.session import runtime
from lyra.session.commands import CommandQueue
from lyra.session.config import load_session_config
from lyra.session.factory import open_live_session, open_session
from lyra.session.runtime import session_instruments
from lyra.store.tables import audit_head, events, fills, orders, positions
from lyra.testing.sessions import demo_config

FIX = Path(__file__).resolve().parents[2] / "fixtures"
IID = "coinbase:BTC/USD"
D = Decimal
TRADER = Principal("tina", Role.TRADER)
HOUR = 3_600_000


def read_back(engine: Engine) -> collections.Counter[str]:
    """Parse every entry of the log and write it again: the canonical JSON must be the stored
    text, byte for byte. Returns how many entries of each kind there were."""
    kinds: collections.Counter[str] = collections.Counter()
    for rec in EventLog(engine).read():
        ev = parse_record(rec)
        assert canonical_json(ev.to_payload()) == rec.payload, (rec.seq, rec.kind)
        kinds[rec.kind] += 1
    return kinds


def replay_matches_tables(engine: Engine) -> None:
    """The projector (reading through the catalogue) rebuilds the projection tables."""
    with engine.connect() as c:
        live = read_tables(c)
    rebuilt = state_as_rows(replay(EventLog(engine).read()))
    assert [(o["client_order_id"], o["status"], o["filled_quantity"]) for o in live["orders"]] == \
        [(o["client_order_id"], o["status"], o["filled_quantity"]) for o in rebuilt["orders"]]
    assert [(p["session_id"], p["instrument_id"], p["quantity"]) for p in live["positions"]] == \
        [(p["session_id"], p["instrument_id"], p["quantity"]) for p in rebuilt["positions"]]
    assert [f["fill_id"] for f in live["fills"]] == [f["fill_id"] for f in rebuilt["fills"]]


def auth_events(engine: Engine, jsonl: Path, home: Path) -> None:
    """A user, a failed and a good login (recovery code), a role change, an API key."""
    auth = AuthService(engine, signing_key=generate_signing_key(), event_log=EventLog(engine, jsonl),
                       secret_box=SecretBox.from_file(home / "totp.key", create=True), iterations=1000)
    enrol = auth.add_user("alice", "a long passphrase here", "trader", actor="admin")
    with contextlib.suppress(LoginFailed):
        auth.login_password("alice", "not the passphrase", client="127.0.0.1")
    challenge = auth.login_password("alice", "a long passphrase here", client="127.0.0.1")
    auth.login_mfa(challenge.ticket, enrol.recovery_codes[0], client="127.0.0.1")
    auth.set_role("alice", "analyst", actor="admin")
    key = auth.create_api_key("alice", ["view_trading"], name="notebook", actor="admin")
    auth.revoke_api_key(key.record.key_id, actor="admin")


# ------------------------------------------------------------------------ sessions, desk, auth
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_paper_sessions_the_manual_desk_and_auth_read_back_byte_for_byte(session_home, monkeypatch):
    h = session_home
    eng, home = h["engine"], h["home"]
    jsonl = home / "audit" / "events.jsonl"
    monkeypatch.setattr(runtime, "POLL_INTERVAL_S", 0.0)  # a heartbeat every 1024 events
    queue = CommandQueue(eng, jsonl)
    kill = KillSwitch(TradingStateStore(EventLog(eng, jsonl)))
    ids: dict[str, int] = {}

    def progress(n: int) -> None:
        # Operator orders (a buy, a resting limit, one risk refuses), the limit's cancel, then
        # the kill switch with flattening: each taken at the next heartbeat.
        if n == 1024:
            ids["buy"] = queue.submit_order("cat", OrderIntent(IID, Side.BUY, D("0.05")), TRADER, "hedge").id
            ids["rest"] = queue.submit_order(
                "cat", OrderIntent(IID, Side.BUY, D("0.02"), OrderType.LIMIT, D("1000.00")), TRADER).id
            ids["big"] = queue.submit_order("cat", OrderIntent(IID, Side.SELL, D("3")), TRADER).id
        elif n == 2048:
            ids["cancel"] = queue.cancel_order("cat", queue.get(ids["rest"]).client_order_id, TRADER).id
        elif n == 3072:
            kill.pull(session_id="cat", flatten=True, actor="ops", reason="catalogue test")

    def session(cfg: Any) -> Any:
        return open_session(cfg, engine=eng, market_dir=home / "market", jsonl_path=jsonl)

    r = session(demo_config(session_id="cat", end="2018-03-01", risk={"defaults": {"max_order_qty": "1"}})
                ).run(on_progress=progress)
    assert r.stopped  # by the kill switch
    kill.rearm(session_id="cat", actor="rita", role="risk_manager", reason="test over")
    twap = {"kind": "twap", "duration_ms": 4 * HOUR, "slices": 4}
    session(demo_config(session_id="cat-algo", end="2017-08-01",
                        params={"fast": 10, "slow": 30, "execution": twap})).run()
    session(demo_config(session_id="cat-brk", end="2017-12-01",
                        risk={"breakers": {"max_consecutive_losses": 2,
                                           "consecutive_loss_cooldown_ms": None}})).run()
    auth_events(eng, jsonl, home)

    kinds = read_back(eng)
    expected = {
        "session.started", "session.equity", "session.finished", "session.stopped", "session.command",
        "session.kill", "command.requested", "command.done", "risk.decision", "risk.kill_switch",
        "risk.kill_ack", "risk.rearm", "risk.breaker_trip", "risk.state_change", "algo.started",
        "algo.finished", "order.created", "order.submit", "order.accept", "order.fill", "order.deny",
        "order.request_cancel", "order.cancel", "auth.user_created", "auth.login_failed",
        "auth.recovery_code_used", "auth.mfa_ok", "auth.login_ok", "auth.role_changed",
        "auth.apikey_created", "auth.apikey_revoked",
    }
    assert expected <= set(kinds), sorted(expected - set(kinds))
    assert kinds["command.requested"] == 4 and kinds["session.command"] == 4
    # every writer goes through the order gateway now: one risk.decision shape (the engine's 11)
    shapes = {frozenset(parse_record(rec).to_payload())
              for rec in EventLog(eng).read(kinds=("risk.decision",))}
    assert len(shapes) == 1 and len(next(iter(shapes))) == 11
    replay_matches_tables(eng)
    assert verify(eng, jsonl).ok


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_demo_sessions_log_reads_back_byte_for_byte(session_home):
    h = session_home
    s = open_session(demo_config(), engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    r = s.run()
    assert (r.orders, r.fills) == (772, 772)
    kinds = read_back(h["engine"])
    assert kinds["order.created"] == kinds["risk.decision"] == kinds["order.submit"] == kinds["order.fill"] == 772
    assert kinds["session.started"] == kinds["session.finished"] == 1 and kinds["session.equity"] > 300


# ------------------------------------------------------------------------ router and live venue
@pytest.fixture
def fakes() -> Iterator[dict[str, Any]]:
    from lyra.testing.fake_account import FakeAccount, load_book_csv
    from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded

    info = exchange_info_from_recorded(
        json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
        json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
    bids, asks = load_book_csv(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz")
    with ExitStack() as stack:
        out = {}
        for name, fee in (("a", "0.001"), ("b", "0.0004")):
            acct = FakeAccount({"USDT": "1000000", "XRP": "0"}, books={"XRPUSDT": (bids, asks)},
                               taker_fee=fee, maker_fee=fee)
            out[name] = (stack.enter_context(FakeExchange(info, account=acct)), acct)
        live = FakeAccount({"USDT": "50000", "XRP": "1000"}, books={"XRPUSDT": (bids, asks)})
        out["live"] = (stack.enter_context(FakeExchange(info, account=live)), live)
        yield out


def _ccxt(fake: Any) -> ccxt.binance:
    ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(apiKey="k", secret="s", timeout=3000)))
    ex.load_markets()
    return ex


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_router_and_a_live_reconciliation_read_back_byte_for_byte(engine: Engine, fakes: Any) -> None:
    from lyra.core.clock import ReplayClock
    from lyra.core.instrument import Instrument
    from lyra.execution.ccxt_broker import CcxtBroker, RetryPolicy
    from lyra.execution.routed_desk import RoutedDesk, VenueLink
    from lyra.risk.engine import RiskContext
    from lyra.session.factory import default_risk_engine

    def inst(fee: str) -> Instrument:
        return Instrument("XRP/USDT", "binance", "XRP", "USDT", D("0.0001"), D(1), D(1), D(5),
                          maker_fee=D(fee), taker_fee=D(fee))

    links = {}
    for name, fee in (("a", "0.001"), ("b", "0.0004")):
        ex = _ccxt(fakes[name][0])
        broker = CcxtBroker(ex, [inst(fee)], retry=RetryPolicy(attempts=2, base_delay_s=0.01, settle_s=0.0))
        links[name] = VenueLink(broker, ex, inst(fee))
    cfg = load_session_config({"session_id": "router", "venue": "binance", "symbols": ["XRP/USDT"],
                               "instruments": {"XRP/USDT": {"price_increment": "0.0001", "size_increment": "1"}},
                               "risk": {"defaults": {"max_order_notional": "40000"}}})
    clock = ReplayClock(int(time.time() * 1000))
    risk = default_risk_engine(cfg, engine, clock)

    def context(order: Order) -> RiskContext:
        now = int(time.time() * 1000)
        clock.advance_to(max(clock.now_ms(), now))
        return RiskContext(account_id="router", positions={}, marks={"binance:XRP/USDT": D("1.953")},
                           equity=D(1_000_000), balances={"USDT": D(1_000_000)}, open_orders=[],
                           instruments={"binance:XRP/USDT": inst("0.001")}, now=now,
                           last_md_ts={"binance:XRP/USDT": now})

    desk = RoutedDesk(links, ledger=Ledger(EventLog(engine)), risk=risk, risk_context=context, account_id="router")
    result = desk.route(Side.BUY, D(5000))
    assert result.filled_quantity > 0
    for link in links.values():
        link.broker.close()

    # A live session: first start (baseline), then money and an order of ours the log never
    # saw appear at the venue; the restart records both differences and halts the account.
    fake, acct = fakes["live"]
    live_cfg = {"session_id": "lv1", "mode": "live", "live_confirm": True, "venue": "binance",
                "symbols": ["XRP/USDT"], "timeframe": "1m", "quantity": "10",
                "instruments": {"XRP/USDT": {"price_increment": "0.0001", "size_increment": "1",
                                             "min_size": "1", "min_notional": "5"}}}
    s1 = open_live_session(load_session_config(live_cfg), engine=engine, exchange=_ccxt(fake), feed=[])
    s1.start()
    s1.broker.close()
    acct.deposit("USDT", "1000")
    _ccxt(fake).create_order("XRP/USDT", "limit", "buy", 20, 1.9, {"newClientOrderId": "lv1-00000099"})
    s2 = open_live_session(load_session_config(live_cfg), engine=engine, exchange=_ccxt(fake), feed=[])
    res = s2.start()
    s2.broker.close()
    assert not res.balances_ok

    kinds = read_back(engine)
    assert {"route.decision", "route.completed", "risk.decision", "order.created", "order.submit",
            "live.baseline", "reconcile.difference", "reconcile.completed", "risk.state_change"} <= set(kinds)
    diffs = {parse_record(r).kind for r in EventLog(engine).read(kinds=("reconcile.difference",))}
    assert {"orphan-cancelled", "balance-mismatch"} <= diffs
    # the router's decisions have the engine's shape (11 fields)
    assert {len(r.data()) for r in EventLog(engine).read(kinds=("risk.decision",))} == {11}


# ------------------------------------------------------------------------ a log from df70b03
_TAIL = len(',"prev_hash":"') + 64 + len('","hash":"') + 64 + len('"}\n')


def fixture_log() -> list[EventRecord]:
    """The fixture's entries, the payload text cut out of each line byte for byte."""
    text = gzip.decompress((FIX / "audit" / "df70b03_events.jsonl.gz").read_bytes()).decode()
    out = []
    for line in text.splitlines(keepends=True):
        d = json.loads(line)
        payload = line[line.index('"payload":') + len('"payload":'): len(line) - _TAIL]
        rec = EventRecord(d["seq"], d["ts"], d["actor"], d["kind"], d["session_id"], payload, d["prev_hash"],
                          d["hash"])
        assert rec.jsonl_line() == line
        out.append(rec)
    return out


def fixture_tables() -> dict[str, list[dict[str, Any]]]:
    """The projection tables as df70b03 left them (Decimals as text)."""
    return json.loads(gzip.decompress((FIX / "audit" / "df70b03_tables.json.gz").read_bytes()))["tables"]


def load_install(engine: Engine, jsonl: Path, records: list[EventRecord]) -> None:
    """Put the old log and its projection tables into a database migrated by today's code, as
    an upgraded installation has them, and the mirror file next to it."""
    with engine.begin() as c:
        c.execute(events.insert(), [{"seq": r.seq, "ts": r.ts, "actor": r.actor, "kind": r.kind,
                                     "session_id": r.session_id, "payload": r.payload,
                                     "prev_hash": r.prev_hash, "hash": r.hash} for r in records])
        c.execute(audit_head.update().where(audit_head.c.id == 1).values(seq=records[-1].seq,
                                                                         hash=records[-1].hash))
        for name, rows in fixture_tables().items():
            c.execute({"orders": orders, "fills": fills, "positions": positions}[name].insert(), rows)
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    jsonl.write_text("".join(r.jsonl_line() for r in records), encoding="utf-8")


def test_the_df70b03_fixture_covers_what_that_code_wrote() -> None:
    records = fixture_log()
    kinds = collections.Counter(r.kind for r in records)
    assert len(records) == 1156
    assert {"session.command", "session.kill", "command.done", "risk.kill_ack", "algo.finished",
            "risk.breaker_trip", "order.request_cancel", "auth.role_changed"} <= set(kinds)
    assert json.loads(gzip.decompress((FIX / "audit" / "df70b03_tables.json.gz").read_bytes()))["commit"] == "df70b03"


def test_a_log_written_by_df70b03_still_verifies_replays_and_reads_back(engine: Engine, tmp_path: Path) -> None:
    records = fixture_log()
    jsonl = tmp_path / "audit" / "events.jsonl"
    load_install(engine, jsonl, records)
    report = verify(engine, jsonl)
    assert report.ok and report.entries == report.file_entries == len(records)

    # Every entry reads back through the catalogue to the stored text.
    kinds = read_back(engine)
    assert sum(kinds.values()) == len(records)

    # The replay (the projector reads through the catalogue) gives the tables df70b03 wrote.
    want = fixture_tables()
    got = state_as_rows(replay(EventLog(engine).read()))
    dec = ("filled_quantity", "avg_fill_price", "fees", "quantity", "avg_price", "realized_pnl", "price", "fee")

    def norm(rows: list[dict[str, Any]], keys: list[str]) -> list[tuple[Any, ...]]:
        return [tuple(None if r[k] is None else D(str(r[k])) if k in dec else r[k] for k in keys) for r in rows]

    keys = {"orders": ["client_order_id", "session_id", "status", "filled_quantity", "avg_fill_price", "fees",
                       "quantity"],
            "fills": ["fill_id", "session_id", "quantity", "price", "fee"],
            "positions": ["session_id", "instrument_id", "quantity", "avg_price", "realized_pnl", "fees"]}
    for table, k in keys.items():
        assert norm(got[table], k) == norm(want[table], k), table
    assert (len(got["orders"]), len(got["fills"]), len(got["positions"])) == (219, 156, 3)

    # A point in the past: the manual desk's order before its cancel.
    manual = [r for r in records if r.session_id == MANUAL_SESSION]
    before_cancel = next(r.ts for r in manual if r.kind == "order.request_cancel") - 1
    past = replay(r for r in records if r.ts <= before_cancel and r.session_id == MANUAL_SESSION)
    assert [o.status.value for o in past.orders.values()] == ["submitted"]

    # An edit anywhere is still caught.
    with engine.begin() as c:
        c.execute(events.update().where(events.c.seq == 500).values(payload=sa.func.replace(
            events.c.payload, '"ts":', '"ts": ')))
    bad = verify(engine, jsonl)
    assert not bad.ok and bad.first_bad is not None and bad.first_bad.seq == 500
    with engine.begin() as c:
        c.execute(events.update().where(events.c.seq == 500).values(payload=records[499].payload))

    # Today's code reads the old log's manual orders (no new ones are ever recorded: a
    # rebalance is a session command now); the old one cannot be cancelled twice.
    desk = ManualDesk(engine, dict(session_instruments(demo_config())), jsonl_path=jsonl, equity=D(10_000))
    with pytest.raises(ValidationError, match="already cancelled"):
        desk.cancel_manual(TRADER, manual[0].data()["client_order_id"])
    after = verify(engine, jsonl)
    assert after.ok and after.entries == len(records)
