from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lyra.core import Money, Price, Quantity, ValidationError, to_decimal
from lyra.core.values import is_on_step, quantize_step

decimals = st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=8,
                       allow_nan=False, allow_infinity=False)
nonneg = st.decimals(min_value=Decimal(0), max_value=Decimal("1e12"), places=8,
                     allow_nan=False, allow_infinity=False)


def test_float_converts_through_its_shortest_repr():
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(5.352e-05) == Decimal("0.00005352")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc", True, None, "NaN"])
def test_to_decimal_refuses_non_numbers(bad):
    with pytest.raises(ValidationError) as e:
        to_decimal(bad, "quantity")
    assert e.value.field == "quantity"


def test_quantity_refuses_negative_and_names_the_field():
    with pytest.raises(ValidationError, match="quantity=.*must not be negative"):
        Quantity(Decimal("-1"))


def test_price_must_be_positive():
    with pytest.raises(ValidationError, match="price"):
        Price.of("0")


@given(a=decimals, b=decimals)
def test_money_addition_is_exact_and_reversible(a, b):
    m = Money(a, "USDT") + Money(b, "USDT")
    assert m.amount == a + b
    assert (m - Money(b, "USDT")).amount == a


@given(a=nonneg, b=nonneg)
def test_quantity_subtraction_never_goes_negative(a, b):
    if a >= b:
        assert (Quantity(a) - Quantity(b)).value == a - b
    else:
        with pytest.raises(ValidationError):
            Quantity(a) - Quantity(b)


def test_money_refuses_mixing_currencies():
    with pytest.raises(ValidationError, match="currency"):
        Money(Decimal(1), "USD") + Money(Decimal(1), "EUR")


@given(v=nonneg, step_exp=st.integers(min_value=-8, max_value=0))
def test_quantize_lands_on_the_grid_and_round_down_never_exceeds(v, step_exp):
    step = Decimal(1).scaleb(step_exp)
    q = Quantity(v).round_down(step).value
    assert is_on_step(q, step)
    assert q <= v
    assert v - q < step
    r = quantize_step(v, step)
    assert abs(r - v) <= step / 2


def test_money_round_half_even_to_the_cent():
    assert Money(Decimal("2.345"), "USD").round().amount == Decimal("2.34")
    assert Money(Decimal("2.355"), "USD").round().amount == Decimal("2.36")
