"""The local market-data store: Parquet files partitioned by exchange / symbol / timeframe.

Layout under ``root`` (``lyra.settings.load_settings().market_dir`` by default)::

    <exchange>/<SYMBOL>/<timeframe>/_manifest.json       the list of live part files
    <exchange>/<SYMBOL>/<timeframe>/part-000003-<first>-<last>.parquet

``timeframe`` is ``trades`` for trade ticks. The symbol is path-safe (``BTC/USDT`` is stored
as ``BTC-USDT``).

Rules the store keeps:

* **History is never rewritten by a write.** Each ``write_bars``/``write_trades`` adds one new
  part file and then swaps in a new manifest; ``compact`` merges parts into bigger ones.
* **Atomic.** Every file is written to a temporary name in the same folder, fsynced and
  ``os.replace``d. Readers only see files named in the manifest, and the manifest itself is
  replaced atomically, so a crash at any instant leaves either the old or the new state
  (at worst an orphan file that ``compact`` removes).
* **No duplicates; the stored row wins.** Bars are de-duplicated on ``ts``: rows of a new write
  whose timestamp is already stored are dropped and not counted as added. Trades are
  de-duplicated on ``trade_id``, or, for sources without ids, on (ts, price, size, side).
  So a re-download of an overlapping range is harmless. Consequence: do not store a candle that
  is still open (the downloader drops it); to correct stored history, delete the dataset folder
  and import again.
* One writer per dataset at a time (an ``flock`` on the dataset folder serialises writers in
  different processes); readers need no lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from lyra.core.errors import IntegrityError, ValidationError
from lyra.core.timeutil import timeframe_to_ms
from lyra.feeds.schema import (
    BAR_COLUMNS,
    BAR_SCHEMA,
    MS_MAX,
    MS_MIN,
    TRADE_COLUMNS,
    TRADE_SCHEMA,
    TRADES_TIMEFRAME,
    BarArrays,
    DatasetKey,
    coerce_bars,
    coerce_trades,
    ms_index,
    to_ms,
)

MANIFEST = "_manifest.json"
_FORMAT = 1
TimeLike: TypeAlias = int | float | str | datetime | pd.Timestamp | np.datetime64 | None


class CorruptDataError(IntegrityError):
    """A stored file cannot be read. ``path`` names it; other datasets stay usable."""

    def __init__(self, path: Path, problem: str) -> None:
        self.path = path
        super().__init__(
            f"{path}: {problem} (move the file away and re-import the range, "
            f"or restore it from a backup)"
        )


@dataclass(frozen=True, slots=True)
class _Part:
    file: str
    first: int
    last: int
    rows: int
    seq: int


@dataclass(slots=True)
class _Manifest:
    kind: str
    parts: list[_Part]
    next_seq: int

    @property
    def rows(self) -> int:
        return sum(p.rows for p in self.parts)


class MarketStore:
    """Parquet store of bars and trades. Cheap to create; holds no open files.

    >>> import tempfile
    >>> import pandas as pd
    >>> store = MarketStore(tempfile.mkdtemp())   # in a notebook: load_settings().market_dir
    >>> df = pd.DataFrame({"open": [1.0, 2.0, 3.0], "high": [2.0, 3.0, 4.0], "low": [0.5, 1.5, 2.5],
    ...                    "close": [1.5, 2.5, 3.5], "volume": [10.0, 11.0, 12.0]},
    ...                   index=pd.date_range("2024-01-01", periods=3, freq="1h", tz="UTC"))
    >>> store.write_bars("binance", "BTC/USDT", "1h", df)      # rows added
    3
    >>> store.write_bars("binance", "BTC/USDT", "1h", df)      # already stored: nothing added
    0
    >>> store.read_bars("binance", "BTC/USDT", "1h", start="2024-01-01 01:00")
                               open  high  low  close  volume
    time
    2024-01-01 01:00:00+00:00   2.0   3.0  1.5    2.5    11.0
    2024-01-01 02:00:00+00:00   3.0   4.0  2.5    3.5    12.0
    """

    def __init__(self, root: Path | str, *, compression: str = "snappy") -> None:
        self.root = Path(root)
        self.compression = compression

    # ------------------------------------------------------------------ paths and manifest
    def dataset_dir(self, exchange: str, symbol: str, timeframe: str) -> Path:
        """The folder of one dataset (it may not exist yet)."""
        key = DatasetKey.of(exchange, symbol, timeframe)
        return self._dir(key)

    def _dir(self, key: DatasetKey) -> Path:
        return self.root / key.exchange / key.symbol / key.timeframe

    def _load_manifest(self, key: DatasetKey) -> _Manifest:
        path = self._dir(key) / MANIFEST
        try:
            raw = json.loads(path.read_text())
        except FileNotFoundError:
            return _Manifest(kind=key.kind, parts=[], next_seq=0)
        except (OSError, ValueError) as exc:
            raise CorruptDataError(path, f"manifest unreadable: {exc}") from exc
        try:
            parts = [_Part(str(p["file"]), int(p["first"]), int(p["last"]), int(p["rows"]),
                           int(p["seq"])) for p in raw["parts"]]
            return _Manifest(kind=str(raw["kind"]), parts=parts, next_seq=int(raw["next_seq"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptDataError(path, f"manifest malformed: {exc!r}") from exc

    def _save_manifest(self, key: DatasetKey, manifest: _Manifest) -> None:
        doc = {
            "format": _FORMAT,
            "kind": manifest.kind,
            "next_seq": manifest.next_seq,
            "parts": [{"file": p.file, "first": p.first, "last": p.last, "rows": p.rows,
                       "seq": p.seq} for p in manifest.parts],
        }
        data = json.dumps(doc, indent=1).encode()
        _atomic_write(self._dir(key) / MANIFEST, lambda fh: fh.write(data))

    @contextlib.contextmanager
    def _locked(self, key: DatasetKey) -> Iterator[None]:
        d = self._dir(key)
        d.mkdir(parents=True, exist_ok=True)
        with open(d / ".lock", "a+b") as fh:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    # ------------------------------------------------------------------ part files
    def _sweep_leftovers(self, key: DatasetKey, manifest: _Manifest) -> None:
        """Remove what a writer killed mid-write left: ``.tmp-*`` files and part files the
        manifest never listed. Only called under the dataset's lock, so no live writer owns
        them (every write to this folder happens under that lock)."""
        live = {p.file for p in manifest.parts}
        for f in self._dir(key).iterdir():
            if f.name.startswith(".tmp-") or (f.name.startswith("part-") and f.name not in live):
                f.unlink(missing_ok=True)

    def _write_part(self, key: DatasetKey, manifest: _Manifest, table: pa.Table) -> _Part:
        ts = table.column("ts")
        first, last = int(pc.min(ts).as_py()), int(pc.max(ts).as_py())
        seq = manifest.next_seq
        name = f"part-{seq:06d}-{first}-{last}.parquet"
        dictionary: bool | list[str] = ["side"] if key.kind == "trades" else False
        _atomic_write(
            self._dir(key) / name,
            lambda fh: pq.write_table(table, fh, compression=self.compression,
                                      use_dictionary=dictionary, write_statistics=["ts"],
                                      row_group_size=1 << 20),
        )
        manifest.next_seq = seq + 1
        return _Part(name, first, last, table.num_rows, seq)

    def _read_part(self, key: DatasetKey, part: _Part, columns: list[str] | None) -> pa.Table:
        path = self._dir(key) / part.file
        schema = TRADE_SCHEMA if key.kind == "trades" else BAR_SCHEMA
        try:
            table = pq.read_table(path, columns=columns, use_threads=True)
        except FileNotFoundError as exc:
            raise CorruptDataError(path, "listed in the manifest but missing") from exc
        except (pa.ArrowException, OSError) as exc:
            raise CorruptDataError(path, f"not a readable Parquet file ({exc})") from exc
        want = columns or schema.names
        for name in want:
            if name not in table.column_names or table.schema.field(name).type != schema.field(
                name
            ).type:
                raise CorruptDataError(path, f"column {name!r} missing or of the wrong type")
        if table.num_rows != part.rows and columns is None:
            raise CorruptDataError(path, f"holds {table.num_rows} rows, manifest says {part.rows}")
        return table

    def _read_table(self, key: DatasetKey, start: int | None, end: int | None,
                    columns: list[str] | None = None) -> tuple[pa.Table, bool]:
        """Concatenate the parts overlapping [start, end); True if rows are already in order."""
        manifest = self._load_manifest(key)
        parts = sorted(
            (p for p in manifest.parts
             if (start is None or p.last >= start) and (end is None or p.first < end)),
            key=lambda p: (p.first, p.seq),
        )
        schema = TRADE_SCHEMA if key.kind == "trades" else BAR_SCHEMA
        if columns is not None:
            schema = pa.schema([schema.field(c) for c in columns])
        if not parts:
            return schema.empty_table(), True
        tables = [self._read_part(key, p, columns) for p in parts]
        # Disjoint, ordered part ranges concatenate into sorted data; otherwise sort on read.
        ordered = all(parts[i].first > parts[i - 1].last for i in range(1, len(parts)))
        if key.kind == "trades":
            ordered = all(parts[i].first >= parts[i - 1].last for i in range(1, len(parts)))
        return pa.concat_tables(tables), ordered

    # ------------------------------------------------------------------ bars
    def write_bars(self, exchange: str, symbol: str, timeframe: str, df: pd.DataFrame) -> int:
        """Append bars; return the number of rows added.

        ``df`` has open/high/low/close/volume and a ``ts`` column (int ms UTC, candle open
        time), a ``timestamp_ms`` column or a DatetimeIndex. Rows whose ``ts`` is already
        stored are skipped (the stored row wins). Duplicate timestamps inside ``df`` are an
        error: validate first.
        """
        key = DatasetKey.of(exchange, symbol, timeframe)
        if key.kind != "bars":
            raise ValidationError("timeframe", timeframe, "is the trades dataset",
                                  "use write_trades")
        bars = coerce_bars(df)
        if len(bars) == 0:
            return 0
        ts = bars.ts
        cols = {c: getattr(bars, c) for c in BAR_COLUMNS}
        if np.any(ts[1:] < ts[:-1]):
            order = np.argsort(ts, kind="stable")
            cols = {c: v[order] for c, v in cols.items()}
            ts = cols["ts"]
        _check_ms_range(ts)
        dup = np.flatnonzero(ts[1:] == ts[:-1])
        if dup.size:
            raise ValidationError("ts", int(ts[dup[0]]), "duplicate timestamp in the bars to write",
                                  "de-duplicate or run validate_bars first")
        with self._locked(key):
            manifest = self._load_manifest(key)
            self._sweep_leftovers(key, manifest)
            keep = self._new_rows_mask(key, manifest, ts)
            if keep is not None:
                cols = {c: v[keep] for c, v in cols.items()}
            n = int(cols["ts"].shape[0])
            if n == 0:
                return 0
            table = pa.table(cols, schema=BAR_SCHEMA)
            manifest.parts.append(self._write_part(key, manifest, table))
            self._save_manifest(key, manifest)
        return n

    def _new_rows_mask(self, key: DatasetKey, manifest: _Manifest,
                       ts: np.ndarray) -> np.ndarray | None:
        lo, hi = int(ts[0]), int(ts[-1])
        overlap = [p for p in manifest.parts if p.last >= lo and p.first <= hi]
        if not overlap:
            return None
        stored = np.concatenate(
            [self._read_part(key, p, ["ts"]).column("ts").to_numpy() for p in overlap]
        )
        return ~np.isin(ts, stored)

    def read_bars_arrays(self, exchange: str, symbol: str, timeframe: str,
                         start: TimeLike = None, end: TimeLike = None) -> BarArrays:
        """Bars in [start, end) as numpy arrays (the fast path). Bounds: int ms, ISO text,
        aware datetime or Timestamp; ``None`` means open-ended."""
        key = DatasetKey.of(exchange, symbol, timeframe)
        if key.kind != "bars":
            raise ValidationError("timeframe", timeframe, "is the trades dataset", "use read_trades")
        s, e = to_ms(start), to_ms(end)
        table, ordered = self._read_table(key, s, e)
        cols = {c: table.column(c).to_numpy() for c in BAR_COLUMNS}
        if not ordered:
            order = np.argsort(cols["ts"], kind="stable")
            cols = {c: v[order] for c, v in cols.items()}
        ts = cols["ts"]
        i0 = 0 if s is None else int(np.searchsorted(ts, s, side="left"))
        i1 = len(ts) if e is None else int(np.searchsorted(ts, e, side="left"))
        if i0 != 0 or i1 != len(ts):
            cols = {c: v[i0:i1] for c, v in cols.items()}
        return BarArrays(**cols)

    def read_bars(self, exchange: str, symbol: str, timeframe: str,
                  start: TimeLike = None, end: TimeLike = None, *,
                  tz_aware: bool = True) -> pd.DataFrame:
        """Bars in [start, end) as a DataFrame indexed by candle open time.

        The index is a UTC-aware DatetimeIndex named ``time``; ``tz_aware=False`` gives naive
        UTC (what vectorbt wants: see DESIGN "measured traps")."""
        return self.read_bars_arrays(exchange, symbol, timeframe, start, end).to_frame(
            tz_aware=tz_aware)

    # ------------------------------------------------------------------ trades
    def write_trades(self, exchange: str, symbol: str, df: pd.DataFrame) -> int:
        """Append trade ticks (ts, price, size, side, trade_id); return rows added.

        De-duplication: by ``trade_id`` where the source gives one (the first copy wins,
        also inside ``df``); without ids, by (ts, price, size, side) against stored rows."""
        key = DatasetKey.of(exchange, symbol, TRADES_TIMEFRAME)
        trades = coerce_trades(df)
        if trades.empty:
            return 0
        ts = trades["ts"].to_numpy()
        if np.any(ts[1:] < ts[:-1]):
            trades = trades.iloc[np.argsort(ts, kind="stable")].reset_index(drop=True)
        _check_ms_range(trades["ts"].to_numpy())
        has_id = trades["trade_id"].to_numpy() != ""
        # Inside one batch the first copy of an id wins.
        trades = trades.loc[~(has_id & trades["trade_id"].duplicated().to_numpy())]
        with self._locked(key):
            manifest = self._load_manifest(key)
            self._sweep_leftovers(key, manifest)
            ts = trades["ts"].to_numpy()
            lo, hi = int(ts[0]), int(ts[-1])
            overlap = [p for p in manifest.parts if p.last >= lo and p.first <= hi]
            if overlap:
                stored = pa.concat_tables(
                    [self._read_part(key, p, None) for p in overlap]).to_pandas()
                trades = trades.loc[~_stored_trade_mask(trades, stored)]
            if trades.empty:
                return 0
            table = pa.Table.from_pandas(trades[list(TRADE_COLUMNS)], schema=TRADE_SCHEMA,
                                         preserve_index=False)
            manifest.parts.append(self._write_part(key, manifest, table))
            self._save_manifest(key, manifest)
        return len(trades)

    def read_trades(self, exchange: str, symbol: str, start: TimeLike = None,
                    end: TimeLike = None, *, tz_aware: bool = True) -> pd.DataFrame:
        """Trades in [start, end) indexed by UTC time: price, size, side, trade_id."""
        key = DatasetKey.of(exchange, symbol, TRADES_TIMEFRAME)
        s, e = to_ms(start), to_ms(end)
        table, ordered = self._read_table(key, s, e)
        df = table.to_pandas()
        ts = df["ts"].to_numpy()
        if not ordered:
            order = np.argsort(ts, kind="stable")
            df = df.iloc[order]
            ts = ts[order]
        mask = np.ones(len(ts), dtype=bool)
        if s is not None:
            mask &= ts >= s
        if e is not None:
            mask &= ts < e
        df = df.loc[mask] if not mask.all() else df
        out = df[["price", "size", "side", "trade_id"]].copy()
        out.index = ms_index(df["ts"].to_numpy(), tz_aware=tz_aware)
        return out

    # ------------------------------------------------------------------ metadata
    def first_timestamp(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """The earliest stored ts (int ms), or None for an empty dataset."""
        parts = self._load_manifest(DatasetKey.of(exchange, symbol, timeframe)).parts
        return min(p.first for p in parts) if parts else None

    def last_timestamp(self, exchange: str, symbol: str, timeframe: str) -> int | None:
        """The latest stored ts (int ms), or None: where a downloader resumes."""
        parts = self._load_manifest(DatasetKey.of(exchange, symbol, timeframe)).parts
        return max(p.last for p in parts) if parts else None

    def datasets(self) -> list[DatasetKey]:
        """Every dataset with a manifest, sorted."""
        keys = []
        for m in sorted(self.root.glob(f"*/*/*/{MANIFEST}")):
            d = m.parent
            keys.append(DatasetKey(d.parent.parent.name, d.parent.name, d.name))
        return keys

    def list_datasets(self) -> pd.DataFrame:
        """One row per dataset: exchange, symbol, timeframe, kind, first, last, rows, parts,
        gaps (count of holes in a bar series; NA for trades) and status ("ok" or the error).
        A corrupt dataset is reported in ``status``, not raised."""
        rows: list[dict[str, Any]] = []
        for key in self.datasets():
            row: dict[str, Any] = {"exchange": key.exchange, "symbol": key.symbol,
                                   "timeframe": key.timeframe, "kind": key.kind,
                                   "first": pd.NaT, "last": pd.NaT, "rows": 0, "parts": 0,
                                   "gaps": pd.NA, "status": "ok"}
            try:
                manifest = self._load_manifest(key)
                row["rows"], row["parts"] = manifest.rows, len(manifest.parts)
                if manifest.parts:
                    row["first"] = pd.Timestamp(min(p.first for p in manifest.parts), unit="ms",
                                                tz="UTC")
                    row["last"] = pd.Timestamp(max(p.last for p in manifest.parts), unit="ms",
                                               tz="UTC")
                if key.kind == "bars":
                    table, ordered = self._read_table(key, None, None, ["ts"])
                    ts = table.column("ts").to_numpy()
                    if not ordered:
                        ts = np.sort(ts)
                    row["gaps"] = int(np.count_nonzero(np.diff(ts) > timeframe_to_ms(key.timeframe)))
            except IntegrityError as exc:
                row["status"] = str(exc)
            rows.append(row)
        cols = ["exchange", "symbol", "timeframe", "kind", "first", "last", "rows", "parts",
                "gaps", "status"]
        out = pd.DataFrame(rows, columns=cols)
        out["gaps"] = out["gaps"].astype("Int64")
        return out

    # ------------------------------------------------------------------ maintenance
    def compact(self, exchange: str, symbol: str, timeframe: str, *,
                rows_per_file: int = 5_000_000) -> int:
        """Merge the part files of one dataset into sorted files of at most ``rows_per_file``
        rows, atomically (new files, then one manifest swap, then the old files go). Also
        removes orphans left by a crash. Returns the number of part files afterwards."""
        if rows_per_file <= 0:
            raise ValidationError("rows_per_file", rows_per_file, "must be positive")
        key = DatasetKey.of(exchange, symbol, timeframe)
        with self._locked(key):
            manifest = self._load_manifest(key)
            old = {p.file for p in manifest.parts}
            if len(manifest.parts) > 1:
                table, ordered = self._read_table(key, None, None)
                if not ordered:
                    order = np.argsort(table.column("ts").to_numpy(), kind="stable")
                    table = table.take(pa.array(order))
                new_parts = []
                for off in range(0, table.num_rows, rows_per_file):
                    chunk = table.slice(off, rows_per_file).combine_chunks()
                    new_parts.append(self._write_part(key, manifest, chunk))
                manifest.parts = new_parts
                self._save_manifest(key, manifest)
            live = {p.file for p in manifest.parts}
            for f in self._dir(key).iterdir():
                orphan = f.name.startswith("part-") and f.name not in live
                if orphan or f.name.startswith(".tmp-") or f.name in old - live:
                    f.unlink(missing_ok=True)
            return len(manifest.parts)


def _stored_trade_mask(new: pd.DataFrame, stored: pd.DataFrame) -> np.ndarray:
    """True for rows of ``new`` already in ``stored`` (by id, or by content without id)."""
    ids = new["trade_id"].to_numpy()
    has_id = ids != ""
    found = np.zeros(len(new), dtype=bool)
    if has_id.any():
        found[has_id] = pd.Index(ids[has_id]).isin(stored["trade_id"].to_numpy())
    if (~has_id).any():
        key_cols = ["ts", "price", "size", "side"]
        stored_keys = pd.MultiIndex.from_frame(stored.loc[stored["trade_id"] == "", key_cols])
        new_keys = pd.MultiIndex.from_frame(new.loc[~has_id, key_cols])
        found[~has_id] = new_keys.isin(stored_keys)
    return found


def _check_ms_range(ts: np.ndarray) -> None:
    bad = np.flatnonzero((ts < MS_MIN) | (ts >= MS_MAX))
    if bad.size:
        v = int(ts[bad[0]])
        unit = "seconds" if v < MS_MIN else "micro- or nanoseconds"
        raise ValidationError("ts", v, f"looks like {unit}, not milliseconds",
                              "timestamps must be int ms since the epoch, UTC")


def _atomic_write(path: Path, write: Any) -> None:
    """Write via a temp file in the same folder + fsync + os.replace (+ fsync of the folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".tmp-{uuid.uuid4().hex}-{path.name}"
    try:
        with open(tmp, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
