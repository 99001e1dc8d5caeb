"""Data fingerprints: a sha256 of exactly the market-store rows a run read.

A notebook reports the ranges it read (:func:`lyra.ops.context.record_reads`); after the run
the runner reads those rows back from the store and hashes them. Two runs with the same
fingerprint saw byte-identical data, so a deterministic notebook must give the same results.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from lyra.ops.context import DataRange

_BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")


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


def fingerprint(market_dir: Path, ranges: Iterable[DataRange]) -> dict[str, Any]:
    """``{"sha256": ..., "ranges": [{venue, symbol, timeframe, start, end, rows, first_ts,
    last_ts, sha256}, ...]}`` for ``ranges`` of the store at ``market_dir``; the overall hash
    covers each range's description and data, in sorted order (the order of reads is noise).
    No ranges (a notebook that read no market data) gives the hash of nothing."""
    from lyra.feeds.store import MarketStore

    store = MarketStore(market_dir)
    uniq = sorted(set(ranges), key=lambda r: (r.venue, r.symbol, r.timeframe, r.start or "", r.end or ""))
    parts = [_hash_range(store, r) for r in uniq]
    total = hashlib.sha256()
    for p in parts:
        total.update(f"{p['venue']}|{p['symbol']}|{p['timeframe']}|{p['start']}|{p['end']}|"
                     f"{p['rows']}|{p['sha256']}\n".encode())
    return {"sha256": total.hexdigest(), "ranges": parts}
