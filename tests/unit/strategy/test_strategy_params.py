"""Typed parameters: bad values raise ValidationError naming the parameter."""

from __future__ import annotations

import pytest

from lyra.core.errors import ValidationError
from lyra.strategy import Bollinger, Rebalance, RsiReversion, SmaCross, SmaCrossParams


@pytest.mark.parametrize(
    ("cls", "kwargs", "field"),
    [
        (SmaCross, {"fast": 30, "slow": 10}, "fast"),
        (SmaCross, {"fast": 20, "slow": 20}, "fast"),
        (SmaCross, {"fast": -3, "slow": 10}, "fast"),
        (SmaCross, {"fast": 0}, "fast"),
        (SmaCross, {"slow": "abc"}, "slow"),
        (SmaCross, {"ma": "wma"}, "ma"),
        (SmaCross, {"fst": 3}, "fst"),
        (RsiReversion, {"lower": 80, "upper": 70}, "lower"),
        (RsiReversion, {"window": 1}, "window"),
        (RsiReversion, {"upper": 120}, "upper"),
        (Bollinger, {"k": 0}, "k"),
        (Bollinger, {"window": 1}, "window"),
        (Rebalance, {"every": 0}, "every"),
        (Rebalance, {"weights": {"BTC": 0.8, "ETH": 0.4}}, "weights"),
        (Rebalance, {"weights": {"BTC": -0.1}}, "weights"),
    ],
)
def test_bad_parameter_is_named(cls: type, kwargs: dict, field: str) -> None:
    with pytest.raises(ValidationError) as err:
        cls(**kwargs)
    assert err.value.field == field
    assert field in str(err.value)


def test_params_are_frozen_and_reusable() -> None:
    s = SmaCross(fast=5, slow=20, ma="ema")
    assert s.params == SmaCrossParams(fast=5, slow=20, ma="ema")
    assert s.params.as_dict() == {"fast": 5, "slow": 20, "ma": "ema", "allow_short": False}
    with pytest.raises(Exception):  # frozen model
        s.params.fast = 7  # type: ignore[misc]
    t = s.with_params(fast=7)
    assert (t.params.fast, s.params.fast) == (7, 5)
    assert SmaCross(s.params) == s
    assert SmaCross(s.params, slow=40).params.slow == 40
    assert repr(s) == "SmaCross(fast=5, slow=20, ma='ema', allow_short=False)"
    assert s.warmup == 20
    with pytest.raises(ValidationError):
        s.with_params(fast=25)


def test_exported_names() -> None:
    import lyra.strategy as pkg

    assert sorted(pkg.__all__) == sorted([
        "ENTRY", "EXIT", "FILL_CHOICES", "NO_SIGNAL", "Bollinger", "BollingerIncremental", "BollingerParams",
        "EmaCrossIncremental", "FillAt", "IncrementalSignalStrategy", "IndicatorCache", "Rebalance",
        "RebalanceIncremental", "RebalanceParams", "RsiReversion", "RsiReversionIncremental",
        "RsiReversionParams", "Signals", "SmaCross", "SmaCrossIncremental", "SmaCrossParams", "Strategy",
        "StrategyParams", "check_ohlcv", "make_params", "moving_average",
    ])
    for name in pkg.__all__:
        assert hasattr(pkg, name)
