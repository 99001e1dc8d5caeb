"""download_ohlcv / download_trades through real ccxt against the fake Binance server, into the
real MarketStore, checked against the recorded files the fake serves."""

from __future__ import annotations

import itertools
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import ccxt
import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import RateLimited, ValidationError
from lyra.feeds.download import download_ohlcv, download_trades
from lyra.feeds.store import MarketStore
from lyra.testing.fake_exchange import FakeExchange, binance_fake, load_ohlcv_csv, load_trades_csv

FIX = Path(__file__).parents[2] / "fixtures"
BARS_1M = load_ohlcv_csv(FIX / "exchange" / "binance_BTC-USDT_1m_2018-04.csv.gz")
TRADES = load_trades_csv(FIX / "exchange" / "binance_BTC-USDT_trades.csv.gz")
FIRST, LAST = int(BARS_1M["ts"].iloc[0]), int(BARS_1M["ts"].iloc[-1])
FAR_FUTURE = LAST + 10 * 86_400_000
TRADES_NOW = int(TRADES["ts"].iloc[-1]) + 86_400_000


@pytest.fixture
def fake() -> Iterator[FakeExchange]:
    with binance_fake(FIX, max_limit=100) as f:  # a 100-row cap forces pagination
        yield f


def _exchange(fake: FakeExchange, **cfg: object) -> ccxt.binance:
    return fake.point_ccxt(ccxt.binance(fake.ccxt_config(**cfg)))


def _klines_requests(fake: FakeExchange) -> list[dict[str, str]]:
    return [q for p, q in fake.requests if p == "/api/v3/klines"]


def _stored(store: MarketStore, tf: str = "1m") -> pd.DataFrame:
    df = store.read_bars("binance", "BTC/USDT", tf)
    return df.reset_index(drop=True)


def test_full_download_equals_recorded_file(fake: FakeExchange, tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    res = download_ohlcv(_exchange(fake), "BTC/USDT", "1m", FIRST, store=store, progress=False,
                         now_ms=FAR_FUTURE)
    assert (res.fetched, res.written, res.first_ts, res.last_ts) == (502, 502, FIRST, LAST)
    assert res.resumed_from is None
    assert res.dropped_open == 0
    # 502 rows / 100 per page -> 6 pages, then an empty answer that says "no more"
    assert res.requests == 7
    got = store.read_bars_arrays("binance", "BTC/USDT", "1m")
    np.testing.assert_array_equal(got.ts, BARS_1M["ts"].to_numpy())
    for col in ("open", "high", "low", "close", "volume"):
        np.testing.assert_array_equal(getattr(got, col), BARS_1M[col].to_numpy())
    # the recorded 10:12 gap is kept, not invented away: 503 minutes span, 502 bars
    assert (LAST - FIRST) // 60_000 + 1 == 503
    # pages follow each other: each startTime is the previous page's last open + 1m
    starts = [int(q["startTime"]) for q in _klines_requests(fake)]
    assert starts[0] == FIRST
    assert all(b > a for a, b in itertools.pairwise(starts))


def test_second_run_resumes_and_fetches_only_missing(fake: FakeExchange, tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    mid = FIRST + 250 * 60_000
    first = download_ohlcv(_exchange(fake), "BTC/USDT", "1m", FIRST, until=mid, store=store,
                           progress=False, now_ms=FAR_FUTURE)
    assert first.last_ts is not None
    assert first.last_ts < mid
    n_first = len(_klines_requests(fake))
    second = download_ohlcv(_exchange(fake), "BTC/USDT", "1m", FIRST, store=store,
                            progress=False, now_ms=FAR_FUTURE)
    assert second.resumed_from == first.last_ts
    assert first.written + second.written == 502
    assert second.fetched == second.written  # nothing fetched twice
    resumed_req = _klines_requests(fake)[n_first]
    assert int(resumed_req["startTime"]) == first.last_ts + 60_000
    third = download_ohlcv(_exchange(fake), "BTC/USDT", "1m", FIRST, store=store,
                           progress=False, now_ms=FAR_FUTURE)
    assert (third.fetched, third.written) == (0, 0)
    assert len(_stored(store)) == 502


def test_still_open_candle_is_dropped(fake: FakeExchange, tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    now = LAST + 30_000  # the last recorded candle is 30 s old: still open
    res = download_ohlcv(_exchange(fake), "BTC/USDT", "1m", FIRST, store=store, progress=False,
                         now_ms=now)
    assert res.dropped_open == 1
    assert store.last_timestamp("binance", "BTC/USDT", "1m") == int(BARS_1M["ts"].iloc[-2])
    # once it has closed, the next run picks it up
    res2 = download_ohlcv(_exchange(fake), "BTC/USDT", "1m", FIRST, store=store, progress=False,
                          now_ms=LAST + 60_000)
    assert (res2.written, res2.last_ts) == (1, LAST)


def test_5m_with_progress_bar(fake: FakeExchange, tmp_path: Path, capsys: pytest.CaptureFixture[str]
                              ) -> None:
    bars = load_ohlcv_csv(FIX / "exchange" / "binance_BTC-USDT_5m_2018-04.csv.gz")
    store = MarketStore(tmp_path)
    res = download_ohlcv(_exchange(fake), "BTC/USDT", "5m", "2018-04-26T16:35:00Z", store=store,
                         progress=True, now_ms=FAR_FUTURE)
    assert res.written == len(bars) == 500
    assert "BTC/USDT 5m" in capsys.readouterr().err  # tqdm writes to stderr


@pytest.mark.parametrize("status", [429, 418, 500, 503])
def test_rate_limit_and_server_errors_are_retried(fake: FakeExchange, tmp_path: Path,
                                                  status: int) -> None:
    ex = _exchange(fake)
    ex.load_markets()
    fake.faults.fail_next(3, status)
    res = download_ohlcv(ex, "BTC/USDT", "1m", FIRST, store=MarketStore(tmp_path),
                         progress=False, now_ms=FAR_FUTURE, retry_delay=0.01)
    assert res.written == 502
    assert len(_klines_requests(fake)) == 3 + 7  # three refused, then the seven requests


def test_persistent_rate_limit_gives_up(fake: FakeExchange, tmp_path: Path) -> None:
    ex = _exchange(fake)
    ex.load_markets()
    fake.faults.fail_next(100, 429)
    with pytest.raises(RateLimited):
        download_ohlcv(ex, "BTC/USDT", "1m", FIRST, store=MarketStore(tmp_path), progress=False,
                       now_ms=FAR_FUTURE, retry_delay=0.001)
    assert len(_klines_requests(fake)) == 5  # the retrier's attempts


def test_slow_response_times_out_and_is_retried(fake: FakeExchange, tmp_path: Path) -> None:
    ex = _exchange(fake, timeout=300)  # ms
    ex.load_markets()
    fake.faults.slow_next(1, 1.0)
    res = download_ohlcv(ex, "BTC/USDT", "1m", FIRST, store=MarketStore(tmp_path), progress=False,
                         now_ms=FAR_FUTURE, retry_delay=0.01)
    assert res.written == 502
    assert len(_klines_requests(fake)) == 8  # the slow one timed out and was asked again


def test_unknown_symbol_and_timeframe(fake: FakeExchange, tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    with pytest.raises(ValidationError) as info:
        download_ohlcv(_exchange(fake), "BTC/EUR", "1m", FIRST, store=store, progress=False)
    assert info.value.field == "symbol"
    assert info.value.value == "BTC/EUR"
    assert "BTC/USDT" in str(info.value)  # suggests what exists
    with pytest.raises(ValidationError) as info:
        download_ohlcv(_exchange(fake), "BTC/USDT", "7m", FIRST, store=store, progress=False)
    assert info.value.field == "timeframe"
    assert info.value.value == "7m"
    with pytest.raises(ValidationError) as info:
        download_ohlcv(_exchange(fake), "BTC/USDT", "1M", FIRST, store=store, progress=False)
    assert info.value.field == "timeframe"  # months have no fixed length
    assert _klines_requests(fake) == []


def test_trades_by_id_equal_recorded_file(fake: FakeExchange, tmp_path: Path) -> None:
    store = MarketStore(tmp_path)
    start = int(TRADES["ts"].iloc[0])
    res = download_trades(_exchange(fake), "BTC/USDT", start, store=store, progress=False,
                          now_ms=TRADES_NOW)
    assert (res.fetched, res.written) == (2001, 2001)
    assert res.requests == 2001 // 100 + 2  # full pages, the short one, the empty one
    got = store.read_trades("binance", "BTC/USDT")
    assert got["trade_id"].tolist() == [str(t) for t in TRADES["trade_id"]]
    np.testing.assert_array_equal(got["price"].to_numpy(), TRADES["price"].to_numpy())
    np.testing.assert_array_equal(got["size"].to_numpy(), TRADES["size"].to_numpy())
    assert got["side"].tolist() == TRADES["side"].tolist()
    ids = [q for p, q in fake.requests if p == "/api/v3/aggTrades"]
    assert "startTime" in ids[0]
    assert all("fromId" in q for q in ids[1:])


@pytest.mark.parametrize("page_by", ["id", "time"])
def test_trades_resume_without_duplicates(fake: FakeExchange, tmp_path: Path, page_by: str) -> None:
    store = MarketStore(tmp_path)
    start, end = int(TRADES["ts"].iloc[0]), int(TRADES["ts"].iloc[-1]) + 1
    # stop in the middle of a millisecond shared by several trades
    shared = TRADES["ts"][TRADES["ts"].duplicated(keep=False)]
    mid = int(shared.iloc[len(shared) // 2])
    r1 = download_trades(_exchange(fake), "BTC/USDT", start, until=mid + 1, store=store,
                         progress=False, now_ms=TRADES_NOW, page_by=page_by)
    r2 = download_trades(_exchange(fake), "BTC/USDT", start, until=end, store=store,
                         progress=False, now_ms=TRADES_NOW, page_by=page_by)
    assert r2.resumed_from == mid
    assert r1.written == int((TRADES["ts"] <= mid).sum())
    assert r1.written + r2.written == 2001
    got = store.read_trades("binance", "BTC/USDT")
    assert sorted(got["trade_id"].astype(int)) == TRADES["trade_id"].tolist()


LYRA = str(Path(sys.executable).with_name("lyra"))


def _lyra(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(LYRA_HOME=str(home), COLUMNS="200")
    return subprocess.run([LYRA, "data", "download", *args], capture_output=True, text=True,
                          env=env, timeout=300)


@pytest.mark.subprocess
def test_lyra_data_download_pages_resumes_and_matches_the_recorded_file(
        fake: FakeExchange, tmp_path: Path) -> None:
    """The README's command through the real `lyra` entry point, against the fake venue."""
    home = tmp_path / "home"
    until = "2018-04-28T06:00:00Z"  # about half of the recorded 01:52-10:14
    r = _lyra(home, "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m",
              "--since", "2018-04-28", "--until", until, "--api-url", fake.url, "--progress")
    assert r.returncode == 0, r.stdout + r.stderr
    store = MarketStore(home / "market")
    first = store.read_bars("binance", "BTC/USDT", "1m")
    assert "Traceback" not in r.stderr
    assert f"binance BTC/USDT 1m: {len(first):,} rows fetched, {len(first):,} written" in r.stdout
    assert len(_klines_requests(fake)) > 1  # paged: the fake serves 100 rows per answer
    assert "row" in r.stderr  # the progress bar was drawn
    n_before = len(_klines_requests(fake))
    r = _lyra(home, "--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "1m",
              "--since", "2018-04-28", "--api-url", fake.url)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "(resumed after 2018-04-28 05:59 UTC)" in r.stdout
    starts = [int(q["startTime"]) for q in _klines_requests(fake)[n_before:]]
    assert starts[0] == int(first.index[-1].timestamp() * 1000) + 60_000  # only what was missing
    got = store.read_bars_arrays("binance", "BTC/USDT", "1m")
    np.testing.assert_array_equal(got.ts, BARS_1M["ts"].to_numpy())
    np.testing.assert_array_equal(got.close, BARS_1M["close"].to_numpy())


@pytest.mark.subprocess
@pytest.mark.parametrize(("args", "expect"), [
    (["--exchange", "mtgox", "--symbol", "BTC/USD"], "exchange='mtgox': unknown venue (known venues: binance,"),
    (["--exchange", "binance", "--symbol", "BTC/NOPE"], "symbol='BTC/NOPE': unknown symbol on binance"),
    (["--exchange", "binance", "--symbol", "BTC/USDT", "--timeframe", "7m"],
     "timeframe='7m': unsupported timeframe on binance"),
    (["--exchange", "binance", "--symbol", "BTC/USDT", "--api-url", "ftp://x"],
     "--api-url='ftp://x': not a base URL"),
])
def test_lyra_data_download_refuses_bad_input_in_one_line(
        fake: FakeExchange, tmp_path: Path, args: list[str], expect: str) -> None:
    extra = [] if "--api-url" in args else ["--api-url", fake.url]
    r = _lyra(tmp_path / "home", *args, "--since", "2018-04-28", *extra)
    assert r.returncode == 2, r.stdout + r.stderr
    assert expect in r.stderr
    assert "Traceback" not in r.stderr
    assert [ln for ln in r.stderr.splitlines() if ln.strip()] == [r.stderr.strip()]
    assert not (tmp_path / "home" / "market").exists() or not any((tmp_path / "home" / "market").rglob("*.parquet"))


@pytest.mark.subprocess
def test_lyra_data_download_says_in_one_line_when_the_venue_cannot_be_reached(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on: connection refused at once
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    r = _lyra(tmp_path / "home", "--exchange", "binance", "--symbol", "BTC/USDT", "--since",
              "2018-04-28", "--api-url", f"http://127.0.0.1:{port}", "--retry-delay", "0.01")
    assert r.returncode == 2, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1
    assert f"cannot reach binance at http://127.0.0.1:{port}: gave up after 5 attempts" in errors[0]
    assert "run the same command again to resume" in errors[0]
