"""Risk sizes and refuses orders by the shared cost rule (lyra.core.costs): the buffer a
market buy reserves, the fee, the lot, and the venue's minimums — hand-worked examples."""

from __future__ import annotations

from decimal import ROUND_FLOOR, ROUND_HALF_UP, localcontext
from decimal import Decimal as D
from itertools import count

import pytest

from lyra.audit import EventLog
from lyra.core import Instrument, Order, OrderIntent, ReplayClock
from lyra.core.costs import CostRule
from lyra.risk import RiskConfig, RiskContext, RiskEngine, TradingStateStore
from lyra.store import create_engine_for, upgrade

NOW = 1_700_000_000_000
# 0.001 BTC lot and minimum size, 5 USDT minimum notional, 0.1% fees.
BTC = Instrument("BTC/USDT", "binance", "BTC", "USDT", D("0.01"), D("0.001"), D("0.001"), D("5"))
INSTRUMENTS = {BTC.id: BTC}
_seq = count(1)


@pytest.fixture
def engine(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    yield lambda **cfg: RiskEngine(RiskConfig.from_dict(cfg), TradingStateStore(EventLog(eng)),
                                   clock=ReplayClock(NOW), account_id="s1", instruments=INSTRUMENTS)
    eng.dispose()


def ctx(balances, **kw):
    return RiskContext(account_id="s1", positions=kw.pop("positions", {}), marks={BTC.id: D(100)},
                       equity=D(10_000), balances=balances, open_orders=[], instruments=INSTRUMENTS,
                       now=NOW, last_md_ts={BTC.id: NOW}, **kw)


def order(qty, side="buy", **kw):
    return Order(f"s1-{next(_seq):08d}", OrderIntent(BTC.id, side, D(str(qty)), **kw), NOW)


def test_an_all_in_market_buy_is_resized_to_what_the_broker_reserves(engine):
    e = engine(resize=["balance"])
    d = e.check(order(1000), ctx({"USDT": D(1000)}))
    # 1000 / (100 × 1.05 × 1.001) = 9.5142...: 9.514 BTC reserves 999.96897 USDT.
    assert d.approved and d.resized and d.check == "balance"
    assert d.quantity == D("9.514")
    assert d.reason == "resized to 9.514 by balance: needs 105105.00 USDT, free 1000.00 USDT"


def test_a_limit_buy_is_resized_at_its_limit_without_the_buffer(engine):
    e = engine(resize=["balance"])
    d = e.check(order(1000, order_type="limit", limit_price=D(100)), ctx({"USDT": D(1000)}))
    assert d.approved and d.quantity == D("9.99")  # 9.99 × 100 × 1.001 = 999.999


def test_the_brokers_rule_in_the_context_wins_over_the_instruments(engine):
    e = engine(resize=["balance"])
    rule = CostRule(lot=D("0.001"), taker_fee=D("0.002"), market_buffer=D("0.1"))
    d = e.check(order(1000), ctx({"USDT": D(1000)}, costs={BTC.id: rule}))
    # 1000 / (110 × 1.002) = 9.0726...
    assert d.approved and d.quantity == D("9.072")


def test_what_fits_below_the_minimum_notional_is_refused_not_resized(engine):
    e = engine(resize=["balance"])
    d = e.check(order(1), ctx({"USDT": D("4.5")}))
    # 4.5 / 105.105 = 0.0428...: 0.042 BTC fits, but 0.042 × 100 = 4.2 USDT < 5. The need,
    # 105.105, is shown rounded up (never understated) to 105.11.
    assert not d.approved and d.check == "balance"
    assert d.reason == ("balance: needs 105.11 USDT, free 4.50 USDT; the 0.042 BTC that fits is refused "
                        "by the venue: notional 4.2 is below the minimum notional 5")
    assert d.quantity == D(1)


def test_nothing_fits_at_all(engine):
    e = engine(resize=["balance"])
    d = e.check(order(1), ctx({"USDT": D("0.1")}))
    assert not d.approved and d.reason == "balance: needs 105.11 USDT, free 0.10 USDT"


def test_a_sell_is_resized_to_the_base_held_and_refused_below_the_minimum(engine):
    e = engine(resize=["balance"])
    d = e.check(order(10, side="sell", reduce_only=True), ctx({"BTC": D("2.5")}, positions={BTC.id: D("2.5")}))
    assert d.approved and d.quantity == D("2.5")
    d = e.check(order(10, side="sell"), ctx({"BTC": D("0.04")}))
    assert not d.approved
    assert d.reason == ("balance: needs 10 BTC, free 0.04 BTC; the 0.04 BTC that fits is refused by the "
                        "venue: notional 4 is below the minimum notional 5")


def test_a_market_order_below_the_minimum_notional_is_refused(engine):
    e = engine()
    d = e.check(order("0.049"), ctx({"USDT": D(1000)}))
    assert not d.approved and d.check == "instrument_rules"
    assert d.reason == "instrument_rules: notional 4.9 is below the minimum notional 5"
    assert e.check(order("0.05"), ctx({"USDT": D(1000)})).approved  # 5.00: at the minimum


@pytest.mark.parametrize("rounding", [ROUND_HALF_UP, ROUND_FLOOR])
def test_the_amounts_shown_do_not_depend_on_the_threads_decimal_context(engine, rounding):
    # ccxt's decimal_to_precision leaves the thread's context at ROUND_HALF_UP; a message that
    # formatted with the context answered 105.10 or 105.11 depending on which test ran before.
    e = engine(resize=["balance"])
    with localcontext() as dc:
        dc.rounding = rounding
        d = e.check(order(1), ctx({"USDT": D("0.099")}))
    assert d.reason == "balance: needs 105.11 USDT, free 0.09 USDT"  # free is never overstated
