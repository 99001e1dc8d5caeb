"""Loading OHLCV for research, the shipped sample data, and a data-quality report.

Research frames are indexed by a **tz-aware UTC** ``DatetimeIndex`` named ``time`` with float64
columns ``open, high, low, close, volume``. The backtest strips the time zone at the vectorbt
boundary (a tz-aware index makes vectorbt 1.2 about 100x slower) and puts it back on results.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from lyra.core.errors import ValidationError
from lyra.core.timeutil import timeframe_to_ms

COLUMNS = ("open", "high", "low", "close", "volume")


def load_ohlcv(path: str | Path) -> pd.DataFrame:
    """Read a ``timestamp_ms,open,high,low,close,volume`` CSV (gzipped or not).

    Rows are kept as stored (duplicates and gaps included, so that the quality report can
    see them); the backtest refuses what it cannot trust.
    """
    p = Path(path)
    if not p.is_file():
        raise ValidationError("path", str(p), "no such file")
    df = pd.read_csv(p)
    need = ("timestamp_ms", *COLUMNS)
    missing = [c for c in need if c not in df.columns]
    if missing:
        raise ValidationError(f"{p.name}.columns", list(df.columns), f"missing {missing}")
    ms = df["timestamp_ms"].to_numpy(np.int64)
    idx = pd.DatetimeIndex(pd.to_datetime(ms, unit="ms", utc=True), name="time")
    out = pd.DataFrame({c: df[c].to_numpy(np.float64) for c in COLUMNS}, index=idx)
    return out


def sample_data_dir() -> Path:
    """Directory of the sample OHLCV files: ``$LYRA_SAMPLE_DATA`` (a data dir holding
    ``ohlcv/``, or the files themselves) or the repository's ``data/ohlcv``."""
    from lyra.sample_data import sample_ohlcv_dir

    return sample_ohlcv_dir()


def sample_data(name: str) -> pd.DataFrame:
    """A shipped sample series, e.g. ``sample_data("coinbase_BTC-USD_1h")``.

    Ships at least: ``coinbase_BTC-USD_1h``, ``binance_BTC-USDT_1h_2018-04``,
    ``binance_ETH-USDT_1h_2018-07``, ``binance_BTC-USDT_1d_2018-04``,
    ``binance_ETH-USDT_1d_2018-07``.
    """
    d = sample_data_dir()
    fname = name if name.endswith((".csv.gz", ".csv")) else f"{name}.csv.gz"
    path = d / fname
    if not path.is_file():
        have = sorted(p.name.removesuffix(".csv.gz") for p in d.glob("*.csv.gz")) if d.is_dir() else []
        raise ValidationError("name", name, f"no sample file {path}", f"available: {have}")
    return load_ohlcv(path)


def infer_freq(index: pd.DatetimeIndex) -> pd.Timedelta:
    """The bar length: the most common spacing of the index."""
    if len(index) < 2:
        raise ValidationError("data.index", len(index), "need at least two bars to infer the bar length",
                              "pass freq= explicitly")
    d = np.diff(index.asi8[:10_001])  # the first 10,000 spacings are plenty, and cheap
    vals, counts = np.unique(d, return_counts=True)
    unit = index.unit if hasattr(index, "unit") else "ns"
    return pd.Timedelta(int(vals[np.argmax(counts)]), unit=unit)


def data_quality(df: pd.DataFrame, timeframe: str | None = None) -> dict[str, Any]:
    """Counts of what is wrong with a series: the checks of the feed validator, for research.

    Keys: rows, start, end, duplicates, gaps, missing_bars, largest_gap, misaligned, nan,
    ohlc_inconsistent, non_positive, zero_volume, flat_bars, max_abs_log_return.
    """
    if timeframe:
        step_ms = timeframe_to_ms(timeframe)
    else:
        step_ms = int(infer_freq(pd.DatetimeIndex(df.index)) / pd.Timedelta(milliseconds=1))
    ts = pd.DatetimeIndex(df.index).as_unit("ms").asi8  # epoch ms, UTC whether tz-aware or naive
    d = np.diff(ts)
    gaps = d[d > step_ms]
    o, h, lo, c, v = (df[k].to_numpy(np.float64) for k in COLUMNS)
    with np.errstate(divide="ignore", invalid="ignore"):
        lr = np.abs(np.diff(np.log(c)))
    return {
        "rows": len(df),
        "start": df.index[0] if len(df) else None,
        "end": df.index[-1] if len(df) else None,
        "duplicates": int((d == 0).sum()),
        "backwards": int((d < 0).sum()),
        "gaps": int(gaps.size),
        "missing_bars": int(((gaps // step_ms) - 1).sum()),
        "largest_gap": pd.Timedelta(int(gaps.max()), unit="ms") if gaps.size else pd.Timedelta(0),
        "misaligned": int((ts % step_ms != 0).sum()) if step_ms <= 86_400_000 else 0,
        "nan": int(np.isnan(np.stack([o, h, lo, c])).sum()),
        "ohlc_inconsistent": int(((h < lo) | (h < np.maximum(o, c)) | (lo > np.minimum(o, c))).sum()),
        "non_positive": int(((o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)).sum()),
        "zero_volume": int((v == 0).sum()),
        "flat_bars": int(((o == h) & (h == lo) & (lo == c)).sum()),
        "max_abs_log_return": float(np.nanmax(lr)) if lr.size else 0.0,
    }
