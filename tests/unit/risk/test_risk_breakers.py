"""Circuit breakers: each trips at its threshold, blocks what it should, records the trip,
and cools down."""

from __future__ import annotations

import json
import math
from decimal import Decimal as D
from itertools import count

import numpy as np
import pytest

from lyra.audit import EventLog
from lyra.auth.permissions import PermissionDenied
from lyra.core import Instrument, Order, OrderIntent, ReplayClock
from lyra.risk import KillSwitch, RiskConfig, RiskContext, RiskEngine, TradingState, TradingStateStore
from lyra.risk.breakers import DAY_MS, RollingVar
from lyra.store import create_engine_for, upgrade

DAY0 = 19_700 * DAY_MS  # a UTC midnight
BTC = Instrument("BTC/USDT", "binance", "BTC", "USDT", D("0.01"), D("0.001"))
INSTS = {BTC.id: BTC}
_seq = count(1)


@pytest.fixture
def store(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    yield TradingStateStore(EventLog(eng))
    eng.dispose()


def engine(store, **breakers):
    return RiskEngine(RiskConfig.from_dict({"breakers": breakers}), store, clock=ReplayClock(DAY0),
                      account_id="s1", session_id="s1")


def ctx(now, pos=0, md_ts=None):
    return RiskContext("s1", {BTC.id: D(pos)}, {BTC.id: D(100)}, D(10_000), {"USDT": D(10**6), "BTC": D(100)},
                       [], INSTS, now, {BTC.id: now if md_ts is None else md_ts})


def buy(qty=1):
    return Order(f"s1-{next(_seq):08d}", OrderIntent(BTC.id, "buy", D(qty)), DAY0)


def sell(qty=1):
    return Order(f"s1-{next(_seq):08d}", OrderIntent(BTC.id, "sell", D(qty)), DAY0)


def trips_logged(store):
    return [json.loads(r.payload) for r in store.log.read(kinds=("risk.breaker_trip",))]


# -------------------------------------------------------------------------------- daily loss
def test_daily_loss_trips_at_the_limit_and_clears_next_utc_day(store):
    e = engine(store, daily_loss_limit=500)
    e.on_equity(DAY0 - 1000, D(10_000))  # yesterday's last equity starts today's count
    assert e.on_equity(DAY0 + 1000, D("9500.01")) is None  # 499.99: not yet
    trip = e.on_equity(DAY0 + 2000, D(9500))
    assert trip is not None and trip.breaker == "daily_loss" and trip.until_ts == DAY0 + DAY_MS
    d = e.check(buy(), ctx(DAY0 + 3000))
    assert not d.approved and d.check == "daily_loss"
    assert d.reason == (f"daily_loss: halted until {DAY0 + DAY_MS}: daily loss 500.00 USDT from 10000.00 "
                        "(limit 500 USDT)")
    assert not e.check(sell(), ctx(DAY0 + 3000, pos=5)).approved  # halt: even reductions wait
    assert e.check(buy(), ctx(DAY0 + DAY_MS)).approved  # a new UTC day
    assert trips_logged(store) == [{"breaker": "daily_loss", "account_id": "s1", "instrument_id": "",
                                    "action": "halted", "reason": trip.reason, "ts": DAY0 + 2000,
                                    "until_ts": DAY0 + DAY_MS}]
    # Only one trip per episode: further losses the same day do not re-record.
    e.on_equity(DAY0 + 4000, D(9000))
    assert len(trips_logged(store)) == 1


def test_daily_loss_pct_with_reduce_action(store):
    e = engine(store, daily_loss_pct=2, daily_loss_action="reduce", daily_loss_cooldown_ms=60_000)
    e.on_equity(DAY0 + 1, D(10_000))  # first equity of the day
    assert e.on_equity(DAY0 + 2, D(9801)) is None  # 1.99 %
    assert e.on_equity(DAY0 + 3, D(9800)) is not None  # 2 %
    d = e.check(buy(), ctx(DAY0 + 10))
    assert not d.approved and d.reason.startswith(f"daily_loss: reduce-only until {DAY0 + 3 + 60_000}: ")
    assert e.check(sell(), ctx(DAY0 + 10, pos=5)).approved  # reducing passes
    assert e.check(buy(), ctx(DAY0 + 3 + 60_000)).approved  # cooled down


# ---------------------------------------------------------------------------------- drawdown
def test_drawdown_with_cooldown_reduces_then_resets_the_peak(store):
    e = engine(store, max_drawdown_pct=10, drawdown_action="reduce", drawdown_cooldown_ms=3_600_000)
    for k, eq in enumerate([10_000, 12_000, 11_000, 10_801]):  # peak 12000; 10.0 % is 10800
        assert e.on_equity(DAY0 + k, D(eq)) is None
    trip = e.on_equity(DAY0 + 10, D(10_800))
    assert trip is not None and trip.action is TradingState.REDUCING
    assert trip.reason == "drawdown 10.00% from peak 12000.00 (limit 10%)"
    assert not e.check(buy(), ctx(DAY0 + 20)).approved
    assert e.check(sell(), ctx(DAY0 + 20, pos=1)).approved
    assert e.check(buy(), ctx(DAY0 + 10 + 3_600_000)).approved
    # After the cool-down the peak restarts at the current equity: 10 % below 10,700 trips again.
    assert e.on_equity(DAY0 + 10 + 3_600_000, D(10_700)) is None
    assert e.on_equity(DAY0 + 11 + 3_600_000, D(9_631)) is None
    assert e.on_equity(DAY0 + 12 + 3_600_000, D(9_630)) is not None


def test_drawdown_without_cooldown_halts_until_rearmed_and_survives_restart(store):
    e = engine(store, max_drawdown_pct=5)
    e.on_equity(DAY0, D(10_000))
    assert e.on_equity(DAY0 + 1, D(9_500)) is not None
    assert store.get("account:s1").state is TradingState.HALTED  # persisted
    e2 = engine(store, max_drawdown_pct=5)  # a restarted session, same database
    d = e2.check(buy(), ctx(DAY0 + 10 * DAY_MS))
    assert not d.approved and d.check == "trading_state"
    assert d.reason.startswith("trading_state: halted (account:s1) by risk-engine: breaker drawdown: drawdown 5.00%")
    ks = KillSwitch(store)
    with pytest.raises(PermissionDenied):
        ks.rearm(session_id="s1", actor="tom", role="trader")
    ks.rearm(session_id="s1", actor="rita", role="risk_manager", reason="reviewed")
    e3 = engine(store, max_drawdown_pct=5)
    assert e3.check(buy(), ctx(DAY0 + 10 * DAY_MS)).approved
    kinds = [r.kind for r in store.log.read()]
    assert kinds == ["risk.breaker_trip", "risk.state_change", "risk.rearm"]


# ------------------------------------------------------------------------ consecutive losses
def test_consecutive_losses(store):
    e = engine(store, max_consecutive_losses=3, consecutive_loss_cooldown_ms=1000)
    assert e.on_fill(DAY0, D(-10), D(1)) is None
    assert e.on_fill(DAY0 + 1, D(-5), D(1)) is None
    assert e.on_fill(DAY0 + 2, D(0), D(1)) is None  # an opening fill: neither win nor loss
    assert e.on_fill(DAY0 + 3, D("1.5"), D(1)) is None  # a net win (0.5) resets the run
    assert e.on_fill(DAY0 + 4, D(-1), D(0)) is None
    assert e.on_fill(DAY0 + 5, D("0.5"), D(1)) is None  # gross win, net loss: counts as a loss
    trip = e.on_fill(DAY0 + 6, D(-1), D(0))
    assert trip is not None and trip.reason == "3 losing trades in a row (limit 3)"
    d = e.check(buy(), ctx(DAY0 + 7))
    assert d.reason == f"consecutive_losses: halted until {DAY0 + 1006}: 3 losing trades in a row (limit 3)"
    assert e.check(buy(), ctx(DAY0 + 1006)).approved


# -------------------------------------------------------------------------------- volatility
def test_rolling_variance_matches_numpy():
    rng = np.random.default_rng(1)
    xs = rng.normal(0, 0.01, 25_000)
    rv = RollingVar(50)
    for k, x in enumerate(xs):
        rv.push(float(x))
        if k >= 1 and k % 997 == 0:
            window = xs[max(0, k - 49): k + 1]
            assert rv.variance() == pytest.approx(np.var(window, ddof=1), rel=1e-9)


def test_volatility_breaker_on_real_btc_bars(store, btc_1h):
    """Binance BTC/USDT 1h: the trip bar matches a numpy computation of the same ratio."""
    close = btc_1h["close"].to_numpy(dtype=np.float64)
    ts = btc_1h["timestamp_ms"].to_numpy()
    short, base = 12, 120
    r = np.log(close[1:] / close[:-1])
    ratios = np.full(r.size, np.nan)
    for k in range(base - 1, r.size):
        ratios[k] = np.std(r[k - short + 1: k + 1], ddof=1) / np.std(r[k - base + 1: k + 1], ddof=1)
    threshold = float(np.round(np.nanquantile(ratios, 0.98), 3))
    first = int(np.argmax(ratios > threshold))  # the first return index over the threshold
    assert ratios[first] > threshold and np.all(ratios[:first][~np.isnan(ratios[:first])] <= threshold)

    e = engine(store, vol_spike_ratio=threshold, vol_window=short, vol_baseline_window=base,
               vol_cooldown_ms=6 * 3_600_000)
    trip_at = None
    for k in range(close.size):
        t = e.on_bar(BTC.id, int(ts[k]), float(close[k]))
        if t is not None:
            trip_at = k
            break
    assert trip_at == first + 1  # return index k is the move into bar k + 1
    trip = e.trips[0]
    assert trip.breaker == "volatility" and trip.instrument_id == BTC.id and trip.action is TradingState.REDUCING
    assert f"is {ratios[first]:.2f}x the baseline" in trip.reason
    now = int(ts[trip_at]) + 1
    d = e.check(buy(), ctx(now))
    assert not d.approved and d.check == "volatility"
    assert d.reason.startswith(f"volatility: reduce-only until {int(ts[trip_at]) + 6 * 3_600_000}: realised vol")
    assert e.check(sell(), ctx(now, pos=2)).approved  # exits still allowed
    assert e.check(buy(), ctx(int(ts[trip_at]) + 6 * 3_600_000)).approved
    assert trips_logged(store)[0]["instrument_id"] == BTC.id


# -------------------------------------------------------------------------------- stale data
def test_stale_data_blocks_and_cools_down(store):
    e = engine(store, stale_after_ms=5000, stale_cooldown_ms=2000)
    t = DAY0 + 100_000
    assert e.check(buy(), ctx(t, md_ts=t - 5000)).approved  # exactly at the limit: fresh enough
    d = e.check(buy(), ctx(t, md_ts=t - 5001))
    assert not d.approved and d.check == "stale_data"
    assert d.reason == f"stale_data: last market data for {BTC.id} 5001 ms ago > 5000 ms"
    assert not e.check(sell(), ctx(t, pos=5, md_ts=t - 9000)).approved  # no orders at all on a stale feed
    d = e.check(buy(), ctx(t + 10, md_ts=t + 5))
    assert d.reason == f"stale_data: {BTC.id} feed back for 0 ms < cool-down 2000 ms"
    assert not e.check(buy(), ctx(t + 2009, md_ts=t + 2000)).approved
    assert e.check(buy(), ctx(t + 2010, md_ts=t + 2000)).approved
    d = e.check(buy(), RiskContext("s1", {}, {BTC.id: D(100)}, D(1), {"USDT": D(10**6)}, [], INSTS, t + 3000))
    assert d.reason == f"stale_data: no market data for {BTC.id}"
    logged = trips_logged(store)
    assert [x["breaker"] for x in logged] == ["stale_data", "stale_data"]  # one per episode


# ---------------------------------------------------------------------------- restart / rearm
def test_a_cooling_down_trip_is_restored_after_restart_and_ended_by_rearm(store):
    e = engine(store, max_consecutive_losses=1, consecutive_loss_cooldown_ms=3_600_000)
    e.on_fill(DAY0, D(-1), D(0))
    e2 = engine(store, max_consecutive_losses=1, consecutive_loss_cooldown_ms=3_600_000)
    d = e2.check(buy(), ctx(DAY0 + 1000))
    assert not d.approved and d.check == "consecutive_losses"
    assert [t.breaker for t in e2.active_trips(DAY0 + 1000)] == ["consecutive_losses"]
    KillSwitch(store).rearm(session_id="s1", actor="rita", role="admin")
    store._read_at = -(1 << 62)  # as if the poll interval had passed
    assert e2.check(buy(), ctx(DAY0 + 1000)).approved  # a re-arm ends the trip (new epoch)
    e3 = engine(store, max_consecutive_losses=1, consecutive_loss_cooldown_ms=3_600_000)
    assert e3.check(buy(), ctx(DAY0 + 1000)).approved


def test_hooks_do_nothing_when_breakers_are_off(store):
    e = engine(store)
    for k in range(1000):
        assert e.on_bar(BTC.id, DAY0 + k, 100.0 + math.sin(k) * 50) is None
        assert e.on_equity(DAY0 + k, D(10_000 - 9 * k)) is None
        assert e.on_fill(DAY0 + k, D(-1), D(0)) is None
    assert e.trips == [] and trips_logged(store) == []
