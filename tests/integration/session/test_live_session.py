"""A live session against the fake Binance (real ccxt, real database on SQLite and PostgreSQL):
it dies while orders rest on the venue, fills arrive while it is down, and the restarted
session reconciles — positions equal the venue's, no client order id twice, every difference
in the log; balances that disagree halt trading until a person re-arms."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import pytest
from sqlalchemy.engine import Engine

from lyra.audit import EventLog
from lyra.core.enums import OrderStatus as S
from lyra.core.enums import OrderType, Side
from lyra.core.orders import OrderIntent
from lyra.execution.ccxt_broker import RetryPolicy
from lyra.risk._types import TradingState, account_scope
from lyra.session.config import load_session_config
from lyra.session.factory import open_live_session
from lyra.session.live import LiveSession
from lyra.testing.fake_account import FakeAccount, load_book_csv
from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded

FIX = Path(__file__).parents[2] / "fixtures"
INFO = exchange_info_from_recorded(json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
                                   json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
BIDS, ASKS = load_book_csv(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz")
D = Decimal
IID = "binance:XRP/USDT"
CONFIG = {
    "session_id": "lv1", "mode": "live", "live_confirm": True, "venue": "binance", "symbols": ["XRP/USDT"],
    "timeframe": "1m", "quantity": "10",
    "instruments": {"XRP/USDT": {"price_increment": "0.0001", "size_increment": "1", "min_size": "1",
                                 "min_notional": "5"}},
}


@pytest.fixture
def fake() -> Iterator[tuple[FakeExchange, FakeAccount]]:
    acct = FakeAccount({"USDT": "50000", "XRP": "1000"}, books={"XRPUSDT": (BIDS, ASKS)})
    with FakeExchange(INFO, account=acct) as f:
        yield f, acct


def _exchange(fake: FakeExchange) -> ccxt.binance:
    ex = fake.point_ccxt(ccxt.binance(fake.ccxt_config(apiKey="k", secret="s", timeout=2000)))
    ex.load_markets()
    return ex


def _open(engine: Engine, fake: FakeExchange, **over: Any) -> LiveSession:
    cfg = load_session_config({**CONFIG, **over})
    s = open_live_session(cfg, engine=engine, exchange=_exchange(fake), feed=[])
    assert isinstance(s, LiveSession)
    s.broker.retry = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.05, settle_s=0.0)
    return s


def _trade(s: LiveSession, side: Side, qty: str, price: str) -> str:
    """An order through the session's own path: risk decision, write-ahead log, broker."""
    now = int(time.time() * 1000)
    s.clock.advance_to(now)
    s.marks[IID] = 1.953
    s.last_data_ts[IID] = now
    s._submit([OrderIntent(IID, side, D(qty), OrderType.LIMIT, D(price))], now)
    s.recorder.commit()
    return f"lv1-{s.seq:08d}"


def _kinds(engine: Engine, kind: str) -> list[dict[str, Any]]:
    return [r.data() for r in EventLog(engine).read(session_id="lv1", kinds=(kind,))]


def _venue_totals(acct: FakeAccount) -> dict[str, Decimal]:
    return {a: b.free + b.locked for a, b in acct.balances().items()}


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_restart_adopts_fills_made_while_down_and_records_every_difference(engine: Engine, fake: Any) -> None:
    f, acct = fake
    s1 = _open(engine, f)
    first = s1.start()
    assert first.differences == [] and _kinds(engine, "live.baseline")[0]["balances"] == {
        "USDT": "50000", "XRP": "1000"}
    buy = _trade(s1, Side.BUY, "300", "1.9500")
    sell = _trade(s1, Side.SELL, "200", "1.9600")
    s1._drain(s1.clock.now_ms())
    s1.recorder.commit()
    orders = s1.ledger.state.orders
    assert (orders[buy].status, orders[sell].status) == (S.ACCEPTED, S.ACCEPTED)
    s1.broker.close()
    del s1  # the process dies: nothing more is written

    # While it is down: the market trades through both orders (the sell only partly), and an
    # order with the session's prefix that the log never recorded rests on the venue.
    acct.cross("XRPUSDT", "1.9499")
    acct.cross("XRPUSDT", "1.9601", "50")
    _exchange(f).create_order("XRP/USDT", "limit", "buy", 20, 1.9, {"newClientOrderId": "lv1-00000099"})

    s2 = _open(engine, f)
    res = s2.start()
    kinds = sorted(d.kind for d in res.differences)
    assert kinds == ["fill-adopted", "fill-adopted", "order-resolved", "order-resolved", "orphan-cancelled"]
    assert res.balances_ok
    logged = _kinds(engine, "reconcile.difference")
    assert sorted(d["kind"] for d in logged) == kinds
    st = s2.ledger.state.orders
    assert (st[buy].status, st[buy].filled_quantity) == (S.FILLED, D(300))
    assert (st[sell].status, st[sell].filled_quantity) == (S.PARTIALLY_FILLED, D(50))
    # positions and cash equal the venue's, exactly
    venue = _venue_totals(acct)
    assert s2.holdings[IID] == D(250)
    assert {a: s2.cash[a] for a in ("USDT", "XRP")} == {"USDT": venue["USDT"], "XRP": venue["XRP"]}
    assert venue["XRP"] == D(1250)
    # the orphan was cancelled at the venue; nothing was sent twice
    orphan = next(o for o in acct.orders if o["clientOrderId"] == "lv1-00000099")
    assert orphan["status"] == "CANCELED"
    assert acct.duplicate_client_order_ids() == []
    assert sorted(s.client_order_id for s in acct.submissions) == sorted([buy, sell, "lv1-00000099"])
    # the restarted session numbers its next order after the last one it logged
    nxt = _trade(s2, Side.SELL, "10", "2.0000")
    assert nxt == "lv1-00000003"
    s2.broker.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_balances_that_disagree_halt_trading_until_rearmed(engine: Engine, fake: Any) -> None:
    f, acct = fake
    s1 = _open(engine, f)
    s1.start()
    s1.broker.close()
    acct.deposit("USDT", "1000")  # money appears that the log knows nothing about
    s2 = _open(engine, f)
    res = s2.start()
    assert not res.balances_ok
    assert res.balance_gaps == {"USDT": {"expected": "50000", "venue": "51000", "difference": "1000"}}
    assert any(d["kind"] == "balance-mismatch" for d in _kinds(engine, "reconcile.difference"))
    state = s2.risk.state  # type: ignore[union-attr]
    assert state.get(account_scope("lv1")).state is TradingState.HALTED
    cid = _trade(s2, Side.BUY, "10", "1.9000")
    assert s2.ledger.state.orders[cid].status is S.DENIED
    assert acct.submissions == []
    # a person acknowledges; trading resumes
    state.set_state(account_scope("lv1"), TradingState.ACTIVE, actor="user:risk-officer",
                    reason="deposit confirmed")
    state.refresh(force=True)
    cid2 = _trade(s2, Side.BUY, "10", "1.9000")
    assert s2.ledger.state.orders[cid2].status is not S.DENIED
    assert [s.client_order_id for s in acct.submissions] == [cid2]
    s2.broker.close()


def test_adopt_policy_takes_over_an_orphan(engine: Engine, fake: Any) -> None:
    f, _acct = fake
    s1 = _open(engine, f, reconcile_orphans="adopt")
    s1.start()
    s1.broker.close()
    _exchange(f).create_order("XRP/USDT", "limit", "buy", 20, 1.9, {"newClientOrderId": "lv1-00000007"})
    s2 = _open(engine, f, reconcile_orphans="adopt")
    res = s2.start()
    assert [d.kind for d in res.differences] == ["orphan-adopted"]
    assert s2.ledger.state.orders["lv1-00000007"].status is S.ACCEPTED
    assert "lv1-00000007" in s2.working and s2.seq == 7
    s2.broker.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_same_strategy_code_runs_live(engine: Engine, fake: Any) -> None:
    """The session loop with the CcxtBroker: the strategy's market orders go through risk to the
    venue, fills come back through the broker's reports. (The bars only trigger the SMA cross;
    the prices filled are the venue's recorded book.)"""
    from lyra.core.market import Bar

    f, acct = fake
    closes = [1.95, 1.94, 1.93, 1.96, 1.99, 1.92, 1.90, 1.89]
    t0 = int(time.time() * 1000) // 60_000 * 60_000 - len(closes) * 60_000
    bars = [Bar(IID, "1m", t0 + i * 60_000, c, c, c, c, 1000.0) for i, c in enumerate(closes)]
    cfg = load_session_config({**CONFIG, "strategy": "sma_cross", "params": {"fast": 2, "slow": 3}})
    s = open_live_session(cfg, engine=engine, exchange=_exchange(f), feed=bars)
    result = s.run()
    assert result.events == len(closes) and not result.stopped
    orders = s.ledger.state.orders
    assert [(o.side, o.status, o.filled_quantity) for o in orders.values()] == [
        (Side.BUY, S.FILLED, D(10)), (Side.SELL, S.FILLED, D(10))]
    assert [x.client_order_id for x in acct.submissions] == list(orders)
    # hand-worked from the recorded book: buy 10 @ best ask 1.9532, sell 10 @ best bid 1.9531
    assert [o.avg_fill_price for o in orders.values()] == [D("1.9532"), D("1.9531")]
    assert s.holdings[IID] == 0
    assert _kinds(engine, "session.finished")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_algo_working_when_the_process_died_is_recorded_as_interrupted(engine: Engine, fake: Any) -> None:
    from lyra.execution.algos import AlgoSpec, ParentIntent

    f, acct = fake
    spec = {"kind": "twap", "duration_ms": 3_600_000, "slices": 3}
    s1 = _open(engine, f, params={"execution": spec})
    s1.start()
    now = int(time.time() * 1000)
    s1.clock.advance_to(now)
    s1.marks[IID] = 1.953
    s1.last_data_ts[IID] = now
    parent = ParentIntent(OrderIntent(IID, Side.BUY, D(300), OrderType.LIMIT, D("1.9500")), AlgoSpec.from_dict(spec))
    s1._submit([parent], now)
    s1.recorder.commit()
    assert [x.client_order_id for x in acct.submissions] == ["lv1-00000001"]  # the first slice
    s1.broker.close()
    del s1
    s2 = _open(engine, f, params={"execution": spec})
    res = s2.start()
    interrupted = [d for d in res.differences if d.kind == "algo-interrupted"]
    assert [(d.client_order_id, d.detail["quantity"]) for d in interrupted] == [("lv1-algo-000001", "300")]
    assert "lv1-00000001" in s2.working  # its resting child is still tracked and reconciled
    s2.broker.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_live_session_builds_its_bars_from_the_venues_trade_stream(engine: Engine) -> None:
    """The whole live path without injected data: ccxt.pro trade stream from the fake venue
    (recorded Binance BTC/USDT trades, 2021-01-08) -> 1 s bars -> the session loop."""
    import ccxt.pro as ccxtpro

    from lyra.testing.fake_exchange import binance_fake

    acct = FakeAccount({"USDT": "50000", "BTC": "0"})
    with binance_fake(FIX, rate=400.0, account=acct) as f:
        cfg = load_session_config({**CONFIG, "symbols": ["BTC/USDT"], "timeframe": "1s", "instruments": {},
                                   "params": {"fast": 50, "slow": 200}})
        s = open_live_session(cfg, engine=engine, exchange=_exchange(f), channels=frozenset({"trades"}),
                              md_exchange=lambda: f.point_ccxt(ccxtpro.binance(f.ccxt_config())),
                              idle_timeout_s=3.0)
        result = s.run(max_events=20)
    assert result.events == 20
    assert s.last_data_ts["binance:BTC/USDT"] > 1_610_000_000_000  # bars from the 2021 tape
    assert acct.submissions == []  # no signal in 20 bars with a 200-bar slow average
