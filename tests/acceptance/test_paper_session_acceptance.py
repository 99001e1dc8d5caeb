"""A paper session replaying the shipped Coinbase BTC/USD hourly data end to end (the demo
session), with its results pinned to the cent and cross-checked independently."""

from __future__ import annotations

from decimal import Decimal

import pytest

from lyra.audit import verify
from lyra.session.factory import open_session
from lyra.session.parity import parity_report
from lyra.testing.sessions import demo_config


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_demo_session_pinned(session_home):
    h = session_home
    s = open_session(demo_config(), engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    r = s.run()
    # Pinned: SMA 10/30, 0.1 BTC per signal, 0.6% taker fee, 2 bps slippage, next-open fills.
    assert r.events == 20_106  # 20,111 bars less the 5 copied bars the validator quarantined
    assert (r.orders, r.fills, r.denied) == (772, 772, 0)
    assert r.fees.quantize(Decimal("0.01")) == Decimal("3283.09")
    assert r.equity.quantize(Decimal("0.01")) == Decimal("8266.97")
    # Independent check: cash from the fills alone (sells add, buys subtract, fees subtract).
    fills = [f for _, f in s.ledger.state.fills]
    cash = Decimal(10_000) - sum(f.side.sign * f.quantity * f.price + f.fee for f in fills)
    assert cash == r.balances["USD"]
    assert sum(f.side.sign * f.quantity for f in fills) == 0  # ends flat
    # Every fee is exactly the venue's taker rate times the notional.
    assert all(f.fee == f.quantity * f.price * Decimal("0.006") for f in fills)
    # Every fill price sits on the 0.01 USD tick.
    assert all(f.price == f.price.quantize(Decimal("0.01")) for f in fills)
    assert verify(h["engine"], h["home"] / "audit" / "events.jsonl").ok


@pytest.mark.numba
@pytest.mark.slow
def test_parity_with_vectorbt_is_exact_with_identical_rules(session_home):
    """Same data, strategy, fee; no slippage (so no tick rounding): zero differences."""
    rep = parity_report(demo_config(session_id="parity", slippage_bps=0), market_dir=session_home["home"] / "market")
    assert len(rep.trades) == 772
    assert rep.mismatches.empty, rep.mismatches.head()
    assert rep.identical
    assert abs(rep.pnl_difference) < 0.005


@pytest.mark.numba
@pytest.mark.slow
def test_parity_explains_every_difference(session_home):
    """With 2 bps slippage the paper venue rounds the slipped price to the tick; vectorbt does
    not. Every trade still pairs up and every difference is explained."""
    rep = parity_report(demo_config(session_id="parity2"), market_dir=session_home["home"] / "market")
    assert len(rep.trades) == 772
    mism = rep.mismatches
    assert len(mism) > 0
    assert mism["explanation"].str.startswith("price differs").all()
    # The venue rounds the slipped price to the 0.01 tick against us: buys up, sells down,
    # by less than one tick.
    sign = mism["research_side"].map({"buy": 1.0, "sell": -1.0})
    worse_by = (mism["runtime_price"] - mism["research_price"]) * sign
    assert (worse_by > -1e-9).all()
    assert (worse_by < 0.01).all()
    assert abs(rep.pnl_difference) < 772 * 0.1 * 0.01  # at most a tick on every fill
