"""Real-data fixtures for the research tests (tests/fixtures/research, see its README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from lyra.research import load_ohlcv

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "research"


@pytest.fixture(scope="session")
def btc_1h() -> pd.DataFrame:
    """Binance BTC/USDT 1h, 500 bars 2018-04-07 -> 04-28 (OctoBot test data, MIT)."""
    return load_ohlcv(FIXTURES / "binance_BTC-USDT_1h_2018-04.csv.gz")


@pytest.fixture(scope="session")
def eth_1h() -> pd.DataFrame:
    """Binance ETH/USDT 1h, 500 bars with three maintenance gaps (OctoBot test data, Apache-2.0)."""
    return load_ohlcv(FIXTURES / "binance_ETH-USDT_1h_2018-07.csv.gz")


@pytest.fixture(scope="session")
def coinbase_1h() -> pd.DataFrame:
    """Coinbase BTC/USD 1h, 20,111 bars 2017-07 -> 2019-10."""
    return load_ohlcv(FIXTURES / "coinbase_BTC-USD_1h.csv.gz")


@pytest.fixture(scope="session")
def daily_pair() -> dict[str, pd.DataFrame]:
    """Binance BTC/USDT and ETH/USDT daily; they share 2017-08-17 -> 2018-04-28."""
    return {
        "BTC": load_ohlcv(FIXTURES / "binance_BTC-USDT_1d_2018-04.csv.gz"),
        "ETH": load_ohlcv(FIXTURES / "binance_ETH-USDT_1d_2018-07.csv.gz"),
    }
