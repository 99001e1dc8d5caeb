"""RSI mean reversion: buy when oversold, sell when overbought.

Entry while Wilder's RSI(``window``) is below ``lower``; exit while it is above ``upper``
(long-only, or reversing to short with ``allow_short=True``).
"""

from __future__ import annotations

from decimal import Decimal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import Field, model_validator

from lyra.strategy._indicators import rsi_nb
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


class RsiReversionParams(StrategyParams):
    """``window`` in bars (≥ 2); 0 < ``lower`` < ``upper`` < 100."""

    window: Window = 14
    lower: float = Field(30.0, gt=0, lt=100)
    upper: float = Field(70.0, gt=0, lt=100)
    allow_short: bool = False

    @model_validator(mode="after")
    def _check(self) -> RsiReversionParams:
        if self.window < 2:
            raise ParamError("window", "must be at least 2")
        if self.lower >= self.upper:
            raise ParamError("lower", f"must be below upper ({self.upper})")
        return self


def rsi(close: NDArray[np.float64], window: int, cache: IndicatorCache | None = None) -> NDArray[np.float64]:
    """Wilder's RSI, memoised in ``cache`` if given."""
    key = ("rsi", window)
    if cache is not None and key in cache:
        return cache[key]
    out = rsi_nb(close, window)
    if cache is not None:
        cache[key] = out
    return out


class RsiReversion(Strategy[RsiReversionParams]):
    """``RsiReversion(window=14, lower=30, upper=70)``."""

    params_model = RsiReversionParams

    @property
    def warmup(self) -> int:
        return self.params.window

    def signals(self, data: pd.DataFrame | pd.Series | ArrayLike,
                cache: IndicatorCache | None = None) -> Signals:
        p = self.params
        r = rsi(close_array(data), p.window, cache)
        # NaN compares False, so the warm-up bars carry no signal.
        return make_signals(r < p.lower, r > p.upper, p.allow_short)

    def incremental(self, instrument_id: str, quantity: Decimal | str | int = 1) -> IncrementalSignalStrategy:
        p = self.params
        return RsiReversionIncremental(instrument_id, p.window, p.lower, p.upper, quantity, p.allow_short)


class RsiReversionIncremental(IncrementalSignalStrategy):
    """O(1) RSI with the same recurrence as ``rsi_nb``."""

    __slots__ = ("_ag", "_al", "_i", "_lower", "_prev", "_sg", "_sl", "_upper", "_w")

    def __init__(self, instrument_id: str, window: int, lower: float, upper: float,
                 quantity: Decimal | str | int = 1, allow_short: bool = False) -> None:
        super().__init__(instrument_id, quantity, allow_short)
        self._w = window
        self._lower = lower
        self._upper = upper
        self._i = 0
        self._prev = 0.0
        self._sg = 0.0
        self._sl = 0.0
        self._ag = 0.0
        self._al = 0.0

    def update(self, close: float) -> int:
        i = self._i
        self._i = i + 1
        self.n_bars = i + 1
        prev = self._prev
        self._prev = close
        if i == 0:
            self.last_signal = NO_SIGNAL
            return NO_SIGNAL
        d = close - prev
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        w = self._w
        if i <= w:
            self._sg += g
            self._sl += lo
            if i < w:
                self.last_signal = NO_SIGNAL
                return NO_SIGNAL
            ag = self._sg / w
            al = self._sl / w
        else:
            ag = (self._ag * (w - 1) + g) / w
            al = (self._al * (w - 1) + lo) / w
        self._ag = ag
        self._al = al
        r = (50.0 if ag == 0.0 else 100.0) if al == 0.0 else 100.0 - 100.0 / (1.0 + ag / al)
        code = NO_SIGNAL
        if r < self._lower:
            code = ENTRY
        elif r > self._upper:
            code = EXIT
        self.last_signal = code
        return code
