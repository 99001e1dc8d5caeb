import json
from decimal import Decimal
from pathlib import Path

import pytest

from lyra.core import Fill, Instrument, InvalidOrder, Liquidity, Position, ReplayClock, Side, ValidationError
from lyra.core.timeutil import datetime_to_ms, ms_to_datetime, parse_utc, timeframe_to_ms

FIX = Path(__file__).resolve().parents[2] / "fixtures" / "core"


def binance_btc() -> Instrument:
    markets = json.loads((FIX / "binance_markets.json").read_text())
    # This recorded market uses ccxt's legacy DECIMAL_PLACES precision (amount 5, price 2).
    return Instrument.from_ccxt_market("binance", markets["BTC/USDT"], precision_mode="decimals")


def test_instrument_from_recorded_ccxt_market():
    i = binance_btc()
    assert i.id == "binance:BTC/USDT"
    assert i.price_increment == Decimal("0.01")
    assert i.size_increment == Decimal("0.00001")
    assert i.min_size == Decimal("0.00001")
    assert i.min_notional == Decimal("5")


@pytest.mark.parametrize(
    ("qty", "price", "field"),
    [
        ("0.000015", "30000", "quantity"),  # off the lot grid
        ("0.001", "30000.005", "price"),  # off the tick grid
        ("0.0001", "30000", "notional"),  # 3 USDT < 5 USDT minimum
        ("0", "30000", "quantity"),
    ],
)
def test_orders_off_the_venue_grid_are_refused(qty, price, field):
    with pytest.raises(InvalidOrder) as e:
        binance_btc().check_order(Decimal(qty), Decimal(price))
    assert e.value.field == field


def test_malformed_instrument_definitions_name_the_field():
    with pytest.raises(ValidationError, match="instrument.price_increment"):
        Instrument("BTC/USDT", "binance", "BTC", "USDT", Decimal("0"), Decimal("0.1"))
    with pytest.raises(ValidationError, match="instrument.symbol"):
        Instrument("ETH/USDT", "binance", "BTC", "USDT", Decimal("0.01"), Decimal("0.1"))
    with pytest.raises(ValidationError, match=r"market\.precision"):
        Instrument.from_ccxt_market("binance", {"symbol": "X/Y", "base": "X", "quote": "Y"})


def _fill(side: Side, qty: str, price: str, fee: str = "0") -> Fill:
    return Fill("f", "c", "i", side, Decimal(qty), Decimal(price), Decimal(fee), "USDT", Liquidity.TAKER, 1)


def test_position_average_cost_and_realised_pnl_hand_worked():
    p = Position("i")
    p.apply(_fill(Side.BUY, "1", "100", "0.1"))
    p.apply(_fill(Side.BUY, "3", "120", "0.36"))
    assert p.avg_price == Decimal("115")  # (100 + 360) / 4
    realised = p.apply(_fill(Side.SELL, "2", "130", "0.26"))
    assert realised == Decimal("30")  # 2 * (130 - 115)
    assert p.quantity == Decimal("2")
    # Sell 5: closes 2 (+2*(110-115) = -10) and opens a 3 short at 110.
    assert p.apply(_fill(Side.SELL, "5", "110")) == Decimal("-10")
    assert p.quantity == Decimal("-3")
    assert p.avg_price == Decimal("110")
    assert p.realized_pnl == Decimal("20")
    assert p.fees == Decimal("0.72")
    assert p.unrealized_pnl(Decimal("100")) == Decimal("30")  # short 3 from 110 to 100


def test_time_helpers_and_replay_clock():
    assert timeframe_to_ms("4h") == 14_400_000
    with pytest.raises(ValidationError, match="timeframe"):
        timeframe_to_ms("1M")
    dt = parse_utc("2018-04-28T10:00")
    assert ms_to_datetime(datetime_to_ms(dt)) == dt
    c = ReplayClock(0)
    c.advance_to(10)
    assert c.now_ms() == 10
    with pytest.raises(ValidationError, match="cannot go back"):
        c.advance_to(5)


def test_tooling_variables_are_not_settings(tmp_path):
    from lyra.settings import load_settings

    s = load_settings({"LYRA_HOME": str(tmp_path), "LYRA_TEST_PG_URL": "postgresql://x@y/z",
                       "LYRA_SAMPLE_DATA": "/data", "LYRA_SKIP_BROWSER": "1"})
    assert s.home == tmp_path.resolve()
