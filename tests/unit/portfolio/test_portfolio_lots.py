from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lyra.core import Fill, Instrument, Liquidity, Side, ValidationError
from lyra.portfolio import LotBook, Portfolio

BTC = Instrument("BTC/USD", "coinbase", "BTC", "USD", Decimal("0.01"), Decimal("0.0001"))
IID = BTC.id


def fill(side, qty, price, fee="0", i=[0]):  # noqa: B006 - a counter for unique ids
    i[0] += 1
    return Fill(f"f{i[0]}", "c1", IID, side, Decimal(qty), Decimal(price), Decimal(fee), "USD",
                Liquidity.TAKER, i[0])


def test_fifo_hand_worked():
    b = LotBook()
    b.apply(fill(Side.BUY, "1", "100"))
    b.apply(fill(Side.BUY, "2", "130"))
    closed = b.apply(fill(Side.SELL, "2", "150"))
    # FIFO: 1 @100 closed (+50), then 1 of the 2 @130 (+20): 70. Average cost would say
    # 2 * (150 - 120) = 60 now and 30 later.
    assert [(c.quantity, c.open_price, c.pnl) for c in closed] == [
        (Decimal(1), Decimal(100), Decimal(50)), (Decimal(1), Decimal(130), Decimal(20))]
    assert b.realized_pnl == Decimal(70)
    assert b.quantity == Decimal(1)
    # Selling 3 closes the last long lot and opens a 2 short at 120.
    closed = b.apply(fill(Side.SELL, "3", "120"))
    assert closed[0].pnl == Decimal(-10)
    assert b.quantity == Decimal(-2)
    assert b.lots[0].price == Decimal(120)
    # Buying 2 back at 100 closes the short: +40.
    assert b.apply(fill(Side.BUY, "2", "100"))[0].pnl == Decimal(40)
    assert b.realized_pnl == Decimal(100)


def test_portfolio_cash_equity_and_methods_hand_worked():
    p = Portfolio.open({IID: BTC}, {"USD": "1000"})
    p.apply(fill(Side.BUY, "1", "100", "0.1"))
    p.apply(fill(Side.BUY, "2", "130", "0.26"))
    p.apply(fill(Side.SELL, "2", "150", "0.3"))
    assert p.cash["USD"] == Decimal(1000) - 100 - 260 + 300 - Decimal("0.66")
    assert p.cash["BTC"] == Decimal(1)
    assert p.fees == Decimal("0.66")
    assert p.realized_pnl == Decimal(60)  # average cost: 2 * (150 - 120)
    assert p.realized_pnl_fifo == Decimal(70)
    marks = {IID: Decimal(140)}
    assert p.unrealized_pnl(marks) == Decimal(20)  # 1 @ avg 120 marked at 140
    assert p.equity(marks) == p.cash["USD"] + 140
    assert p.mark(5, marks) == p.equity(marks)
    with pytest.raises(ValidationError, match="balances.USD"):
        Portfolio.open({IID: BTC}, {"USD": "-1"})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([Side.BUY, Side.SELL]), st.integers(1, 50), st.integers(50, 150)),
                min_size=1, max_size=25))
def test_fifo_and_average_cost_agree_once_flat(trades):
    p = Portfolio.open({IID: BTC}, {"USD": "0"})
    for side, q, px in trades:
        p.apply(fill(side, str(q), str(px)))
    q = p.quantity(IID)
    if q:  # close whatever is open at a last price, then both methods must agree
        p.apply(fill(Side.SELL if q > 0 else Side.BUY, str(abs(q)), "99"))
    assert p.quantity(IID) == 0
    assert p.lots[IID].quantity == 0
    assert p.realized_pnl == p.realized_pnl_fifo
    # And equal to the cash flow of the round trips (no fees here).
    assert p.realized_pnl == p.cash["USD"]
