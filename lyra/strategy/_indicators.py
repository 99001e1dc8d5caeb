"""Numba kernels behind the vectorized strategy forms (private).

Each kernel performs *exactly* the floating-point operations, in the same order, that the
matching incremental class does in pure Python, so both forms reach bit-identical
indicator values and therefore identical signals. Do not "optimise" one side alone.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
B1 = NDArray[np.bool_]


@nb.njit(cache=True, nogil=True)
def sma_nb(x: F64, w: int) -> F64:  # pragma: no cover - compiled
    """Running-sum simple moving average; NaN for the first ``w - 1`` bars."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    s = 0.0
    for i in range(n):
        s += x[i]
        if i >= w:
            s -= x[i - w]
        if i >= w - 1:
            out[i] = s / w
    return out


@nb.njit(cache=True, nogil=True)
def ema_nb(x: F64, w: int) -> F64:  # pragma: no cover - compiled
    """EMA with alpha = 2/(w+1), seeded with the first value; NaN for the first ``w-1`` bars."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    a = 2.0 / (w + 1.0)
    e = x[0]
    if w <= 1:
        out[0] = e
    for i in range(1, n):
        e = e + a * (x[i] - e)
        if i >= w - 1:
            out[i] = e
    return out


@nb.njit(cache=True, nogil=True)
def cross_signals_nb(fast: F64, slow: F64) -> tuple[B1, B1]:  # pragma: no cover - compiled
    """Entry where ``fast`` crosses above ``slow``, exit where it crosses below.

    A cross at bar i needs both averages valid at i-1 and i (NaN compares False).
    """
    n = fast.shape[0]
    en = np.zeros(n, dtype=np.bool_)
    ex = np.zeros(n, dtype=np.bool_)
    for i in range(1, n):
        f = fast[i]
        s = slow[i]
        pf = fast[i - 1]
        ps = slow[i - 1]
        if f > s and pf <= ps:
            en[i] = True
        elif f < s and pf >= ps:
            ex[i] = True
    return en, ex


@nb.njit(cache=True, nogil=True)
def rsi_nb(x: F64, w: int) -> F64:  # pragma: no cover - compiled
    """Wilder's RSI: seeded with the simple mean of the first ``w`` changes; NaN before bar ``w``."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    sg = 0.0
    sl = 0.0
    ag = 0.0
    al = 0.0
    for i in range(1, n):
        d = x[i] - x[i - 1]
        g = d if d > 0.0 else 0.0
        lo = -d if d < 0.0 else 0.0
        if i < w:
            sg += g
            sl += lo
            continue
        if i == w:
            sg += g
            sl += lo
            ag = sg / w
            al = sl / w
        else:
            ag = (ag * (w - 1) + g) / w
            al = (al * (w - 1) + lo) / w
        if al == 0.0:
            out[i] = 50.0 if ag == 0.0 else 100.0
        else:
            out[i] = 100.0 - 100.0 / (1.0 + ag / al)
    return out


@nb.njit(cache=True, nogil=True)
def bollinger_nb(x: F64, w: int, k: float) -> tuple[F64, F64]:  # pragma: no cover - compiled
    """Middle band (SMA) and upper band (SMA + k * population std) with running sums."""
    n = x.shape[0]
    mid = np.full(n, np.nan)
    up = np.full(n, np.nan)
    s = 0.0
    q = 0.0
    for i in range(n):
        v = x[i]
        s += v
        q += v * v
        if i >= w:
            o = x[i - w]
            s -= o
            q -= o * o
        if i >= w - 1:
            m = s / w
            var = q / w - m * m
            if var < 0.0:
                var = 0.0
            mid[i] = m
            up[i] = m + k * np.sqrt(var)
    return mid, up
