"""Every way an order can enter goes through one gateway: one session (``five``) whose orders
come from its strategy, an execution algorithm's children, an operator's ticket, a rebalance
and the smart-order router's desk. Every ``risk.decision`` in its log has one shape -- the same
keys with the same value types -- and every order has a decision before it is created."""

from __future__ import annotations

import csv
import gzip
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest

from lyra.audit import EventLog, Ledger, verify
from lyra.auth.permissions import Principal, Role
from lyra.core.clock import ReplayClock
from lyra.core.enums import Side
from lyra.core.instrument import Instrument
from lyra.core.orders import Order, OrderIntent
from lyra.execution.algos import AlgoSpec, ParentIntent
from lyra.execution.ccxt_broker import CcxtBroker, RetryPolicy
from lyra.execution.routed_desk import RoutedDesk, VenueLink
from lyra.risk.engine import RiskContext
from lyra.session import runtime
from lyra.session.algo_runtime import AlgoBook, AlgoDriver
from lyra.session.commands import CommandQueue
from lyra.session.config import load_session_config
from lyra.session.factory import default_risk_engine, open_session
from lyra.testing.fake_account import FakeAccount
from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded
from lyra.testing.sessions import demo_config

FIX = Path(__file__).parents[2] / "fixtures"
D = Decimal
SID = "five"
BTC = "coinbase:BTC/USD"
TINA = Principal("tina", Role.TRADER)


class StrategyWithOneTwap:
    """The demo's SMA cross, plus one TWAP parent (0.2 BTC over 4 hours) on its 100th bar: the
    strategy's own orders and an algorithm's children in one session."""

    emits_parents = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.n = 0

    def on_bar(self, bar: Any) -> list[Any]:
        self.n += 1
        out = list(self.inner.on_bar(bar))
        if self.n == 100:
            spec = AlgoSpec("twap", duration_ms=4 * 3_600_000, slices=4)
            out.append(ParentIntent(OrderIntent(BTC, Side.BUY, D("0.2"), tag="twap"), spec))
        return out

    def __getattr__(self, name: str) -> Any:  # target_position etc.: the strategy's own
        return getattr(self.inner, name)


def _router(engine: Any, jsonl: Path, fake: FakeExchange) -> RoutedDesk:
    """The router's desk on one fake venue, recording into the session's own account."""
    inst = Instrument("XRP/USDT", "binance", "XRP", "USDT", D("0.0001"), D(1), D(1), D(5),
                      maker_fee=D("0.001"), taker_fee=D("0.001"))
    ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(apiKey="k", secret="s", timeout=3000)))
    ex.load_markets()
    broker = CcxtBroker(ex, [inst], retry=RetryPolicy(attempts=2, base_delay_s=0.01, settle_s=0.0))
    cfg = load_session_config({"session_id": SID, "venue": "binance", "symbols": ["XRP/USDT"],
                               "instruments": {"XRP/USDT": {"price_increment": "0.0001", "size_increment": "1"}},
                               "risk": {"defaults": {"max_order_notional": "40000"}}})
    clock = ReplayClock(int(time.time() * 1000))
    risk = default_risk_engine(cfg, engine, clock)

    def context(order: Order) -> RiskContext:
        now = int(time.time() * 1000)
        clock.advance_to(max(clock.now_ms(), now))
        return RiskContext(account_id=SID, positions={}, marks={inst.id: D("1.953")}, equity=D(100_000),
                           balances={"USDT": D(100_000)}, open_orders=[], instruments={inst.id: inst},
                           now=now, last_md_ts={inst.id: now})

    return RoutedDesk({"a": VenueLink(broker, ex, inst)}, ledger=Ledger(EventLog(engine, jsonl)), risk=risk,
                      risk_context=context, account_id=SID)


def _book() -> tuple[list[list[str]], list[list[str]]]:
    bids: list[list[str]] = []
    asks: list[list[str]] = []
    with gzip.open(FIX / "routing" / "bybit_XRPUSDT_books_top50.csv.gz", "rt") as f:
        first = None
        for r in csv.DictReader(f):
            first = first or r["timestamp_ms"]
            if r["timestamp_ms"] != first:
                break
            (bids if r["side"] == "bid" else asks).append([r["price"], r["size"]])
    return bids, asks


def _shape(payload: dict[str, Any]) -> dict[str, str]:
    return {k: type(v).__name__ for k, v in payload.items()}


@pytest.mark.slow
def test_five_entry_points_one_session_one_decision_shape(session_home, monkeypatch):
    h = session_home
    eng = h["engine"]
    monkeypatch.setattr(runtime, "POLL_INTERVAL_S", 0.0)  # commands taken at every heartbeat
    s = open_session(demo_config(session_id=SID, end="2017-11-01"), engine=eng, market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    s.algos = AlgoBook(SID, s.instruments)
    s.strategies[BTC] = AlgoDriver(StrategyWithOneTwap(s.strategies[BTC]), BTC, s.algos, None, s.clock,
                                   s._algo_changed)
    q = CommandQueue(eng)
    cmds: dict[str, int] = {}

    def progress(n: int) -> None:  # the first heartbeat (1024 events): queue, taken at the next
        if n == 1024:
            cmds["ticket"] = q.submit_order(SID, OrderIntent(BTC, Side.BUY, D("0.01")), TINA, "ticket").id
            cmds["rebalance"] = q.submit_rebalance(SID, {BTC: "0.3"}, TINA, "rebalance").id

    r = s.run(on_progress=progress)
    assert not r.stopped and r.events > 2048
    assert {k: q.get(i).status for k, i in cmds.items()} == {"ticket": "done", "rebalance": "done"}
    # the router's desk, on the same session's account, after its run (ids continue its sequence)
    with FakeExchange(exchange_info_from_recorded(
            json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
            json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text())),
            account=FakeAccount({"USDT": "100000", "XRP": "0"}, books={"XRPUSDT": _book()},
                                taker_fee="0.001", maker_fee="0.001")) as fake:
        routed = _router(eng, h["home"] / "audit" / "events.jsonl", fake).route(Side.BUY, D(500))
    assert routed.filled_quantity == D(500)

    log = list(EventLog(eng).read(session_id=SID))
    created = {e.data()["client_order_id"]: e.data() for e in log if e.kind == "order.created"}
    decisions = [e.data() for e in log if e.kind == "risk.decision"]

    def door(cid: str) -> str:
        tag = created[cid].get("tag") or ""
        if f"@{SID}-algo-" in tag:  # a child's tag: its parent's tag @ the parent's id
            return "algo child"
        if tag.startswith("manual:"):
            return "ticket"
        if tag.startswith("rebalance:"):
            return "rebalance"
        if tag.startswith("route:"):
            return "router"
        return "strategy"

    doors = {door(d["client_order_id"]) for d in decisions}
    assert doors == {"strategy", "algo child", "ticket", "rebalance", "router"}
    # one shape: the same keys, each with the same type, whichever door the order came in by
    shapes = {json.dumps(_shape(d), sort_keys=True) for d in decisions}
    assert len(shapes) == 1, shapes
    assert len(decisions[0]) == 11 and all(d["account_id"] == SID for d in decisions)
    # one door: every order has its decision, logged before it; ids are never given twice
    decided_at = {e.data()["client_order_id"]: i for i, e in enumerate(log) if e.kind == "risk.decision"}
    made_at = {e.data()["client_order_id"]: i for i, e in enumerate(log) if e.kind == "order.created"}
    assert set(decided_at) == set(made_at) and all(decided_at[c] < made_at[c] for c in made_at)
    assert len(decisions) == len(decided_at)
    assert verify(eng, h["home"] / "audit" / "events.jsonl").ok
