"""Build OHLCV candles from trade ticks.

>>> import pandas as pd
>>> trades = pd.DataFrame({"ts": [0, 20_000, 59_999, 130_000],      # e.g. store.read_trades(...)
...                        "price": [10.0, 12.0, 11.0, 13.0], "size": [1.0, 0.5, 2.0, 1.0]})
>>> trades_to_bars(trades, "1m")
       ts  open  high   low  close  volume
0       0  10.0  12.0  10.0   11.0     3.5
1  120000  13.0  13.0  13.0   13.0     1.0
>>> trades_to_bars(trades, "1m", fill_empty=True)["volume"].tolist()  # the quiet minute, flat
[3.5, 0.0, 1.0]

A candle covers ``[t, t + timeframe)`` and is labelled with its open time ``t`` (a multiple of
the timeframe since the epoch). open/close are the first/last trade in arrival order (ticks
that share a millisecond keep their given order), high/low the extremes, volume the sum of
sizes. Intervals without trades are left out, as exchanges such as Binance and Bittrex do;
``fill_empty=True`` emits them as flat zero-volume bars at the previous close instead.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lyra.core.errors import ValidationError
from lyra.core.timeutil import timeframe_to_ms
from lyra.feeds.schema import frame_ts, ms_index


def trades_to_bars(trades: pd.DataFrame, timeframe: str, *, fill_empty: bool = False,
                   index: bool = False) -> pd.DataFrame:
    """Aggregate trades (``ts`` column of int ms or a DatetimeIndex; ``price``, ``size``) into
    bars with columns ts, open, high, low, close, volume (float64, ts int ms).

    ``index=True`` returns the bars indexed by a UTC DatetimeIndex instead of a ``ts`` column.
    Trades out of time order are sorted first (stable, so same-ms ticks keep their order).
    """
    step = timeframe_to_ms(timeframe)
    for col in ("price", "size"):
        if col not in trades.columns:
            raise ValidationError("trades.columns", list(trades.columns), f"missing {col!r}")
    ts = frame_ts(trades)
    price = trades["price"].to_numpy(dtype=np.float64)
    size = trades["size"].to_numpy(dtype=np.float64)
    if np.isnan(price).any() or np.isnan(size).any():
        raise ValidationError("trades", "NaN", "price or size is NaN", "run validate_trades first")
    if len(ts) and np.any(ts[1:] < ts[:-1]):
        order = np.argsort(ts, kind="stable")
        ts, price, size = ts[order], price[order], size[order]
    bucket = ts - ts % step  # floor, correct for negative ts too
    if len(ts) == 0:
        return trades_to_bars_empty(index)
    starts = np.flatnonzero(np.concatenate(([True], bucket[1:] != bucket[:-1])))
    ends = np.append(starts[1:], len(ts)) - 1
    out_ts = bucket[starts]
    cols = {
        "open": price[starts],
        "high": np.maximum.reduceat(price, starts),
        "low": np.minimum.reduceat(price, starts),
        "close": price[ends],
        # left-to-right sums, like pandas' resample().sum(): the golden test is exact
        "volume": np.add.reduceat(size, starts),
    }
    if fill_empty and len(out_ts) > 1:
        full = np.arange(out_ts[0], out_ts[-1] + 1, step, dtype=np.int64)
        pos = np.searchsorted(out_ts, full, side="right") - 1
        real = out_ts[pos] == full
        prev_close = cols["close"][pos]
        cols = {k: np.where(real, v[pos], 0.0 if k == "volume" else prev_close)
                for k, v in cols.items()}
        out_ts = full
    if index:
        return pd.DataFrame(cols, index=ms_index(out_ts))
    return pd.DataFrame({"ts": out_ts, **cols})


def trades_to_bars_empty(index: bool = False) -> pd.DataFrame:
    """A bars frame with no rows, in the same layout as :func:`trades_to_bars`."""
    cols = {c: np.empty(0) for c in ("open", "high", "low", "close", "volume")}
    if index:
        return pd.DataFrame(cols, index=ms_index(np.empty(0, dtype=np.int64)))
    return pd.DataFrame({"ts": np.empty(0, dtype=np.int64), **cols})
