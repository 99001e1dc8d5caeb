"""Pre-trade VaR: the engine's verdict against ``incremental_var`` called directly."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal as D

import numpy as np
import pytest

from lyra.audit import EventLog
from lyra.core import Instrument, Order, OrderIntent, ReplayClock
from lyra.risk import CovarianceModel, RiskConfig, RiskContext, RiskEngine, TradingStateStore, incremental_var
from lyra.store import create_engine_for, upgrade

NOW = 1_700_000_000_000
SYMS = ("BTC", "ETH", "LTC")
INSTS = {i.id: i for i in (Instrument(f"{s}/USD", "bitstamp", s, "USD", D("0.01"), D("0.001")) for s in SYMS)}
IDS = tuple(INSTS)
BTC, ETH, LTC = IDS
MARKS = {BTC: D(8000), ETH: D(150), LTC: D(50)}


@pytest.fixture
def store(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    yield TradingStateStore(EventLog(eng))
    eng.dispose()


@pytest.fixture
def model(daily_returns):
    """Covariance of real Bitstamp BTC/ETH/LTC daily returns (tests/fixtures/risk)."""
    return CovarianceModel.from_returns(daily_returns)


def ctx(positions, model, **kw):
    return RiskContext("s1", positions, MARKS, D(100_000), {"USD": D(10**9), "BTC": D(10**6), "ETH": D(10**6), "LTC": D(10**6)},
                       [], INSTS, NOW, {i: NOW for i in IDS}, covariance=model, covariance_instruments=IDS, **kw)


def order(n, iid, side, qty):
    return Order(f"s1-{n:08d}", OrderIntent(iid, side, D(qty)), NOW)


def reference(positions, iid, signed_qty, model):
    """The same question asked of incremental_var directly, vectors built by hand."""
    v = np.array([float(positions.get(i, 0) * MARKS[i]) for i in IDS])
    d = np.zeros(3)
    d[IDS.index(iid)] = float(D(signed_qty) * MARKS[iid])
    return incremental_var(v, d, model, confidence=0.99, horizon=1, include_mean=False)


def test_var_check_rejects_an_order_pushing_var_over_the_limit(store, model):
    pos = {BTC: D(1), ETH: D(10)}
    ref = reference(pos, BTC, "0.5", model)
    assert ref.var_after > ref.var_before > 0
    limit = D(str(round((ref.var_before + ref.var_after) / 2, 2)))  # between before and after
    e = RiskEngine(RiskConfig.from_dict({"currency": "USD", "defaults": {"max_var": limit}}), store,
                   clock=ReplayClock(NOW), account_id="s1")
    d = e.check(order(1, BTC, "buy", "0.5"), ctx(pos, model))
    assert not d.approved and d.check == "pre_trade_var"
    assert d.reason == (f"pre_trade_var: {ref.var_after:.2f} > {limit} USD "
                        f"(before {ref.var_before:.2f}, 0.99 over 1 period(s))")
    # A smaller buy that stays under the limit passes.
    small = reference(pos, BTC, "0.01", model)
    assert small.var_after < float(limit)
    assert e.check(order(2, BTC, "buy", "0.01"), ctx(pos, model)).approved


def test_var_check_passes_an_order_that_reduces_var_even_over_the_limit(store, model):
    pos = {BTC: D(1), ETH: D(10)}
    ref = reference(pos, ETH, "-10", model)
    assert ref.var_after < ref.var_before
    limit = D(str(round(ref.var_after / 2, 2)))  # the book is over the limit before and after
    e = RiskEngine(RiskConfig.from_dict({"currency": "USD", "defaults": {"max_var": limit}}), store,
                   clock=ReplayClock(NOW), account_id="s1")
    assert e.check(order(1, ETH, "sell", "10"), ctx(pos, model)).approved
    # ...while adding to it is refused.
    up = reference(pos, ETH, "1", model)
    d = e.check(order(2, ETH, "buy", "1"), ctx(pos, model))
    assert not d.approved and d.reason.startswith(f"pre_trade_var: {up.var_after:.2f} > {limit} USD")


def test_a_hedge_passes_where_a_naive_notional_sum_would_not(store, model):
    """Correlation counts: shorting LTC against long BTC lowers VaR (BTC/LTC are correlated)."""
    pos = {BTC: D(1)}
    ref = reference(pos, LTC, "-40", model)
    assert ref.incremental < 0
    e = RiskEngine(RiskConfig.from_dict({"currency": "USD", "defaults": {"max_var": ref.var_before}}), store,
                   clock=ReplayClock(NOW), account_id="s1")
    assert e.check(order(1, LTC, "sell", "40"), ctx(pos, model)).approved


def test_var_check_needs_the_model_and_its_columns(store, model):
    e = RiskEngine(RiskConfig.from_dict({"currency": "USD", "defaults": {"max_var": 1000}}), store,
                   clock=ReplayClock(NOW), account_id="s1")
    d = e.check(order(1, BTC, "buy", "1"), ctx({}, None))
    assert not d.approved and d.reason == "pre_trade_var: no covariance model in the context"
    other_columns = replace(ctx({}, model), covariance_instruments=(ETH, LTC, "kraken:XRP/USD"))
    d = e.check(order(2, BTC, "buy", "1"), other_columns)
    assert not d.approved and d.reason == f"pre_trade_var: {BTC} has no column in the covariance model"
