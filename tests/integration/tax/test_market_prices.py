"""AUD values of crypto from the market store: a stored USD pair and the RBA rate; the price
used is the close of the last bar that had closed, read against the shipped file itself."""

from __future__ import annotations

import csv
import gzip
from datetime import date
from decimal import Decimal as D
from pathlib import Path

from lyra.feeds import MarketStore, import_file
from lyra.tax import TaxFill, Valuer, build_report
from lyra.tax.rates import Rate, RateTable
from lyra.tax.source import market_prices

REPO = Path(__file__).resolve().parents[3]
DAILY = REPO / "data" / "ohlcv" / "bitstamp_ETH-USD_1d.csv.gz"
DAY_MS = 86_400_000


def test_a_stored_usd_pair_values_a_crypto_to_crypto_swap(tmp_path: Path) -> None:
    store = MarketStore(tmp_path / "market")
    import_file(DAILY, store=store)
    prices = market_prices(store, {"ETH", "XYZ", "USD"})
    assert set(prices) == {"ETH"} and prices["ETH"][0].quote == "USD"
    with gzip.open(DAILY, "rt", newline="") as fh:
        rows = {int(r["timestamp_ms"]): r["close"] for r in csv.DictReader(fh)}
    day0 = 1_546_300_800_000  # 2019-01-01T00:00Z
    # At 12:00Z on 2 January the last closed daily bar is the one that opened on 1 January.
    at = day0 + DAY_MS + 12 * 3_600_000
    rate = RateTable("USD", [Rate(date(2019, 1, 2), D("0.7000"), "test")])
    v = Valuer({"USD": rate}, prices)
    got = v.value("ETH", D(2), at)
    assert got is not None
    assert got.aud == D(2) * D(rows[day0]) / D("0.7000")
    assert "bitstamp:ETH/USD 1d close" in got.source and "2019-01-02T00:00Z" in got.source
    assert v.value("ETH", D(1), day0 - 400 * DAY_MS) is None  # before any bar: not valued
    # A swap on ETH/XYZ (XYZ unpriced): the ETH disposal and the XYZ cost base are both valued
    # from ETH's stored price (what was given), the only value there is.
    buy = TaxFill("a/1", at - 3_600_000, "x:ETH/USD", "buy", D(2), D(100), D(0), "USD", "s", 1, "h1")
    swap = TaxFill("b/1", at, "x:XYZ/ETH", "buy", D(10), D("0.2"), D(0), "ETH", "s", 2, "h2")
    r = build_report([buy, swap], v, fy=2019)
    (line,) = r.disposals
    assert (line.kind, line.asset, line.proceeds) == ("swap", "ETH", got.aud)
    assert line.gain == got.aud - D(200) / D("0.7000")
