"""Risk and the paper broker agree on what an order costs (one rule, lyra.core.costs): for any
balance, price, fee and buffer, the buy risk resizes to the balance is accepted by the
broker, and one lot more is rejected by it for funds."""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal as D

import pytest
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

from lyra.audit import EventLog
from lyra.core import Bar, Instrument, Order, OrderIntent, OrderStatus, OrderType, ReplayClock, Side
from lyra.execution.fees import FeeSchedule
from lyra.execution.paper import PaperBroker, PaperConfig
from lyra.execution.testkit import BrokerDriver
from lyra.risk import RiskConfig, RiskContext, RiskEngine, TradingStateStore
from lyra.store import create_engine_for, upgrade

IID = "paper:BTC/USD"


@pytest.fixture(scope="module")
def risk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RiskEngine]:
    """One engine for every example: no limit but the balance check, which may resize."""
    db = create_engine_for(f"sqlite:///{tmp_path_factory.mktemp('costs') / 'lyra.db'}")
    upgrade(db)
    yield RiskEngine(RiskConfig.from_dict({"currency": "USD", "resize": ["balance"]}),
                     TradingStateStore(EventLog(db)), clock=ReplayClock(0), account_id="p")
    db.dispose()


def venue(lot: D, fee: D, min_notional: D, buffer: D, cash: D, price: float
          ) -> tuple[Instrument, BrokerDriver]:
    """A paper venue holding ``cash`` USD that has seen one bar closing at ``price``."""
    inst = Instrument("BTC/USD", "paper", "BTC", "USD", D("0.00000001"), lot,
                      min_notional=min_notional, maker_fee=fee, taker_fee=fee)
    clock = ReplayClock(0)
    broker = PaperBroker([inst], clock, {"USD": cash}, config=PaperConfig(market_lock_buffer=buffer),
                         fees={IID: FeeSchedule.flat(fee, fee)})
    d = BrokerDriver(broker, clock)
    d.feed(Bar(IID, "1h", 0, price, price, price, price, 1e9))
    return inst, d


def send(d: BrokerDriver, qty: D, limit: D | None) -> Order:
    kw = {} if limit is None else {"order_type": "limit", "limit_price": limit}
    o = d.submit(IID, "buy", qty, **kw)
    d.poll()
    return o


@settings(max_examples=150, deadline=None)
@given(
    lot=st.sampled_from([D("1"), D("0.01"), D("0.001"), D("0.00000001")]),
    fee=st.decimals(min_value=0, max_value=D("0.01"), places=4),
    buffer=st.decimals(min_value=0, max_value=D("0.1"), places=3),
    min_notional=st.sampled_from([D(0), D(1), D(10)]),
    cash=st.decimals(min_value=0, max_value=D(10_000_000), places=2),
    price=st.decimals(min_value=D("0.01"), max_value=D(1_000_000), places=2),
    limit=st.booleans(),
)
@example(lot=D("0.00000001"), fee=D("0.006"), buffer=D("0.05"), min_notional=D(1), cash=D(10_000),
         price=D("4321.09"), limit=False)
def test_the_buy_risk_resizes_to_the_balance_is_accepted_and_one_lot_more_is_not(
        risk: RiskEngine, lot: D, fee: D, buffer: D, min_notional: D, cash: D, price: D, limit: bool) -> None:
    inst, d = venue(lot, fee, min_notional, buffer, cash, float(price))
    paper = d.broker
    assert isinstance(paper, PaperBroker)
    mark = D(repr(float(price)))  # what a session's mark and the broker's last price both are
    all_in = (cash / mark * 2 / lot).to_integral_value() * lot + lot  # far more than the cash buys
    intent = OrderIntent(IID, Side.BUY, all_in, OrderType.LIMIT if limit else OrderType.MARKET,
                         mark if limit else None)
    ctx = RiskContext(account_id="p", positions={}, marks={IID: mark}, equity=cash, balances={"USD": cash},
                      open_orders=[], instruments={IID: inst}, now=0, last_md_ts={IID: 0},
                      costs=paper.cost_rules())  # risk sizes by this broker's rule
    decision = risk.check(Order("p-00000001", intent, 0), ctx)
    rule = paper.cost_rule(IID)
    unit = rule.unit_price(limit=mark) if limit else rule.unit_price(market=mark)
    event("refused" if not decision.approved else "resized")
    if not decision.approved:
        # Refused only when the venue would refuse the order as asked, or nothing it takes fits.
        if decision.check == "instrument_rules":
            assert rule.minimum_problem(all_in, mark), decision.reason
            return
        assert decision.check == "balance", decision.reason
        fit = rule.affordable(cash, unit)
        assert fit == 0 or rule.minimum_problem(fit, mark), decision.reason
        return
    q = decision.quantity
    assert decision.resized and q % lot == 0
    o = send(d, q, mark if limit else None)
    assert o.status is OrderStatus.ACCEPTED, o.history[-1].reason
    locked = d.broker.balances()["USD"].locked
    assert locked <= cash
    # One lot more, on a venue in the same state: rejected, for funds.
    _, d2 = venue(lot, fee, min_notional, buffer, cash, float(price))
    o2 = send(d2, q + lot, mark if limit else None)
    assert o2.status is OrderStatus.REJECTED
    assert "insufficient funds" in o2.history[-1].reason


def test_the_broker_hands_out_its_rule_at_the_highest_tier_rate() -> None:
    """Risk sizes at the highest rate the fee tiers can charge; the broker reserves at the
    tier that applies now, which is never more."""
    from lyra.execution.fees import FeeTier

    inst = Instrument("BTC/USD", "paper", "BTC", "USD", D("0.01"), D("0.001"), taker_fee=D("0.001"))
    tiers = FeeSchedule((FeeTier(D(0), D("0.004"), D("0.006")), FeeTier(D(50_000), D("0.002"), D("0.004"))))
    broker = PaperBroker([inst], ReplayClock(0), {"USD": 1000}, fees={IID: tiers},
                         config=PaperConfig(market_lock_buffer=D("0.02")))
    rule = broker.cost_rule(IID)
    assert (rule.taker_fee, rule.market_buffer, rule.lot) == (D("0.006"), D("0.02"), D("0.001"))
    assert broker.cost_rules() == {IID: rule}
