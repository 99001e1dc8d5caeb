"""Venue views of an order -> execution reports, proved legal on the real Order state machine.

Each sequence is applied with ``Order.apply`` to a real :class:`~lyra.core.orders.Order`
(which raises on any illegal transition, overfill or FILL/PARTIAL_FILL mix-up). The views of
one Binance order are the recorded ``fetchOpenOrders`` answer (LIMIT_MAKER buy 0.2 LTC @ 50)
with its status, executedQty and cummulativeQuoteQty advanced as the venue would, parsed by
real ccxt; the Coinbase and Bybit views are recordings as they are.
"""

from __future__ import annotations

import gzip
import itertools
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra.core.enums import OrderEventType, OrderStatus, OrderType, Side
from lyra.core.errors import ValidationError
from lyra.core.orders import Fill, Order, OrderEvent, OrderIntent
from lyra.execution.broker import ExecutionReport, OrderReport
from lyra.execution.venue_replay import recorded_exchange, recorded_markets, shipped_markets
from lyra.execution.venue_reports import (
    dedupe_orders,
    execution_reports,
    fill_from_trade,
    order_report,
    order_updates_in_order,
)

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "venues"
D = Decimal
S = OrderStatus
E = OrderEventType
CID = "s1-00000001"


def load(name: str) -> Any:
    return json.loads((FIX / name).read_text())


def static_body(venue: str, method: str, index: int = 0) -> Any:
    with gzip.open(FIX / f"ccxt_static_{venue}.json.gz", "rt") as f:
        return json.load(f)["methods"][method][index]["httpResponse"]


BINANCE = recorded_exchange("binance", markets=shipped_markets("binance"), number=str)


def view(status: str, executed: str = "0", quote: str = "0", t: int = 1699380855570) -> OrderReport:
    """The recorded Binance open order, advanced: what GET /api/v3/order would answer."""
    (raw,) = static_body("binance", "fetchOpenOrders")
    raw = {**raw, "clientOrderId": CID, "status": status, "executedQty": executed,
           "cummulativeQuoteQty": quote, "updateTime": str(t)}
    return order_report(BINANCE.parse_order(raw), "binance")


def session_order(report: OrderReport, order_type: OrderType = OrderType.LIMIT) -> Order:
    """The session's order for ``report``, submitted (as the session holds it)."""
    price = report.limit_price if order_type is OrderType.LIMIT else None
    intent = OrderIntent(report.instrument_id, report.side, report.quantity, order_type, limit_price=price)
    order = Order(report.client_order_id, intent, created_ts=report.ts - 1)
    order.apply(OrderEvent(E.SUBMIT, report.ts - 1))
    return order


def apply_all(order: Order, reports: list[ExecutionReport]) -> None:
    for r in reports:
        assert r.client_order_id == order.client_order_id
        order.apply(r.to_event())


def test_cumulative_views_become_synthetic_fills() -> None:
    new, part, done = view("NEW"), view("PARTIALLY_FILLED", "0.05", "2.5", 1), view("FILLED", "0.2", "9.85", 2)
    order = session_order(new)
    first = execution_reports(None, new)
    assert [r.type for r in first] == [E.ACCEPT]
    apply_all(order, first)
    step = execution_reports(new, part)
    # 0.05 filled for 2.5 USDT: one fill of 0.05 @ 50
    assert [(r.type, r.fill.fill_id, r.fill.quantity, r.fill.price) for r in step if r.fill] == [
        (E.PARTIAL_FILL, "binance:3811057334:cum:0.05", D("0.05"), D(50))]
    apply_all(order, step)
    last = execution_reports(part, done)
    # the other 0.15 for 9.85 - 2.5 = 7.35 USDT: 0.15 @ 49
    assert [(r.type, r.fill.fill_id, r.fill.quantity, r.fill.price) for r in last if r.fill] == [
        (E.FILL, "binance:3811057334:cum:0.2", D("0.15"), D(49))]
    apply_all(order, last)
    assert (order.status, order.filled_quantity, order.filled_notional, order.avg_fill_price) == (
        S.FILLED, D("0.2"), D("9.85"), D("49.25"))
    assert all(r.fill.liquidity.value == "taker" and r.fill.fee == 0 for r in step + last if r.fill)
    # replaying the same two views gives the same reports (same synthetic fill ids)
    assert execution_reports(part, done) == last


def test_known_fills_and_the_cumulative_rest() -> None:
    new, part = view("NEW"), view("PARTIALLY_FILLED", "0.1", "4.9", 1)
    known = Fill("binance:900", CID, new.instrument_id, Side.BUY, D("0.05"), D(50), D("0.00005"), "LTC",
                 "maker", 1)
    reports = execution_reports(new, part, [known])
    # 0.1 for 4.9: the known 0.05 @ 50 (2.5) and the rest 0.05 for 2.4, @ 48
    assert [(r.fill.fill_id, r.fill.quantity, r.fill.price) for r in reports if r.fill] == [
        ("binance:900", D("0.05"), D(50)), ("binance:3811057334:cum:0.1", D("0.05"), D(48))]
    order = session_order(new)
    apply_all(order, execution_reports(None, new) + reports)
    assert (order.status, order.filled_notional, order.fees) == (S.PARTIALLY_FILLED, D("4.9"), D("0.00005"))
    with pytest.raises(ValidationError, match="more than the 0.1"):
        execution_reports(new, part, [known, Fill("binance:901", CID, new.instrument_id, Side.BUY, D("0.06"),
                                                  D(50), D(0), "USDT", "maker", 1)])
    # fills the order view does not show yet: the view is older than the fills
    assert execution_reports(part, part) == []
    with pytest.raises(ValidationError, match="fetch it again"):
        execution_reports(part, part, [Fill("binance:903", CID, new.instrument_id, Side.BUY, D("0.01"), D(50),
                                            D(0), "USDT", "maker", 2)])
    with pytest.raises(ValidationError, match="does not belong"):
        execution_reports(new, part, [Fill("binance:902", "other", new.instrument_id, Side.BUY, D("0.05"),
                                           D(50), D(0), "USDT", "maker", 1)])


@pytest.mark.parametrize(("final", "events", "status"), [
    (lambda: view("CANCELED", "0.05", "2.5", 3), [E.ACCEPT, E.PARTIAL_FILL, E.CANCEL], S.CANCELLED),
    (lambda: view("EXPIRED", "0.05", "2.5", 3), [E.ACCEPT, E.PARTIAL_FILL, E.EXPIRE], S.EXPIRED),
    (lambda: view("EXPIRED_IN_MATCH", "0", "0", 3), [E.ACCEPT, E.CANCEL], S.CANCELLED),
    (lambda: view("REJECTED", "0", "0", 3), [E.REJECT], S.REJECTED),
    (lambda: view("FILLED", "0.2", "9.85", 3), [E.ACCEPT, E.FILL], S.FILLED),
])
def test_first_view_of_a_sent_order(final: Any, events: list[E], status: S) -> None:
    current = final()
    reports = execution_reports(None, current)
    assert [r.type for r in reports] == events
    order = session_order(current)
    apply_all(order, reports)
    assert (order.status, order.filled_quantity, order.venue_order_id) == (
        status, current.filled_quantity, "3811057334")
    if status is S.CANCELLED and current.filled_quantity == 0:
        assert reports[-1].reason == "self-trade prevention"


def test_reject_after_acceptance_is_a_cancel() -> None:
    new, rejected = view("NEW"), view("REJECTED", "0", "0", 5)
    reports = execution_reports(new, rejected)
    assert [(r.type, r.reason) for r in reports] == [(E.CANCEL, "rejected by the venue")]
    order = session_order(new)
    apply_all(order, execution_reports(None, new) + reports)
    assert order.status is S.CANCELLED


def test_fills_matched_before_a_cancel_arrive_after_it() -> None:
    new, cancelled, late = view("NEW"), view("CANCELED", "0.05", "2.5", 3), view("CANCELED", "0.1", "4.9", 4)
    order = session_order(new)
    apply_all(order, execution_reports(None, new))
    order.apply(OrderEvent(E.REQUEST_CANCEL, 2))  # the session asked to cancel
    apply_all(order, execution_reports(new, cancelled))
    late_reports = execution_reports(cancelled, late)
    assert [r.type for r in late_reports] == [E.PARTIAL_FILL]  # no second CANCEL
    apply_all(order, late_reports)
    assert (order.status, order.filled_quantity, order.filled_notional) == (S.CANCELLED, D("0.1"), D("4.9"))


def test_coinbase_recorded_order_and_its_recorded_fill() -> None:
    markets = shipped_markets("coinbase") + recorded_markets("coinbase", {
        "product_type=FUTURE": {"products": []}, "market/products": load("coinbase/http_products.json"),
        "transaction_summary": {}})
    orders = recorded_exchange("coinbase", body=load("coinbase/http_orders_list.json"), markets=markets,
                               number=str).fetch_orders()
    sold = order_report(orders[1], "coinbase")
    trades = recorded_exchange("coinbase", body=load("coinbase/http_fills.json"), markets=markets,
                               number=str).fetch_my_trades()
    fills = [fill_from_trade(t, "coinbase", client_ids={sold.venue_order_id: sold.client_order_id}) for t in trades]
    mine = [f for f in fills if f.client_order_id == sold.client_order_id]
    reports = execution_reports(None, sold, mine)
    assert [r.type for r in reports] == [E.ACCEPT, E.FILL]
    assert reports[1].fill is mine[0]  # the venue's own fill: nothing synthetic
    order = session_order(sold, OrderType.MARKET)
    apply_all(order, reports)
    # 0.0325 ETH @ 3076.92, commission 0.50 USD
    assert (order.status, order.avg_fill_price, order.fees) == (S.FILLED, D("3076.92"), D("0.50"))


def test_bybit_recorded_rejection_after_a_partial_fill() -> None:
    markets = recorded_markets("bybit", {"category=spot": load("bybit/http_get_instruments_spot.json"),
                                         "category=linear": load("bybit/http_get_instruments_linear.json")},
                               fetchMarkets={"types": ["spot", "linear"]})
    ex = recorded_exchange("bybit", body=load("bybit/http_get_order_partially_filled_rejected.json"),
                           markets=markets, number=str)
    current = order_report(ex.fetch_canceled_and_closed_orders()[0], "bybit")
    reports = execution_reports(None, current)
    assert [r.type for r in reports] == [E.ACCEPT, E.PARTIAL_FILL, E.CANCEL]
    assert reports[-1].reason == "rejected after 0.005 filled; INSUFFICIENT_MARGIN"
    order = session_order(current)
    apply_all(order, reports)
    assert (order.status, order.filled_quantity, order.avg_fill_price) == (S.CANCELLED, D("0.005"), D(30000))


# ---------------------------------------------------------------------------- out of order
def views() -> list[OrderReport]:
    return [view("NEW"), view("PARTIALLY_FILLED", "0.05", "2.5", 1),
            view("PARTIALLY_FILLED", "0.15", "7.35", 2), view("FILLED", "0.2", "9.85", 3)]


def test_stale_and_duplicate_updates_are_dropped_and_reported() -> None:
    new, p1, p2, done = views()
    out = order_updates_in_order([new, p1, done, p1, p2, done, new])
    assert out.accepted == [new, p1, done]
    assert [why for _, why in out.dropped] == [
        "stale: filled 0.05 < 0.2 already seen", "stale: filled 0.15 < 0.2 already seen",
        "duplicate: nothing changed", "stale: filled 0 < 0.2 already seen"]
    assert out.last is done
    # picking up from a view already applied
    assert order_updates_in_order([p1, p2], last=p2).accepted == []
    with pytest.raises(ValidationError, match="does not follow"):
        execution_reports(done, p2)


def test_every_arrival_order_gives_a_legal_sequence_and_the_same_end() -> None:
    """Brute force: all 24 arrival orders of four views; the kept ones, reported and applied
    to a real Order, always end FILLED at the venue's cumulative notional."""
    all_views = views()
    for arrival in itertools.permutations(all_views):
        kept = order_updates_in_order(arrival).accepted
        order = session_order(all_views[0])
        previous = None
        for current in kept:
            apply_all(order, execution_reports(previous, current))
            previous = current
        assert (order.status, order.filled_quantity, order.filled_notional) == (S.FILLED, D("0.2"), D("9.85"))
        assert kept[-1] is all_views[-1]


def test_conflicting_final_states_and_status_moves() -> None:
    cancelled, expired = view("CANCELED", "0.05", "2.5", 3), view("EXPIRED", "0.05", "2.5", 3)
    out = order_updates_in_order([cancelled, expired])
    assert out.dropped == [(expired, "conflicting final states: cancelled then expired")]
    assert order_updates_in_order([view("NEW"), view("PENDING_CANCEL", "0", "0", 1)]).dropped[0][1] == (
        "duplicate: nothing changed")  # a venue cancel in flight is still a working order


def test_bybit_order_listed_as_open_and_in_the_history_counts_once() -> None:
    markets = recorded_markets("bybit", {"category=spot": load("bybit/http_get_instruments_spot.json"),
                                         "category=linear": load("bybit/http_get_instruments_linear.json")},
                               fetchMarkets={"types": ["spot", "linear"]})
    listed = []
    for name, method in [("bybit/http_get_orders_realtime.json", "fetch_open_orders"),
                         ("bybit/http_get_orders_history_with_duplicate.json", "fetch_canceled_and_closed_orders")]:
        ex = recorded_exchange("bybit", body=load(name), markets=markets, number=str)
        listed += getattr(ex, method)()
    reports, refused = [], []
    for raw in listed:
        try:
            reports.append(order_report(raw, "bybit"))
        except ValidationError as exc:
            refused.append((raw["id"], str(exc)))
    # closed-order-1 is a "StopLoss" with triggerPrice "0": refused, not guessed
    assert [oid for oid, _ in refused] == ["closed-order-1"]
    assert [r.venue_order_id for r in reports] == ["open-order-1", "open-order-2", "open-order-1"]
    unique = dedupe_orders(reports)
    assert [(r.venue_order_id, r.client_order_id) for r in unique] == [
        ("open-order-1", "client-open-1"), ("open-order-2", "client-open-2")]


def test_dedupe_orders_keeps_the_most_advanced_view() -> None:
    new, p1, done = view("NEW"), view("PARTIALLY_FILLED", "0.05", "2.5", 1), view("FILLED", "0.2", "9.85", 3)
    assert dedupe_orders([p1, done, new]) == [done]
    assert dedupe_orders([done, p1]) == [done]
    with pytest.raises(ValidationError, match="not the order"):
        dedupe_orders([new, replace(p1, client_order_id="someone-else")])
    with pytest.raises(ValidationError, match="differ from"):
        dedupe_orders([new, replace(p1, quantity=D("0.3"))])


def test_reports_need_what_they_cannot_invent() -> None:
    new = view("NEW")
    with pytest.raises(ValidationError, match="no client order id"):
        execution_reports(None, replace(new, client_order_id=""))
    part = view("PARTIALLY_FILLED", "0.05", "2.5", 1)
    with pytest.raises(ValidationError, match="cannot price it"):
        execution_reports(new, replace(part, avg_price=None))
