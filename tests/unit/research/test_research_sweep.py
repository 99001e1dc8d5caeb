"""Sweeps: the numba engine equals vectorbt, grids are validated, ranking, random search, Dask."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.research import backtest, expand_grid, sweep
from lyra.research.sweep import SweepResult
from lyra.strategy import Bollinger, RsiReversion, SmaCross

pytestmark = pytest.mark.numba  # vectorbt's compiled simulators (warm: scripts/warm_numba.py)

GRID = {"fast": [5, 10, 20], "slow": [20, 30, 50]}


@pytest.fixture(scope="module")
def numba_sweep(coinbase_1h: pd.DataFrame) -> SweepResult:
    return sweep(coinbase_1h, SmaCross, GRID, progress=False)


@pytest.fixture(scope="module")
def vbt_sweep(coinbase_1h: pd.DataFrame) -> SweepResult:
    return sweep(coinbase_1h, SmaCross, GRID, engine="vectorbt", chunk_size=4, progress=False)


def test_numba_engine_equals_vectorbt(numba_sweep: SweepResult, vbt_sweep: SweepResult) -> None:
    a, b = numba_sweep.table, vbt_sweep.table
    assert numba_sweep.engine == "numba-cross" and vbt_sweep.engine == "vectorbt"
    assert len(a) == 8 and numba_sweep.n_skipped == 1  # (20, 20) is dropped
    pd.testing.assert_frame_equal(a[["fast", "slow", "n_trades", "max_drawdown_duration"]],
                                  b[["fast", "slow", "n_trades", "max_drawdown_duration"]])
    np.testing.assert_allclose(a["final_equity"], b["final_equity"], rtol=1e-12)
    for col in ("sharpe", "sortino", "calmar", "annualized_return", "annualized_volatility", "max_drawdown",
                "win_rate", "profit_factor", "expectancy", "exposure", "turnover", "fees_paid"):
        np.testing.assert_allclose(a[col], b[col], rtol=1e-9, err_msg=col)


def test_sweep_row_equals_single_backtest(numba_sweep: SweepResult, coinbase_1h: pd.DataFrame) -> None:
    row = numba_sweep.table.query("fast == 10 and slow == 30").iloc[0]
    res = backtest(SmaCross(fast=10, slow=30), coinbase_1h)
    assert row["n_trades"] == res.n_trades
    assert row["final_equity"] == pytest.approx(res.final_equity, rel=1e-12)
    assert row["sharpe"] == pytest.approx(res.metrics["sharpe"], rel=1e-10)


def test_ranking(numba_sweep: SweepResult) -> None:
    r = numba_sweep.ranked()
    assert r["sharpe"].is_monotonic_decreasing
    assert numba_sweep.best() == {k: r.iloc[0][k] for k in ("fast", "slow")}
    dd = numba_sweep.ranked("max_drawdown")
    assert dd["max_drawdown"].is_monotonic_increasing  # lower is better
    with pytest.raises(ValidationError):
        numba_sweep.ranked("alpha")
    hm = numba_sweep.heatmap("fast", "slow")
    assert hm.data.shape[0] == 8 and set(hm.data.columns) == {"fast", "slow", "sharpe"}


@pytest.mark.parametrize(("cls", "grid"), [
    (RsiReversion, {"window": [7, 14], "lower": [20, 30], "upper": [70]}),
    (Bollinger, {"window": [20, 40], "k": [1.5, 2.0]}),
    (SmaCross, {"fast": [5, 10], "slow": [30], "ma": ["ema"]}),
])
def test_generic_engine_equals_vectorbt(cls, grid, coinbase_1h: pd.DataFrame) -> None:
    df = coinbase_1h.iloc[:6000]
    a = sweep(df, cls, grid, progress=False, fill="close")
    b = sweep(df, cls, grid, engine="vectorbt", progress=False, fill="close")
    assert (a.table["n_trades"] == b.table["n_trades"]).all() and a.table["n_trades"].min() > 3
    np.testing.assert_allclose(a.table["final_equity"], b.table["final_equity"], rtol=1e-12)
    np.testing.assert_allclose(a.table["sharpe"], b.table["sharpe"], rtol=1e-9)


def test_short_grid_goes_through_vectorbt(coinbase_1h: pd.DataFrame) -> None:
    df = coinbase_1h.iloc[:3000]
    res = sweep(df, SmaCross, {"fast": [10], "slow": [30]}, fixed={"allow_short": True}, progress=False)
    single = backtest(SmaCross(fast=10, slow=30, allow_short=True), df)
    assert res.engine == "vectorbt"
    assert res.table["final_equity"].iloc[0] == pytest.approx(single.final_equity, rel=1e-12)
    with pytest.raises(ValidationError):
        sweep(df, SmaCross, {"fast": [10], "slow": [30]}, fixed={"allow_short": True}, engine="numba")


def test_random_search_is_a_repeatable_subset(numba_sweep: SweepResult, coinbase_1h: pd.DataFrame) -> None:
    a = sweep(coinbase_1h, SmaCross, GRID, method="random", n_iter=4, seed=3, progress=False)
    b = sweep(coinbase_1h, SmaCross, GRID, method="random", n_iter=4, seed=3, progress=False)
    pd.testing.assert_frame_equal(a.table, b.table)
    assert len(a.table) == 4
    full = numba_sweep.table.set_index(["fast", "slow"])
    for _, row in a.table.iterrows():
        assert row["final_equity"] == full.loc[(row["fast"], row["slow"]), "final_equity"]
    with pytest.raises(ValidationError) as err:
        sweep(coinbase_1h, SmaCross, GRID, method="random", progress=False)
    assert err.value.field == "n_iter"


@pytest.mark.parametrize(("grid", "field"), [
    ({}, "grid"),
    ({"fast": [], "slow": [30]}, "grid.fast"),
    ({"fast": [-5, 10], "slow": [30]}, "grid.fast"),
    ({"fast": [50], "slow": [20, 30]}, "grid.fast"),
    ({"fast": [5], "slow": [20], "fsat": [1]}, "grid.fsat"),
])
def test_invalid_grids_are_named(grid, field) -> None:
    with pytest.raises(ValidationError) as err:
        expand_grid(SmaCross, grid)
    assert err.value.field == field


def test_grid_of_the_benchmark_has_1590_combinations() -> None:
    combos, skipped = expand_grid(SmaCross, {"fast": range(5, 51), "slow": range(20, 201, 5)})
    assert len(combos) == 1590 and skipped == 46 * 37 - 1590
    assert all(c["fast"] < c["slow"] for c in combos)


def test_nan_in_data_stops_the_sweep(coinbase_1h: pd.DataFrame) -> None:
    df = coinbase_1h.iloc[:500].copy()
    df.iloc[250, df.columns.get_loc("open")] = np.nan
    with pytest.raises(ValidationError) as err:
        sweep(df, SmaCross, GRID, progress=False)
    assert str(df.index[250]) in str(err.value)


def test_dask_two_workers_identical(numba_sweep: SweepResult, coinbase_1h: pd.DataFrame) -> None:
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        client.wait_for_workers(2, timeout=120)  # both up before the work is spread (a busy machine)
        assert len(cluster.workers) == 2
        res = sweep(coinbase_1h, SmaCross, GRID, client=client, chunk_size=2, progress=False)
        generic = sweep(coinbase_1h.iloc[:4000], RsiReversion, {"window": [7, 14], "lower": [20, 30]},
                        client=client, chunk_size=1, progress=False)
        by_address = sweep(coinbase_1h, SmaCross, GRID, client=cluster.scheduler_address, progress=False)
    pd.testing.assert_frame_equal(res.table, numba_sweep.table, check_exact=True)
    pd.testing.assert_frame_equal(by_address.table, numba_sweep.table, check_exact=True)
    assert res.ranked().index.tolist() == numba_sweep.ranked().index.tolist()
    assert res.meta["chunks"] == 4
    single = sweep(coinbase_1h.iloc[:4000], RsiReversion, {"window": [7, 14], "lower": [20, 30]}, progress=False)
    pd.testing.assert_frame_equal(generic.table, single.table, check_exact=True)
