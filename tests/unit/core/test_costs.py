"""The cost rule (lyra.core.costs) against hand-worked examples, and its one promise as a
property: the quantity it says fits is reserved within the funds, one lot more is not."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from lyra.core import Instrument, ValidationError
from lyra.core.costs import MARKET_BUY_BUFFER, CostRule

RULE = CostRule(lot=D("0.001"), taker_fee=D("0.001"))  # 10 bps, the default 5% buffer


# ------------------------------------------------------------------------------ examples
def test_a_market_buy_reserves_the_buffer_and_the_fee() -> None:
    unit = RULE.unit_price(market=D(100))
    assert unit == D(105)  # 100 × 1.05
    assert RULE.reserve(D(10), unit) == D("1051.05")  # 105 × 10 × 1.001


def test_a_limit_buy_reserves_its_limit_and_the_fee_only() -> None:
    unit = RULE.unit_price(limit=D("99.5"), market=D(100))
    assert unit == D("99.5")
    assert RULE.reserve(D(2), unit) == D("199.199")  # 99.5 × 2 × 1.001


def test_a_stop_buy_is_valued_at_its_stop_plus_the_buffer() -> None:
    assert RULE.unit_price(stop=D(200), market=D(100)) == D(210)
    assert RULE.reference(stop=D(200), market=D(100)) == D(200)  # notional: without the buffer
    assert RULE.reference(limit=D(90), stop=D(200), market=D(100)) == D(90)


def test_no_reference_price_means_no_unit_price() -> None:
    assert RULE.unit_price() is None
    assert RULE.reference() is None


def test_affordable_rounds_down_to_the_lot() -> None:
    # 1000 / (105 × 1.001) = 9.51429...: 9.514 fits (999.96897), 9.515 does not (1000.07407...).
    unit = D(105)
    assert RULE.affordable(D(1000), unit) == D("9.514")
    assert RULE.reserve(D("9.514"), unit) == D("999.968970")
    assert RULE.reserve(D("9.515"), unit) > 1000


def test_affordable_at_exactly_the_funds_takes_the_last_lot() -> None:
    # 10 × 105 × 1.001 = 1051.05 exactly: the whole 10 fits, with nothing to spare.
    assert RULE.affordable(D("1051.05"), D(105)) == D(10)
    assert RULE.affordable(D("1051.04"), D(105)) == D("9.999")


def test_affordable_with_a_fee_override_and_nothing_to_spend() -> None:
    # The broker reserves at the tier that applies now (0.0005): more fits than at 0.001.
    assert RULE.affordable(D(1000), D(105), D("0.0005")) == D("9.519")
    assert RULE.affordable(D(0), D(105)) == 0
    assert RULE.affordable(D("0.1"), D(105)) == 0  # not even one lot (0.105...)
    assert RULE.affordable(D(-5), D(105)) == 0


def test_floor_to_the_lot() -> None:
    assert RULE.floor(D("2.5009")) == D("2.5")
    assert RULE.floor(D("0.0009")) == 0
    assert RULE.floor(D(-1)) == 0


def test_minimum_notional_size_and_lot_refuse() -> None:
    rule = CostRule(lot=D("0.01"), taker_fee=D("0.001"), min_size=D("0.05"), min_notional=D(5))
    assert rule.minimum_problem(D("0.04"), D(100)) == "quantity 0.04 is below the minimum size 0.05"
    assert rule.minimum_problem(D("0.055"), D(100)) == "quantity 0.055 is not a multiple of the lot size 0.01"
    assert rule.minimum_problem(D("0.05"), D(99)) == "notional 4.95 is below the minimum notional 5"
    assert rule.minimum_problem(D("0.05"), D(100)) == ""  # 5.00: at the minimum
    assert rule.minimum_problem(D("0.05"), None) == ""  # no price: only size and lot
    assert rule.minimum_problem(D(0), D(100)) == "quantity 0 is not positive"


def test_the_rule_of_an_instrument() -> None:
    inst = Instrument("BTC/USD", "coinbase", "BTC", "USD", D("0.01"), D("0.00000001"),
                      min_notional=D(1), taker_fee=D("0.006"))
    rule = CostRule.of(inst)
    assert (rule.lot, rule.taker_fee, rule.market_buffer, rule.min_size, rule.min_notional) == (
        D("0.00000001"), D("0.006"), MARKET_BUY_BUFFER, D(0), D(1))
    assert CostRule.of(inst, taker_fee=D("0.008"), market_buffer=D(0)).unit_price(market=D(7)) == D(7)


@pytest.mark.parametrize(("kw", "field"), [
    ({"lot": D(0), "taker_fee": D(0)}, "cost_rule.lot"),
    ({"lot": D(1), "taker_fee": D(1)}, "cost_rule.taker_fee"),
    ({"lot": D(1), "taker_fee": D(0), "market_buffer": D("-0.01")}, "cost_rule.market_buffer"),
    ({"lot": D(1), "taker_fee": D(0), "min_notional": "nan"}, "cost_rule.min_notional"),
])
def test_nonsense_is_refused_naming_the_field(kw: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError) as err:
        CostRule(**kw)  # type: ignore[arg-type]
    assert err.value.field == field


# ------------------------------------------------------------------------------ property
lots = st.sampled_from([D("1"), D("0.1"), D("0.001"), D("0.00000001"), D("0.0001234")])
fees = st.decimals(min_value=0, max_value=D("0.05"), places=5)
buffers = st.decimals(min_value=0, max_value=D("0.2"), places=4)
prices = st.decimals(min_value=D("0.00001"), max_value=D(1_000_000), places=5)
funds = st.decimals(min_value=0, max_value=D(100_000_000), places=8)


@given(lot=lots, fee=fees, buffer=buffers, price=prices, cash=funds, market=st.booleans())
@example(lot=D("0.001"), fee=D("0.001"), buffer=D("0.05"), price=D(100), cash=D("1051.05"), market=True)
def test_what_fits_is_reserved_within_the_funds_and_one_lot_more_is_not(
        lot: D, fee: D, buffer: D, price: D, cash: D, market: bool) -> None:
    rule = CostRule(lot=lot, taker_fee=fee, market_buffer=buffer)
    unit = rule.unit_price(market=price) if market else rule.unit_price(limit=price)
    assert unit is not None
    q = rule.affordable(cash, unit)
    assert q >= 0 and q % lot == 0
    assert rule.reserve(q, unit) <= cash
    assert rule.reserve(q + lot, unit) > cash
