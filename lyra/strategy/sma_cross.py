"""Moving-average crossover (SMA or EMA), long-only or long/short.

Enter long when the fast average crosses above the slow one; exit (or reverse to short, with
``allow_short=True``) when it crosses below. Signals are on the bar's close; see
:mod:`lyra.strategy.base` for the fill convention.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import model_validator

from lyra.strategy._indicators import cross_signals_nb, ema_nb, sma_nb
from lyra.strategy.base import (
    ENTRY,
    EXIT,
    NO_SIGNAL,
    IncrementalSignalStrategy,
    IndicatorCache,
    Signals,
    Strategy,
    close_array,
    make_signals,
)
from lyra.strategy.params import ParamError, StrategyParams, Window


class SmaCrossParams(StrategyParams):
    """``fast`` < ``slow`` windows in bars; ``ma`` is "sma" or "ema"."""

    fast: Window = 10
    slow: Window = 30
    ma: Literal["sma", "ema"] = "sma"
    allow_short: bool = False

    @model_validator(mode="after")
    def _fast_below_slow(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ParamError("fast", f"must be smaller than slow ({self.slow})")
        return self


def moving_average(close: NDArray[np.float64], window: int, kind: str = "sma",
                   cache: IndicatorCache | None = None) -> NDArray[np.float64]:
    """SMA/EMA of ``close`` over ``window`` bars, memoised in ``cache`` if given."""
    key = (kind, window)
    if cache is not None and key in cache:
        return cache[key]
    out = sma_nb(close, window) if kind == "sma" else ema_nb(close, window)
    if cache is not None:
        cache[key] = out
    return out


class SmaCross(Strategy[SmaCrossParams]):
    """Fast/slow moving-average crossover. ``SmaCross(fast=10, slow=30, ma="sma")``."""

    params_model = SmaCrossParams

    @property
    def warmup(self) -> int:
        return self.params.slow

    def signals(self, data: pd.DataFrame | pd.Series | ArrayLike,
                cache: IndicatorCache | None = None) -> Signals:
        close = close_array(data)
        p = self.params
        fast = moving_average(close, p.fast, p.ma, cache)
        slow = moving_average(close, p.slow, p.ma, cache)
        en, ex = cross_signals_nb(fast, slow)
        return make_signals(en, ex, p.allow_short)

    def incremental(self, instrument_id: str, quantity: Decimal | str | int = 1) -> IncrementalSignalStrategy:
        p = self.params
        if p.ma == "sma":
            return SmaCrossIncremental(instrument_id, p.fast, p.slow, quantity, p.allow_short)
        return EmaCrossIncremental(instrument_id, p.fast, p.slow, quantity, p.allow_short)


class SmaCrossIncremental(IncrementalSignalStrategy):
    """O(1) SMA crossover: one ring buffer of ``slow`` closes and two running sums."""

    __slots__ = ("_buf", "_fast", "_i", "_pf", "_ps", "_sf", "_slow", "_ss")

    def __init__(self, instrument_id: str, fast: int, slow: int,
                 quantity: Decimal | str | int = 1, allow_short: bool = False) -> None:
        super().__init__(instrument_id, quantity, allow_short)
        self._fast = fast
        self._slow = slow
        self._buf = [0.0] * slow
        self._i = 0
        self._sf = 0.0
        self._ss = 0.0
        self._pf = float("nan")
        self._ps = float("nan")

    def update(self, close: float) -> int:
        i = self._i
        slow = self._slow
        fast = self._fast
        buf = self._buf
        # Same operation order as sma_nb: add the new value, then drop the oldest.
        sf = self._sf + close
        if i >= fast:
            sf -= buf[(i - fast) % slow]
        ss = self._ss + close
        if i >= slow:
            ss -= buf[i % slow]
        buf[i % slow] = close
        self._sf = sf
        self._ss = ss
        self._i = i + 1
        self.n_bars = i + 1
        if i < slow - 1:
            self.last_signal = NO_SIGNAL
            return NO_SIGNAL
        f = sf / fast
        s = ss / slow
        pf = self._pf
        ps = self._ps
        self._pf = f
        self._ps = s
        code = NO_SIGNAL
        if f > s and pf <= ps:
            code = ENTRY
        elif f < s and pf >= ps:
            code = EXIT
        self.last_signal = code
        return code


class EmaCrossIncremental(IncrementalSignalStrategy):
    """O(1) EMA crossover with the same recurrence as ``ema_nb``."""

    __slots__ = ("_af", "_as", "_ef", "_es", "_fast", "_i", "_pf", "_ps", "_slow")

    def __init__(self, instrument_id: str, fast: int, slow: int,
                 quantity: Decimal | str | int = 1, allow_short: bool = False) -> None:
        super().__init__(instrument_id, quantity, allow_short)
        self._fast = fast
        self._slow = slow
        self._af = 2.0 / (fast + 1.0)
        self._as = 2.0 / (slow + 1.0)
        self._ef = 0.0
        self._es = 0.0
        self._i = 0
        self._pf = float("nan")
        self._ps = float("nan")

    def update(self, close: float) -> int:
        i = self._i
        self._i = i + 1
        self.n_bars = i + 1
        if i == 0:
            ef = es = close
        else:
            ef = self._ef + self._af * (close - self._ef)
            es = self._es + self._as * (close - self._es)
        self._ef = ef
        self._es = es
        nan = float("nan")
        f = ef if i >= self._fast - 1 else nan
        s = es if i >= self._slow - 1 else nan
        pf = self._pf
        ps = self._ps
        self._pf = f
        self._ps = s
        code = NO_SIGNAL
        if i >= 1:
            if f > s and pf <= ps:
                code = ENTRY
            elif f < s and pf >= ps:
                code = EXIT
        self.last_signal = code
        return code
