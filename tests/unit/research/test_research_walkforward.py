"""Walk-forward: windows, in-sample choice, out-of-sample evaluation checked independently."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.research import backtest, sweep, walk_forward
from lyra.strategy import SmaCross

pytestmark = pytest.mark.numba  # vectorbt's compiled simulators (warm: scripts/warm_numba.py)

GRID = {"fast": [5, 10], "slow": [20, 40]}


@pytest.fixture(scope="module")
def wf(coinbase_1h: pd.DataFrame):
    return walk_forward(coinbase_1h.iloc[:6000], SmaCross, GRID, train_bars=2000, test_bars=1000)


def test_folds_and_windows(wf, coinbase_1h: pd.DataFrame) -> None:
    f = wf.folds
    assert len(f) == 4
    idx = coinbase_1h.index
    assert f["train_start"].tolist() == [idx[0], idx[1000], idx[2000], idx[3000]]
    assert f["test_start"].tolist() == [idx[2000], idx[3000], idx[4000], idx[5000]]
    assert (f["test_start"] > f["train_end"]).all()
    assert len(wf.oos_equity) == 4000 and wf.oos_equity.index[0] == idx[2000]


def test_in_sample_choice_is_the_sweep_winner(wf, coinbase_1h: pd.DataFrame) -> None:
    for _, row in wf.folds.iterrows():
        k = int(row["fold"])
        sw = sweep(coinbase_1h.iloc[k * 1000:k * 1000 + 2000], SmaCross, GRID, progress=False)
        assert sw.best() == {"fast": row["fast"], "slow": row["slow"]}
        assert row["is_sharpe"] == sw.ranked().iloc[0]["sharpe"]


def test_out_of_sample_equals_masked_full_backtest(wf, coinbase_1h: pd.DataFrame) -> None:
    """Fold 0 OOS = a backtest on train+test whose entries before the test window are removed and
    which starts flat at the test start: equivalently, the equity relative to the test start."""
    row = wf.folds.iloc[0]
    df = coinbase_1h.iloc[:3000]
    s = SmaCross(fast=int(row["fast"]), slow=int(row["slow"]))
    sig = s.signals(df)
    import vectorbt as vbt

    en = np.r_[False, sig.entries[:-1]][2000:]
    ex = np.r_[False, sig.exits[:-1]][2000:]
    pf = vbt.Portfolio.from_signals(df["close"].to_numpy()[2000:], en, ex, price=df["open"].to_numpy()[2000:],
                                    size=np.inf, fees=0.001, init_cash=10_000.0, direction="longonly")
    np.testing.assert_allclose(wf.oos_equity.iloc[:1000].to_numpy(), pf.value().to_numpy(), rtol=1e-12)
    assert row["oos_total_return"] == pytest.approx(pf.total_return(), rel=1e-10)
    # Folds chain: fold 1 starts with fold 0's final equity.
    assert wf.oos_metrics["final_equity"] == pytest.approx(wf.oos_equity.iloc[-1])
    assert backtest(s, df).n_trades >= row["oos_n_trades"]


def test_plot_and_bad_windows(wf, coinbase_1h: pd.DataFrame) -> None:
    p = wf.plot()
    assert len(p) == 2
    with pytest.raises(ValidationError) as err:
        walk_forward(coinbase_1h.iloc[:100], SmaCross, GRID, train_bars=80, test_bars=40)
    assert err.value.field == "train_bars"
    with pytest.raises(ValidationError):
        walk_forward(coinbase_1h.iloc[:100], SmaCross, GRID, train_bars=50, test_bars=1)
