"""Backtests: fill conventions on a hand-made series, results object, stops, weights, bad input."""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.execution.costs import CostModel
from lyra.research import backtest, data_quality, load_ohlcv, sample_data
from lyra.research.backtest import BacktestResult
from lyra.risk import AtrStop, ExitRules, FixedStop, TakeProfit, TrailingStop
from lyra.strategy import Rebalance, Signals, SmaCross, Strategy

pytestmark = pytest.mark.numba  # vectorbt's compiled simulators (warm: scripts/warm_numba.py)


class Scripted(Strategy):
    """Signals given by hand (for testing the backtester itself)."""

    params_model = SmaCross.params_model

    def __init__(self, entries, exits) -> None:
        super().__init__()
        self._e, self._x = entries, exits

    def signals(self, data, cache=None) -> Signals:
        return Signals(self._e, self._x)

    def incremental(self, instrument_id, quantity=1):
        raise NotImplementedError


def _frame(opens, closes) -> pd.DataFrame:
    idx = pd.date_range("2024-01-01", periods=len(closes), freq="1h", tz="UTC", name="time")
    o, c = np.asarray(opens, float), np.asarray(closes, float)
    return pd.DataFrame({"open": o, "high": np.maximum(o, c), "low": np.minimum(o, c), "close": c,
                         "volume": 1.0}, index=idx)


DF = _frame([10, 11, 12, 13, 14], [10.5, 11.5, 12.5, 13.5, 14.5])
EN = np.array([False, True, False, False, False])
EX = np.array([False, False, False, True, False])


def test_next_open_fill_by_hand() -> None:
    # Entry signal on bar 1's close -> buy at bar 2's open (12) with 1000 cash, 0.1% fee;
    # exit on bar 3's close -> sell at bar 4's open (14).
    res = backtest(Scripted(EN, EX), DF, cost=CostModel(taker_fee=Decimal("0.001")), init_cash=1000.0)
    size = 1000 / 1.001 / 12
    cash = size * 14 * (1 - 0.001)
    assert res.orders["Price"].tolist() == [12.0, 14.0]
    assert res.final_equity == pytest.approx(cash, rel=1e-12)
    assert res.equity.iloc[2] == pytest.approx(size * 12.5, rel=1e-12)  # marked at bar 2's close
    assert res.trades["Entry Timestamp"].iloc[0] == DF.index[2]
    assert str(res.equity.index.tz) == "UTC"
    assert res.exposure.iloc[:2].tolist() == [0.0, 0.0] and res.exposure.iloc[2] == pytest.approx(1.0)


def test_fixed_size_per_signal_by_hand() -> None:
    # size=2 (a paper session's quantity): buy 2 at bar 2's open (12), sell 2 at bar 4's open (14).
    res = backtest(Scripted(EN, EX), DF, cost=CostModel(taker_fee=Decimal("0.001")), init_cash=1000.0, size=2.0)
    assert res.orders["Size"].tolist() == [2.0, 2.0]
    assert res.final_equity == pytest.approx(1000 - 2 * 12 * 1.001 + 2 * 14 * 0.999, rel=1e-12)
    for bad in (0, -1.0, float("nan"), float("inf"), "2"):
        with pytest.raises(ValidationError, match="size"):
            backtest(Scripted(EN, EX), DF, size=bad)


def test_close_fill_and_slippage_by_hand() -> None:
    cost = CostModel(taker_fee=Decimal("0.002"), slippage_bps=Decimal("10"))
    res = backtest(Scripted(EN, EX), DF, cost=cost, init_cash=1000.0, fill="close")
    buy, sell = 11.5 * 1.001, 13.5 * 0.999  # slippage 10 bps against us
    size = 1000 / 1.002 / buy
    assert res.orders["Price"].tolist() == pytest.approx([buy, sell], rel=1e-14)
    assert res.final_equity == pytest.approx(size * sell * 0.998, rel=1e-12)
    assert res.metrics["fees_paid"] == pytest.approx(1000 - 1000 / 1.002 + size * sell * 0.002, rel=1e-12)


def test_signal_on_last_bar_is_dropped_with_next_open() -> None:
    e = np.array([False, False, False, False, True])
    res = backtest(Scripted(e, np.zeros(5, bool)), DF)
    assert res.n_trades == 0 and res.final_equity == 10_000.0


@pytest.fixture(scope="module")
def btc_result(btc_1h: pd.DataFrame) -> BacktestResult:
    return backtest(SmaCross(fast=5, slow=20), btc_1h)


def test_result_object(btc_result: BacktestResult, btc_1h: pd.DataFrame) -> None:
    r = btc_result
    assert len(r.equity) == len(btc_1h) and r.equity.index.equals(btc_1h.index)
    assert (r.drawdown <= 0).all() and r.drawdown.min() == pytest.approx(-r.metrics["max_drawdown"])
    assert len(r.trades) == r.n_trades > 5
    pnl = r.trades["PnL"].sum()
    assert r.final_equity == pytest.approx(10_000 + pnl, rel=1e-10)
    cmp = r.compare(r.direct_vectorbt())
    assert cmp.equal and cmp.final_equity[0] == cmp.final_equity[1]
    assert r.stats()["Total Trades"] == r.n_trades
    assert set(r.metrics) == set(__import__("lyra.research").research.METRIC_NAMES)


def test_stops_from_lyra_risk(btc_1h: pd.DataFrame, btc_result: BacktestResult) -> None:
    s = SmaCross(fast=5, slow=20)
    res = backtest(s, btc_1h, stops=ExitRules(stop=FixedStop(pct=0.01), take_profit=TakeProfit(pct=0.02)))
    assert res.vbt_kwargs["sl_stop"] == 0.01 and res.vbt_kwargs["tp_stop"] == 0.02
    # Levels are measured from the fill price: a stopped trade exits at entry - 1%, or at the open
    # when the bar gaps past it.
    t = res.trades
    bad = t[t["Avg Exit Price"] < t["Avg Entry Price"] * 0.99 * (1 - 1e-12)]
    gap_opens = btc_1h.loc[bad["Exit Timestamp"], "open"].to_numpy()
    assert (bad["Avg Exit Price"].to_numpy() == gap_opens).all()
    stopped = np.isclose(t["Avg Exit Price"], t["Avg Entry Price"] * 0.99, rtol=1e-12)
    took = np.isclose(t["Avg Exit Price"], t["Avg Entry Price"] * 1.02, rtol=1e-12)
    assert stopped.sum() >= 3 and took.sum() >= 1
    assert res.final_equity != btc_result.final_equity
    trail = backtest(s, btc_1h, stops=ExitRules(trailing=TrailingStop(pct=0.01)))
    assert trail.vbt_kwargs["sl_trail"] is True
    with pytest.raises(ValidationError) as err:
        backtest(s, btc_1h, stops=ExitRules(atr=AtrStop(multiple=2.0)))
    assert err.value.field == "stops.atr"
    with pytest.raises(ValidationError):
        backtest(s, btc_1h, stops=ExitRules(stop=FixedStop(price=5000.0)))


def test_rebalance_weights_backtest(daily_pair: dict[str, pd.DataFrame]) -> None:
    res = backtest(Rebalance(weights={"BTC": 0.6, "ETH": 0.4}, every=7), daily_pair)
    closes = pd.concat({k: v["close"] for k, v in daily_pair.items()}, axis=1, join="inner")
    assert len(res.equity) == len(closes) == 255
    # Right after a rebalance fill (next open), holdings are worth 60/40 of equity at that open
    # (within fees): check at bar 8 (rebalance signal bar 7).
    pos = res.position.iloc[8]
    opens = pd.concat({k: v["open"] for k, v in daily_pair.items()}, axis=1, join="inner").iloc[8]
    val = pos * opens
    assert (val / val.sum()).to_numpy() == pytest.approx([0.6, 0.4], abs=2e-3)
    assert res.metrics["n_trades"] > 10
    cmp = res.compare(res.direct_vectorbt())
    assert cmp.equal


@pytest.mark.parametrize("col", ["close", "open"])
def test_nan_gap_names_the_timestamp(btc_1h: pd.DataFrame, col: str) -> None:
    df = btc_1h.copy()
    df.iloc[123, df.columns.get_loc(col)] = np.nan
    with pytest.raises(ValidationError) as err:
        backtest(SmaCross(), df)
    assert err.value.field == f"data.{col}"
    assert str(df.index[123]) in str(err.value)


def test_unsorted_and_duplicated_index(btc_1h: pd.DataFrame) -> None:
    dup = pd.concat([btc_1h.iloc[:50], btc_1h.iloc[49:100]])
    with pytest.raises(ValidationError, match="duplicate") as err:
        backtest(SmaCross(), dup)
    assert str(btc_1h.index[49]) in str(err.value)
    back = btc_1h.iloc[[0, 1, 3, 2, 4]]
    with pytest.raises(ValidationError, match="backwards"):
        backtest(SmaCross(), back)


def test_misaligned_signals(btc_1h: pd.DataFrame) -> None:
    short = np.zeros(len(btc_1h) - 1, bool)
    with pytest.raises(ValidationError) as err:
        backtest(Scripted(short, short), btc_1h)
    assert err.value.field == "signals.entries"
    shifted = pd.Series(False, index=btc_1h.index + pd.Timedelta("30min"))
    with pytest.raises(ValidationError) as err:
        backtest(Scripted(shifted, shifted), btc_1h)
    assert err.value.field == "signals.entries" and str(shifted.index[0]) in str(err.value)
    with pytest.raises(ValidationError) as err:
        backtest(SmaCross(), btc_1h, fill="open")
    assert err.value.field == "fill"


def test_data_quality_finds_the_known_gaps(eth_1h: pd.DataFrame) -> None:
    q = data_quality(eth_1h, "1h")
    # The README of the shared data: 3 gaps / 18 missing bars (maintenance windows).
    assert (q["rows"], q["gaps"], q["missing_bars"], q["duplicates"], q["nan"]) == (500, 3, 18, 0, 0)
    assert q["largest_gap"] == pd.Timedelta("11h")  # 2018-06-26 01:00 -> 12:00


def test_sample_data_uses_env_dir(tmp_path, monkeypatch, btc_1h: pd.DataFrame) -> None:
    src = __import__("pathlib").Path(__file__).resolve().parents[2] / "fixtures" / "research"
    (tmp_path / "ohlcv").mkdir()
    (tmp_path / "ohlcv" / "x_1h.csv.gz").write_bytes((src / "binance_BTC-USDT_1h_2018-04.csv.gz").read_bytes())
    monkeypatch.setenv("LYRA_SAMPLE_DATA", str(tmp_path))
    pd.testing.assert_frame_equal(sample_data("x_1h"), btc_1h)
    with pytest.raises(ValidationError) as err:
        sample_data("nope")
    assert "x_1h" in str(err.value)
    with pytest.raises(ValidationError):
        load_ohlcv(tmp_path / "missing.csv.gz")
