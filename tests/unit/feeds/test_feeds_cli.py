"""The `lyra data` commands, run through typer's CliRunner on data_app."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from lyra.feeds.cli import data_app

FIX = Path(__file__).resolve().parents[2] / "fixtures"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"LYRA_HOME": str(tmp_path / "home"), "COLUMNS": "200"}


def test_import_list_quality(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    r = runner.invoke(data_app, ["import", str(FIX / "ohlcv" / "binance_ETH-USDT_1h_2018-07.csv.gz")],
                      env=env)
    assert r.exit_code == 0, r.output
    assert "binance/ETH-USDT/1h: read 500 rows, added 500" in r.output
    assert "gaps 3 (18 missing bars)" in r.output
    assert (tmp_path / "home" / "market" / "binance" / "ETH-USDT" / "1h").is_dir()
    r = runner.invoke(data_app, ["import", str(FIX / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"),
                                 "--exchange", "cb", "--symbol", "BTC/USD"], env=env)
    assert r.exit_code == 0, r.output
    assert "quarantined 5" in r.output and "stale_repeat" in r.output
    r = runner.invoke(data_app, ["list"], env=env)
    assert r.exit_code == 0, r.output
    lines = [ln for ln in r.output.splitlines() if "ETH-USDT" in ln or "BTC-USD " in ln]
    assert len(lines) == 2
    assert "2018-06-24 22:00" in r.output and "20,106" in r.output
    r = runner.invoke(data_app, ["quality", "binance", "ETH/USDT", "1h"], env=env)
    assert r.exit_code == 0, r.output
    assert "missing_bars" in r.output and "18" in r.output
    assert "2018-06-26 01:00 → 2018-06-26 12:00" in r.output


def test_errors_are_one_line_exit_2(env: dict[str, str], tmp_path: Path) -> None:
    runner = CliRunner()
    bad = tmp_path / "binance_BTC-USDT_1h.csv"
    bad.write_text("timestamp_ms,open\n1,2\n")
    r = runner.invoke(data_app, ["import", str(bad)], env=env)
    assert r.exit_code == 2
    assert "error: binance_BTC-USDT_1h.csv: columns" in r.output
    r = runner.invoke(data_app, ["quality", "binance", "BTC/USDT", "1h"], env=env)
    assert r.exit_code == 2 and "no stored bars" in r.output
    r = runner.invoke(data_app, ["quality", "binance", "BTC/USDT", "7x"], env=env)
    assert r.exit_code == 2 and "timeframe" in r.output
    r = runner.invoke(data_app, ["list"], env=env)
    assert r.exit_code == 0 and "no datasets yet" in r.output


def test_quality_never_calls_non_finite_or_absurd_data_clean(env: dict[str, str], tmp_path: Path) -> None:
    """Bars stored before validation knew these values (written straight to the store)."""
    import numpy as np
    import pandas as pd

    from lyra.feeds.store import MarketStore

    ts = 1704067200000 + np.arange(40, dtype=np.int64) * 3_600_000
    close = 100 + np.sin(np.arange(40))
    df = pd.DataFrame({"ts": ts, "open": close, "high": close + 1, "low": close - 1, "close": close,
                       "volume": np.full(40, 5.0)})
    df.loc[7, "high"] = np.inf
    df.loc[20, "high"] = 1e308
    MarketStore(tmp_path / "home" / "market").write_bars("kraken", "ETH/EUR", "1h", df)
    r = CliRunner().invoke(data_app, ["quality", "kraken", "ETH/EUR", "1h"], env=env)
    assert r.exit_code == 0, r.output
    assert "NOT clean: 2 bad rows" in r.output
    rows = {ln.split("│")[1].strip(): ln.split("│")[2].strip() for ln in r.output.splitlines()
            if ln.startswith("│")}
    assert rows["non_finite"] == "1" and rows["absurd_value"] == "1"
    assert "h=inf" in r.output and "h=1e+308" in r.output and "np.float64" not in r.output
    clean = df.drop(index=[7, 20])
    MarketStore(tmp_path / "home" / "market").write_bars("kraken", "BTC/EUR", "1h", clean)
    r = CliRunner().invoke(data_app, ["quality", "kraken", "BTC/EUR", "1h"], env=env)
    assert "kraken BTC/EUR 1h: clean (no bad rows; 2 gaps)" in r.output, r.output
