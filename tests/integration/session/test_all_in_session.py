"""An all-in paper session: every buy asks for far more than the cash buys and risk resizes it
to the balance by the broker's own cost rule, so the broker fills every order (the bug was
286 orders, 0 fills: risk sized at price × (1 + fee), the broker reserved 5% more)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra.core import OrderStatus, Side
from lyra.core.costs import MARKET_BUY_BUFFER
from lyra.session.factory import open_session
from lyra.testing.sessions import demo_config


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_all_in_session_fills_every_resized_order(session_home):
    h = session_home
    # SMA 10/30 on Coinbase BTC/USD 1h, 1000 BTC per signal (~ 10,000,000 USD) on 10,000 USD:
    # every buy is 100% of the cash, resized by the balance check.
    cfg = demo_config(session_id="allin", start="2018-01-01", end="2018-04-01",
                      quantity=Decimal(1000), risk={"resize": ["balance"]})
    s = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    r = s.run()
    orders = sorted(s.ledger.state.orders.values(), key=lambda o: o.client_order_id)
    assert r.orders == len(orders) > 20
    assert r.denied == 0
    assert r.fills == r.orders  # every resized order filled: none rejected for funds
    assert all(o.status is OrderStatus.FILLED for o in orders)
    assert not [e.reason for o in orders for e in o.history if "insufficient funds" in e.reason]
    # Every order was resized (1000 BTC was never affordable) and the buys went all in: each
    # spent all but the market buffer of the cash it had.
    assert all(o.quantity < 1000 for o in orders)
    fills = sorted((f for _, f in s.ledger.state.fills), key=lambda f: f.ts)
    cash = Decimal(10_000)
    for f in fills:
        spent = f.side.sign * f.quantity * f.price + f.fee
        if f.side is Side.BUY:
            assert spent / cash > 1 / (1 + MARKET_BUY_BUFFER) - Decimal("0.01"), (f, cash)
        cash -= spent
        assert cash >= 0
    assert cash == r.balances["USD"]
