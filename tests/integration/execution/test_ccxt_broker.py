"""CcxtBroker against the local fake Binance (real ``ccxt.binance`` / ``ccxt.pro.binance``, a real
aiohttp server, the recorded Bybit XRPUSDT book): the happy path, then the faults real users lose
orders to — a timeout after the venue accepted, 429 and 5xx storms, a venue that stays dark, a
user stream dropped during a fill. Every report sequence is applied to a real Order (the
session's state machine), and the venue is checked for duplicate client order ids."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import ccxt
import ccxt.pro as ccxtpro
import pytest

from lyra.core.enums import OrderEventType as E
from lyra.core.enums import OrderStatus as S
from lyra.core.enums import OrderType, Side, TimeInForce
from lyra.core.instrument import Instrument
from lyra.core.orders import Order, OrderEvent, OrderIntent
from lyra.execution.broker import Broker, DuplicateOrder, MissingRiskDecision, UnknownOrder
from lyra.execution.ccxt_broker import CcxtBroker, RetryPolicy
from lyra.testing.fake_account import FakeAccount, load_book_csv
from lyra.testing.fake_exchange import FakeExchange, exchange_info_from_recorded

FIX = Path(__file__).parents[2] / "fixtures"
INFO = exchange_info_from_recorded(json.loads((FIX / "exchange" / "binance_exchange_info.json").read_text()),
                                   json.loads((FIX / "exchange" / "ccxt_binance_markets.json").read_text()))
BIDS, ASKS = load_book_csv(FIX / "execution" / "bybit_XRPUSDT_snapshot_top20.csv.gz")
XRP = Instrument("XRP/USDT", "binance", "XRP", "USDT", Decimal("0.0001"), Decimal(1), Decimal(1), Decimal(5))
IID = XRP.id
D = Decimal
FAST = RetryPolicy(attempts=4, base_delay_s=0.02, max_delay_s=0.1, settle_s=0.0)


class Venue:
    def __init__(self, fake: FakeExchange, acct: FakeAccount) -> None:
        self.fake, self.acct = fake, acct
        self.orders: dict[str, Order] = {}
        self.seq = 0

    def exchange(self, timeout_ms: int = 1500) -> ccxt.binance:
        ex = self.fake.point_ccxt(ccxt.binance(self.fake.ccxt_config(apiKey="k", secret="s", timeout=timeout_ms)))
        ex.load_markets()
        return ex

    def broker(self, *, ws: bool = False, timeout_ms: int = 1500, **kw: Any) -> CcxtBroker:
        wsx = self.fake.point_ccxt(ccxtpro.binance(self.fake.ccxt_config(apiKey="k", secret="s"))) if ws else None
        b = CcxtBroker(self.exchange(timeout_ms), [XRP], ws_exchange=wsx, retry=kw.pop("retry", FAST), **kw)
        if ws:
            b.start_streams()
        return b

    def submit(self, broker: CcxtBroker, side: Side, qty: str, price: str | None = None,
               tif: TimeInForce = TimeInForce.GTC) -> Order:
        self.seq += 1
        cid = f"t1-{self.seq:08d}"
        otype = OrderType.MARKET if price is None else OrderType.LIMIT
        intent = OrderIntent(IID, side, D(qty), otype, None if price is None else D(price), time_in_force=tif)
        o = Order(cid, intent, created_ts=1)
        o.apply(OrderEvent(E.SUBMIT, 1))
        self.orders[cid] = o
        broker.submit(o, f"rd-{cid}")
        return o

    def pump(self, broker: CcxtBroker, until: Any = None, timeout: float = 5.0) -> list[Any]:
        """Apply reports to the session's orders (raises on an illegal sequence) until ``until()``."""
        got = []
        deadline = time.monotonic() + timeout
        while True:
            for r in broker.poll_reports():
                self.orders[r.client_order_id].apply(r.to_event())
                got.append(r)
            if until is None or until() or time.monotonic() > deadline:
                return got
            time.sleep(0.02)


@pytest.fixture
def venue() -> Iterator[Venue]:
    acct = FakeAccount({"USDT": "50000", "XRP": "1000"}, books={"XRPUSDT": (BIDS, ASKS)})
    with FakeExchange(INFO, account=acct) as fake:
        yield Venue(fake, acct)


def _venue_position(acct: FakeAccount) -> Decimal:
    return sum((D(str(t["qty"])) * (1 if t["isBuyer"] else -1) for t in acct.trades), D(0))


def _our_position(orders: dict[str, Order]) -> Decimal:
    return sum((o.filled_quantity * o.side.sign for o in orders.values()), D(0))


def test_the_broker_satisfies_the_protocol_and_refuses_without_a_risk_decision(venue: Venue) -> None:
    b = venue.broker()
    assert isinstance(b, Broker)
    o = Order("t1-x", OrderIntent(IID, Side.BUY, D(10)), 1)
    o.apply(OrderEvent(E.SUBMIT, 1))
    with pytest.raises(MissingRiskDecision):
        b.submit(o, "")
    b.submit(o, "rd-1")
    with pytest.raises(DuplicateOrder):
        b.submit(o, "rd-1")
    with pytest.raises(UnknownOrder):
        b.cancel("never")
    assert [a.client_order_id for a in venue.acct.submissions] == ["t1-x"]


def test_limit_rests_fills_on_a_cross_and_cancels_the_rest(venue: Venue) -> None:
    b = venue.broker()
    o = venue.submit(b, Side.BUY, "300", "1.9500")
    reports = venue.pump(b)
    assert [r.type for r in reports] == [E.ACCEPT] and o.status is S.ACCEPTED and o.venue_order_id
    venue.acct.cross("XRPUSDT", "1.9499", "120")  # the market trades through: 120 fill (maker)
    b.sync()
    venue.pump(b)
    assert (o.status, o.filled_quantity, o.avg_fill_price) == (S.PARTIALLY_FILLED, D(120), D("1.95"))
    assert o.fees == D("0.234")  # 0.1% of 120 x 1.95, charged in the quote by this account
    assert [ev.fill.fee_currency for ev in o.history if ev.fill] == ["USDT"]
    o.apply(OrderEvent(E.REQUEST_CANCEL, 2))
    b.cancel(o.client_order_id)
    venue.pump(b)
    assert (o.status, o.filled_quantity) == (S.CANCELLED, D(120))
    assert _our_position(venue.orders) == _venue_position(venue.acct) == D(120)
    assert b.open_orders() == []
    bal = b.balances()
    assert (bal["XRP"].total, bal["USDT"].total) == (D(1120), D(50000) - D(234) - D("0.234"))


def test_market_order_fills_from_the_create_answer(venue: Venue) -> None:
    b = venue.broker()
    o = venue.submit(b, Side.BUY, "12000")
    venue.pump(b)
    # hand-worked against the recorded asks: 10480 @ 1.9532 + 1520 @ 1.9533
    assert (o.status, o.filled_quantity) == (S.FILLED, D(12000))
    assert o.filled_notional == D("23438.552")
    assert [f.fill_id for f in b.fills_since(0)] == [ev.fill.fill_id for ev in o.history if ev.fill]


def test_timeout_after_the_venue_accepted_is_adopted_not_resent(venue: Venue) -> None:
    venue.acct.faults.accept_then_timeout(1, 2.5)
    b = venue.broker(timeout_ms=700)
    o = venue.submit(b, Side.BUY, "500")  # a market order: it filled while we timed out
    venue.pump(b)
    assert (o.status, o.filled_quantity) == (S.FILLED, D(500))
    subs = [s for s in venue.acct.submissions if s.client_order_id == o.client_order_id]
    assert len(subs) == 1 and b.sends[o.client_order_id] == 1
    assert venue.acct.duplicate_client_order_ids() == []
    assert _our_position(venue.orders) == _venue_position(venue.acct)


def test_a_429_storm_is_waited_out_and_the_order_sent_once(venue: Venue) -> None:
    venue.acct.faults.fail_private_next(3, 429)
    b = venue.broker()
    o = venue.submit(b, Side.BUY, "100", "1.9000")
    venue.pump(b)
    assert o.status is S.ACCEPTED
    assert [s.client_order_id for s in venue.acct.submissions] == [o.client_order_id]
    assert b.sends[o.client_order_id] == 4  # three refused at the door, the fourth landed


def test_a_429_storm_longer_than_the_retries_rejects_cleanly(venue: Venue) -> None:
    venue.acct.faults.fail_private_next(20, 429)
    b = venue.broker()
    o = venue.submit(b, Side.BUY, "100", "1.9000")
    venue.pump(b)
    assert o.status is S.REJECTED and "gave up after 4 attempts" in o.history[-1].reason
    assert venue.acct.submissions == []


def test_5xx_storm_asks_before_each_resend(venue: Venue) -> None:
    venue.acct.faults.fail_private_next(3, 503)  # create, lookup, lookup fail; then absent -> resend
    b = venue.broker()
    o = venue.submit(b, Side.SELL, "50", "2.1000")
    venue.pump(b)
    assert o.status is S.ACCEPTED
    assert [s.client_order_id for s in venue.acct.submissions] == [o.client_order_id]
    assert venue.acct.duplicate_client_order_ids() == []


def test_a_venue_that_stays_dark_leaves_the_order_unknown_and_blocks_the_instrument(venue: Venue) -> None:
    venue.acct.faults.accept_then_timeout(1, 2.0)
    b = venue.broker(timeout_ms=500, retry=RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02,
                                                       settle_s=0.0))
    venue.fake.faults.down()
    try:
        # the venue is dark from the start: nothing lands
        o = venue.submit(b, Side.BUY, "100", "1.9000")
        venue.pump(b)
    finally:
        venue.fake.faults.up()
    assert o.status is S.UNKNOWN and b.blocked_instruments == {IID: o.client_order_id}
    blocked = venue.submit(b, Side.BUY, "10", "1.9000")
    venue.pump(b)
    assert blocked.status is S.REJECTED and "blocked" in blocked.history[-1].reason
    # the venue is back: the next poll asks by client id, learns the order never arrived
    venue.pump(b, until=lambda: o.status is not S.UNKNOWN)
    assert o.status is S.REJECTED and "never received" in o.history[-1].reason
    assert b.blocked_instruments == {}
    assert venue.acct.submissions == []


def test_unknown_then_found_at_the_venue_is_adopted(venue: Venue) -> None:
    b = venue.broker(timeout_ms=500, retry=RetryPolicy(attempts=2, base_delay_s=0.01, max_delay_s=0.02,
                                                       settle_s=0.0))
    venue.acct.faults.accept_then_timeout(1, 1.5)  # the order lands, its answer is late...

    def lookups_fail() -> None:  # ...and every lookup fails for a while once it has landed
        while not venue.acct.submissions:
            time.sleep(0.005)
        venue.acct.faults.fail_private_next(4, 503)

    t = threading.Thread(target=lookups_fail)
    t.start()
    o = venue.submit(b, Side.BUY, "100", "1.9000")
    t.join()
    venue.pump(b)
    assert o.status is S.UNKNOWN and b.blocked_instruments == {IID: o.client_order_id}
    venue.pump(b, until=lambda: o.status is not S.UNKNOWN)
    assert o.status is S.ACCEPTED and b.blocked_instruments == {}
    assert len(venue.acct.submissions) == 1 and venue.acct.duplicate_client_order_ids() == []


def test_the_receive_window_is_the_settle_time(venue: Venue) -> None:
    b = venue.broker(retry=RetryPolicy(settle_s=3.0))
    assert b.exchange.options["recvWindow"] == 3000


def test_user_stream_dropped_during_a_fill_is_recovered_through_rest(venue: Venue) -> None:
    b = venue.broker(ws=True, rest_sync_interval_s=0.2)
    try:
        o = venue.submit(b, Side.BUY, "200", "1.9500")
        venue.pump(b, until=lambda: b.ws_healthy and o.status is S.ACCEPTED)
        assert b.ws_healthy
        venue.acct.faults.drop_user_ws_during_fill()
        venue.acct.cross("XRPUSDT", "1.9499")
        venue.pump(b, until=lambda: o.status is S.FILLED)
        assert (o.status, o.filled_quantity) == (S.FILLED, D(200))
        fills = [ev.fill.fill_id for ev in o.history if ev.fill]
        assert len(fills) == len(set(fills)) == 1
        # a second fill after the reconnect arrives through the stream again (REST polling off)
        b.rest_sync_interval_s = 3600
        venue.pump(b, until=lambda: b.ws_healthy)
        o2 = venue.submit(b, Side.BUY, "100", "1.9400")
        venue.pump(b)  # any catch-up sync runs now, before the market moves
        before = b.stream_updates
        venue.acct.cross("XRPUSDT", "1.9399")
        venue.pump(b, until=lambda: o2.status is S.FILLED)
        assert b.stream_updates > before
        assert o2.status is S.FILLED
        assert _our_position(venue.orders) == _venue_position(venue.acct) == D(300)
    finally:
        b.close()
