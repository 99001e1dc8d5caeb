"""Real-data fixtures for the risk tests (files under tests/fixtures/risk, see its README)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "risk"


def load_ohlcv(name: str) -> pd.DataFrame:
    return pd.read_csv(FIXTURES / f"{name}.csv.gz")


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """Binance BTC/USDT 1h, 500 bars from 2018-04-07 (OctoBot test data, MIT)."""
    return load_ohlcv("binance_BTC-USDT_1h_2018-04")


@pytest.fixture(scope="session")
def daily_returns() -> np.ndarray:
    """Simple daily returns of Bitstamp BTC, ETH, LTC (USD) on their common dates, T×3."""
    closes = []
    for sym in ("BTC", "ETH", "LTC"):
        df = load_ohlcv(f"bitstamp_{sym}-USD_1d")
        closes.append(df.set_index("timestamp_ms")["close"].rename(sym))
    px = pd.concat(closes, axis=1, join="inner").sort_index()
    return px.pct_change().iloc[1:].to_numpy(dtype=np.float64)


@pytest.fixture(scope="session")
def btc_daily_returns() -> np.ndarray:
    """Simple daily returns of Bitstamp BTC/USD, 2014-11 to 2020-01 (1,864 values)."""
    close = load_ohlcv("bitstamp_BTC-USD_1d")["close"].to_numpy(dtype=np.float64)
    return close[1:] / close[:-1] - 1.0
