"""Fees, tiers and precision exactly as the recorded ccxt market definitions say."""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import pytest

import lyra.execution as ex
from lyra.core import Liquidity, OrderStatus, Quote, ReplayClock, Side, ValidationError
from lyra.execution import CostModel, FeeSchedule, PaperBroker, load_fee_schedule, load_instrument
from lyra.execution.testkit import BrokerDriver, book

MARKETS = Path(ex.__file__).parent / "venue_markets"


def test_binance_btc_usdt_rules_come_from_the_recorded_market() -> None:
    raw = json.loads((MARKETS / "binance.json").read_text())["BTC/USDT"]
    inst = load_instrument("binance:BTC/USDT")
    # binance's recorded markets give precision as decimal places: 2 -> 0.01, 5 -> 0.00001
    assert raw["precision"]["price"] == 2
    assert raw["precision"]["amount"] == 5
    assert inst.price_increment == D("0.01")
    assert inst.size_increment == D("0.00001")
    assert inst.min_size == D(repr(raw["limits"]["amount"]["min"]))
    assert inst.min_notional == D(raw["limits"]["cost"]["min"])
    assert load_fee_schedule("binance:BTC/USDT").rates() == (D("0.001"), D("0.001"))


def test_real_binance_quote_fill_fee_and_balances_to_the_last_decimal(btc_quotes: list[Quote]) -> None:
    clock = ReplayClock(0)
    d = BrokerDriver(PaperBroker.from_venue("binance", clock, {"USDT": 1000}), clock)
    q = btc_quotes[0]  # ask 39433.62 x 0.066851
    d.feed(q)
    below = d.submit("binance:BTC/USDT", "buy", "0.00012")  # 4.73 USDT < min notional 5
    o = d.submit("binance:BTC/USDT", "buy", "0.00013")
    d.poll()
    assert below.status is OrderStatus.REJECTED
    assert "minimum notional 5" in below.history[-1].reason
    f = o.history[-1].fill
    assert (f.quantity, f.price, f.liquidity) == (D("0.00013"), D("39433.62"), Liquidity.TAKER)
    # by hand: 0.00013 * 39433.62 = 5.1263706; fee 0.1% = 0.0051263706 USDT
    assert f.fee == D("0.0051263706")
    assert f.fee_currency == "USDT"
    bal = d.broker.balances()
    assert bal["USDT"].free == D("1000") - D("5.1263706") - D("0.0051263706")
    assert bal["USDT"].locked == 0
    assert bal["BTC"].free == D("0.00013")


def test_kraken_fee_tiers_follow_the_30_day_volume() -> None:
    clock = ReplayClock(0)
    d = BrokerDriver(PaperBroker.from_venue("kraken", clock, {"USD": 200_000}, symbols=["BTC/USD"]), clock)
    iid = "kraken:BTC/USD"
    d.feed(book(iid, 0, [(59_999.9, 10.0)], [(60_000.0, 10.0)]))
    a = d.submit(iid, "buy", "1")
    d.poll()
    assert a.history[-1].fill.fee == D("60000.0") * D("0.0026")  # tier 0: 0.26 % taker
    assert d.broker.volume_30d("kraken") == D("60000.0")
    b = d.submit(iid, "buy", "0.1")
    d.poll()
    assert b.history[-1].fill.fee == D("6000.0") * D("0.0024")  # >= 50,000: 0.24 %
    clock.advance_to(30 * 24 * 3600 * 1000 + 1)  # a month later the volume has rolled off
    d.feed(book(iid, clock.now_ms(), [(59_999.9, 10.0)], [(60_000.0, 10.0)]))
    c = d.submit(iid, "buy", "0.1")
    d.poll()
    assert c.history[-1].fill.fee == D("6000.0") * D("0.0026")


def test_fee_schedule_tiers_and_cost_model() -> None:
    s = load_fee_schedule("coinbase:BTC/USDT", slippage_bps=5)
    assert s.rates(D(0)) == (D("0.004"), D("0.006"))
    assert s.rates(D(10_000)) == (D("0.0025"), D("0.004"))
    assert s.rates(D("9999.99")) == (D("0.004"), D("0.006"))
    cm = s.cost_model(D(10_000))
    assert isinstance(cm, CostModel)
    assert cm.fee(D(100), Liquidity.MAKER) == D("0.25")
    assert cm.slipped_price(D(100), Side.BUY) == D("100.05")
    with pytest.raises(ValidationError):
        FeeSchedule(())


def test_unknown_venue_or_symbol_names_the_value() -> None:
    with pytest.raises(ValidationError, match="DOGE"):
        load_instrument("binance:DOGE/USDT")
    with pytest.raises(ValidationError, match="ftx"):
        load_instrument("ftx:BTC/USDT")


def test_exported_names_are_pinned() -> None:
    assert sorted(ex.__all__) == sorted([
        "RECORDED_VENUES", "Balance", "Broker", "BrokerCapabilities", "CostModel", "DuplicateOrder",
        "ExecutionReport", "FeeSchedule", "FeeTier", "LatencyModel", "MatchingConfig",
        "MatchingEngine", "MissingRiskDecision", "OrderReport", "PaperBroker", "PaperConfig",
        "UnknownOrder", "VolumeTracker", "load_fee_schedule", "load_instrument", "load_instruments",
        "load_markets", "AlgoSpec", "ParentIntent", "RoutePlan", "RouteResult", "VenueQuote", "execute_route",
        "plan_route", "planner",
    ])
    for name in ex.__all__:
        assert getattr(ex, name) is not None
