from decimal import ROUND_DOWN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lyra.core import ValidationError, plain_str, to_decimal
from lyra.core.values import is_on_step, quantize_step

decimals = st.decimals(allow_nan=False, allow_infinity=False)
nonneg = st.decimals(min_value=Decimal(0), max_value=Decimal("1e12"), places=8,
                     allow_nan=False, allow_infinity=False)


def test_float_converts_through_its_shortest_repr():
    assert to_decimal(0.1) == Decimal("0.1")
    assert to_decimal(5.352e-05) == Decimal("0.00005352")


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), "abc", True, None, "NaN", [1]])
def test_to_decimal_refuses_non_numbers(bad):
    with pytest.raises(ValidationError) as e:
        to_decimal(bad, "quantity")
    assert e.value.field == "quantity"


@pytest.mark.parametrize(("value", "text"), [
    ("50000.0", "50000"), ("5E+4", "50000"), ("50000", "50000"), ("0.50", "0.5"), ("5E-1", "0.5"),
    ("-0", "0"), ("-0.000", "0"), ("0E-8", "0"), ("-2.5000", "-2.5"), ("100", "100"),
    ("1E-30", "0." + "0" * 29 + "1"),
    # 31 significant digits: Decimal.normalize() would round this to 28
    ("123456789012345678901234567890.5", "123456789012345678901234567890.5"),
])
def test_plain_str_writes_one_text_per_number(value, text):
    assert plain_str(Decimal(value)) == text


@given(d=decimals)
def test_plain_str_is_exact_and_canonical(d):
    text = plain_str(d)
    assert Decimal(text) == d  # nothing lost
    assert "E" not in text and "e" not in text
    assert plain_str(Decimal(text)) == text
    # other spellings of the same number give the same text
    assert plain_str(Decimal(f"{d:E}")) == text
    assert plain_str(Decimal(text + ("00" if "." in text else ".00"))) == text


@given(v=nonneg, step_exp=st.integers(min_value=-8, max_value=0))
def test_quantize_lands_on_the_grid_and_round_down_never_exceeds(v, step_exp):
    step = Decimal(1).scaleb(step_exp)
    q = quantize_step(v, step, ROUND_DOWN)
    assert is_on_step(q, step)
    assert q <= v
    assert v - q < step
    r = quantize_step(v, step)
    assert abs(r - v) <= step / 2
