"""The gateway's operator book: operator fills (``manual:``/``rebalance:`` orders) are kept
apart, so the strategy's position is total holdings minus the operator's -- also for orders
known from the log (a live session's restart)."""

from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from lyra.core.enums import Liquidity, Side
from lyra.core.orders import Fill, Order, OrderIntent
from lyra.session.gateway import OrderGateway

IID = "x:BTC/USD"
D = Decimal


def fill(cid: str, side: Side, qty: str) -> Fill:
    return Fill(f"f-{cid}", cid, IID, side, D(qty), D(100), D(0), "USD", Liquidity.TAKER, 0)


def test_operator_fills_are_kept_out_of_the_strategys_position():
    # only what the books read (and the gateway's door is built from)
    session = SimpleNamespace(holdings={IID: D("0.06")}, sid="s", actor="session:s", risk=None,
                              _risk_context=None, config=SimpleNamespace(denied_in_row_limit=20))
    g = OrderGateway(session)  # type: ignore[arg-type]
    g.know_orders([Order("s-1", OrderIntent(IID, Side.BUY, D("0.05"), tag="manual:tina"), 0),
                   Order("s-2", OrderIntent(IID, Side.BUY, D("0.01"), tag="sma"), 0),
                   Order("s-3", OrderIntent(IID, Side.SELL, D("0.02"), tag="rebalance:tina"), 0)])
    g.book_fill(fill("s-1", Side.BUY, "0.05"))
    g.book_fill(fill("s-2", Side.BUY, "0.01"))
    assert g.operator_holdings == {IID: D("0.05")}
    assert g.strategy_quantity(IID) == D("0.01")
    g.book_fill(fill("s-3", Side.SELL, "0.02"))
    session.holdings[IID] = D("0.04")
    assert g.operator_holdings == {IID: D("0.03")} and g.strategy_quantity(IID) == D("0.01")
    assert g.is_operator_order("s-3") and not g.is_operator_order("s-2")
