"""Acceptance: an SMA-crossover backtest on shipped real data, pinned to the cent and equal to a
direct vectorbt call built independently (pandas rolling means, no Lyra code)."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lyra.execution.costs import CostModel
from lyra.research import backtest, load_ohlcv
from lyra.strategy import SmaCross

pytestmark = pytest.mark.numba  # vectorbt's compiled simulators (warm: scripts/warm_numba.py)

DATA = Path(__file__).resolve().parents[1] / "fixtures" / "research" / "coinbase_BTC-USD_1h.csv.gz"
COST = CostModel(maker_fee=Decimal("0.001"), taker_fee=Decimal("0.001"), slippage_bps=Decimal("5"))

# Pinned on 2026-11-27 (vectorbt 1.2.0, numpy 2.4, pandas 3.1). A change here is a behaviour change.
PINNED_TRADES = 387
PINNED_FINAL_EQUITY = 32473.13


@pytest.fixture(scope="module")
def data() -> pd.DataFrame:
    return load_ohlcv(DATA)


@pytest.fixture(scope="module")
def result(data: pd.DataFrame):
    return backtest(SmaCross(fast=10, slow=30), data, cost=COST, init_cash=10_000.0, fill="next_open")


def test_pinned_trade_count_and_final_equity(result) -> None:
    assert result.n_trades == PINNED_TRADES
    assert round(result.final_equity, 2) == PINNED_FINAL_EQUITY
    assert len(result.equity) == 20111


def test_equal_to_a_direct_vectorbt_call(result, data: pd.DataFrame) -> None:
    import vectorbt as vbt

    close = pd.Series(data["close"].to_numpy(), index=data.index.tz_localize(None))
    fast, slow = close.rolling(10).mean(), close.rolling(30).mean()
    above = fast > slow
    entries = above & ~above.shift(1, fill_value=True) & slow.shift(1).notna()
    below = fast < slow
    exits = below & ~below.shift(1, fill_value=True) & slow.shift(1).notna()
    direct = vbt.Portfolio.from_signals(
        close,
        entries.shift(1, fill_value=False),  # signal at t's close, fill at t+1's open
        exits.shift(1, fill_value=False),
        price=data["open"].to_numpy(),
        size=np.inf, fees=0.001, slippage=0.0005, init_cash=10_000.0, freq="1h", direction="longonly",
    )
    cmp = result.compare(direct)
    assert cmp.n_trades == (PINNED_TRADES, PINNED_TRADES)
    assert round(cmp.final_equity[1], 2) == PINNED_FINAL_EQUITY
    assert cmp.equal and cmp.max_abs_equity_diff < 1e-6
    np.testing.assert_array_equal(result.portfolio.orders.records_arr["idx"], direct.orders.records_arr["idx"])
