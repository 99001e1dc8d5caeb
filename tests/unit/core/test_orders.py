from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lyra.core import (
    TRANSITIONS,
    Fill,
    IllegalTransition,
    Liquidity,
    Order,
    OrderEvent,
    OrderEventType,
    OrderIntent,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
    ValidationError,
    client_order_id,
)

E = OrderEventType
S = OrderStatus


def new_order(qty: str = "1") -> Order:
    return Order("s1-00000001", OrderIntent("binance:BTC/USDT", Side.BUY, Decimal(qty)), created_ts=0)


def fill(qty: str, fid: str = "f1", price: str = "100") -> Fill:
    return Fill(fid, "s1-00000001", "binance:BTC/USDT", Side.BUY, Decimal(qty), Decimal(price),
                Decimal("0.1"), "USDT", Liquidity.TAKER, 1)


def test_happy_path_with_partial_fills():
    o = new_order("1")
    o.apply(OrderEvent(E.SUBMIT, 1))
    o.apply(OrderEvent(E.ACCEPT, 2, venue_order_id="v1"))
    o.apply(OrderEvent(E.PARTIAL_FILL, 3, fill=fill("0.4", "a", "100")))
    assert o.status is S.PARTIALLY_FILLED
    o.apply(OrderEvent(E.FILL, 4, fill=fill("0.6", "b", "110")))
    assert o.status is S.FILLED
    assert o.filled_quantity == Decimal("1")
    assert o.avg_fill_price == Decimal("106")  # (0.4*100 + 0.6*110) / 1
    assert o.venue_order_id == "v1"
    assert [e.type for e in o.history] == [E.SUBMIT, E.ACCEPT, E.PARTIAL_FILL, E.FILL]


def test_illegal_transition_raises_and_changes_nothing():
    o = new_order()
    with pytest.raises(IllegalTransition, match="'accept' is not allowed in state 'initialized'"):
        o.apply(OrderEvent(E.ACCEPT, 1))
    assert o.status is S.INITIALIZED
    assert o.history == []


def test_fill_arriving_after_cancel_request_is_recorded():
    o = new_order("1")
    for ev in (E.SUBMIT, E.ACCEPT, E.REQUEST_CANCEL):
        o.apply(OrderEvent(ev, 1))
    o.apply(OrderEvent(E.PARTIAL_FILL, 2, fill=fill("0.5")))
    assert o.status is S.PENDING_CANCEL
    o.apply(OrderEvent(E.CANCEL_REJECT, 3))
    assert o.status is S.PARTIALLY_FILLED  # back to working, with what has filled


def test_overfill_is_refused_without_changing_state():
    o = new_order("1")
    o.apply(OrderEvent(E.SUBMIT, 1))
    with pytest.raises(ValidationError, match="overfills"):
        o.apply(OrderEvent(E.FILL, 2, fill=fill("2")))
    assert o.filled_quantity == 0
    assert o.status is S.SUBMITTED


def test_fill_type_must_match_quantity():
    o = new_order("1")
    o.apply(OrderEvent(E.SUBMIT, 1))
    with pytest.raises(ValidationError, match="FILL must complete"):
        o.apply(OrderEvent(E.FILL, 2, fill=fill("0.5")))


def test_terminal_states_accept_nothing_but_late_fills():
    for status in (S.DENIED, S.FILLED, S.REJECTED, S.EXPIRED):
        assert not [k for k in TRANSITIONS if k[0] is status], status
    assert {e for (s, e) in TRANSITIONS if s is S.CANCELLED} == {E.PARTIAL_FILL, E.FILL}


@given(st.lists(st.sampled_from(list(OrderEventType)), max_size=30))
def test_no_sequence_of_events_reaches_a_state_outside_the_table(events):
    o = new_order("10")
    reachable = {S.INITIALIZED} | set(TRANSITIONS.values())
    filled = 0
    for i, ev in enumerate(events):
        before = o.status
        f = None
        if ev in (E.FILL, E.PARTIAL_FILL):
            remaining = 10 - filled
            if remaining == 0:
                continue
            qty = remaining if ev is E.FILL else 1
            if ev is E.PARTIAL_FILL and remaining <= 1:
                continue
            f = fill(str(qty), f"f{i}")
        try:
            o.apply(OrderEvent(ev, i, fill=f))
            if f is not None:
                filled += int(f.quantity)
        except IllegalTransition:
            assert (before, ev) not in TRANSITIONS
            assert o.status is before
        assert o.status in reachable
        assert 0 <= o.filled_quantity <= o.quantity


def test_client_order_ids_are_deterministic_and_validated():
    assert client_order_id("sess-1", 7) == "sess-1-00000007"
    assert client_order_id("sess-1", 7) == client_order_id("sess-1", 7)
    with pytest.raises(ValidationError, match="session_id"):
        client_order_id("bad id!", 1)


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"quantity": Decimal("0")}, "quantity"),
        ({"quantity": Decimal("-1")}, "quantity"),
        ({"quantity": float("nan")}, "quantity"),
        ({"order_type": OrderType.LIMIT}, "limit_price"),
        ({"order_type": OrderType.MARKET, "limit_price": Decimal(1)}, "limit_price"),
        ({"order_type": OrderType.STOP_MARKET}, "stop_price"),
        ({"order_type": OrderType.MARKET, "post_only": True}, "post_only"),
        ({"order_type": OrderType.LIMIT, "limit_price": Decimal(1), "post_only": True,
          "time_in_force": TimeInForce.IOC}, "post_only"),
    ],
)
def test_bad_intents_name_the_field(kwargs, field):
    args = {"instrument_id": "binance:BTC/USDT", "side": Side.BUY, "quantity": Decimal(1)} | kwargs
    with pytest.raises(ValidationError) as e:
        OrderIntent(**args)
    assert e.value.field == field
