"""Bollinger breakout: enter when the close breaks above the upper band, exit below the middle.

Bands: middle = SMA(``window``), upper = middle + ``k`` × population standard deviation.
"""

from __future__ import annotations

import math
from decimal import Decimal

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray
from pydantic import Field

from lyra.strategy._indicators import bollinger_nb
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
from lyra.strategy.params import StrategyParams


class BollingerParams(StrategyParams):
    """``window`` in bars (≥ 2) and band width ``k`` (> 0) in standard deviations."""

    window: int = Field(20, ge=2)
    k: float = Field(2.0, gt=0)
    allow_short: bool = False


def bollinger(close: NDArray[np.float64], window: int, k: float,
              cache: IndicatorCache | None = None) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(middle, upper) bands, memoised in ``cache`` if given."""
    key = ("bb", window, k)
    if cache is not None and (*key, "mid") in cache:
        return cache[(*key, "mid")], cache[(*key, "up")]
    mid, up = bollinger_nb(close, window, k)
    if cache is not None:
        cache[(*key, "mid")] = mid
        cache[(*key, "up")] = up
    return mid, up


class Bollinger(Strategy[BollingerParams]):
    """``Bollinger(window=20, k=2.0)``."""

    params_model = BollingerParams

    @property
    def warmup(self) -> int:
        return self.params.window

    def signals(self, data: pd.DataFrame | pd.Series | ArrayLike,
                cache: IndicatorCache | None = None) -> Signals:
        p = self.params
        close = close_array(data)
        mid, up = bollinger(close, p.window, p.k, cache)
        return make_signals(close > up, close < mid, p.allow_short)

    def incremental(self, instrument_id: str, quantity: Decimal | str | int = 1) -> IncrementalSignalStrategy:
        p = self.params
        return BollingerIncremental(instrument_id, p.window, p.k, quantity, p.allow_short)


class BollingerIncremental(IncrementalSignalStrategy):
    """O(1) bands from running sums of x and x², as ``bollinger_nb`` does."""

    __slots__ = ("_buf", "_i", "_k", "_q", "_s", "_w")

    def __init__(self, instrument_id: str, window: int, k: float,
                 quantity: Decimal | str | int = 1, allow_short: bool = False) -> None:
        super().__init__(instrument_id, quantity, allow_short)
        self._w = window
        self._k = k
        self._buf = [0.0] * window
        self._i = 0
        self._s = 0.0
        self._q = 0.0

    def update(self, close: float) -> int:
        i = self._i
        w = self._w
        self._i = i + 1
        self.n_bars = i + 1
        s = self._s + close
        q = self._q + close * close
        j = i % w
        if i >= w:
            o = self._buf[j]
            s -= o
            q -= o * o
        self._buf[j] = close
        self._s = s
        self._q = q
        if i < w - 1:
            self.last_signal = NO_SIGNAL
            return NO_SIGNAL
        m = s / w
        var = q / w - m * m
        if var < 0.0:
            var = 0.0
        code = NO_SIGNAL
        if close > m + self._k * math.sqrt(var):
            code = ENTRY
        elif close < m:
            code = EXIT
        self.last_signal = code
        return code
