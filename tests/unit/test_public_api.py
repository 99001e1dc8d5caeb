"""The top-level ``lyra`` API a notebook user sees: pinned names, each documented, loaded lazily,
and the facade doing the real work (shipped data, vectorbt, a paper session on SQLite)."""

from __future__ import annotations

import csv
import gzip
import inspect
import json
import subprocess
import sys
import types
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

import lyra

REPO = Path(__file__).resolve().parents[2]
COINBASE_1H = REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"

PUBLIC = [
    "BacktestResult",
    "Bollinger",
    "CostModel",
    "Rebalance",
    "RsiReversion",
    "SessionHandle",
    "SmaCross",
    "Strategy",
    "StrategyParams",
    "__version__",
    "backtest",
    "load_bars",
    "open_session",
    "sample_data",
    "sweep",
    "walk_forward",
]

#: Modules that cost seconds to import: `import lyra` must load none of them.
HEAVY = ("vectorbt", "panel", "pandas", "numpy", "numba", "holoviews", "bokeh", "sqlalchemy",
         "pyarrow", "ccxt", "dask", "pydantic")


def _file_rows(path: Path) -> list[list[str]]:
    """The data rows of a shipped CSV, read with the standard library only."""
    with gzip.open(path, "rt", newline="") as fh:
        rows = list(csv.reader(fh))
    assert rows[0] == ["timestamp_ms", "open", "high", "low", "close", "volume"]
    return rows[1:]


# ------------------------------------------------------------------------------ the names
def test_all_is_pinned() -> None:
    """Renaming or dropping a public name must be a decision: change this list with it."""
    assert lyra.__all__ == PUBLIC


@pytest.mark.parametrize("name", PUBLIC)
def test_each_name_resolves_and_is_documented(name: str) -> None:
    obj = getattr(lyra, name)
    # Listed in the package docstring, which is what help(lyra) shows a notebook user.
    assert f"``{name}``" in (lyra.__doc__ or ""), f"{name} is not described in lyra's docstring"
    if name == "__version__":
        assert isinstance(obj, str) and obj.count(".") == 2
        return
    # Its own docstring (not one inherited from a base class or from `object`).
    own = obj.__doc__ if isinstance(obj, types.ModuleType | types.FunctionType) else vars(obj).get("__doc__")
    assert own and own.strip(), f"lyra.{name} has no docstring of its own"


def test_facade_functions_have_examples() -> None:
    """Each facade function shows a notebook user a call (a doctest or a code block)."""
    for fn in (lyra.load_bars, lyra.backtest, lyra.open_session):
        doc = inspect.getdoc(fn) or ""
        assert f"lyra.{fn.__name__}(" in doc, fn.__name__


def test_facade_doctests_run() -> None:
    """The examples written as doctests (the cheap ones) really run."""
    import doctest

    import lyra.facade

    res = doctest.testmod(lyra.facade)
    assert res.attempted >= 3 and res.failed == 0


def test_sample_data_is_the_module() -> None:
    """``lyra.sample_data`` is the submodule (importing it anywhere rebinds the name), and its
    file list is the shipped folder's."""
    import lyra.sample_data as mod

    assert lyra.sample_data is mod
    assert COINBASE_1H in lyra.sample_data.sample_ohlcv_files()


def test_unknown_names_raise_attribute_error_and_dir_lists_the_api() -> None:
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        _ = lyra.nope
    assert set(PUBLIC) <= set(dir(lyra))


@pytest.mark.subprocess
def test_import_lyra_loads_no_heavy_module() -> None:
    code = (
        "import json, sys\n"
        "import lyra\n"
        "names = (lyra.__all__, dir(lyra), lyra.__version__)\n"
        f"heavy = {HEAVY!r}\n"
        "bare = sorted(m for m in sys.modules if m.split('.')[0] in heavy)\n"
        "lyra_mods = sorted(m for m in sys.modules if m.startswith('lyra'))\n"
        # Reaching the facade functions loads pandas (their signatures use it), not vectorbt
        # or panel: those load only when a backtest or a dashboard actually runs.
        "fns = (lyra.load_bars, lyra.backtest, lyra.open_session, lyra.SmaCross)\n"
        "after = sorted({m.split('.')[0] for m in sys.modules} & {'vectorbt', 'panel', 'holoviews'})\n"
        "print(json.dumps({'bare': bare, 'lyra': lyra_mods, 'after': after}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=REPO, timeout=240)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["bare"] == []
    assert got["lyra"] == ["lyra"]
    assert got["after"] == []


# ------------------------------------------------------------------------------ load_bars
def test_load_bars_reads_the_shipped_file_as_utc_bars() -> None:
    rows = _file_rows(COINBASE_1H)
    bars = lyra.load_bars("coinbase", "BTC/USD", "1h", source="sample")
    assert len(bars) == len(rows) == 20_111
    assert str(bars.index.tz) == "UTC" and bars.index.name == "time"
    assert list(bars.columns) == ["open", "high", "low", "close", "volume"]
    assert (bars.dtypes == "float64").all()
    # The first and last rows, timestamp and close, as the file has them.
    for i in (0, -1):
        ts, close = int(rows[i][0]), float(rows[i][4])
        assert bars.index[i] == pd.Timestamp(ts, unit="ms", tz="UTC")
        assert bars["close"].iloc[i] == close
    # Same frame as the research API's sample loader.
    from lyra.research import sample_data

    pd.testing.assert_frame_equal(bars, sample_data("coinbase_BTC-USD_1h"))


def test_load_bars_range_is_half_open() -> None:
    rows = _file_rows(COINBASE_1H)
    t0 = pd.Timestamp("2018-01-01", tz="UTC").value // 1_000_000
    t1 = pd.Timestamp("2018-02-01", tz="UTC").value // 1_000_000
    want = [int(r[0]) for r in rows if t0 <= int(r[0]) < t1]
    bars = lyra.load_bars("coinbase", "BTC/USD", "1h", "2018-01-01", "2018-02-01", source="sample")
    assert len(bars) == len(want) > 700
    assert bars.index[0].value // 1_000_000 == want[0]
    assert bars.index[-1].value // 1_000_000 == want[-1]


def test_load_bars_prefers_the_store_then_falls_back_to_the_shipped_file(tmp_path: Path) -> None:
    from lyra.core.errors import ValidationError
    from lyra.feeds import MarketStore

    market = tmp_path / "market"
    # An empty store: "auto" falls back to the shipped file, "store" says what is missing.
    auto = lyra.load_bars("coinbase", "BTC/USD", "1h", market_dir=market)
    assert len(auto) == len(_file_rows(COINBASE_1H))
    with pytest.raises(ValidationError, match="not in the market store"):
        lyra.load_bars("coinbase", "BTC/USD", "1h", source="store", market_dir=market)
    # Put 100 known bars in the store: now "auto" and "store" read exactly those.
    some = auto.iloc[1000:1100]
    assert MarketStore(market).write_bars("coinbase", "BTC/USD", "1h", some) == 100
    for source in ("auto", "store"):
        got = lyra.load_bars("coinbase", "BTC/USD", "1h", source=source, market_dir=market)
        assert str(got.index.tz) == "UTC"
        assert got.index.as_unit("ms").asi8.tolist() == some.index.as_unit("ms").asi8.tolist()
        assert got["close"].tolist() == some["close"].tolist()
    # "sample" ignores the store.
    assert len(lyra.load_bars("coinbase", "BTC/USD", "1h", source="sample", market_dir=market)) == 20_111


def test_load_bars_names_what_is_missing(tmp_path: Path) -> None:
    from lyra.core.errors import ValidationError

    with pytest.raises(ValidationError, match="kraken BTC/USD 1h.*coinbase_BTC-USD_1h"):
        lyra.load_bars("kraken", "BTC/USD", "1h", market_dir=tmp_path)
    with pytest.raises(ValidationError, match="source"):
        lyra.load_bars("coinbase", "BTC/USD", "1h", source="web")  # type: ignore[arg-type]


# ------------------------------------------------------------------------------- backtest
@pytest.mark.numba
@pytest.mark.slow
def test_backtest_equals_the_research_api() -> None:
    from lyra.research import backtest, sample_data

    strategy = lyra.SmaCross(fast=10, slow=30)
    mine = lyra.backtest(strategy, lyra.load_bars("coinbase", "BTC/USD", "1h", source="sample"),
                         cost={"taker_fee": "0.006", "slippage_bps": 2})
    direct = backtest(strategy, sample_data("coinbase_BTC-USD_1h"),
                      cost=lyra.CostModel(taker_fee=Decimal("0.006"), slippage_bps=Decimal(2)))
    assert isinstance(mine, lyra.BacktestResult)
    assert mine.n_trades == direct.n_trades > 300
    assert mine.final_equity == direct.final_equity
    pd.testing.assert_frame_equal(mine.trades, direct.trades)
    assert mine.metrics == direct.metrics
    # The cost model reached vectorbt: every fill paid 0.6% of its notional.
    o = mine.orders
    assert (o["Fees"] - o["Size"] * o["Price"] * 0.006).abs().max() < 1e-6
    # A shipped file's name works as the data too.
    by_name = lyra.backtest(strategy, "coinbase_BTC-USD_1h", cost=direct.cost)
    assert by_name.final_equity == direct.final_equity


# --------------------------------------------------------------------------- open_session
DEMO_UNTIL = "2017-09-01"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_open_session_runs_like_the_existing_session_api(session_home: dict[str, Any]) -> None:
    from lyra.audit import EventLog
    from lyra.demo import DEMO_SESSION
    from lyra.session.factory import open_session
    from lyra.testing.sessions import demo_config

    h = session_home
    # The existing way (what `lyra session start` and the paper_session notebook do).
    direct = open_session(demo_config(session_id="direct", end=DEMO_UNTIL), engine=h["engine"],
                          market_dir=h["home"] / "market", jsonl_path=h["home"] / "audit" / "events.jsonl")
    ref = direct.run()
    ref_fills = [(f.ts, f.side.value, f.quantity, f.price, f.fee) for _, f in direct.ledger.state.fills]
    ref_equity = [float(r.data()["equity"]) for r in
                  EventLog(h["engine"]).read(kinds=("session.equity",), session_id="direct")]

    with lyra.open_session(DEMO_SESSION, session_id="facade", end=DEMO_UNTIL) as s:
        assert s.config.mode == "paper" and s.config.symbols == ("BTC/USD",)
        r = s.run(progress=False)
        assert (r.events, r.orders, r.fills, r.denied) == (ref.events, ref.orders, ref.fills, ref.denied)
        assert r.orders > 10
        assert (r.fees, r.equity, r.balances) == (ref.fees, ref.equity, ref.balances)
        fills = s.fills()
        got = [(int(t), side, Decimal(str(q)), Decimal(str(p)), Decimal(str(fee)))
               for t, side, q, p, fee in fills[["ts", "side", "quantity", "price", "fee"]].itertuples(index=False)]
        assert got == ref_fills
        orders = s.orders()
        assert len(orders) == r.orders and set(orders["status"]) == {"filled"}
        equity = s.equity()
        assert str(equity.index.tz) == "UTC"
        assert equity.tolist() == ref_equity and equity.iloc[-1] == float(r.equity)
        assert s.verify().ok
        # A second run resumes from the log: it re-verifies and writes nothing new.
        again = s.run(progress=False)
        assert again.replayed_entries > 0
        assert (again.fills, again.equity) == (r.fills, r.equity)
        assert len(s.fills()) == len(fills)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_open_session_defaults_and_config_errors(session_home: dict[str, Any], tmp_path: Path) -> None:
    from lyra.core.errors import ConfigError

    toml = tmp_path / "s.toml"
    toml.write_text('strategy = "sma_cross"\nvenue = "coinbase"\nsymbols = ["BTC/USD"]\n'
                    'balances = {USD = "10000"}\n[instruments."BTC/USD"]\n'
                    'price_increment = "0.01"\nsize_increment = "0.00000001"\n')
    with lyra.open_session(toml) as s:
        assert s.config.mode == "paper"
        assert s.session_id.startswith("nb-") and len(s.session_id) == 11
        assert "SessionHandle('nb-" in repr(s)
    with pytest.raises(ConfigError, match="fast"):
        lyra.open_session(strategy="sma_cross", params={"fast": 30, "slow": 10}, venue="binance",
                          symbols=["BTC/USDT"], session_id="bad")
    with pytest.raises(ConfigError, match="colour"):
        lyra.open_session(colour="red")
    # Data the store does not hold is refused at open, as `lyra session start` does, instead
    # of a session that "finishes" with 0 events.
    with pytest.raises(ConfigError, match=r"no coinbase BTC/USD .* bars between start and end"):
        lyra.open_session(toml, start="2001-01-01", end="2001-02-01")
    with pytest.raises(ConfigError, match="no coinbase BTC/USD 1m bars in the market store"):
        lyra.open_session(toml, timeframe="1m")
