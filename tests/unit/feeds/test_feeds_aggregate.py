"""trades_to_bars against the exchange's own candles (golden test) and a hand-worked case."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lyra.feeds import trades_to_bars

FIX = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.mark.parametrize(("timeframe", "rows"), [("1m", 2469), ("5m", 706)])
def test_xrp_eth_candles_rebuilt_exactly_from_trades(timeframe: str, rows: int) -> None:
    trades = pd.read_csv(FIX / "trades" / "binance_XRP-ETH_trades.csv.gz",
                         dtype={"side": str, "trade_id": str})
    ref = pd.read_csv(FIX / "ohlcv" / f"binance_XRP-ETH_{timeframe}.csv.gz")
    bars = trades_to_bars(trades, timeframe)
    assert len(bars) == len(ref) == rows
    np.testing.assert_array_equal(bars["ts"].to_numpy(), ref["timestamp_ms"].to_numpy())
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(bars[col].to_numpy(), ref[col].to_numpy(), err_msg=col)


def test_hand_worked_example_and_fill_empty() -> None:
    m = 60_000
    t0 = 1_600_000_020_000 - 1_600_000_020_000 % m
    trades = pd.DataFrame({
        "ts": [t0 + 1, t0 + 1, t0 + 59_999, t0 + 3 * m + 5, t0 + 30_000],  # last is late
        "price": [10.0, 12.0, 11.0, 9.0, 8.0],
        "size": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    bars = trades_to_bars(trades, "1m")
    # sorted stably: 10, 12, 8 (t0+30s), 11 in the first minute; 9 in the fourth
    assert bars.to_dict("list") == {
        "ts": [t0, t0 + 3 * m], "open": [10.0, 9.0], "high": [12.0, 9.0], "low": [8.0, 9.0],
        "close": [11.0, 9.0], "volume": [11.0, 4.0]}
    full = trades_to_bars(trades, "1m", fill_empty=True)
    assert list(full["ts"]) == [t0 + i * m for i in range(4)]
    assert list(full["close"]) == [11.0, 11.0, 11.0, 9.0]
    assert list(full["volume"]) == [11.0, 0.0, 0.0, 4.0]
    idx = trades_to_bars(trades, "1m", index=True)
    assert str(idx.index.tz) == "UTC" and idx.index[0] == pd.Timestamp(t0, unit="ms", tz="UTC")


def test_empty_trades_give_no_bars() -> None:
    empty = pd.DataFrame({"ts": np.empty(0, np.int64), "price": [], "size": []})
    assert trades_to_bars(empty, "5m").empty
