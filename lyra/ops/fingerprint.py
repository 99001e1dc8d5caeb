"""Data fingerprints: a sha256 of exactly the market-store rows a run read.

A notebook reports the ranges it read (:func:`lyra.ops.context.record_reads`) and the files it
read directly (:func:`lyra.ops.context.record_files`); after the run the runner reads those
rows back from the store (and the files) and hashes them. Two runs with the same
fingerprint saw byte-identical data, so a deterministic notebook must give the same results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lyra.ops.context import DataFile, DataRange

_BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
#: The fingerprint of a run that read no data (or only data that is not there): it proves nothing.
EMPTY = hashlib.sha256().hexdigest()


def _hash_range(store: Any, r: DataRange) -> dict[str, Any]:
    """rows, first/last ts and sha256 of one range (rows = 0 and ``missing`` if absent)."""
    h = hashlib.sha256()
    info: dict[str, Any] = asdict(r)
    try:
        if r.timeframe == "trades":
            df = store.read_trades(r.venue, r.symbol, r.start, r.end)
            ts = (df.index.asi8 // 1_000_000).astype("<i8") if len(df) else np.empty(0, "<i8")
            cols = [ts, df["price"].to_numpy("<f8"), df["size"].to_numpy("<f8")]
            cols += [np.asarray(df[c].astype(str).to_numpy(), dtype="U") for c in ("side", "trade_id")]
        else:
            bars = store.read_bars_arrays(r.venue, r.symbol, r.timeframe, r.start, r.end)
            ts = np.asarray(bars.ts, dtype="<i8")
            cols = [ts] + [np.asarray(getattr(bars, c), dtype="<f8") for c in _BAR_COLUMNS[1:]]
    except FileNotFoundError:
        info.update(rows=0, missing=True, sha256=hashlib.sha256(b"missing").hexdigest())
        return info
    for c in cols:
        h.update(np.ascontiguousarray(c).tobytes())
    info.update(rows=len(ts), first_ts=int(ts[0]) if len(ts) else None,
                last_ts=int(ts[-1]) if len(ts) else None, sha256=h.hexdigest())
    return info


def _hash_file(f: DataFile) -> dict[str, Any]:
    """bytes and sha256 of one file (``missing`` if it is gone)."""
    h = hashlib.sha256()
    try:
        with open(f.path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
        size = Path(f.path).stat().st_size
    except FileNotFoundError:
        return {"file": f.path, "bytes": 0, "missing": True, "sha256": hashlib.sha256(b"missing").hexdigest()}
    return {"file": f.path, "bytes": size, "sha256": h.hexdigest()}


def fingerprint(market_dir: Path, ranges: Iterable[DataRange | DataFile]) -> dict[str, Any]:
    """``{"sha256": ..., "ranges": [{venue, symbol, timeframe, start, end, rows, first_ts,
    last_ts, sha256}, ...], "files": [{file, bytes, sha256}, ...], "covers_data": bool}`` for
    ``ranges`` of the store at ``market_dir`` and files read directly; the overall hash covers
    each part's description and data, in sorted order (the order of reads is noise). No reads
    (a notebook that recorded none) gives the hash of nothing and ``covers_data`` False."""
    items = list(ranges)
    uniq = sorted({r for r in items if isinstance(r, DataRange)},
                  key=lambda r: (r.venue, r.symbol, r.timeframe, r.start or "", r.end or ""))
    parts: list[dict[str, Any]] = []
    if uniq:  # the store (pandas, pyarrow) only when store data was read
        from lyra.feeds.store import MarketStore

        store = MarketStore(market_dir)
        parts = [_hash_range(store, r) for r in uniq]
    files = [_hash_file(f)
             for f in sorted({f for f in items if isinstance(f, DataFile)}, key=lambda f: f.path)]
    total = hashlib.sha256()
    for p in parts:
        total.update(f"{p['venue']}|{p['symbol']}|{p['timeframe']}|{p['start']}|{p['end']}|"
                     f"{p['rows']}|{p['sha256']}\n".encode())
    for f in files:
        total.update(f"file|{Path(f['file']).name}|{f['bytes']}|{f['sha256']}\n".encode())
    covers = any(p["rows"] for p in parts) or any(not f.get("missing") for f in files)
    # Reads that found nothing hash like no reads at all: the fingerprint then proves nothing.
    return {"sha256": total.hexdigest() if covers else EMPTY, "ranges": parts, "files": files,
            "covers_data": covers}
