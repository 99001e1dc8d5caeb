"""Every pre-trade check: rejected with its exact reason, passed right at its limit."""

from __future__ import annotations

import json
from decimal import Decimal as D
from itertools import count

import pytest

from lyra.audit import EventLog
from lyra.core import Instrument, ManualClock, Order, OrderIntent, OrderStatus, OrderType, ReplayClock
from lyra.risk import RiskConfig, RiskContext, RiskEngine, TradingState, TradingStateStore
from lyra.store import create_engine_for, upgrade

NOW = 1_700_000_000_000
BTC = Instrument("BTC/USDT", "binance", "BTC", "USDT", D("0.01"), D("0.001"), D("0.001"), D("5"))
ETH = Instrument("ETH/USDT", "binance", "ETH", "USDT", D("0.01"), D("0.01"), D("0.01"), D("5"))
SOL = Instrument("SOL/USDT", "kraken", "SOL", "USDT", D("0.01"), D("0.01"))
INSTRUMENTS = {i.id: i for i in (BTC, ETH, SOL)}
_seq = count(1)


@pytest.fixture
def store(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    yield TradingStateStore(EventLog(eng))
    eng.dispose()


def make_engine(store, **config):
    return RiskEngine(RiskConfig.from_dict(config), store, clock=ReplayClock(NOW), account_id="s1",
                      instruments=INSTRUMENTS)


def ctx(**kw):
    base = dict(
        account_id="s1", positions={}, marks={BTC.id: D(100), ETH.id: D(10), SOL.id: D(20)},
        equity=D(10_000), balances={"USDT": D(1_000_000), "BTC": D(1000), "ETH": D(1000)},
        open_orders=[], instruments=INSTRUMENTS, now=NOW,
        last_md_ts={BTC.id: NOW, ETH.id: NOW, SOL.id: NOW},
    )
    base.update(kw)
    return RiskContext(**base)


def order(qty, side="buy", iid=BTC.id, price=None, **kw):
    ot = OrderType.LIMIT if price is not None else OrderType.MARKET
    intent = OrderIntent(iid, side, D(str(qty)), ot, None if price is None else D(str(price)), **kw)
    return Order(f"s1-{next(_seq):08d}", intent, NOW)


def rejected(dec, check, reason):
    assert not dec.approved, dec
    assert dec.check == check
    assert dec.reason == reason
    assert dec.quantity == dec.requested_quantity  # the order's, untouched


def approved(dec, qty=None):
    assert dec.approved, dec.reason
    assert dec.reason == "" and dec.check == ""
    if qty is not None:
        assert dec.quantity == D(str(qty))


# --------------------------------------------------------------------------- order size / value
def test_max_order_qty(store):
    e = make_engine(store, defaults={"max_order_qty": 2})
    rejected(e.check(order(2.5), ctx()), "max_order_qty", "max_order_qty: 2.5 > 2 BTC")
    approved(e.check(order(2), ctx()), 2)


def test_max_order_notional_prices_market_at_mark_and_limit_at_limit(store):
    e = make_engine(store, defaults={"max_order_notional": 1000})
    rejected(e.check(order(15), ctx()), "max_order_notional", "max_order_notional: 1500.00 > 1000 USDT")
    approved(e.check(order(10), ctx()))  # 10 × 100 = 1000: at the limit
    # A limit order is valued at its limit price, not at the mark.
    rejected(e.check(order(10, price="100.01"), ctx()), "max_order_notional",
             "max_order_notional: 1000.10 > 1000 USDT")


def test_min_order_notional(store):
    e = make_engine(store, defaults={"min_order_notional": 50})
    rejected(e.check(order(0.4), ctx()), "min_order_notional", "min_order_notional: 40.00 < 50 USDT")
    approved(e.check(order(0.5), ctx()))


def test_per_instrument_and_per_account_limits_most_specific_wins(store):
    e = make_engine(store, defaults={"max_order_qty": 1},
                    instruments={BTC.id: {"max_order_qty": 3}},
                    accounts={"s1": {"max_order_qty": 2, "instruments": {BTC.id: {"max_order_qty": 5}}},
                              "s2": {"max_order_qty": 4}})
    approved(e.check(order(5), ctx()))  # account s1 + BTC override: 5
    rejected(e.check(order(5.01), ctx()), "max_order_qty", "max_order_qty: 5.01 > 5 BTC")
    rejected(e.check(order(2.5, iid=ETH.id), ctx()), "max_order_qty", "max_order_qty: 2.5 > 2 ETH")
    rejected(e.check(order(3.5), ctx(account_id="s2")), "max_order_qty", "max_order_qty: 3.5 > 3 BTC")
    rejected(e.check(order(4.5, iid=ETH.id), ctx(account_id="s2")), "max_order_qty",
             "max_order_qty: 4.5 > 4 ETH")
    rejected(e.check(order(1.5, iid=ETH.id), ctx(account_id="s3")), "max_order_qty",
             "max_order_qty: 1.5 > 1 ETH")


# --------------------------------------------------------------------------------- positions
def test_max_position_qty_counts_open_orders_and_lets_reductions_through(store):
    e = make_engine(store, defaults={"max_position_qty": 3})
    held = {BTC.id: D(2)}
    rejected(e.check(order(1.5), ctx(positions=held)), "max_position_qty", "max_position_qty: 3.5 > 3 BTC")
    approved(e.check(order(1), ctx(positions=held)))
    working = order(0.5)
    working.status = OrderStatus.ACCEPTED
    rejected(e.check(order(1), ctx(positions=held, open_orders=[working])), "max_position_qty",
             "max_position_qty: 3.5 > 3 BTC")
    # Over the limit already (the limit was lowered): selling must still be possible.
    approved(e.check(order(1, side="sell"), ctx(positions={BTC.id: D(5)})))
    # Short side: -2 - 1.5 = -3.5.
    rejected(e.check(order(1.5, side="sell"), ctx(positions={BTC.id: D(-2)})), "max_position_qty",
             "max_position_qty: 3.5 > 3 BTC")


def test_max_position_notional(store):
    e = make_engine(store, defaults={"max_position_notional": 300})
    held = {BTC.id: D(2)}
    rejected(e.check(order(1.5), ctx(positions=held)), "max_position_notional",
             "max_position_notional: 350.00 > 300 USDT")
    approved(e.check(order(1), ctx(positions=held)))


# ---------------------------------------------------------------------------- price collar
def test_price_collar(store):
    e = make_engine(store, defaults={"price_collar_pct": 2})
    rejected(e.check(order(1, price=103), ctx()), "price_collar",
             "price_collar: limit 103 is 3.00% from mark 100 > 2%")
    rejected(e.check(order(1, side="sell", price="97.99"), ctx()), "price_collar",
             "price_collar: limit 97.99 is 2.01% from mark 100 > 2%")
    approved(e.check(order(1, price=102), ctx()))
    approved(e.check(order(1, side="sell", price=98), ctx()))
    approved(e.check(order(1), ctx()))  # a market order has no limit to collar


# ----------------------------------------------------------------------- duplicates and rates
def test_duplicate_order_guard(store):
    e = make_engine(store, defaults={"duplicate_window_ms": 500})
    first = order(1, price=100)
    approved(e.check(first, ctx()))
    rejected(e.check(order(1, price=100), ctx(now=NOW + 499)), "duplicate_order",
             f"duplicate_order: buy 1 @ 100 as rd-{first.client_order_id} 499 ms ago < 500 ms")
    approved(e.check(order(1, price="100.01"), ctx(now=NOW + 499)))  # another price
    approved(e.check(order(1, side="sell", price=100), ctx(now=NOW + 499)))  # another side
    approved(e.check(order(1, price=100), ctx(now=NOW + 500)))  # the window has passed


def test_max_open_orders(store):
    e = make_engine(store, defaults={"max_open_orders": 2})
    rejected(e.check(order(1), ctx(open_orders=[order(1), order(2)])), "max_open_orders",
             "max_open_orders: 3 > 2")
    approved(e.check(order(1), ctx(open_orders=[order(2)])))


def test_order_rate_per_second(store):
    e = make_engine(store, defaults={"max_orders_per_second": 3})
    for k in range(3):
        approved(e.check(order(1), ctx(now=NOW + 10 * k)))
    rejected(e.check(order(1), ctx(now=NOW + 30)), "order_rate", "order_rate: 4 orders in 1 s > 3 per second")
    approved(e.check(order(1), ctx(now=NOW + 1000)))  # the first one is 1 s old: out of the window


def test_order_rate_per_minute(store):
    e = make_engine(store, defaults={"max_orders_per_minute": 4})
    for k in range(4):
        approved(e.check(order(1), ctx(now=NOW + 5_000 * k)))
    rejected(e.check(order(1), ctx(now=NOW + 59_999)), "order_rate",
             "order_rate: 5 orders in 60 s > 4 per minute")
    approved(e.check(order(1), ctx(now=NOW + 60_000)))


def test_rejections_do_not_count_towards_the_rate(store):
    e = make_engine(store, defaults={"max_orders_per_second": 1, "max_order_qty": 1})
    for _ in range(5):
        rejected(e.check(order(2), ctx()), "max_order_qty", "max_order_qty: 2 > 1 BTC")
    approved(e.check(order(1), ctx()))


# --------------------------------------------------------------------------------- exposure
def test_max_gross_exposure(store):
    e = make_engine(store, defaults={"max_gross_exposure": 1000})
    held = {ETH.id: D(-20)}  # 200 short
    approved(e.check(order(8), ctx(positions=held)))  # 800 + 200 = 1000
    rejected(e.check(order("8.01"), ctx(positions=held)), "max_gross_exposure",
             "max_gross_exposure: 1001.00 > 1000 USDT")


def test_max_net_exposure(store):
    e = make_engine(store, defaults={"max_net_exposure": 500})
    held = {ETH.id: D(20)}  # +200
    approved(e.check(order(3), ctx(positions=held)))  # 300 + 200 = 500
    rejected(e.check(order("3.01"), ctx(positions=held)), "max_net_exposure",
             "max_net_exposure: 501.00 > 500 USDT")
    # A short that nets the book down passes even though its gross grows.
    approved(e.check(order(5, side="sell"), ctx(positions=held)))


def test_max_leverage(store):
    e = make_engine(store, defaults={"max_leverage": 2})
    held = {ETH.id: D(20)}  # 200 gross, equity 1000
    approved(e.check(order(18), ctx(positions=held, equity=D(1000))))  # 2000 / 1000 = 2x
    rejected(e.check(order("18.5"), ctx(positions=held, equity=D(1000))), "max_leverage",
             "max_leverage: 2.0500x > 2x")
    rejected(e.check(order(1), ctx(equity=D(0))), "max_leverage", "max_leverage: equity 0.00 USDT is not positive")


def test_exposure_needs_a_mark_for_every_held_instrument(store):
    e = make_engine(store, defaults={"max_gross_exposure": 10_000})
    marks = {BTC.id: D(100)}
    rejected(e.check(order(1), ctx(positions={ETH.id: D(1)}, marks=marks)), "no_mark",
             "no_mark: no mark price for held binance:ETH/USDT")


# ---------------------------------------------------------------------------------- balance
def test_balance_spot_buy_includes_the_taker_fee(store):
    e = make_engine(store)
    # A limit buy reserves its limit × quantity plus the 0.1% taker fee.
    rejected(e.check(order(10, price=100), ctx(balances={"USDT": D(1000)})), "balance",
             "balance: needs 1001.00 USDT, free 1000.00 USDT")
    approved(e.check(order(10, price=100), ctx(balances={"USDT": D(1001)})))


def test_balance_spot_market_buy_reserves_the_brokers_buffer(store):
    """A market buy needs what the paper broker locks: mark × 1.05 × quantity × 1.001."""
    e = make_engine(store)
    rejected(e.check(order(10), ctx(balances={"USDT": D("1051.04")})), "balance",
             "balance: needs 1051.05 USDT, free 1051.04 USDT")
    approved(e.check(order(10), ctx(balances={"USDT": D("1051.05")})))
    # A stop-market buy is valued at its stop, not at the mark.
    stop = dict(order_type=OrderType.STOP_MARKET, stop_price=D(200))
    o = Order(f"s1-{next(_seq):08d}", OrderIntent(BTC.id, "buy", D(10), **stop), NOW)
    rejected(e.check(o, ctx(balances={"USDT": D("2000")})), "balance",
             "balance: needs 2102.10 USDT, free 2000.00 USDT")


def test_balance_spot_sell_needs_the_base_asset(store):
    e = make_engine(store)
    rejected(e.check(order(1.5, side="sell"), ctx(balances={"BTC": D(1)})), "balance",
             "balance: needs 1.5 BTC, free 1 BTC")
    approved(e.check(order(1, side="sell"), ctx(balances={"BTC": D(1)})))


def test_balance_margin_mode(store):
    e = make_engine(store, defaults={"balance_check": "margin", "margin_rate": "0.1"})
    rejected(e.check(order(100), ctx(balances={"USDT": D(999)})), "balance",
             "balance: margin needs 1000.00 USDT, free 999.00 USDT")
    approved(e.check(order(100), ctx(balances={"USDT": D(1000)})))
    # Closing a short needs no margin.
    approved(e.check(order(100), ctx(positions={BTC.id: D(-100)}, balances={})))


def test_balance_check_off(store):
    e = make_engine(store, defaults={"balance_check": "off"})
    approved(e.check(order(10), ctx(balances={})))


# ------------------------------------------------------------------------ allowed / unknown
def test_allowed_instruments_and_venues(store):
    e = make_engine(store, defaults={"allowed_instruments": [BTC.id, SOL.id], "allowed_venues": ["binance"]})
    rejected(e.check(order(1, iid=ETH.id), ctx()), "allowed_instruments",
             "allowed_instruments: binance:ETH/USDT is not an allowed instrument")
    rejected(e.check(order(1, iid=SOL.id), ctx()), "allowed_venues", "allowed_venues: kraken is not an allowed venue")
    approved(e.check(order(1), ctx()))


def test_unknown_instrument_no_mark_and_venue_rules(store):
    e = make_engine(store)
    rejected(e.check(order(1, iid="binance:DOGE/USDT"), ctx()), "unknown_instrument",
             "unknown_instrument: binance:DOGE/USDT is not in the context")
    rejected(e.check(order(1), ctx(marks={})), "no_mark", "no_mark: no mark price for binance:BTC/USDT")
    rejected(e.check(order("0.0015"), ctx()), "instrument_rules",
             "instrument_rules: quantity=Decimal('0.0015'): not a multiple of the lot size 0.001")


# -------------------------------------------------------------------------------- resizing
def test_resize_down_when_the_config_allows_it(store):
    e = make_engine(store, defaults={"max_order_notional": 1000, "max_position_qty": 12},
                    resize=["max_order_notional", "max_position_qty"])
    d = e.check(order(15, price="99.99"), ctx())
    assert d.approved and d.resized
    assert d.check == "max_order_notional"
    # 1000 / 99.99 = 10.001000..., rounded down to the 0.001 lot.
    assert d.quantity == D("10.001") and d.requested_quantity == D(15)
    assert d.quantity * D("99.99") <= 1000
    assert d.reason == "resized to 10.001 by max_order_notional: 1499.85 > 1000 USDT"
    # Two resizes in a row: the notional cut first (to 10), then the position room (12 - 5 = 7).
    d = e.check(order(15), ctx(positions={BTC.id: D(5)}))
    assert d.approved and d.quantity == D(7) and d.check == "max_order_notional"
    # No room left at all: rejected, not resized to zero.
    rejected(e.check(order(1), ctx(positions={BTC.id: D(12)})), "max_position_qty",
             "max_position_qty: 13 > 12 BTC")


def test_no_resize_unless_configured(store):
    e = make_engine(store, defaults={"max_order_notional": 1000})
    rejected(e.check(order(15), ctx()), "max_order_notional", "max_order_notional: 1500.00 > 1000 USDT")


# --------------------------------------------------------------------- the decision itself
def test_decision_id_is_deterministic_and_payload_is_json(store):
    e = make_engine(store, defaults={"max_order_qty": 2})
    o = order(3)
    d1, d2 = e.check(o, ctx()), e.check(o, ctx())
    assert d1.decision_id == d2.decision_id == "rd-" + o.client_order_id
    p = json.loads(json.dumps(d1.to_payload()))
    assert p == {"decision_id": "rd-" + o.client_order_id, "client_order_id": o.client_order_id,
                 "account_id": "s1", "instrument_id": BTC.id, "approved": False,
                 "check": "max_order_qty", "reason": "max_order_qty: 3 > 2 BTC", "quantity": "3",
                 "requested_quantity": "3", "state": "active", "ts": NOW}


# ------------------------------------------------------------------------- never fail open
def test_a_check_that_raises_rejects_the_order(store):
    def boom(o, c):
        raise RuntimeError("kaboom")

    e = RiskEngine(RiskConfig(), store, clock=ReplayClock(NOW), account_id="s1", extra_checks=[("boom", boom)])
    rejected(e.check(order(1), ctx()), "boom", "boom: check failed (RuntimeError: kaboom); order rejected")


def test_custom_check_can_reject_and_pass(store):
    e = RiskEngine(RiskConfig(), store, clock=ReplayClock(NOW), account_id="s1",
                   extra_checks=[("no_fridays", lambda o, c: "closed" if o.quantity > 1 else None)])
    rejected(e.check(order(2), ctx()), "no_fridays", "no_fridays: closed")
    approved(e.check(order(1), ctx()))


def test_broken_context_rejects_instead_of_approving(store):
    e = make_engine(store, defaults={"max_gross_exposure": 10_000})
    d = e.check(order(1), ctx(positions={ETH.id: "lots"}))  # not a number
    assert not d.approved and d.check == "exposure"
    assert d.reason.startswith("exposure: check failed (TypeError") and d.reason.endswith("order rejected")
    d = e.check(order(1), None)  # no context at all
    assert not d.approved and d.reason.startswith("trading_state: check failed (AttributeError")


def test_a_database_failure_rejects(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    wall = ManualClock(NOW)
    store = TradingStateStore(EventLog(eng), clock=wall)
    e = RiskEngine(RiskConfig(), store, clock=ReplayClock(NOW), account_id="s1")
    approved(e.check(order(1), ctx()))
    with eng.begin() as c:
        c.exec_driver_sql("DROP TABLE trading_state")
    wall.advance(0.250)  # 250 ms later the cached state must be re-read before approving
    d = e.check(order(1), ctx())
    assert not d.approved and d.check == "trading_state"
    assert d.reason.startswith("trading_state: check failed (OperationalError")
    eng.dispose()


# ---------------------------------------------------------------------------- trading states
def test_reducing_lets_only_reducing_orders_through(store):
    e = make_engine(store)
    e.set_state(TradingState.REDUCING, actor="ops", reason="end of quarter")
    long2 = {BTC.id: D(2)}
    rejected(e.check(order(1), ctx(positions=long2)), "trading_state",
             "trading_state: reducing (account:s1) by ops: end of quarter; buy 1 does not reduce position 2")
    approved(e.check(order(1.5, side="sell"), ctx(positions=long2)))
    approved(e.check(order(2, side="sell"), ctx(positions=long2)))  # to flat: still a reduction
    rejected(e.check(order(2.5, side="sell"), ctx(positions=long2)), "trading_state",
             "trading_state: reducing (account:s1) by ops: end of quarter; sell 2.5 does not reduce position 2")
    rejected(e.check(order(1, side="sell"), ctx()), "trading_state",
             "trading_state: reducing (account:s1) by ops: end of quarter; sell 1 does not reduce position 0")
    # Open reducing orders count: 1.5 working + 1 more would flip the position.
    working = order(1.5, side="sell")
    rejected(e.check(order(1, side="sell"), ctx(positions=long2, open_orders=[working])), "trading_state",
             "trading_state: reducing (account:s1) by ops: end of quarter; sell 1 does not reduce position 2")
    # Other accounts are not affected; a global REDUCING is.
    approved(e.check(order(1), ctx(account_id="s2")))
    e.set_state("active", actor="ops")
    approved(e.check(order(1), ctx()))


def test_halted_blocks_everything_but_kill_flattening(store):
    e = make_engine(store)
    e.set_state(TradingState.HALTED, actor="ops", reason="drill", everything=True)
    long2 = {BTC.id: D(2)}
    rejected(e.check(order(1, side="sell"), ctx(positions=long2)), "trading_state",
             "trading_state: halted (global) by ops: drill")
    rejected(e.check(order(1), ctx(account_id="s9")), "trading_state", "trading_state: halted (global) by ops: drill")
    d = e.check(order(2, side="sell", reduce_only=True, tag="kill-flatten:7"), ctx(positions=long2))
    assert d.approved and d.check == "kill_flatten" and d.quantity == 2
    rejected(e.check(order(3, side="sell", reduce_only=True, tag="kill-flatten:7"), ctx(positions=long2)),
             "kill_flatten", "kill_flatten: sell 3 does not only reduce position 2 (and must be reduce_only)")
    with pytest.raises(Exception, match="halted"):
        e.set_state("active", actor="ops", everything=True)  # only a re-arm with a role lifts it

    e2 = RiskEngine(RiskConfig(halted_allows_kill_flatten=False), store, clock=ReplayClock(NOW), account_id="s1")
    rejected(e2.check(order(2, side="sell", reduce_only=True, tag="kill-flatten:7"), ctx(positions=long2)),
             "trading_state", "trading_state: halted; kill-switch flattening is disabled by config")


def test_state_changes_are_in_the_event_log(store):
    e = make_engine(store)
    e.set_state("reducing", actor="ops", reason="why not")
    recs = [r for r in store.log.read() if r.kind == "risk.state_change"]
    assert len(recs) == 1 and recs[0].actor == "ops"
    assert json.loads(recs[0].payload) == {"scope": "account:s1", "from": "active", "to": "reducing",
                                           "reason": "why not", "actor": "ops", "version": 1}
