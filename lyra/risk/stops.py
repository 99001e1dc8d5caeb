"""Stops and exits with one semantics for the event-driven runtime and for vectorised research.

Describe the exits of a position once with :class:`ExitRules` (any mix of a fixed stop, a
trailing stop, an ATR stop, a take-profit and a time stop), then either

* feed bars one at a time to a :class:`StopTracker` (``update(bar)`` → :class:`ExitSignal` or
  ``None``), or
* call :func:`apply_exits` with numpy OHLC arrays and entry indices (research, many trades).

Both give the same exits bar for bar (the test suite checks it on real data).

Bar model (the intrabar rule)
-----------------------------
A position is entered at the **close of bar** ``i`` (the entry price defaults to ``close[i]``);
exits are looked for from bar ``i + 1`` on. Inside a bar only the open is known to come first;
whether the high or the low came next is unknown, so we are conservative:

1. **At the open**: if the open is already through the stop (long: ``open <= stop``) the stop
   fills **at the open** (a gap); else if the open is through the take-profit
   (long: ``open >= tp``) the take-profit fills at the open; else if the bar's timestamp is at
   or after the time stop's ``deadline_ts`` the position exits at the open.
2. **Intrabar**: the stop triggers if ``low <= stop`` (short: ``high >= stop``) and fills at the
   stop price; otherwise the take-profit triggers if ``high >= tp`` (short: ``low <= tp``) and
   fills at the take-profit price. If both are inside the bar's range the **stop wins**.
3. **At the close**: after ``max_bars`` bars held, the position exits at the close.

The stop in force during bar ``t`` uses information up to the close of bar ``t − 1`` only: a
trailing stop ratchets with the highs (long) / lows (short) of *completed* bars, never with
the bar it is being tested on, and never moves against the position. When several stop
rules are set the tightest one is in force (long: the highest), and its name is the exit
reason (ties: fixed, then ATR, then trailing). Fills ignore slippage and fees.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum, StrEnum

import numpy as np
from numpy.typing import ArrayLike, NDArray

from lyra.core.errors import ValidationError
from lyra.core.market import Bar
from lyra.risk._validate import FloatArray, as_float_array, finite_float, positive_float


class PositionSide(StrEnum):
    """Direction of the position the stop protects."""

    LONG = "long"  #: bought; losses when the price falls
    SHORT = "short"  #: sold short; losses when the price rises


class ExitReason(IntEnum):
    """Why a position was closed (an int, so that it fits numpy arrays)."""

    NONE = 0  #: not exited (still open at the end of the data)
    STOP_LOSS = 1  #: the fixed stop (price or % from entry)
    ATR_STOP = 2  #: the k × ATR stop
    TRAILING_STOP = 3  #: the trailing stop
    TAKE_PROFIT = 4  #: the take-profit
    TIME = 5  #: held max_bars, or the deadline passed


@dataclass(frozen=True, slots=True)
class FixedStop:
    """A stop at an absolute ``price`` or at ``pct`` (e.g. 0.05 = 5%) from the entry."""

    price: float | None = None
    pct: float | None = None

    def __post_init__(self) -> None:
        _one_of("FixedStop", price=self.price, pct=self.pct)


@dataclass(frozen=True, slots=True)
class TrailingStop:
    """A stop ``pct`` (fraction) or ``amount`` (price units) behind the best price so far."""

    pct: float | None = None
    amount: float | None = None

    def __post_init__(self) -> None:
        _one_of("TrailingStop", pct=self.pct, amount=self.amount)


@dataclass(frozen=True, slots=True)
class AtrStop:
    """A stop ``multiple × ATR(period)`` from the entry, with Wilder's ATR at the entry bar."""

    multiple: float
    period: int = 14

    def __post_init__(self) -> None:
        positive_float("AtrStop.multiple", self.multiple)
        if isinstance(self.period, bool) or not isinstance(self.period, int) or self.period < 1:
            raise ValidationError("AtrStop.period", self.period, "must be an integer >= 1")


@dataclass(frozen=True, slots=True)
class TakeProfit:
    """Take profit at an absolute ``price`` or ``pct`` (fraction) beyond the entry."""

    price: float | None = None
    pct: float | None = None

    def __post_init__(self) -> None:
        _one_of("TakeProfit", price=self.price, pct=self.pct)


@dataclass(frozen=True, slots=True)
class TimeStop:
    """Exit at the close after ``max_bars`` bars, and/or at the open of the first bar whose
    timestamp (int ms UTC, bar open time) is ``>= deadline_ts``."""

    max_bars: int | None = None
    deadline_ts: int | None = None

    def __post_init__(self) -> None:
        if self.max_bars is None and self.deadline_ts is None:
            raise ValidationError("TimeStop", None, "set max_bars and/or deadline_ts")
        if self.max_bars is not None and (
            isinstance(self.max_bars, bool) or not isinstance(self.max_bars, int) or self.max_bars < 1
        ):
            raise ValidationError("TimeStop.max_bars", self.max_bars, "must be an integer >= 1")
        if self.deadline_ts is not None and (
            isinstance(self.deadline_ts, bool) or not isinstance(self.deadline_ts, int)
        ):
            raise ValidationError("TimeStop.deadline_ts", self.deadline_ts, "must be int ms UTC")


@dataclass(frozen=True, slots=True)
class ExitRules:
    """The exits of a position; every part is optional, at least one must be set."""

    stop: FixedStop | None = None
    trailing: TrailingStop | None = None
    atr: AtrStop | None = None
    take_profit: TakeProfit | None = None
    time: TimeStop | None = None

    def __post_init__(self) -> None:
        if all(x is None for x in (self.stop, self.trailing, self.atr, self.take_profit, self.time)):
            raise ValidationError("ExitRules", None, "set at least one exit rule")


@dataclass(frozen=True, slots=True)
class ExitSignal:
    """An exit decided by a :class:`StopTracker` on one bar."""

    price: float  #: fill price (the level, or the open on a gap, or the close for max_bars)
    reason: ExitReason
    ts: int  #: timestamp of the bar that triggered it
    bars_held: int  #: bars since entry, this one included


@dataclass(frozen=True, slots=True)
class VectorExits:
    """Exits of many entries: ``exit_index == -1`` / NaN price / ``NONE`` when still open."""

    exit_index: NDArray[np.int64]
    exit_price: FloatArray
    reason: NDArray[np.int8]


# ------------------------------------------------------------------------------ ATR


def true_range(high: float, low: float, prev_close: float | None) -> float:
    """Wilder's true range; the first bar (no previous close) uses ``high − low``."""
    if prev_close is None:
        return high - low
    return max(high - low, abs(high - prev_close), abs(low - prev_close))


class WilderATR:
    """Incremental Wilder ATR: the mean of the first ``period`` true ranges, then
    ``ATR_t = (ATR_{t−1}·(period − 1) + TR_t) / period``. Same numbers as :func:`wilder_atr`."""

    def __init__(self, period: int = 14) -> None:
        if isinstance(period, bool) or not isinstance(period, int) or period < 1:
            raise ValidationError("period", period, "must be an integer >= 1")
        self.period = period
        self.value: float | None = None
        self._prev_close: float | None = None
        self._sum = 0.0
        self._count = 0

    def update(self, high: float, low: float, close: float) -> float | None:
        """Add one completed bar; returns the ATR, or ``None`` during the warm-up."""
        tr = true_range(high, low, self._prev_close)
        self._prev_close = close
        if self.value is None:
            self._sum += tr
            self._count += 1
            if self._count == self.period:
                self.value = self._sum / self.period
        else:
            self.value = (self.value * (self.period - 1) + tr) / self.period
        return self.value


def wilder_atr(high: ArrayLike, low: ArrayLike, close: ArrayLike, period: int = 14) -> FloatArray:
    """Wilder ATR for every bar (NaN for the first ``period − 1``); ``O(T)``."""
    h, lo, c = _ohlc_arrays(("high", high), ("low", low), ("close", close))
    atr = WilderATR(period)  # validates period; its arithmetic is reused below
    out = np.full(h.size, np.nan)
    if h.size == 0:
        return out
    tr = np.empty(h.size)
    tr[0] = h[0] - lo[0]
    prev = c[:-1]
    tr[1:] = np.maximum(np.maximum(h[1:] - lo[1:], np.abs(h[1:] - prev)), np.abs(lo[1:] - prev))
    n = atr.period
    if h.size < n:
        return out
    total = 0.0
    trs = tr.tolist()
    for x in trs[:n]:  # the same sequential sum as WilderATR, so results are bit-identical
        total += x
    value = total / n
    out[n - 1] = value
    for t in range(n, h.size):
        value = (value * (n - 1) + trs[t]) / n
        out[t] = value
    return out


# ------------------------------------------------------------------------------ levels


def _fixed_level(rule: FixedStop, long: bool, entry: float) -> float:
    if rule.price is not None:
        level = positive_float("FixedStop.price", rule.price)
        if (level >= entry) if long else (level <= entry):
            raise ValidationError("FixedStop.price", rule.price, f"is on the wrong side of entry {entry}")
        return level
    pct = positive_float("FixedStop.pct", rule.pct)
    if long and pct >= 1.0:
        raise ValidationError("FixedStop.pct", rule.pct, "a long stop needs pct < 1")
    return entry * (1.0 - pct) if long else entry * (1.0 + pct)


def _take_profit_level(rule: TakeProfit, long: bool, entry: float) -> float:
    if rule.price is not None:
        level = positive_float("TakeProfit.price", rule.price)
        if (level <= entry) if long else (level >= entry):
            raise ValidationError("TakeProfit.price", rule.price, f"is on the wrong side of entry {entry}")
        return level
    pct = positive_float("TakeProfit.pct", rule.pct)
    if not long and pct >= 1.0:
        raise ValidationError("TakeProfit.pct", rule.pct, "a short take-profit needs pct < 1")
    return entry * (1.0 + pct) if long else entry * (1.0 - pct)


def _atr_level(rule: AtrStop, long: bool, entry: float, atr: float | None) -> float:
    if atr is None or not math.isfinite(atr) or atr <= 0.0:
        raise ValidationError("atr", atr, "ATR at entry must be a positive number", "enter after the warm-up")
    return entry - rule.multiple * atr if long else entry + rule.multiple * atr


def _trail_factor(rule: TrailingStop, long: bool) -> tuple[float, float]:
    """(multiplier, offset): level = ref * multiplier + offset."""
    if rule.pct is not None:
        pct = positive_float("TrailingStop.pct", rule.pct)
        if long and pct >= 1.0:
            raise ValidationError("TrailingStop.pct", rule.pct, "a long trail needs pct < 1")
        return (1.0 - pct, 0.0) if long else (1.0 + pct, 0.0)
    amount = positive_float("TrailingStop.amount", rule.amount)
    return (1.0, -amount) if long else (1.0, amount)


@dataclass(frozen=True, slots=True)
class _Plan:
    """The per-position constants both forms share."""

    long: bool
    fixed: float | None
    atr: float | None
    trail: tuple[float, float] | None
    tp: float | None
    max_bars: int | None
    deadline: int | None


def _plan(rules: ExitRules, long: bool, entry: float, atr: float | None) -> _Plan:
    return _Plan(
        long=long,
        fixed=_fixed_level(rules.stop, long, entry) if rules.stop else None,
        atr=_atr_level(rules.atr, long, entry, atr) if rules.atr else None,
        trail=_trail_factor(rules.trailing, long) if rules.trailing else None,
        tp=_take_profit_level(rules.take_profit, long, entry) if rules.take_profit else None,
        max_bars=rules.time.max_bars if rules.time else None,
        deadline=rules.time.deadline_ts if rules.time else None,
    )


def _trail_level(trail: tuple[float, float], ref: float) -> float:
    mult, off = trail
    return ref * mult + off if off else ref * mult


# ------------------------------------------------------------------------------ event-driven


class StopTracker:
    """Watches one open position bar by bar and says when and at what price to exit.

    ``atr`` is the ATR at the entry bar (needed only with an :class:`AtrStop`; keep a
    :class:`WilderATR` running in the session to have it). Once an exit is returned the
    tracker is ``closed`` and ignores further bars.
    """

    def __init__(
        self,
        rules: ExitRules,
        side: PositionSide | str,
        entry_price: float,
        *,
        atr: float | None = None,
    ) -> None:
        long = _side_is_long(side)
        self.entry_price = positive_float("entry_price", entry_price)
        self._plan = _plan(rules, long, self.entry_price, atr)
        self._ref = self.entry_price  # best price of completed bars (trailing reference)
        self.bars_held = 0
        self.closed = False

    @property
    def stop_level(self) -> float | None:
        """The stop in force for the next bar (the tightest rule), or None without stops."""
        level, _ = self._stop()
        return level

    @property
    def take_profit_level(self) -> float | None:
        return self._plan.tp

    def update(self, bar: Bar) -> ExitSignal | None:
        """Test one completed bar; see the module doc for the order of checks."""
        return self.update_ohlc(bar.ts, bar.open, bar.high, bar.low, bar.close)

    def update_ohlc(self, ts: int, open_: float, high: float, low: float, close: float) -> ExitSignal | None:
        """:meth:`update` for callers holding plain numbers instead of a :class:`Bar`."""
        if self.closed:
            return None
        p = self._plan
        self.bars_held += 1
        stop, stop_reason = self._stop()
        sig = _decide(p, stop, stop_reason, ts, open_, high, low, close, self.bars_held)
        if sig is not None:
            self.closed = True
            price, reason = sig
            return ExitSignal(price, reason, ts, self.bars_held)
        self._ref = max(self._ref, high) if p.long else min(self._ref, low)
        return None

    def _stop(self) -> tuple[float | None, ExitReason]:
        p = self._plan
        trail = _trail_level(p.trail, self._ref) if p.trail is not None else None
        return _tightest(p.long, p.fixed, p.atr, trail)


def _tightest(
    long: bool, fixed: float | None, atr: float | None, trail: float | None
) -> tuple[float | None, ExitReason]:
    best: float | None = None
    reason = ExitReason.NONE
    for level, why in (
        (fixed, ExitReason.STOP_LOSS),
        (atr, ExitReason.ATR_STOP),
        (trail, ExitReason.TRAILING_STOP),
    ):
        if level is not None and (best is None or (level > best if long else level < best)):
            best, reason = level, why
    return best, reason


def _decide(
    p: _Plan,
    stop: float | None,
    stop_reason: ExitReason,
    ts: int,
    o: float,
    h: float,
    lo: float,
    c: float,
    held: int,
) -> tuple[float, ExitReason] | None:
    """The bar rule, written once; the vectorised path calls it on the first flagged bar."""
    tp = p.tp
    if p.long:
        if stop is not None and o <= stop:
            return o, stop_reason
        if tp is not None and o >= tp:
            return o, ExitReason.TAKE_PROFIT
        if p.deadline is not None and ts >= p.deadline:
            return o, ExitReason.TIME
        if stop is not None and lo <= stop:
            return stop, stop_reason
        if tp is not None and h >= tp:
            return tp, ExitReason.TAKE_PROFIT
    else:
        if stop is not None and o >= stop:
            return o, stop_reason
        if tp is not None and o <= tp:
            return o, ExitReason.TAKE_PROFIT
        if p.deadline is not None and ts >= p.deadline:
            return o, ExitReason.TIME
        if stop is not None and h >= stop:
            return stop, stop_reason
        if tp is not None and lo <= tp:
            return tp, ExitReason.TAKE_PROFIT
    if p.max_bars is not None and held >= p.max_bars:
        return c, ExitReason.TIME
    return None


# ------------------------------------------------------------------------------ vectorised


def apply_exits(
    rules: ExitRules,
    open_: ArrayLike,
    high: ArrayLike,
    low: ArrayLike,
    close: ArrayLike,
    entry_index: ArrayLike,
    *,
    side: PositionSide | str | Sequence[PositionSide | str] = PositionSide.LONG,
    entry_price: ArrayLike | None = None,
    timestamps: ArrayLike | None = None,
    atr: ArrayLike | None = None,
) -> VectorExits:
    """First exit of each entry, with the same rule as :class:`StopTracker`.

    ``entry_index`` are bar indices (entry at that bar's close); ``side`` is one side for all
    or one per entry; ``entry_price`` defaults to ``close[entry_index]``; ``timestamps``
    (int ms, bar open) are needed for a ``deadline_ts``; ``atr`` defaults to
    :func:`wilder_atr` with the rule's period. Each entry is searched in windows that double
    (256, 512, ... bars), so short trades cost little even on long series.
    """
    o, h, lo, c = _ohlc_arrays(("open_", open_), ("high", high), ("low", low), ("close", close))
    n = o.size
    idx = np.asarray(entry_index)
    if idx.ndim != 1 or (idx.size and not np.issubdtype(idx.dtype, np.integer)):
        raise ValidationError("entry_index", f"dtype {idx.dtype}", "must be a 1-D integer array")
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        bad = int(idx[(idx < 0) | (idx >= n)][0])
        raise ValidationError("entry_index", bad, f"outside the {n} bars")
    sides = _sides(side, idx.size)
    if entry_price is None:
        ep = c[idx]
    else:
        ep = as_float_array("entry_price", entry_price, ndim=(1,))
        if ep.size != idx.size:
            raise ValidationError("entry_price", f"{ep.size} values", f"{idx.size} entries")
    ts: NDArray[np.int64] | None = None
    if rules.time is not None and rules.time.deadline_ts is not None:
        if timestamps is None:
            raise ValidationError("timestamps", None, "needed for TimeStop.deadline_ts")
        ts = np.asarray(timestamps, dtype=np.int64)
        if ts.shape != (n,):
            raise ValidationError("timestamps", f"shape {ts.shape}", f"must be ({n},)")
    atr_arr: FloatArray | None = None
    if rules.atr is not None:
        if atr is None:
            atr_arr = wilder_atr(h, lo, c, rules.atr.period)
        else:
            atr_arr = np.asarray(atr, dtype=np.float64)
            if atr_arr.shape != (n,):
                raise ValidationError("atr", f"shape {atr_arr.shape}", f"must be ({n},)")

    out_idx = np.full(idx.size, -1, dtype=np.int64)
    out_px = np.full(idx.size, np.nan)
    out_reason = np.zeros(idx.size, dtype=np.int8)
    for k in range(idx.size):
        i = int(idx[k])
        a = float(atr_arr[i]) if atr_arr is not None else None
        plan = _plan(rules, sides[k], float(ep[k]), a)
        hit = _first_exit(plan, float(ep[k]), i, o, h, lo, c, ts)
        if hit is not None:
            out_idx[k], out_px[k], out_reason[k] = hit
    return VectorExits(out_idx, out_px, out_reason)


def _first_exit(
    p: _Plan,
    entry: float,
    i: int,
    o: FloatArray,
    h: FloatArray,
    lo: FloatArray,
    c: FloatArray,
    ts: NDArray[np.int64] | None,
) -> tuple[int, float, int] | None:
    n = o.size
    last = n if p.max_bars is None else min(n, i + 1 + p.max_bars)
    width = 256
    while True:
        end = min(last, i + 1 + width)
        sl = slice(i + 1, end)
        m = end - (i + 1)
        if m <= 0:
            return None
        fav = h[sl] if p.long else lo[sl]
        # Stop level per bar from completed bars only: ref[j] = best(entry, fav[:j]).
        ref = np.empty(m)
        ref[0] = entry
        ref[1:] = fav[:-1]
        ref = np.maximum.accumulate(ref) if p.long else np.minimum.accumulate(ref)
        levels = [x for x in (p.fixed, p.atr) if x is not None]
        stop: FloatArray | None = None
        if p.trail is not None:
            mult, off = p.trail
            stop = ref * mult + off if off else ref * mult
        for x in levels:
            stop = np.full(m, x) if stop is None else (np.maximum(stop, x) if p.long else np.minimum(stop, x))
        flag = np.zeros(m, dtype=bool)
        # The open is tested too, so bars whose open lies outside [low, high] agree as well.
        if stop is not None:
            flag |= (lo[sl] <= stop) | (o[sl] <= stop) if p.long else ((h[sl] >= stop) | (o[sl] >= stop))
        if p.tp is not None:
            flag |= (h[sl] >= p.tp) | (o[sl] >= p.tp) if p.long else ((lo[sl] <= p.tp) | (o[sl] <= p.tp))
        if p.deadline is not None and ts is not None:
            flag |= ts[sl] >= p.deadline
        if p.max_bars is not None and end == i + 1 + p.max_bars:
            flag[-1] = True
        if flag.any():
            j = int(np.argmax(flag))
            t = i + 1 + j
            trail = _trail_level(p.trail, float(ref[j])) if p.trail is not None else None
            level, why = _tightest(p.long, p.fixed, p.atr, trail)
            bar_ts = int(ts[t]) if ts is not None else 0
            res = _decide(p, level, why, bar_ts, float(o[t]), float(h[t]), float(lo[t]), float(c[t]), j + 1)
            if res is None:  # cannot happen: the flags mirror _decide's conditions
                raise AssertionError("vectorised flag without an exit")
            return t, res[0], int(res[1])
        if end >= last:
            return None
        width *= 2


def _side_is_long(side: PositionSide | str) -> bool:
    try:
        return PositionSide(side) is PositionSide.LONG
    except ValueError:
        raise ValidationError("side", side, "must be 'long' or 'short'") from None


def _sides(side: PositionSide | str | Sequence[PositionSide | str], n: int) -> list[bool]:
    if isinstance(side, str):
        return [_side_is_long(side)] * n
    items = list(side)
    if len(items) != n:
        raise ValidationError("side", f"{len(items)} sides", f"must be one or {n}")
    return [_side_is_long(s) for s in items]


def _ohlc_arrays(*named: tuple[str, ArrayLike]) -> tuple[FloatArray, ...]:
    arrays = tuple(as_float_array(name, val, ndim=(1,)) for name, val in named)
    n = arrays[0].size
    for (name, _), arr in zip(named, arrays, strict=True):
        if arr.size != n:
            raise ValidationError(name, f"length {arr.size}", f"must match {named[0][0]} ({n})")
    return arrays


def _one_of(cls: str, **kw: float | None) -> None:
    given = {k: v for k, v in kw.items() if v is not None}
    if len(given) != 1:
        raise ValidationError(cls, kw, f"set exactly one of {', '.join(kw)}")
    ((name, value),) = given.items()
    finite_float(f"{cls}.{name}", value)
