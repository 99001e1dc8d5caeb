"""Risk configs: loading, layering, and nonsense refused with the field and the value."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from lyra.audit import EventLog
from lyra.core import ConfigError, Instrument, ReplayClock
from lyra.risk import RiskConfig, RiskEngine, TradingStateStore
from lyra.store import create_engine_for, upgrade

BTC = "binance:BTC/USDT"


@pytest.mark.parametrize(
    ("data", "field", "value", "problem"),
    [
        ({"defaults": {"max_order_notional": -5}}, "defaults.max_order_notional", -5, "must be > 0"),
        ({"defaults": {"max_leverage": 0}}, "defaults.max_leverage", 0, "must be > 0"),
        ({"defaults": {"max_leverage": "abc"}}, "defaults.max_leverage", "abc", "not a number"),
        ({"defaults": {"max_leverage": True}}, "defaults.max_leverage", True, "a boolean is not a number"),
        ({"defaults": {"max_orders_per_second": 0}}, "defaults.max_orders_per_second", 0,
         "must be a positive whole number"),
        ({"defaults": {"price_collar_pct": 150}}, "defaults.price_collar_pct", 150, "must be <= 100"),
        ({"defaults": {"margin_rate": 2}}, "defaults.margin_rate", 2, "must be <= 1"),
        ({"defaults": {"max_order_notional": 10, "min_order_notional": 20}}, "defaults.min_order_notional",
         D(20), "greater than max_order_notional 10"),
        ({"defaults": {"min_order_notional": 20}, "accounts": {"a": {"max_order_notional": 10}}},
         "accounts.a.min_order_notional", D(20), "greater than the max_order_notional 10 it gets with the other layers"),
        ({"defaults": {"min_order_notional": 20}, "instruments": {BTC: {"max_order_notional": 10}}},
         f"instruments.{BTC}.min_order_notional", D(20), "greater than the max_order_notional 10 it gets with the other layers"),
        ({"instruments": {BTC: {"max_gross_exposure": 5}}}, f"instruments.{BTC}.max_gross_exposure", D(5),
         "a portfolio limit; set it on defaults or an account"),
        ({"instruments": {"BTCUSDT": {"max_order_qty": 5}}}, "instruments.BTCUSDT", "BTCUSDT",
         "not an instrument id like 'binance:BTC/USDT'"),
        ({"defaults": {"maxx_leverage": 1}}, "defaults.maxx_leverage", 1, "Extra inputs are not permitted"),
        ({"breakers": {"vol_window": 50, "vol_baseline_window": 20}}, "breakers.vol_baseline_window", 20,
         "must be greater than vol_window 50"),
        ({"breakers": {"max_drawdown_pct": 100}}, "breakers.max_drawdown_pct", 100, "must be < 100"),
        ({"breakers": {"daily_loss_limit": -1}}, "breakers.daily_loss_limit", -1, "must be > 0"),
        ({"resize": ["max_leverage"]}, "resize", ["max_leverage"],
         "['max_leverage'] cannot resize; only ['balance', 'max_order_notional', 'max_order_qty', "
         "'max_position_notional', 'max_position_qty']"),
        ({"var_confidence": 1.5}, "var_confidence", 1.5, "must be between 0 and 1, e.g. 0.99"),
    ],
)
def test_nonsense_is_refused_naming_field_and_value(data, field, value, problem):
    with pytest.raises(ConfigError) as ei:
        RiskConfig.from_dict(data)
    assert (ei.value.field, ei.value.value, ei.value.problem) == (field, value, problem)


def test_unknown_instrument_is_refused_when_instruments_are_known(tmp_path):
    cfg = RiskConfig.from_dict({"accounts": {"a": {"instruments": {"binance:DOGE/USDT": {"max_order_qty": 1}}}}})
    with pytest.raises(ConfigError) as ei:
        cfg.check_instruments([BTC])
    assert (ei.value.field, ei.value.value, ei.value.problem) == ("accounts.a.instruments", "binance:DOGE/USDT",
                                                                 "unknown instrument")
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    inst = Instrument("BTC/USDT", "binance", "BTC", "USDT", D("0.01"), D("0.001"))
    with pytest.raises(ConfigError, match="DOGE"):
        RiskEngine(cfg, TradingStateStore(EventLog(eng)), clock=ReplayClock(0), instruments={inst.id: inst})
    eng.dispose()


def test_toml_round_trip_and_layer_resolution(tmp_path):
    p = tmp_path / "risk.toml"
    p.write_text(f'''
currency = "USDT"
resize = ["max_order_notional"]

[defaults]
max_order_notional = 1000.5
max_order_qty = 1
max_gross_exposure = 50000

[instruments."{BTC}"]
max_order_qty = 2

[accounts.alice]
max_order_qty = 3
max_gross_exposure = 10000

[accounts.alice.instruments."{BTC}"]
max_order_qty = 4

[breakers]
max_drawdown_pct = 10
drawdown_action = "reduce"
''', encoding="utf-8")
    cfg = RiskConfig.from_toml(p)
    assert cfg.defaults.max_order_notional == D("1000.5")  # a TOML float becomes its exact decimal
    assert cfg.resolve("bob", "binance:ETH/USDT")["max_order_qty"] == 1
    assert cfg.resolve("bob", BTC)["max_order_qty"] == 2
    assert cfg.resolve("alice", "binance:ETH/USDT")["max_order_qty"] == 3
    assert cfg.resolve("alice", BTC)["max_order_qty"] == 4
    assert cfg.resolve("alice", BTC)["max_gross_exposure"] == 10_000
    assert cfg.resolve("bob", BTC)["max_gross_exposure"] == 50_000
    assert cfg.breakers.drawdown_action == "reduce"
    with pytest.raises(Exception, match="frozen"):
        cfg.currency = "EUR"


def test_bad_toml_files(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        RiskConfig.from_toml(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[defaults\nmax_order_qty = 1", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        RiskConfig.from_toml(bad)
    bad.write_text("[defaults]\nmax_order_qty = -1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        RiskConfig.from_toml(bad)
    assert ei.value.field == "defaults.max_order_qty" and ei.value.value == -1
