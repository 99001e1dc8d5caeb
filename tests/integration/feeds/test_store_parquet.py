"""MarketStore on real files in tmp_path: appends, de-duplication, range reads, compaction,
corruption, trades."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import IntegrityError, ValidationError
from lyra.feeds import CorruptDataError, MarketStore

FIX = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def bars() -> pd.DataFrame:
    return pd.read_csv(FIX / "ohlcv" / "binance_BTC-USDT_4h_2018-04.csv.gz").rename(
        columns={"timestamp_ms": "ts"})


def parts(store: MarketStore, *key: str) -> list[str]:
    return sorted(p.name for p in store.dataset_dir(*key).glob("part-*.parquet"))


def test_roundtrip_types_index_and_path(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    assert store.write_bars("binance", "BTC/USDT", "4h", bars) == 500
    assert (tmp_path / "binance" / "BTC-USDT" / "4h" / "_manifest.json").is_file()
    df = store.read_bars("binance", "BTC/USDT", "4h")
    assert str(df.index.dtype) == "datetime64[ms, UTC]" and df.index.name == "time"
    assert list(df.columns) == ["open", "high", "low", "close", "volume"]
    assert (df.dtypes == "float64").all()
    np.testing.assert_array_equal(df.index.asi8, bars["ts"].to_numpy())
    np.testing.assert_array_equal(df.to_numpy(), bars.drop(columns="ts").to_numpy())
    naive = store.read_bars("binance", "BTC-USDT", "4h", tz_aware=False)
    assert naive.index.tz is None and naive.index[0] == pd.Timestamp("2018-02-03")
    arr = store.read_bars_arrays("binance", "BTC/USDT", "4h")
    assert arr.ts.dtype == np.int64 and len(arr) == 500
    np.testing.assert_array_equal(arr.close, bars["close"].to_numpy())


def test_append_makes_new_parts_and_overlap_is_not_duplicated(tmp_path: Path,
                                                               bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    assert store.write_bars("binance", "BTC/USDT", "4h", bars.iloc[:300]) == 300
    first = parts(store, "binance", "BTC/USDT", "4h")
    before = (store.dataset_dir("binance", "BTC/USDT", "4h") / first[0]).read_bytes()
    changed = bars.iloc[200:].copy()
    changed["close"] += 1.0  # a re-download that disagrees on the overlap
    assert store.write_bars("binance", "BTC/USDT", "4h", changed) == 200
    assert store.write_bars("binance", "BTC/USDT", "4h", bars) == 0  # nothing new
    names = parts(store, "binance", "BTC/USDT", "4h")
    assert len(names) == 2 and names[0] == first[0]
    assert (store.dataset_dir("binance", "BTC/USDT", "4h") / first[0]).read_bytes() == before
    df = store.read_bars("binance", "BTC/USDT", "4h")
    assert len(df) == 500 and df.index.is_unique and df.index.is_monotonic_increasing
    # the stored row wins on the overlap; the new rows are the re-download's
    np.testing.assert_array_equal(df["close"].to_numpy()[:300], bars["close"].to_numpy()[:300])
    np.testing.assert_array_equal(df["close"].to_numpy()[300:],
                                  bars["close"].to_numpy()[300:] + 1.0)


def test_backfill_older_data_reads_sorted(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    store.write_bars("binance", "BTC/USDT", "4h", bars.iloc[250:])
    store.write_bars("binance", "BTC/USDT", "4h", bars.iloc[::2])  # interleaves with both
    df = store.read_bars("binance", "BTC/USDT", "4h")
    expect = np.union1d(bars["ts"].to_numpy()[250:], bars["ts"].to_numpy()[::2])
    np.testing.assert_array_equal(df.index.asi8, expect)


def test_range_reads_are_start_inclusive_end_exclusive(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    store.write_bars("binance", "BTC/USDT", "4h", bars.iloc[:250])
    store.write_bars("binance", "BTC/USDT", "4h", bars.iloc[250:])
    df = store.read_bars("binance", "BTC/USDT", "4h", "2018-03-01", "2018-03-02")
    assert list(df.index.hour) == [0, 4, 8, 12, 16, 20]
    t = int(bars["ts"].iloc[249])
    arr = store.read_bars_arrays("binance", "BTC/USDT", "4h", start=t, end=t + 4 * 3_600_000 + 1)
    assert list(arr.ts) == [t, t + 4 * 3_600_000]
    assert store.read_bars("binance", "BTC/USDT", "4h", start="2030-01-01").empty
    assert store.first_timestamp("binance", "BTC/USDT", "4h") == bars["ts"].iloc[0]
    assert store.last_timestamp("binance", "BTC/USDT", "4h") == bars["ts"].iloc[-1]
    assert store.last_timestamp("binance", "ETH/USDT", "4h") is None


def test_bad_writes_are_refused_and_change_nothing(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    store.write_bars("binance", "BTC/USDT", "4h", bars.iloc[:10])
    dup = pd.concat([bars.iloc[20:22], bars.iloc[21:22]])
    with pytest.raises(ValidationError, match="duplicate timestamp"):
        store.write_bars("binance", "BTC/USDT", "4h", dup)
    secs = bars.iloc[30:32].assign(ts=lambda d: d["ts"] // 1000)
    with pytest.raises(ValidationError, match="seconds"):
        store.write_bars("binance", "BTC/USDT", "4h", secs)
    with pytest.raises(ValidationError, match="timeframe"):
        store.write_bars("binance", "BTC/USDT", "4x", bars)
    with pytest.raises(ValidationError, match="symbol"):
        store.write_bars("binance", "../etc", "4h", bars)
    assert len(store.read_bars("binance", "BTC/USDT", "4h")) == 10
    assert len(parts(store, "binance", "BTC/USDT", "4h")) == 1
    assert not list(store.dataset_dir("binance", "BTC/USDT", "4h").glob(".tmp-*"))


def test_list_datasets(tmp_path: Path, bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    assert store.list_datasets().empty
    store.write_bars("binance", "BTC/USDT", "4h", bars)
    trades = pd.read_csv(FIX / "trades" / "kraken_BCH-EUR_trades_q1.csv.gz",
                         dtype={"side": str, "trade_id": str})
    store.write_trades("kraken", "BCH/EUR", trades)
    ds = store.list_datasets().set_index(["exchange", "symbol", "timeframe"])
    row = ds.loc[("binance", "BTC-USDT", "4h")]
    assert (row["kind"], row["rows"], row["gaps"], row["status"]) == ("bars", 500, 1, "ok")
    assert row["first"] == pd.Timestamp("2018-02-03", tz="UTC")
    tr = ds.loc[("kraken", "BCH-EUR", "trades")]
    assert (tr["kind"], tr["rows"]) == ("trades", 148) and pd.isna(tr["gaps"])


def test_compaction_merges_atomically_and_removes_orphans(tmp_path: Path,
                                                          bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    for i in range(0, 500, 50):
        store.write_bars("binance", "BTC/USDT", "4h", bars.iloc[i:i + 50])
    d = store.dataset_dir("binance", "BTC/USDT", "4h")
    (d / "part-999999-1-2.parquet").write_bytes(b"orphan of a crashed write")
    (d / ".tmp-deadbeef-x.parquet").write_bytes(b"half written")
    before = store.read_bars("binance", "BTC/USDT", "4h")
    assert len(parts(store, "binance", "BTC/USDT", "4h")) == 11
    assert store.compact("binance", "BTC/USDT", "4h", rows_per_file=200) == 3
    assert len(parts(store, "binance", "BTC/USDT", "4h")) == 3
    assert not list(d.glob(".tmp-*"))
    pd.testing.assert_frame_equal(store.read_bars("binance", "BTC/USDT", "4h"), before)
    manifest = json.loads((d / "_manifest.json").read_text())
    assert [p["rows"] for p in manifest["parts"]] == [200, 200, 100]


def test_corrupt_file_names_the_file_and_other_datasets_work(tmp_path: Path,
                                                             bars: pd.DataFrame) -> None:
    store = MarketStore(tmp_path)
    store.write_bars("binance", "BTC/USDT", "4h", bars)
    store.write_bars("binance", "ETH/USDT", "4h", bars)
    bad = store.dataset_dir("binance", "BTC/USDT", "4h") / parts(store, "binance", "BTC/USDT",
                                                                 "4h")[0]
    os.chmod(bad, 0o644)
    bad.write_bytes(b"PAR1 this is not parquet")
    with pytest.raises(CorruptDataError) as err:
        store.read_bars("binance", "BTC/USDT", "4h")
    assert str(bad) in str(err.value) and isinstance(err.value, IntegrityError)
    assert len(store.read_bars("binance", "ETH/USDT", "4h")) == 500
    ds = store.list_datasets().set_index("symbol")
    assert ds.loc["ETH-USDT", "status"] == "ok" and str(bad) in ds.loc["BTC-USDT", "status"]
    (bad.parent / "_manifest.json").write_text("{not json")
    with pytest.raises(CorruptDataError, match="_manifest.json"):
        store.last_timestamp("binance", "BTC/USDT", "4h")


def test_trades_roundtrip_and_dedup(tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    trades = pd.read_csv(FIX / "trades" / "binance_XRP-ETH_trades.csv.gz",
                         dtype={"side": str, "trade_id": str})
    assert store.write_trades("binance", "XRP/ETH", trades.iloc[:5000]) == 5000
    assert store.write_trades("binance", "XRP/ETH", trades.iloc[4000:]) == len(trades) - 5000
    out = store.read_trades("binance", "XRP/ETH")
    assert len(out) == len(trades) and list(out.columns) == ["price", "size", "side", "trade_id"]
    assert list(out["trade_id"]) == list(trades["trade_id"])  # same-ms order kept
    np.testing.assert_array_equal(out.index.asi8, trades["timestamp_ms"].to_numpy())
    # without trade ids the content is the key
    kraken = pd.read_csv(FIX / "trades" / "kraken_BCH-EUR_trades_q1.csv.gz",
                         dtype={"side": str, "trade_id": str})
    assert store.write_trades("kraken", "BCH/EUR", kraken.iloc[:100]) == 100
    assert store.write_trades("kraken", "BCH/EUR", kraken) == 48
    k = store.read_trades("kraken", "BCH/EUR", start=int(kraken["timestamp_ms"].iloc[10]))
    assert len(k) == 138 and set(k["side"]) == {""}
