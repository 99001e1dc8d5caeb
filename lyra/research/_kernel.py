"""Numba simulation kernel for sweeps (private).

It replays what ``vbt.Portfolio.from_signals(size=np.inf, direction="longonly",
accumulate=False)`` does for one column: an entry buys with all the cash (fees and
slippage included), an exit sells the whole position, an entry while long or an exit while
flat is ignored, and an entry and an exit on the same bar cancel out. Instead of keeping
equity curves it accumulates, per column, what the metrics need (Welford moments of the
returns, drawdown, trade P&L...), so memory stays O(columns) whatever the bar count.

The cash and position arithmetic follows vectorbt's ``buy_nb``/``sell_nb``/``cash_flow_nb``
step by step (including its ``add_nb`` snapping of near-zero sums), so results agree with
vectorbt to the last few ulps; the tests pin this.
"""

from __future__ import annotations

import numba as nb
import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

# Columns of the accumulator table.
(A_FINAL, A_MEAN, A_M2, A_DOWN2, A_MDD, A_MDD_DUR, A_N_CLOSED, A_N_OPEN, A_WINS, A_GROSS_WIN,
 A_GROSS_LOSS, A_PNL, A_IN_POS, A_FEES, A_NOTIONAL, A_SUM_EQ, A_N) = range(17)
N_ACC = 17


@nb.njit(cache=True, nogil=True)
def _is_close(a: float, b: float) -> bool:  # pragma: no cover - compiled
    if np.isnan(a) or np.isnan(b) or np.isinf(a) or np.isinf(b):
        return False
    if a == b:
        return True
    return abs(a - b) <= max(1e-9 * max(abs(a), abs(b)), 1e-12)


@nb.njit(cache=True, nogil=True)
def _add(a: float, b: float) -> float:  # pragma: no cover - compiled
    """vectorbt's add_nb: a sum that is zero up to rounding is exactly zero."""
    if np.sign(a) != np.sign(b):
        if _is_close(abs(a), abs(b)):
            return 0.0
    elif _is_close(a + b, 0.0):
        return 0.0
    return a + b


@nb.njit(cache=True, nogil=True)
def simulate_1d(price: F64, close: F64, en: NDArray[np.bool_], ex: NDArray[np.bool_], shift: int,
                fees: float, slip: float, init_cash: float, out: F64) -> None:  # pragma: no cover
    """Simulate one column; signals at bar i act at bar i+shift at ``price[i+shift]``."""
    n = close.shape[0]
    cash = init_cash
    pos = 0.0
    entry_cost = 0.0  # size*price + fees of the open trade's entry
    prev_v = init_cash
    peak = -np.inf
    mdd = 0.0
    dd_run = 0
    dd_max = 0
    mean = 0.0
    m2 = 0.0
    down2 = 0.0
    n_closed = 0
    wins = 0
    gwin = 0.0
    gloss = 0.0
    pnl_sum = 0.0
    in_pos = 0
    fees_sum = 0.0
    notional = 0.0
    sum_eq = 0.0
    for i in range(n):
        j = i - shift
        if j >= 0:
            e = en[j]
            x = ex[j]
            if e and not x and pos == 0.0 and cash > 0.0:
                adj = price[i] * (1.0 + slip)
                max_req = cash / (1.0 + fees)
                size = max_req / adj
                fee = cash - max_req
                if size > 0.0:
                    cash = _add(cash, -size * adj - fee)
                    pos = _add(pos, size)
                    entry_cost = size * adj + fee
                    fees_sum += fee
                    notional += size * adj
            elif x and not e and pos > 0.0:
                adj = price[i] * (1.0 - slip)
                size = pos
                acq = size * adj
                fee = acq * fees
                cash = _add(cash, size * adj - fee)
                pos = _add(pos, -size)
                pnl = (acq - fee) - entry_cost
                n_closed += 1
                pnl_sum += pnl
                if pnl > 0.0:
                    wins += 1
                    gwin += pnl
                elif pnl < 0.0:
                    gloss -= pnl
                fees_sum += fee
                notional += acq
        v = cash + pos * close[i]
        r = (0.0 if v == 0.0 else np.inf) if prev_v == 0.0 else (v - prev_v) / prev_v
        prev_v = v
        # Welford running moments: exact zero variance for a flat curve.
        k = i + 1
        d = r - mean
        mean += d / k
        m2 += d * (r - mean)
        if r < 0.0:
            down2 += r * r
        if v >= peak:
            peak = v
            dd_run = 0
        else:
            dd_run += 1
            if dd_run > dd_max:
                dd_max = dd_run
            dd = 1.0 - v / peak
            if dd > mdd:
                mdd = dd
        if pos != 0.0:
            in_pos += 1
        sum_eq += v
    out[A_FINAL] = prev_v
    out[A_MEAN] = mean
    out[A_M2] = m2
    out[A_DOWN2] = down2
    out[A_MDD] = mdd
    out[A_MDD_DUR] = dd_max
    out[A_N_CLOSED] = n_closed
    out[A_N_OPEN] = 1.0 if pos != 0.0 else 0.0
    out[A_WINS] = wins
    out[A_GROSS_WIN] = gwin
    out[A_GROSS_LOSS] = gloss
    out[A_PNL] = pnl_sum
    out[A_IN_POS] = in_pos
    out[A_FEES] = fees_sum
    out[A_NOTIONAL] = notional
    out[A_SUM_EQ] = sum_eq
    out[A_N] = n


@nb.njit(cache=True, nogil=True)
def simulate_signals_nb(price: F64, close: F64, en: NDArray[np.bool_], ex: NDArray[np.bool_], shift: int,
                        fees: float, slip: float, init_cash: float) -> F64:  # pragma: no cover
    """Columns of 2-D ``en``/``ex`` (bars × columns) -> accumulator table (columns × N_ACC)."""
    k = en.shape[1]
    out = np.empty((k, N_ACC))
    for c in range(k):
        simulate_1d(price, close, np.ascontiguousarray(en[:, c]), np.ascontiguousarray(ex[:, c]),
                    shift, fees, slip, init_cash, out[c])
    return out


@nb.njit(cache=True, nogil=True)
def simulate_cross_nb(price: F64, close: F64, mas: F64, fast_row: NDArray[np.int64],
                      slow_row: NDArray[np.int64], shift: int, fees: float, slip: float,
                      init_cash: float) -> F64:  # pragma: no cover
    """Crossover sweep: ``mas`` holds one moving average per row, computed once per
    unique window; column c crosses row ``fast_row[c]`` with row ``slow_row[c]``.
    Signals are derived on the fly into two reused buffers (same rule as
    ``lyra.strategy._indicators.cross_signals_nb``)."""
    n = close.shape[0]
    k = fast_row.shape[0]
    out = np.empty((k, N_ACC))
    en = np.zeros(n, dtype=np.bool_)
    ex = np.zeros(n, dtype=np.bool_)
    for c in range(k):
        f_ = mas[fast_row[c]]
        s_ = mas[slow_row[c]]
        en[0] = False
        ex[0] = False
        for i in range(1, n):
            f = f_[i]
            s = s_[i]
            pf = f_[i - 1]
            ps = s_[i - 1]
            en[i] = f > s and pf <= ps
            ex[i] = (not en[i]) and f < s and pf >= ps
        simulate_1d(price, close, en, ex, shift, fees, slip, init_cash, out[c])
    return out


def finalize(acc: F64, ann: float) -> dict[str, F64]:
    """Accumulator table -> metric columns, with the conventions of ``metrics.py``."""
    n = acc[:, A_N]
    init_growth = acc[:, A_FINAL]
    with np.errstate(divide="ignore", invalid="ignore"):
        var = acc[:, A_M2] / (n - 1)
        sd = np.sqrt(var)
        mean = acc[:, A_MEAN]
        # A zero denominator: nan over a zero numerator, else inf with its sign (lyra.analytics).
        flat = np.where(mean == 0.0, np.nan, np.sign(mean) * np.inf)
        sharpe = np.where(sd == 0.0, flat, mean / sd * np.sqrt(ann))
        down = np.sqrt(acc[:, A_DOWN2] / n) * np.sqrt(ann)
        sortino = np.where(down == 0.0, flat, mean * ann / down)
        n_closed = acc[:, A_N_CLOSED]
        win_rate = np.where(n_closed > 0, acc[:, A_WINS] / n_closed, np.nan)
        gw = acc[:, A_GROSS_WIN]
        gl = acc[:, A_GROSS_LOSS]
        no_loss = np.where(gw == 0.0, np.nan, np.inf)
        pf = np.where(n_closed == 0, np.nan, np.where(gl == 0.0, no_loss, gw / gl))
        expectancy = np.where(n_closed > 0, acc[:, A_PNL] / n_closed, np.nan)
        mdd = acc[:, A_MDD]
    return {
        "_final": init_growth,
        "annualized_volatility": sd * np.sqrt(ann),
        "sharpe": sharpe,
        "sortino": sortino,
        "max_drawdown": mdd,
        "max_drawdown_duration": acc[:, A_MDD_DUR].astype(np.int64),
        "n_trades": (n_closed + acc[:, A_N_OPEN]).astype(np.int64),
        "win_rate": win_rate,
        "profit_factor": pf,
        "expectancy": expectancy,
        "exposure": acc[:, A_IN_POS] / n,
        "turnover": acc[:, A_NOTIONAL] / (acc[:, A_SUM_EQ] / n),
        "fees_paid": acc[:, A_FEES],
    }
