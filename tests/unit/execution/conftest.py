"""Real-data fixtures for the execution tests (files under tests/fixtures/execution)."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pytest

from lyra.core import AggressorSide, OrderBookSnapshot, Quote, Trade
from lyra.execution.testkit import book

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "execution"
BTC = "binance:BTC/USDT"


@pytest.fixture
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def btc_quotes() -> list[Quote]:
    """451 Binance BTC/USDT best bid/offer quotes, 2021-01-08 00:00:01-00:00:46."""
    with gzip.open(FIXTURES / "binance_BTC-USDT_bbo.csv.gz", "rt") as f:
        return [Quote(BTC, int(r["timestamp_ms"]), float(r["bid_price"]), float(r["bid_size"]),
                      float(r["ask_price"]), float(r["ask_size"])) for r in csv.DictReader(f)]


@pytest.fixture(scope="session")
def btc_trades() -> list[Trade]:
    """2001 Binance BTC/USDT trades over the same 46 s (side = aggressor)."""
    with gzip.open(FIXTURES / "binance_BTC-USDT_trades.csv.gz", "rt") as f:
        return [Trade(BTC, int(r["timestamp_ms"]), float(r["price"]), float(r["size"]),
                      AggressorSide(r["side"]), r["trade_id"]) for r in csv.DictReader(f)]


@pytest.fixture(scope="session")
def bybit_book() -> OrderBookSnapshot:
    """Top 20 levels per side of the Bybit XRPUSDT snapshot of 2024-12-01 00:00:00.691."""
    with gzip.open(FIXTURES / "bybit_XRPUSDT_snapshot_top20.csv.gz", "rt") as f:
        rows = list(csv.DictReader(f))
    bids = [(float(r["price"]), float(r["size"])) for r in rows if r["side"] == "bid"]
    asks = [(float(r["price"]), float(r["size"])) for r in rows if r["side"] == "ask"]
    return book("bybit:XRP/USDT:USDT", int(rows[0]["timestamp_ms"]), bids, asks)
