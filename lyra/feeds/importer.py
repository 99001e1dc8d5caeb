r"""Import uniform CSV / Parquet files into the store, checking them at the edge.

Uniform schemas (see the data README):

* bars: ``timestamp_ms,open,high,low,close,volume``
* trades: ``timestamp_ms,price,size,side,trade_id[,order_type]`` (``order_type`` is dropped)

>>> import tempfile
>>> from pathlib import Path
>>> from lyra.sample_data import sample_ohlcv_dir
>>> store = MarketStore(tempfile.mkdtemp())       # default: the store of load_settings()
>>> import_file(sample_ohlcv_dir() / "binance_BTC-USDT_4h_2018-04.csv.gz", store=store).key
DatasetKey(exchange='binance', symbol='BTC-USDT', timeframe='4h')
>>> path = Path(tempfile.mkdtemp()) / "my_bars.csv"  # any name: then say what it holds
>>> _ = path.write_text("timestamp_ms,open,high,low,close,volume\n"
...                     "1704067200000,1.0,2.0,0.5,1.5,10\n1704070800000,1.5,1.6,1.4,1.5,3\n")
>>> import_file(path, "kraken", "ETH/EUR", "1h", store=store).rows_added
2
>>> _ = path.write_text("timestamp_ms,open,high,low,close,volume\n1704067200,1,2,0.5,1.5,10\n")
>>> import_file(path, "kraken", "ETH/EUR", "1h", store=store)
Traceback (most recent call last):
...
lyra.core.errors.ValidationError: my_bars.csv: line 2, column timestamp_ms=1704067200: looks like seconds, ...

Structural problems (wrong columns, text where a number belongs, timestamps in seconds, an
empty or unreadable file) raise ValidationError naming the file, line and column, and nothing
is written. Content problems are handled by :func:`lyra.feeds.validation.validate_bars` under
the config's policy (``quarantine`` by default: bad rows are left out of the store and
returned in ``ImportResult.quarantine``).
"""

from __future__ import annotations

import gzip
import re
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lyra.core.errors import ValidationError
from lyra.feeds.schema import (
    MS_MAX,
    MS_MIN,
    DatasetKey,
    coerce_trades,
)
from lyra.feeds.store import MarketStore
from lyra.feeds.validation import ValidationConfig, validate_bars, validate_trades

BAR_FILE_COLUMNS: tuple[str, ...] = ("timestamp_ms", "open", "high", "low", "close", "volume")
TRADE_FILE_COLUMNS: tuple[str, ...] = ("timestamp_ms", "price", "size", "side", "trade_id")
_OPTIONAL_TRADE_COLUMNS = ("order_type",)

_NAME_RE = re.compile(
    r"^(?P<exchange>[A-Za-z0-9.-]+)_(?P<symbol>[A-Za-z0-9.-]+)_"
    r"(?P<timeframe>\d+[smhdwM]|trades)(?:_(?P<tag>[A-Za-z0-9._-]+?))?"
    r"\.(?:csv|csv\.gz|parquet)$"
)
# Tags that only say which slice of a series a file holds: they do not change the dataset.
_SLICE_TAG_RE = re.compile(r"^(\d{4}(-\d{2}){0,2}|q\d+|part\d+|sample)(_[A-Za-z0-9.-]+)*$")


@dataclass(frozen=True, slots=True)
class DatasetName:
    """What a uniform file name says: ``<exchange>_<SYMBOL>_<timeframe>[_<tag>].csv.gz``."""

    exchange: str
    symbol: str
    timeframe: str
    tag: str = ""


@dataclass
class ImportResult:
    """The outcome of one import."""

    path: Path
    key: DatasetKey
    rows_read: int
    rows_added: int
    quarantine: pd.DataFrame = field(repr=False)
    gaps: int = 0
    missing_bars: int = 0

    @property
    def rows_quarantined(self) -> int:
        return int(self.quarantine["ts"].nunique()) if not self.quarantine.empty else 0


def parse_dataset_name(path: Path | str) -> DatasetName:
    """Infer exchange / symbol / timeframe from a uniform file name.

    ``binance_BTC-USDT_4h_2018-04.csv.gz`` -> (binance, BTC-USDT, 4h, tag 2018-04). Slice tags
    (a date, ``q1``, ``part2``, ``sample``) are ignored; any other tag names a different series
    and is appended to the symbol (``..._1h_markprice`` -> symbol ``XRP-USDT-PERP-markprice``)
    so that mark prices never mix with traded candles."""
    name = Path(path).name
    m = _NAME_RE.match(name)
    if not m:
        raise ValidationError(
            "file name", name, "does not follow <exchange>_<SYMBOL>_<timeframe>[_tag].csv.gz",
            "pass exchange, symbol and timeframe explicitly",
        )
    tag = m.group("tag") or ""
    symbol = m.group("symbol")
    if tag and not _SLICE_TAG_RE.match(tag):
        symbol = f"{symbol}-{tag}"
    return DatasetName(m.group("exchange").lower(), symbol, m.group("timeframe"), tag)


def read_uniform_file(path: Path | str, kind: str = "bars") -> pd.DataFrame:
    """Read and structurally check a uniform file; return it with a ``ts`` int64 column.

    ``kind`` is ``bars`` or ``trades``. Raises ValidationError naming file, line and column."""
    p = Path(path)
    expected = BAR_FILE_COLUMNS if kind == "bars" else TRADE_FILE_COLUMNS
    df = _read_raw(p, kind)
    cols = list(df.columns)
    allowed = set(expected) | (set(_OPTIONAL_TRADE_COLUMNS) if kind == "trades" else set())
    missing = [c for c in expected if c not in cols]
    extra = [c for c in cols if c not in allowed]
    if missing or extra:
        raise ValidationError(
            f"{p.name}: columns", ",".join(map(str, cols)),
            f"expected {','.join(expected)}" + (f"; missing {missing}" if missing else "")
            + (f"; unexpected {extra}" if extra else ""),
            "convert the file to the uniform schema",
        )
    if df.empty:
        raise ValidationError(f"{p.name}", str(p), "the file has no data rows")
    numeric = ["timestamp_ms", *[c for c in expected[1:] if c not in ("side", "trade_id")]]
    for col in numeric:
        df[col] = _numeric_column(df[col], p.name, col)
    ts = df["timestamp_ms"].to_numpy()
    nan_ts = np.isnan(ts) if ts.dtype.kind == "f" else np.zeros(len(ts), dtype=bool)
    if nan_ts.any():
        i = int(np.flatnonzero(nan_ts)[0])
        raise ValidationError(f"{p.name}: line {i + 2}, column timestamp_ms", "", "missing timestamp")
    if ts.dtype.kind == "f":
        frac = ts != np.floor(ts)
        if frac.any():
            i = int(np.flatnonzero(frac)[0])
            raise ValidationError(f"{p.name}: line {i + 2}, column timestamp_ms", ts[i],
                                  "not a whole number of milliseconds")
    ts = ts.astype(np.int64)
    out_of_range = (ts < MS_MIN) | (ts >= MS_MAX)
    if out_of_range.any():
        i = int(np.flatnonzero(out_of_range)[0])
        unit = "seconds" if ts[i] < MS_MIN else "microseconds or nanoseconds"
        raise ValidationError(f"{p.name}: line {i + 2}, column timestamp_ms", int(ts[i]),
                              f"looks like {unit}, not milliseconds",
                              "the uniform schema wants int ms since the epoch (UTC)")
    df = df.drop(columns=["timestamp_ms", *[c for c in _OPTIONAL_TRADE_COLUMNS if c in cols]])
    df.insert(0, "ts", ts)
    return df


def import_file(path: Path | str, exchange: str | None = None, symbol: str | None = None,
                timeframe: str | None = None, *, store: MarketStore | None = None,
                config: ValidationConfig | None = None) -> ImportResult:
    """Import one uniform file (CSV, CSV.gz or Parquet) into ``store``.

    Missing exchange / symbol / timeframe are inferred from the file name. ``store`` defaults
    to the store under ``lyra.settings.load_settings().market_dir``. The store is only touched
    once the whole file has passed the checks."""
    p = Path(path)
    if exchange is None or symbol is None or timeframe is None:
        inferred = parse_dataset_name(p)
        exchange = exchange or inferred.exchange
        symbol = symbol or inferred.symbol
        timeframe = timeframe or inferred.timeframe
    key = DatasetKey.of(exchange, symbol, timeframe)
    cfg = config or ValidationConfig()
    if cfg.policy == "ffill":
        raise ValidationError("policy", "ffill", "not for imports: the store keeps real bars only",
                              "use quarantine or reject; fill gaps when you read")
    if store is None:
        from lyra.settings import load_settings

        store = MarketStore(load_settings().market_dir)
    df = read_uniform_file(p, key.kind)
    try:
        if key.kind == "trades":
            res = validate_trades(df, cfg)
            trades = coerce_trades(res.clean, source=p.name)
            added = store.write_trades(key.exchange, key.symbol, trades)
        else:
            res = validate_bars(df, key.timeframe, cfg)
            added = store.write_bars(key.exchange, key.symbol, key.timeframe, res.clean)
    except ValidationError as exc:
        raise ValidationError(f"{p.name}: {exc.field}", exc.value, exc.problem, exc.hint) from exc
    return ImportResult(path=p, key=key, rows_read=len(df), rows_added=added,
                        quarantine=res.quarantine, gaps=len(res.gaps),
                        missing_bars=res.missing_bars)


def _read_raw(p: Path, kind: str) -> pd.DataFrame:
    name = p.name
    if not p.is_file():
        raise ValidationError("file", str(p), "not found")
    try:
        if name.endswith(".parquet"):
            return pq.read_table(p).to_pandas()
        # side and trade_id stay text: ids can be non-numeric and must not become floats.
        dtype = {"side": str, "trade_id": str} if kind == "trades" else None
        return pd.read_csv(p, dtype=dtype, keep_default_na=True)
    except pd.errors.EmptyDataError as exc:
        raise ValidationError(name, str(p), "the file is empty") from exc
    except pd.errors.ParserError as exc:
        raise ValidationError(name, str(p), f"not a well-formed CSV: {exc}") from exc
    except (OSError, EOFError, zlib.error, gzip.BadGzipFile, pa.ArrowException,
            UnicodeDecodeError) as exc:
        raise ValidationError(name, str(p), f"cannot be read: {exc}") from exc


def _numeric_column(s: pd.Series, file: str, col: str) -> pd.Series:
    """The column as numbers; the first text value raises naming its line."""
    if pd.api.types.is_numeric_dtype(s.dtype) and not pd.api.types.is_bool_dtype(s.dtype):
        return s
    num = pd.to_numeric(s, errors="coerce")
    bad = num.isna().to_numpy() & s.notna().to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValidationError(f"{file}: line {i + 2}, column {col}", s.iloc[i], "not a number")
    return num
