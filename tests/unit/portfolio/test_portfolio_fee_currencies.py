"""Fees in the quote, the base or a third asset, with hand-worked numbers; no sum of money
in different currencies without a shown conversion."""

from __future__ import annotations

from decimal import Decimal as D

import pytest

from lyra.analytics import FeeRate
from lyra.core import Fill, Instrument, Liquidity, Side, ValidationError
from lyra.portfolio import Portfolio

BTC = Instrument("BTC/USD", "x", "BTC", "USD", D("0.01"), D("0.0001"))
ETHBTC = Instrument("ETH/BTC", "x", "ETH", "BTC", D("0.00001"), D("0.001"))


def fill(iid: str, side: Side, qty: str, price: str, fee: str, cur: str, n: int) -> Fill:
    return Fill(f"f{n}", f"c{n}", iid, side, D(qty), D(price), D(fee), cur, Liquidity.TAKER, n)


def test_a_fee_in_the_quote() -> None:
    p = Portfolio.open({BTC.id: BTC}, {"USD": "1000"})
    p.apply(fill(BTC.id, Side.BUY, "1", "100", "0.1", "USD", 1))
    assert p.cash["USD"] == D("899.9") and p.quantity(BTC.id) == D(1)
    assert p.positions[BTC.id].avg_price == D(100) and p.fees == D("0.1")
    assert p.equity({BTC.id: D(100)}) == D("999.9")


def test_a_fee_in_the_base_shrinks_the_holding() -> None:
    # 1,000 USD; buy 1 BTC @100 paying 0.001 BTC: hold 0.999 BTC costing 99.9 (avg 100);
    # equity at 100 = 900 + 99.9 = 999.9 (not 1,000). Fee value: 0.001 x 100 = 0.1 USD.
    p = Portfolio.open({BTC.id: BTC}, {"USD": "1000"})
    p.apply(fill(BTC.id, Side.BUY, "1", "100", "0.001", "BTC", 1))
    assert p.cash["BTC"] == D("0.999") == p.quantity(BTC.id) == p.lots[BTC.id].quantity
    assert p.positions[BTC.id].cost == D("99.9") and p.positions[BTC.id].avg_price == D(100)
    assert p.cash["USD"] == D(900) and p.equity({BTC.id: D(100)}) == D("999.9")
    assert p.fees == D("0.1") and p.fees_by_currency == {"BTC": D("0.001")}
    # Sell it all @110 paying 0.001 BTC more? No: the holding is 0.999; sell 0.998 paying
    # 0.001 BTC: flat. Proceeds 109.78; realised gross 0.998 x 10 + 0.001 x 10 = 9.99.
    realized = p.apply(fill(BTC.id, Side.SELL, "0.998", "110", "0.001", "BTC", 2))
    assert p.quantity(BTC.id) == 0 == p.cash["BTC"]
    assert realized == D("9.99") and p.fees == D("0.21")
    assert p.cash["USD"] == D("1009.78") == p.equity({BTC.id: D(110)})
    # Net = gross - fees = 9.99 - 0.21 = 9.78 = 1009.78 - 1000.
    assert p.realized_pnl - p.fees == D("9.78") == p.realized_pnl_fifo - p.fees


def test_a_fee_in_a_third_asset_is_never_added_to_the_quote() -> None:
    p = Portfolio.open({BTC.id: BTC}, {"USD": "1000", "BNB": "1"})
    p.apply(fill(BTC.id, Side.BUY, "1", "100", "0.01", "BNB", 1))
    assert p.cash["BNB"] == D("0.99") and p.fees_by_currency == {"BNB": D("0.01")}
    assert p.fees == 0 and p.positions[BTC.id].cost == D(100)
    with pytest.raises(ValidationError, match=r"cash\.BNB.*no rate to convert BNB to USD"):
        p.equity({BTC.id: D(100)})
    rows = p.valuation({BTC.id: D(100)}, {"BNB": FeeRate(D(300), "stored close BNB/USD")})
    assert ("cash BNB", "BNB", D("0.99"), D(300), "stored close BNB/USD", D("297")) in rows
    assert p.equity({BTC.id: D(100)}, {"BNB": FeeRate(D(300), "stored close BNB/USD")}) == D("1297")


def test_a_cross_position_is_converted_through_a_shown_mark() -> None:
    # 1,000 USD; buy 0.5 BTC @100 (50 USD), then 10 ETH @0.02 BTC (0.2 BTC) paying 0.0002 BTC.
    p = Portfolio.open({BTC.id: BTC, ETHBTC.id: ETHBTC}, {"USD": "1000"})
    p.apply(fill(BTC.id, Side.BUY, "0.5", "100", "0", "USD", 1))
    p.apply(fill(ETHBTC.id, Side.BUY, "10", "0.02", "0.0002", "BTC", 2))
    marks = {BTC.id: D(100), ETHBTC.id: D("0.02")}
    rows = {r[0]: r for r in p.valuation(marks)}
    assert rows[f"position {ETHBTC.id}"][1:] == ("BTC", D("0.20"), D(100), f"mark {BTC.id}", D("20.00"))
    assert p.cash["BTC"] == D("0.2998")  # 0.5 - 0.2 - 0.0002 fee
    assert p.fees == 0 and p.positions[ETHBTC.id].fees == D("0.0002")
