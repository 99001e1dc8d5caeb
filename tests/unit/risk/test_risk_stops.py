"""Stops: hand-worked bar sequences, Wilder ATR, and event-driven == vectorised on real data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lyra.core.errors import ValidationError
from lyra.core.market import Bar
from lyra.risk import (
    AtrStop,
    ExitReason,
    ExitRules,
    FixedStop,
    StopTracker,
    TakeProfit,
    TimeStop,
    TrailingStop,
    WilderATR,
    apply_exits,
    wilder_atr,
)

HOUR = 3_600_000


def bars(rows: list[tuple[float, float, float, float]]) -> list[Bar]:
    return [Bar("TEST", "1h", i * HOUR, o, h, lo, c, 1.0) for i, (o, h, lo, c) in enumerate(rows)]


def run_event(rules, rows, side="long", entry=0, atr=None):
    """Enter at the close of bar ``entry``; feed the later bars; return (index, price, reason)."""
    bs = bars(rows)
    tr = StopTracker(rules, side, bs[entry].close, atr=atr)
    for t in range(entry + 1, len(bs)):
        sig = tr.update(bs[t])
        if sig is not None:
            assert sig.bars_held == t - entry
            assert sig.ts == bs[t].ts
            return t, sig.price, sig.reason
    return -1, None, ExitReason.NONE


def run_vector(rules, rows, side="long", entry=0, atr=None):
    a = np.array(rows)
    out = apply_exits(
        rules,
        a[:, 0],
        a[:, 1],
        a[:, 2],
        a[:, 3],
        np.array([entry]),
        side=side,
        timestamps=np.arange(len(rows)) * HOUR,
        atr=atr,
    )
    price = None if out.exit_index[0] < 0 else float(out.exit_price[0])
    return int(out.exit_index[0]), price, ExitReason(int(out.reason[0]))


def both(rules, rows, side="long", atr_at_entry=None, atr=None):
    ev = run_event(rules, rows, side, atr=atr_at_entry)
    assert run_vector(rules, rows, side, atr=atr) == ev
    return ev


BASE = [  # (open, high, low, close); the entry is the close of bar 0 = 100
    (99.0, 101.0, 98.0, 100.0),
    (100.0, 103.0, 99.0, 102.0),
    (102.0, 110.0, 104.0, 108.0),
    (108.0, 109.0, 104.0, 105.0),
    (105.0, 106.0, 96.0, 97.0),
    (97.0, 98.0, 94.0, 95.5),
]


def test_fixed_percent_stop_fills_at_the_stop_intrabar():
    # Stop 5% under 100 = 95; bar 4's low 96 does not reach it; bar 5's low 94 does → 95.
    assert both(ExitRules(stop=FixedStop(pct=0.05)), BASE) == (5, 95.0, ExitReason.STOP_LOSS)


def test_fixed_stop_gap_fills_at_the_open():
    rows = [*BASE[:2], (90.0, 92.0, 89.0, 91.0)]  # opens at 90, through the 95 stop
    assert both(ExitRules(stop=FixedStop(price=95.0)), rows) == (2, 90.0, ExitReason.STOP_LOSS)


def test_trailing_stop_ratchets_on_completed_bars_only():
    # Level during bar 1: 100·0.95 = 95; bar 2: 103·0.95 = 97.85 (its own high of 110 is not
    # used, else 104.5 would trigger on its low of 104); bar 3: 110·0.95 = 104.5 → low 104 hits.
    res = both(ExitRules(trailing=TrailingStop(pct=0.05)), BASE)
    assert res == (3, 110.0 * 0.95, ExitReason.TRAILING_STOP)
    tr = StopTracker(ExitRules(trailing=TrailingStop(amount=10.0)), "long", 100.0)
    assert tr.stop_level == 90.0
    levels = []
    for b in bars(BASE)[1:4]:
        assert tr.update(b) is None
        levels.append(tr.stop_level)
    assert levels == [93.0, 100.0, 100.0]  # never moves down after bar 3's lower high


def test_take_profit_and_the_stop_first_rule():
    rules = ExitRules(stop=FixedStop(pct=0.03), take_profit=TakeProfit(pct=0.08))
    # Bar 2 reaches 110 ≥ 108 (TP) and its low 104 is above the 97 stop → TP at 108.
    assert both(rules, BASE) == (2, 108.0, ExitReason.TAKE_PROFIT)
    # A bar spanning both levels: the stop is assumed first (conservative).
    wide = [BASE[0], (100.0, 109.0, 96.0, 100.0)]
    assert both(rules, wide) == (1, 97.0, ExitReason.STOP_LOSS)
    # Opening above the take-profit fills at the (better) open.
    gap = [BASE[0], (112.0, 113.0, 111.0, 112.0)]
    assert both(rules, gap) == (1, 112.0, ExitReason.TAKE_PROFIT)


def test_short_mirror():
    rules = ExitRules(stop=FixedStop(pct=0.05), take_profit=TakeProfit(price=90.0))
    up = [BASE[0], (101.0, 106.0, 100.0, 104.0)]  # high 106 ≥ 105 stop
    assert both(rules, up, "short") == (1, 105.0, ExitReason.STOP_LOSS)
    down = [BASE[0], (99.0, 99.5, 89.0, 89.5)]
    assert both(rules, down, "short") == (1, 90.0, ExitReason.TAKE_PROFIT)
    trail = ExitRules(trailing=TrailingStop(pct=0.02))
    # Lows 98 → level 99.96 during bar 2; bar 2's high 101 triggers it.
    rows = [BASE[0], (99.0, 99.5, 98.0, 98.5), (98.5, 101.0, 98.2, 100.0)]
    assert both(trail, rows, "short") == (2, 98.0 * 1.02, ExitReason.TRAILING_STOP)


def test_time_stops():
    assert both(ExitRules(time=TimeStop(max_bars=2)), BASE) == (2, 108.0, ExitReason.TIME)
    # Deadline at 3h: the bar opening at 3h exits at its open.
    assert both(ExitRules(time=TimeStop(deadline_ts=3 * HOUR)), BASE) == (3, 108.0, ExitReason.TIME)
    # Never exits within the data.
    assert both(ExitRules(time=TimeStop(max_bars=50)), BASE) == (-1, None, ExitReason.NONE)


def test_wilder_atr_hand_worked_and_incremental_twin():
    hlc = [(10, 8, 9), (12, 9, 11), (11.5, 10, 10.5), (13, 10.5, 12.5), (12, 7, 8)]
    # TR: 2 (first bar: h−l), 3, 1.5, 2.5, max(5, 0.5, 5.5) = 5.5
    # ATR(3): bar 2 = (2+3+1.5)/3 = 2.1666..; bar 3 = (2.1666..·2 + 2.5)/3 = 2.2777..;
    #         bar 4 = (2.2777..·2 + 5.5)/3 = 3.3518518..
    h, lo, c = (np.array(x, dtype=float) for x in zip(*hlc, strict=True))
    atr = wilder_atr(h, lo, c, 3)
    assert np.isnan(atr[:2]).all()
    np.testing.assert_allclose(atr[2:], [6.5 / 3, 6.8333333333333333 / 3, 3.3518518518518519])
    inc = WilderATR(3)
    assert [inc.update(*x) for x in hlc][2:] == atr[2:].tolist()  # bit-identical


def test_wilder_atr_matches_pandas_ewm_on_real_data(btc_1h):
    h, lo, c = (btc_1h[k].to_numpy() for k in ("high", "low", "close"))
    n = 14
    tr = pd.concat(
        [
            btc_1h.high - btc_1h.low,
            (btc_1h.high - btc_1h.close.shift()).abs(),
            (btc_1h.low - btc_1h.close.shift()).abs(),
        ],
        axis=1,
    ).max(axis=1)
    seeded = tr.copy()
    seeded.iloc[n - 1] = tr.iloc[:n].mean()
    ref = seeded.iloc[n - 1 :].ewm(alpha=1 / n, adjust=False).mean().to_numpy()
    np.testing.assert_allclose(wilder_atr(h, lo, c, n)[n - 1 :], ref, rtol=1e-12)


def test_atr_stop_is_k_atr_from_entry():
    rows = [*BASE[:2], (102.0, 103.0, 93.0, 94.0)]
    atr = np.array([2.0, 2.0, 2.0])
    rules = ExitRules(atr=AtrStop(multiple=3.0, period=14))
    assert both(rules, rows, atr_at_entry=2.0, atr=atr) == (2, 94.0, ExitReason.ATR_STOP)


RULESETS = [
    ExitRules(stop=FixedStop(pct=0.02), take_profit=TakeProfit(pct=0.03)),
    ExitRules(trailing=TrailingStop(pct=0.015)),
    ExitRules(trailing=TrailingStop(amount=120.0), time=TimeStop(max_bars=48)),
    ExitRules(atr=AtrStop(multiple=2.5, period=14), trailing=TrailingStop(pct=0.02)),
    ExitRules(
        stop=FixedStop(pct=0.03),
        atr=AtrStop(multiple=1.5, period=14),
        take_profit=TakeProfit(pct=0.05),
        time=TimeStop(deadline_ts=1_524_800_000_000),
    ),
    ExitRules(time=TimeStop(max_bars=24), take_profit=TakeProfit(pct=0.01)),
]


@pytest.mark.parametrize("rules", RULESETS, ids=range(len(RULESETS)))
def test_event_driven_and_vectorised_exits_identical_on_real_btc(btc_1h, rules):
    o, h, lo, c = (btc_1h[k].to_numpy() for k in ("open", "high", "low", "close"))
    ts = btc_1h.timestamp_ms.to_numpy()
    entries = np.arange(20, len(c) - 1, 7)
    sides = ["long" if k % 2 == 0 else "short" for k in range(entries.size)]
    vec = apply_exits(rules, o, h, lo, c, entries, side=sides, timestamps=ts)

    all_bars = [
        Bar("BTC/USDT", "1h", int(t), *map(float, x), 0.0)
        for t, x in zip(ts, zip(o, h, lo, c, strict=True), strict=True)
    ]
    atr_running = WilderATR(14)
    atr_at = [atr_running.update(b.high, b.low, b.close) for b in all_bars]
    n_exits = 0
    for k, i in enumerate(entries):
        tracker = StopTracker(rules, sides[k], all_bars[i].close, atr=atr_at[i])
        got = (-1, np.nan, 0)
        for t in range(i + 1, len(all_bars)):
            sig = tracker.update(all_bars[t])
            if sig is not None:
                got = (t, sig.price, int(sig.reason))
                n_exits += 1
                break
        assert vec.exit_index[k] == got[0], f"entry {i}"
        assert vec.reason[k] == got[2], f"entry {i}"
        assert (vec.exit_price[k] == got[1]) or (np.isnan(got[1]) and np.isnan(vec.exit_price[k]))
    assert n_exits > entries.size // 2  # the rules really fire on this data


def test_validation_of_stop_rules():
    with pytest.raises(ValidationError) as err:
        FixedStop(price=95.0, pct=0.05)
    assert err.value.field == "FixedStop"
    with pytest.raises(ValidationError):
        ExitRules()
    with pytest.raises(ValidationError) as err:
        StopTracker(ExitRules(stop=FixedStop(price=105.0)), "long", 100.0)
    assert err.value.field == "FixedStop.price"
    with pytest.raises(ValidationError) as err:
        StopTracker(ExitRules(atr=AtrStop(2.0)), "long", 100.0, atr=None)
    assert err.value.field == "atr"
    with pytest.raises(ValidationError) as err:
        StopTracker(ExitRules(stop=FixedStop(pct=0.1)), "sideways", 100.0)
    assert err.value.field == "side"
    a = np.array(BASE)
    with pytest.raises(ValidationError) as err:
        apply_exits(ExitRules(stop=FixedStop(pct=0.1)), a[:, 0], a[:, 1], a[:, 2], a[:4, 3], [0])
    assert err.value.field == "close"
    with pytest.raises(ValidationError) as err:
        apply_exits(ExitRules(stop=FixedStop(pct=0.1)), *a.T, np.array([9]))
    assert err.value.field == "entry_index"
