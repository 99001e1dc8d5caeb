"""One curve, one set of figures: research, the session read side and lyra.analytics agree."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import lyra.analytics as an
from lyra.feeds import MarketStore, import_file
from lyra.readside import ReadModel, kpis, trade_pnls
from lyra.readside.analytics import session_metrics
from lyra.research import backtest, load_ohlcv
from lyra.research import metrics as research_metrics
from lyra.sample_data import sample_ohlcv_dir
from lyra.session.factory import open_session
from lyra.store import create_engine_for, upgrade
from lyra.strategy import SmaCross
from lyra.testing.sessions import demo_config

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "research"
SAME = ("total_return", "annualized_return", "annualized_volatility", "sharpe", "sortino", "calmar",
        "max_drawdown", "max_drawdown_duration", "n_trades", "win_rate", "profit_factor", "expectancy",
        "exposure", "turnover", "fees_paid", "final_equity")


def _same(a: object, b: object) -> bool:
    return (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b)) or a == b


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory):
    market_dir = tmp_path_factory.mktemp("market")
    import_file(sample_ohlcv_dir() / "coinbase_BTC-USD_1h.csv.gz", store=MarketStore(market_dir))
    engine = create_engine_for("sqlite://")
    upgrade(engine)
    open_session(demo_config(end="2017-09-01"), engine=engine, market_dir=market_dir).run()
    rm = ReadModel(engine, market_dir)
    yield rm.equity_curve("demo"), rm.fills("demo")
    engine.dispose()


@pytest.mark.slow
def test_a_session_curve_gives_identical_figures_everywhere(session) -> None:
    curve, fills = session
    v, init, ts = an.session_curve(curve)
    ppy = an.periods_per_year(ts)
    trips = an.round_trips(an.fills_from_frame(fills))
    closed = [float(t.pnl) for t in trips if t.closed]
    kw = {
        "trade_pnl": closed, "n_open_trades": len(trips) - len(closed),
        "position": curve["positions"].map(lambda p: float(bool(p))).to_numpy()[1:],
        "traded_notional": [float(f.quantity * f.price) for f in an.fills_from_frame(fills)],
        "fees": [float(sum(t.fees for t in trips))],
    }
    direct = an.compute_metrics(v, init, ppy, **kw)
    research = research_metrics.compute_metrics(v, init, ppy, **kw)
    readside = session_metrics(curve, fills)
    assert all(_same(direct[k], research[k]) and _same(direct[k], readside[k]) for k in SAME), (
        {k: (direct[k], research[k], readside[k]) for k in SAME})
    k = kpis(curve, fills)
    assert (k.sharpe, k.max_drawdown, k.win_rate, k.trades, k.fees) == (
        direct["sharpe"], direct["max_drawdown"], direct["win_rate"], direct["n_trades"], direct["fees_paid"])
    # Exact trade count: every closed round trip ends flat in Decimal.
    assert k.trades == len(trips) and all(t.closed for t in trips[:-1])


@pytest.mark.numba
@pytest.mark.slow
def test_a_research_curve_read_as_a_session_gives_research_figures() -> None:
    data = load_ohlcv(FIXTURES / "binance_BTC-USDT_1h_2018-04.csv.gz")
    res = backtest(SmaCross(fast=5, slow=20), data)
    eq = res.equity
    ts = (pd.DatetimeIndex(eq.index).as_unit("ms").asi8).astype(np.int64)
    curve = pd.DataFrame({"ts": ts, "time": eq.index, "equity": eq.to_numpy()})
    empty = pd.DataFrame(columns=["session_id", "instrument_id", "side", "quantity", "price", "fee"])
    k = kpis(curve, empty, start_equity=res.init_cash)
    m = res.metrics
    assert k.periods_per_year == an.ann_factor("1h") == 8760.0
    assert k.sharpe == m["sharpe"]
    assert k.max_drawdown == m["max_drawdown"] > 0
    assert k.sortino == m["sortino"] and k.calmar == m["calmar"]
    assert k.annualized_return == m["annualized_return"]
    assert k.annualized_volatility == m["annualized_volatility"]


def test_a_snapshot_written_twice_counts_once() -> None:
    ts = [0, 3_600_000, 7_200_000, 10_800_000]
    curve = pd.DataFrame({"ts": ts, "time": pd.to_datetime(ts, unit="ms"), "equity": [100.0, 103.0, 99.0, 104.0]})
    twice = pd.concat([curve, curve.tail(1)], ignore_index=True)  # the final snapshot, logged twice
    empty = pd.DataFrame(columns=["session_id", "instrument_id", "side", "quantity", "price", "fee"])
    once, dup = session_metrics(curve, empty), session_metrics(twice, empty)
    assert all(_same(once[k], dup[k]) for k in once)
    assert once["sharpe"] == pytest.approx(an.sharpe_ratio([0.03, 99 / 103 - 1, 104 / 99 - 1], 8760.0), rel=1e-12)


@pytest.mark.numba
@pytest.mark.slow
def test_the_walk_forward_summary_counts_the_folds_trades_and_fees() -> None:
    from lyra.research import walk_forward

    data = load_ohlcv(FIXTURES / "binance_BTC-USDT_1h_2018-04.csv.gz")
    wf = walk_forward(data, SmaCross, {"fast": [3, 5], "slow": [10, 20]}, train_bars=200, test_bars=100)
    assert len(wf.folds) == 3
    assert wf.oos_metrics["n_trades"] == wf.folds["oos_n_trades"].sum() > 0
    assert wf.oos_metrics["fees_paid"] > 0 and wf.oos_metrics["turnover"] > 0


@pytest.mark.slow
def test_a_partially_filled_session_counts_round_trips_exactly(tmp_path: Path) -> None:
    from decimal import Decimal

    market_dir = tmp_path / "market"
    import_file(sample_ohlcv_dir() / "coinbase_BTC-USD_1h.csv.gz", store=MarketStore(market_dir))
    engine = create_engine_for("sqlite://")
    try:
        upgrade(engine)
        # 33.3333333 BTC an order: more than the 10 % of an hour's volume the paper broker
        # fills per bar, so orders fill in parts over several bars.
        cfg = demo_config(end="2017-09-01", quantity=Decimal("33.3333333"), balances={"USD": Decimal(10**7)})
        open_session(cfg, engine=engine, market_dir=market_dir).run()
        rm = ReadModel(engine, market_dir)
        curve, fills = rm.equity_curve("demo"), rm.fills("demo")
    finally:
        engine.dispose()
    assert fills.groupby("client_order_id").size().max() > 1  # partial fills happened
    # Independent count: the exact position returns to zero; the open one counts too.
    pos, closed = Decimal(0), 0
    for side, q in zip(fills["side"], fills["quantity_exact"], strict=True):
        pos += q if side == "buy" else -q
        closed += pos == 0
    expected = closed + (pos != 0)
    k = kpis(curve, fills)
    assert k.trades == expected == session_metrics(curve, fills)["n_trades"]
    assert closed > 5 and k.trades < len(trade_pnls(fills))  # not one trade per closing fill
