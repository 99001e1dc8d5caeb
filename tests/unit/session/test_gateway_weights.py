"""Rebalance weights as the command queue and the session check them
(``lyra.session.commands.parse_weights``): refused with the field and the value."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra.core.errors import ValidationError
from lyra.session.commands import parse_weights

KNOWN = {"x:BTC/USD": object(), "x:ETH/USD": object()}


def test_good_weights_parse_to_decimals():
    assert parse_weights({"x:BTC/USD": "0.6", "x:ETH/USD": 0.4}, KNOWN) == {
        "x:BTC/USD": Decimal("0.6"), "x:ETH/USD": Decimal("0.4")}
    assert parse_weights({"x:BTC/USD": "1"}, KNOWN) == {"x:BTC/USD": Decimal(1)}  # all in: allowed


@pytest.mark.parametrize(("weights", "field", "words"), [
    ({"x:BTC/USD": "0.7", "x:ETH/USD": "0.4"}, "weights", "sum to 1.1"),
    ({"x:DOGE/USD": "0.1"}, "weights[x:DOGE/USD]", "not traded by this session"),
    ({"x:BTC/USD": "-0.1"}, "weights[x:BTC/USD]", "fraction of equity"),
    ({"x:BTC/USD": "lots"}, "weights[x:BTC/USD]", "not a number"),
    ({"x:BTC/USD": "NaN"}, "weights[x:BTC/USD]", "fraction of equity"),
    ({}, "weights", "instrument_id = weight"),
    ("x:BTC/USD=1", "weights", "instrument_id = weight"),
])
def test_bad_weights_are_refused_naming_the_field(weights, field, words):
    with pytest.raises(ValidationError, match=words) as e:
        parse_weights(weights, KNOWN)
    assert e.value.field == field
