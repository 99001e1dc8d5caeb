"""Fixtures for the dashboard tests: a LYRA_HOME with a finished paper session on the shipped
Coinbase BTC/USD hourly data (SMA 10/30, July to December 2017: 124 orders and fills)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lyra.bootstrap import open_engine
from lyra.readside import ReadModel
from lyra.testing.serving import dashboard_home

REPO = Path(__file__).resolve().parents[3]
OHLCV = REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"


@pytest.fixture(scope="module")
def dash(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """(settings, ReadModel) over a home with the finished session ``dash``."""
    settings = dashboard_home(tmp_path_factory.mktemp("dash") / "home", OHLCV)
    _s, engine = open_engine(settings)
    yield settings, ReadModel(engine, settings.market_dir)
    engine.dispose()
