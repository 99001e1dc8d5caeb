"""Column layout of the market-data store and the helpers that bring frames into it.

Two dataset kinds live in the store:

* **bars**: ``ts`` (int64 ms UTC, the candle's *open* time), ``open``, ``high``, ``low``,
  ``close``, ``volume`` (float64).
* **trades**: ``ts`` (int64 ms UTC), ``price``, ``size`` (float64), ``side`` (``"buy"``,
  ``"sell"`` or ``""`` when the source does not say) and ``trade_id`` (string, may be ``""``).

A frame handed to the store may carry its time as a ``ts`` column (int ms), a
``timestamp_ms`` column (the uniform file schema) or a ``DatetimeIndex``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from lyra.core.errors import ValidationError
from lyra.core.timeutil import datetime_to_ms, parse_utc, timeframe_to_ms

BAR_COLUMNS: tuple[str, ...] = ("ts", "open", "high", "low", "close", "volume")
PRICE_COLUMNS: tuple[str, ...] = ("open", "high", "low", "close")
TRADE_COLUMNS: tuple[str, ...] = ("ts", "price", "size", "side", "trade_id")
TRADES_TIMEFRAME = "trades"
"""The pseudo-timeframe under which a symbol's trade ticks are stored."""

VALID_SIDES: tuple[str, ...] = ("buy", "sell", "")

BAR_SCHEMA = pa.schema(
    [("ts", pa.int64())] + [(c, pa.float64()) for c in BAR_COLUMNS[1:]]
)
TRADE_SCHEMA = pa.schema(
    [
        ("ts", pa.int64()),
        ("price", pa.float64()),
        ("size", pa.float64()),
        ("side", pa.string()),
        ("trade_id", pa.string()),
    ]
)

DatasetKind = Literal["bars", "trades"]

_EXCHANGE_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_SYMBOL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")

# Plausible range of millisecond epoch timestamps: 1973-03-03 .. 5138-11-16. Anything below is
# almost surely seconds, anything above micro- or nanoseconds.
MS_MIN = 100_000_000_000
MS_MAX = 100_000_000_000_000


def safe_exchange(exchange: str) -> str:
    """The exchange name as stored: lower case, ``[a-z0-9._-]``."""
    name = str(exchange).strip().lower()
    if not _EXCHANGE_RE.match(name):
        raise ValidationError("exchange", exchange, "not a usable exchange name",
                              "use letters, digits, '.', '_' or '-' (e.g. binance)")
    return name


def safe_symbol(symbol: str) -> str:
    """The symbol made path-safe: ``BTC/USDT`` -> ``BTC-USDT``, ``BTC/USDT:USDT`` -> ``BTC-USDT-USDT``."""
    name = str(symbol).strip().replace("/", "-").replace(":", "-")
    if not _SYMBOL_RE.match(name) or ".." in name:
        raise ValidationError("symbol", symbol, "not a usable symbol",
                              "use e.g. BTC/USDT or BTC-USDT")
    return name


def check_timeframe(timeframe: str) -> str:
    """Accept a bar timeframe (``1m``, ``4h``...) or ``trades``; refuse anything else."""
    if timeframe == TRADES_TIMEFRAME:
        return timeframe
    timeframe_to_ms(timeframe)  # raises ValidationError naming the timeframe
    return timeframe


def kind_of(timeframe: str) -> DatasetKind:
    """``trades`` for the trades pseudo-timeframe, ``bars`` otherwise."""
    return "trades" if timeframe == TRADES_TIMEFRAME else "bars"


def make_instrument_id(exchange: str, symbol: str) -> str:
    """The instrument id used on replayed events: ``binance:BTC-USDT``."""
    return f"{safe_exchange(exchange)}:{safe_symbol(symbol)}"


@dataclass(frozen=True, slots=True)
class DatasetKey:
    """One dataset of the store: exchange / symbol / timeframe (``trades`` for ticks)."""

    exchange: str
    symbol: str
    timeframe: str

    @classmethod
    def of(cls, exchange: str, symbol: str, timeframe: str) -> DatasetKey:
        """Normalise and check the three parts."""
        return cls(safe_exchange(exchange), safe_symbol(symbol), check_timeframe(timeframe))

    @property
    def kind(self) -> DatasetKind:
        return kind_of(self.timeframe)

    @property
    def instrument_id(self) -> str:
        return f"{self.exchange}:{self.symbol}"

    def __str__(self) -> str:
        return f"{self.exchange}/{self.symbol}/{self.timeframe}"


@dataclass(frozen=True, slots=True)
class BarArrays:
    """Bars as plain numpy arrays, the fast path for hot consumers (no pandas)."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray

    def __len__(self) -> int:
        return int(self.ts.shape[0])

    def to_frame(self, *, tz_aware: bool = True) -> pd.DataFrame:
        """The same bars as a DataFrame indexed by UTC time (no copy of the columns)."""
        data = {c: getattr(self, c) for c in BAR_COLUMNS[1:]}
        return pd.DataFrame(data, index=ms_index(self.ts, tz_aware=tz_aware), copy=False)


def ms_index(ts: np.ndarray, *, tz_aware: bool = True) -> pd.DatetimeIndex:
    """int64 ms -> DatetimeIndex (ms resolution, no copy); UTC-aware or naive UTC."""
    idx = pd.DatetimeIndex(np.asarray(ts, dtype=np.int64).view("datetime64[ms]"), name="time")
    return idx.tz_localize("UTC") if tz_aware else idx


def index_to_ms(index: pd.Index) -> np.ndarray:
    """A DatetimeIndex (aware or naive UTC) -> int64 ms."""
    if not isinstance(index, pd.DatetimeIndex):
        raise ValidationError("index", type(index).__name__, "not a DatetimeIndex",
                              "give a 'ts' column of int ms or a DatetimeIndex")
    if index.tz is not None:
        index = index.tz_convert("UTC").tz_localize(None)
    return np.asarray(index.as_unit("ms").asi8, dtype=np.int64)


def frame_ts(df: pd.DataFrame) -> np.ndarray:
    """The int64 ms timestamps of a frame: its ``ts`` / ``timestamp_ms`` column or its index."""
    for col in ("ts", "timestamp_ms"):
        if col in df.columns:
            s = df[col]
            if pd.api.types.is_datetime64_any_dtype(s.dtype):
                return index_to_ms(pd.DatetimeIndex(s))
            if s.isna().any():
                raise ValidationError(col, None, "missing timestamp",
                                      f"first at row {int(np.flatnonzero(s.isna().to_numpy())[0])}")
            arr = s.to_numpy()
            if arr.dtype.kind == "f":
                if not np.all(arr == np.floor(arr)):
                    bad = int(np.flatnonzero(arr != np.floor(arr))[0])
                    raise ValidationError(col, arr[bad], f"not a whole number of ms (row {bad})")
                arr = arr.astype(np.int64)
            if arr.dtype.kind not in "iu":
                raise ValidationError(col, str(arr.dtype), "timestamps must be int ms")
            return np.asarray(arr, dtype=np.int64)
    return index_to_ms(df.index)


def to_ms(value: int | float | str | datetime | pd.Timestamp | np.datetime64 | None) -> int | None:
    """A range bound as int ms: int ms, an ISO string, an aware datetime or a Timestamp."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError("time", value, "not a time")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, float):
        return int(value)
    if isinstance(value, str):
        return datetime_to_ms(parse_utc(value))
    if isinstance(value, np.datetime64):
        value = pd.Timestamp(value)
    if isinstance(value, pd.Timestamp):
        if value.tz is None:
            value = value.tz_localize("UTC")
        # Timestamp.value is always ns since the epoch, whatever the unit.
        return int(pd.Timestamp(value).value // 1_000_000)
    if isinstance(value, datetime):
        return datetime_to_ms(value)
    raise ValidationError("time", value, "not a time", "use int ms, an ISO string or a datetime")


def coerce_bars(df: pd.DataFrame, *, source: str = "bars") -> BarArrays:
    """Bring a bars frame into store form (int64 ms + float64 columns) without reordering.

    Raises ValidationError naming the missing column or the non-numeric value.
    """
    missing = [c for c in BAR_COLUMNS[1:] if c not in df.columns]
    if missing:
        raise ValidationError(f"{source}.columns", list(df.columns), f"missing {missing}",
                              "bars need open, high, low, close, volume and a ts column or index")
    ts = frame_ts(df)
    cols = {}
    for c in BAR_COLUMNS[1:]:
        s = df[c]
        if not pd.api.types.is_numeric_dtype(s.dtype) or pd.api.types.is_bool_dtype(s.dtype):
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna().to_numpy() & s.notna().to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValidationError(f"{source}.{c}", s.iloc[i], f"not a number (row {i})")
            s = num
        cols[c] = np.ascontiguousarray(s.to_numpy(dtype=np.float64, na_value=np.nan))
    return BarArrays(ts=np.ascontiguousarray(ts), **cols)


def coerce_trades(df: pd.DataFrame, *, source: str = "trades") -> pd.DataFrame:
    """Bring a trades frame into store form: columns ts, price, size, side, trade_id."""
    missing = [c for c in ("price", "size") if c not in df.columns]
    if missing:
        raise ValidationError(f"{source}.columns", list(df.columns), f"missing {missing}",
                              "trades need price, size and a ts column or index")
    ts = frame_ts(df)
    out = {"ts": ts}
    for c in ("price", "size"):
        s = df[c]
        if not pd.api.types.is_numeric_dtype(s.dtype):
            num = pd.to_numeric(s, errors="coerce")
            bad = num.isna().to_numpy() & s.notna().to_numpy()
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValidationError(f"{source}.{c}", s.iloc[i], f"not a number (row {i})")
            s = num
        out[c] = s.to_numpy(dtype=np.float64, na_value=np.nan)
    n = len(ts)
    side = (df["side"].fillna("").astype(str).str.lower().to_numpy(dtype=object)
            if "side" in df.columns else np.full(n, "", dtype=object))
    bad_side = ~np.isin(side, VALID_SIDES)
    if bad_side.any():
        i = int(np.flatnonzero(bad_side)[0])
        raise ValidationError(f"{source}.side", side[i], f"unknown side (row {i})",
                              "use buy, sell or empty")
    out["side"] = side
    out["trade_id"] = (_id_strings(df["trade_id"]) if "trade_id" in df.columns
                       else np.full(n, "", dtype=object))
    return pd.DataFrame(out)


def _id_strings(s: pd.Series) -> np.ndarray:
    """Trade ids as strings; floats that hold whole numbers lose their '.0'."""
    if pd.api.types.is_float_dtype(s.dtype):
        vals = s.to_numpy()
        res = np.full(len(vals), "", dtype=object)
        ok = ~np.isnan(vals)
        res[ok] = [str(int(v)) for v in vals[ok]]
        return res
    return np.asarray(s.fillna("").astype(str).to_numpy(dtype=object))
