"""Matching without a book (bars, trades), latency, and the protocol's bad-input paths."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from lyra.core import (
    AggressorSide,
    Bar,
    InvalidOrder,
    Liquidity,
    Order,
    OrderIntent,
    OrderStatus,
    ReplayClock,
    Trade,
    ValidationError,
)
from lyra.execution import (
    Broker,
    DuplicateOrder,
    LatencyModel,
    MissingRiskDecision,
    PaperBroker,
    PaperConfig,
    UnknownOrder,
)
from lyra.execution.testkit import BrokerDriver, book

BTC = "binance:BTC/USDT"
MIN = 60_000


def driver(slippage_bps: object = 0, latency: LatencyModel | None = None, fraction: float = 0.1,
           balances: dict[str, object] | None = None) -> BrokerDriver:
    clock = ReplayClock(0)
    broker = PaperBroker.from_venue("binance", clock, balances or {"USDT": 100_000, "BTC": 10},
                                    slippage_bps=slippage_bps, latency=latency,
                                    config=PaperConfig(max_volume_fraction=fraction))
    return BrokerDriver(broker, clock)


def bar(i: int, o: float, h: float, low: float, c: float, v: float) -> Bar:
    return Bar(BTC, "1m", i * MIN, o, h, low, c, v)


def test_limit_buy_on_bars_fills_only_when_price_trades_through() -> None:
    d = driver()
    d.feed(bar(0, 101, 102, 100.5, 101, 50))
    o = d.submit(BTC, "buy", "1", order_type="limit", limit_price="100")
    d.feed(bar(1, 101, 102, 100, 101, 50))  # touches 100: not enough
    assert d.fills(o) == []
    d.feed(bar(2, 101, 102, 99.99, 100.5, 50))  # trades through 100
    assert d.fills(o) == [(D("1"), D("100"))]
    assert o.history[-1].fill.liquidity is Liquidity.MAKER


def test_limit_on_bars_marketable_on_arrival_fills_at_the_open_as_taker() -> None:
    d = driver()
    d.feed(bar(0, 101, 102, 100.5, 101, 50))
    o = d.submit(BTC, "buy", "1", order_type="limit", limit_price="103")
    d.feed(bar(1, 101.5, 102, 101, 101.2, 50))
    assert d.fills(o) == [(D("1"), D("101.5"))]
    assert o.history[-1].fill.liquidity is Liquidity.TAKER


def test_market_order_on_bars_fills_at_next_open_with_costmodel_slippage_and_volume_cap() -> None:
    d = driver(slippage_bps=10)
    d.feed(bar(0, 100, 101, 99, 100, 50))
    o = d.submit(BTC, "buy", "0.8", order_type="market")
    assert d.poll()[0].type.value == "accept"
    d.feed(bar(1, 100.03, 101, 99, 100, 5))  # cap 10% of 5 = 0.5
    # 100.03 * 1.001 = 100.13003 -> rounded up to the 0.01 tick: 100.14
    assert d.fills(o) == [(D("0.50000"), D("100.14"))]
    assert o.status is OrderStatus.PARTIALLY_FILLED
    d.feed(bar(2, 100.0, 101, 99, 100, 100))
    assert d.fills(o)[1:] == [(D("0.30000"), D("100.10"))]
    assert o.status is OrderStatus.FILLED


def test_zero_volume_bar_fills_nothing_and_sell_slippage_rounds_down() -> None:
    d = driver(slippage_bps=10)
    d.feed(bar(0, 100, 101, 99, 100, 50))
    o = d.submit(BTC, "sell", "0.1")
    d.feed(bar(1, 100, 100, 100, 100, 0))
    assert d.fills(o) == []
    d.feed(bar(2, 100.07, 101, 99, 100, 50))  # 100.07 * 0.999 = 99.96993 -> 99.96
    assert d.fills(o) == [(D("0.10000"), D("99.96"))]


def test_stop_market_on_bars_triggers_at_the_stop_and_fills_at_max_of_open_and_stop() -> None:
    d = driver()
    d.feed(bar(0, 100, 101, 99, 100, 50))
    o = d.submit(BTC, "buy", "1", order_type="stop_market", stop_price="102")
    d.feed(bar(1, 100, 101.99, 99, 101, 50))
    assert d.fills(o) == []
    d.feed(bar(2, 101, 103, 100, 102, 50))
    assert d.fills(o) == [(D("1"), D("102.0"))]


def test_limit_on_trades_needs_a_print_strictly_through() -> None:
    d = driver()
    d.feed(Trade(BTC, 1, 101.0, 1.0, AggressorSide.BUY))
    o = d.submit(BTC, "buy", "0.05", order_type="limit", limit_price="100")
    d.feed(Trade(BTC, 2, 100.0, 5.0, AggressorSide.SELL))
    assert d.fills(o) == []
    d.feed(Trade(BTC, 3, 99.99, 0.2, AggressorSide.SELL))  # cap: 10% of 0.2
    assert d.fills(o) == [(D("0.02000"), D("100"))]


def test_latency_order_cannot_match_before_it_arrives_and_reports_come_back_late() -> None:
    d = driver(latency=LatencyModel(to_venue_ms=100, to_us_ms=40))
    d.feed(book(BTC, 0, [(99.0, 1.0)], [(100.0, 1.0)]))
    o = d.submit(BTC, "buy", "0.5")
    d.feed(book(BTC, 50, [(99.0, 1.0)], [(95.0, 1.0)]))  # the order is still on the wire
    assert o.status is OrderStatus.SUBMITTED
    d.feed(book(BTC, 99, [(99.0, 1.0)], [(101.0, 1.0)]))  # the book it will meet
    d.at(100)  # arrives at 100
    assert o.status is OrderStatus.SUBMITTED  # the fill happened, the report has not come back
    assert d.broker.get_order(o.client_order_id).status is OrderStatus.FILLED
    assert d.at(139) == []
    got = d.at(140)
    assert [r.type.value for r in got] == ["accept", "fill"]
    assert got[1].ts == 100
    assert d.fills(o) == [(D("0.50000"), D("101.0"))]


def test_fill_that_beats_a_cancel_on_the_wire_is_legal() -> None:
    d = driver(latency=LatencyModel(to_venue_ms=10, to_us_ms=10))
    d.feed(book(BTC, 0, [(99.0, 1.0)], [(101.0, 1.0)]))
    o = d.submit(BTC, "buy", "0.5", order_type="limit", limit_price="100")
    d.at(20)
    assert o.status is OrderStatus.ACCEPTED
    d.feed(Trade(BTC, 25, 99.0, 2.0, AggressorSide.SELL))  # fills us at the venue at 25
    d.cancel(o)  # we have not heard yet: cancel in flight
    d.at(60)
    assert o.status is OrderStatus.FILLED  # PENDING_CANCEL + FILL -> FILLED, no cancel after it
    assert [e.type.value for e in o.history] == ["submit", "accept", "request_cancel", "fill"]


def test_cancel_releases_the_lock() -> None:
    d = driver()
    d.feed(book(BTC, 0, [(99.0, 1.0)], [(101.0, 1.0)]))
    o = d.submit(BTC, "buy", "0.5", order_type="limit", limit_price="100")
    d.poll()
    assert d.broker.balances()["USDT"].locked == D("100") * D("0.5") * D("1.001")
    d.cancel(o)
    d.poll()
    assert o.status is OrderStatus.CANCELLED
    assert d.broker.balances()["USDT"].locked == 0
    assert d.broker.balances()["USDT"].free == 100_000
    assert d.broker.open_orders() == []


def test_insufficient_funds_rejects_with_reason_and_changes_nothing() -> None:
    d = driver(balances={"USDT": 100})
    d.feed(book(BTC, 0, [(99.0, 1.0)], [(101.0, 1.0)]))
    o = d.submit(BTC, "buy", "1", order_type="limit", limit_price="100")  # needs 100.1 USDT
    d.poll()
    assert o.status is OrderStatus.REJECTED
    assert "insufficient funds" in o.history[-1].reason
    assert d.broker.balances()["USDT"].free == 100
    s = d.submit(BTC, "sell", "0.1")  # no BTC at all
    d.poll()
    assert s.status is OrderStatus.REJECTED
    assert "BTC" in s.history[-1].reason


@pytest.mark.parametrize("qty", ["0", "-1", "NaN", "inf"])
def test_zero_negative_nan_sizes_never_become_orders(qty: str) -> None:
    with pytest.raises(ValidationError) as err:
        OrderIntent(BTC, "buy", D(qty))  # type: ignore[arg-type]
    assert err.value.field == "quantity"


@pytest.mark.parametrize(("kw", "needle"), [
    ({"quantity": "0.001", "limit_price": "100.005"}, "tick grid 0.01"),
    ({"quantity": "0.000015", "limit_price": "100"}, "lot size 0.00001"),
    ({"quantity": "0.04", "limit_price": "100"}, "minimum notional 5"),
])
def test_off_grid_and_small_orders_are_rejected_and_the_broker_keeps_working(kw: dict[str, str],
                                                                            needle: str) -> None:
    d = driver()
    d.feed(book(BTC, 0, [(99.0, 1.0)], [(101.0, 1.0)]))
    before = d.broker.balances()
    bad = d.submit(BTC, "buy", kw["quantity"], order_type="limit", limit_price=kw["limit_price"])
    d.poll()
    assert bad.status is OrderStatus.REJECTED
    assert needle in bad.history[-1].reason
    assert d.broker.balances() == before
    good = d.submit(BTC, "buy", "0.1")
    d.poll()
    assert good.status is OrderStatus.FILLED


def test_unknown_symbol_is_rejected_by_report() -> None:
    d = driver()
    o = d.submit("binance:DOGE/USDT", "buy", "1")
    d.poll()
    assert o.status is OrderStatus.REJECTED
    assert "unknown instrument" in o.history[-1].reason


def test_protocol_errors_missing_decision_duplicate_unknown_cancel_wrong_state() -> None:
    d = driver()
    assert isinstance(d.broker, Broker)
    o = Order("x-00000001", OrderIntent(BTC, "buy", D("0.1")), 0)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="state 'submitted'"):
        d.broker.submit(o, "risk-1")  # not SUBMITTED yet
    sent = d.submit(BTC, "buy", "0.1", order_type="limit", limit_price="90")
    with pytest.raises(DuplicateOrder):
        d.broker.submit(sent, "risk-again")
    other = Order("x-00000002", OrderIntent(BTC, "buy", D("0.1")), 0)  # type: ignore[arg-type]
    from lyra.core import OrderEvent, OrderEventType
    other.apply(OrderEvent(OrderEventType.SUBMIT, 0))
    for bad in ("", "  ", None):
        with pytest.raises(MissingRiskDecision):
            d.broker.submit(other, bad)  # type: ignore[arg-type]
    assert d.broker.get_order("x-00000002") is None
    with pytest.raises(UnknownOrder):
        d.broker.cancel("never-sent")
    assert [r.client_order_id for r in d.broker.open_orders()] == [sent.client_order_id]
    assert d.broker.get_order(sent.client_order_id).decision_id == "risk-1"
    with pytest.raises(InvalidOrder):
        OrderIntent(BTC, "buy", D("1"), order_type="limit")  # type: ignore[arg-type]
