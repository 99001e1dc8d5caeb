"""Research results beside the database: saved to disk, and served with the database's sessions.

A :class:`~lyra.dashboards.sources.ResearchSource` (a finished :func:`lyra.backtest`) is saved
with :meth:`ResearchSource.save <lyra.dashboards.sources.ResearchSource.save>` as a folder of
Parquet frames and a JSON header (never a pickle: a server must not unpickle files), and read
back, checked file by file, with ``ResearchSource.load``. ``lyra demo`` saves the research
backtest of its strategy as ``$LYRA_HOME/research/research-demo/``.

:class:`CombinedSource` serves the database's sessions *and* those results through one
:class:`~lyra.dashboards.sources.DashboardSource`: the session picker lists both, a research
session's questions go to its (static, in-memory) result, everything else to the
:class:`~lyra.readside.ReadModel`::

    from lyra.dashboards import TradingView
    from lyra.dashboards.combined import CombinedSource, research_results

    src = CombinedSource(ReadModel(engine, settings.market_dir), research_results(settings.home))
    TradingView(src, "research-demo", live=False)

Layout of a saved result (format ``lyra-research/1``)::

    header.json          the session (SessionInfo fields), instruments, bar sets, and each
                         file's size, row count and SHA-256 (written last)
    fills.parquet        instrument_id, side, quantity, price, fee, ts
    equity.parquet       ts, equity, close_<k>, holding_<k> (k: the header's instrument order)
    positions.parquet    ReadModel.positions' columns
    bars-<n>.parquet     ts, open, high, low, close, volume
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, fields
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from lyra.core.errors import ValidationError
from lyra.dashboards.sources import (
    POSITION_COLUMNS,
    ResearchSource,
    bars_frame,
    equity_frame,
    fills_frame,
    positions_frame,
)
from lyra.readside.book import BookView
from lyra.readside.model import Changes, ReadModel, RiskState, SessionInfo

__all__ = ["CombinedSource", "ResearchFileError", "load_research", "research_results", "save_research"]

log = logging.getLogger(__name__)

FORMAT = "lyra-research/1"
HEADER = "header.json"
#: A header is a few kB; anything this large is not one.
MAX_HEADER_BYTES = 1_000_000
#: A research session's id: what a dashboard link may carry (``?session=``), nothing else.
SESSION_ID = re.compile(r"[A-Za-z0-9_-]{1,40}")
_BARS_FILE = re.compile(r"bars-[0-9]{1,4}\.parquet")

_TEXT, _FLOAT, _INT = "text", "float", "int"
FILL_SCHEMA = {"instrument_id": _TEXT, "side": _TEXT, "quantity": _FLOAT, "price": _FLOAT, "fee": _FLOAT,
               "ts": _INT}
BAR_SCHEMA = {"ts": _INT, "open": _FLOAT, "high": _FLOAT, "low": _FLOAT, "close": _FLOAT, "volume": _FLOAT}
POSITION_SCHEMA = {c: _TEXT if c in ("session_id", "instrument_id", "venue", "symbol")
                   else _INT if c in ("last_ts", "last_seq") else _FLOAT for c in POSITION_COLUMNS}
_ARROW = {_TEXT: pa.string(), _FLOAT: pa.float64(), _INT: pa.int64()}
#: SessionInfo's fields and the JSON types a header must give them.
_INFO_TYPES: dict[str, type | tuple[type, ...]] = {
    "session_id": str, "mode": str, "status": str, "strategy": str, "venue": str, "symbols": list,
    "timeframe": str, "balances": dict, "quote": str, "created_ts": int, "heartbeat_ts": int,
    "data_ts": int, "events_processed": int, "error": str, "config": dict,
}


class ResearchFileError(ValidationError):
    """A saved research result that cannot be used: the message names the file and the problem."""

    def __init__(self, path: Path, problem: str) -> None:
        super().__init__("research file", str(path), problem,
                         "save the result again (ResearchSource.save) or delete the folder")


# ============================================================================ saving
def save_research(source: ResearchSource, directory: str | Path) -> Path:
    """Write ``source`` to ``directory`` atomically (see the module docstring for the layout).

    Everything is written to a hidden temporary folder beside ``directory``, the header last,
    then renamed into place: a reader sees the previous result or the new one, never half of
    one. An existing ``directory`` is replaced only if it is a saved result (or empty)."""
    if not isinstance(source, ResearchSource):
        raise ValidationError("source", type(source).__name__, "must be a ResearchSource",
                              "make one with lyra.dashboards.research_source(result)")
    target = Path(directory).expanduser().absolute()
    if target.name in ("", ".", ".."):
        raise ValidationError("directory", str(directory), "must name a folder to write the result to")
    foreign = target.exists() and (not target.is_dir() or (any(target.iterdir())
                                                          and not (target / HEADER).is_file()))
    if foreign:
        raise ValidationError("directory", str(target), "exists and is not a saved research result",
                              "pick another folder; only a saved result is replaced")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        _write_all(source, tmp)
        if target.exists():
            # Two renames: the old result steps aside, the new one takes its name (a reader in
            # between finds no folder, never a partial one).
            old = target.with_name(f".{target.name}.{secrets.token_hex(4)}.old")
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)
        _fsync_dir(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _write_all(src: ResearchSource, out: Path) -> None:
    info, eq = src.info, src._equity
    iids = list(eq["marks"].iloc[0]) if len(eq) else []
    f = src._fills
    tables: dict[str, pa.Table] = {
        "fills.parquet": _table({c: f[c].to_numpy() for c in FILL_SCHEMA}, FILL_SCHEMA),
        "positions.parquet": _table({c: src._positions[c].to_numpy() for c in POSITION_SCHEMA},
                                    POSITION_SCHEMA),
    }
    eq_cols: dict[str, Any] = {"ts": eq["ts"].to_numpy(), "equity": eq["equity"].to_numpy()}
    for k, iid in enumerate(iids):
        eq_cols[f"close_{k}"] = np.array([m[iid] for m in eq["marks"]], dtype="float64")
        eq_cols[f"holding_{k}"] = np.array([p.get(iid, 0.0) for p in eq["positions"]], dtype="float64")
    tables["equity.parquet"] = _table(eq_cols, _equity_schema(len(iids)))
    bar_sets = []
    for n, ((venue, symbol, tf), b) in enumerate(sorted(src._bars.items())):
        name = f"bars-{n}.parquet"
        tables[name] = _table({c: b[c].to_numpy() for c in BAR_SCHEMA}, BAR_SCHEMA)
        bar_sets.append({"venue": venue, "symbol": symbol, "timeframe": tf, "file": name})
    files = {}
    for name, table in tables.items():
        path = out / name
        pq.write_table(table, path)
        _fsync(path)
        files[name] = {"bytes": path.stat().st_size, "rows": table.num_rows, "sha256": _sha256(path)}
    info_json = asdict(info)
    info_json["symbols"] = list(info.symbols)
    header = {"format": FORMAT, "info": info_json, "instruments": iids, "bars": bar_sets, "files": files}
    text = json.dumps(header, indent=1, default=str, allow_nan=False)
    (out / HEADER).write_text(text, encoding="utf-8")
    _fsync(out / HEADER)


def _table(columns: dict[str, Any], schema: dict[str, str]) -> pa.Table:
    arrays = {c: pa.array([str(v) for v in columns[c]] if kind == _TEXT else columns[c], type=_ARROW[kind])
              for c, kind in schema.items()}
    return pa.table(arrays)


def _equity_schema(n: int) -> dict[str, str]:
    schema = {"ts": _INT, "equity": _FLOAT}
    for k in range(n):
        schema[f"close_{k}"] = _FLOAT
        schema[f"holding_{k}"] = _FLOAT
    return schema


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # some filesystems (and Windows) cannot fsync a folder: the rename has happened anyway
    with contextlib.suppress(OSError):
        _fsync(path)


# ============================================================================ loading
def load_research(directory: str | Path) -> ResearchSource:
    """Read a result written by :func:`save_research`, checking every file against the header
    (size, SHA-256, row count, columns and types, values); raises :class:`ResearchFileError`
    naming the file and the problem. Nothing is unpickled or evaluated."""
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise ResearchFileError(root, "is not a folder")
    header = _header(root / HEADER)
    info = _info(root / HEADER, header.get("info"))
    iids = header.get("instruments")
    if not (isinstance(iids, list) and iids and all(isinstance(i, str) and ":" in i for i in iids)):
        raise ResearchFileError(root / HEADER, "'instruments' must be a non-empty list of 'venue:SYMBOL'")
    files = header.get("files")
    if not isinstance(files, dict):
        raise ResearchFileError(root / HEADER, "'files' must be an object")
    bar_sets = header.get("bars")
    if not isinstance(bar_sets, list):
        raise ResearchFileError(root / HEADER, "'bars' must be a list")

    f = _read(root, files, "fills.parquet", FILL_SCHEMA)
    side = f["side"].to_numpy(zero_copy_only=False)
    iid = f["instrument_id"].to_numpy(zero_copy_only=False)
    bad = sorted(set(side) - {"buy", "sell"})[:3] or sorted(set(iid) - set(iids))[:3]
    if bad:
        raise ResearchFileError(root / "fills.parquet", f"unknown side or instrument {bad}")
    f_ts = _ints(root / "fills.parquet", f, "ts", increasing=False)
    for c in ("quantity", "price", "fee"):
        _finite(root / "fills.parquet", f, c)
    fills = fills_frame(info.session_id, info.quote, iid, side, f["quantity"].to_numpy(),
                        f["price"].to_numpy(), f["fee"].to_numpy(), f_ts)

    e = _read(root, files, "equity.parquet", _equity_schema(len(iids)))
    if e.num_rows < 1:
        raise ResearchFileError(root / "equity.parquet", "has no rows (a backtest has at least one bar)")
    e_ts = _ints(root / "equity.parquet", e, "ts", increasing=True)
    close = np.column_stack([e[f"close_{k}"].to_numpy() for k in range(len(iids))])
    held = np.column_stack([e[f"holding_{k}"].to_numpy() for k in range(len(iids))])
    equity = equity_frame(e_ts, e["equity"].to_numpy(), iids, close, held)

    p = _read(root, files, "positions.parquet", POSITION_SCHEMA)
    rows = p.to_pylist()
    if any(r["session_id"] != info.session_id or r["instrument_id"] not in iids for r in rows):
        raise ResearchFileError(root / "positions.parquet",
                                "holds another session's or instrument's position")
    positions = positions_frame(rows)

    bars = {}
    for entry in bar_sets:
        if not (isinstance(entry, dict) and all(isinstance(entry.get(k), str) and entry.get(k)
                                                for k in ("venue", "symbol", "timeframe", "file"))
                and _BARS_FILE.fullmatch(entry["file"])):
            raise ResearchFileError(root / HEADER, f"bad 'bars' entry {str(entry)[:200]!r}")
        b = _read(root, files, entry["file"], BAR_SCHEMA)
        b_ts = _ints(root / entry["file"], b, "ts", increasing=True)
        bars[(entry["venue"], entry["symbol"], entry["timeframe"])] = bars_frame(
            b_ts, *(b[c].to_numpy() for c in ("open", "high", "low", "close", "volume")))
    return ResearchSource(info=info, fills=fills, equity=equity, positions=positions, bars=bars)


def _header(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ResearchFileError(path, "is missing (an unfinished or foreign folder)")
    if path.stat().st_size > MAX_HEADER_BYTES:
        raise ResearchFileError(path, f"is larger than {MAX_HEADER_BYTES:,} bytes")
    try:
        header = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResearchFileError(path, f"is not valid JSON ({exc})") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        got = header.get("format") if isinstance(header, dict) else type(header).__name__
        raise ResearchFileError(path, f"format {str(got)[:40]!r} is not {FORMAT!r}")
    return header


def _info(path: Path, raw: Any) -> SessionInfo:
    if not isinstance(raw, dict):
        raise ResearchFileError(path, "'info' must be an object")
    missing = [f.name for f in fields(SessionInfo) if f.name not in raw]
    if missing:
        raise ResearchFileError(path, f"'info' lacks {missing}")
    for name, kind in _INFO_TYPES.items():
        value = raw[name]
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ResearchFileError(path, f"info.{name} must be a {getattr(kind, '__name__', kind)}")
    if not SESSION_ID.fullmatch(raw["session_id"]):
        raise ResearchFileError(path, "info.session_id must be 1-40 letters, digits, '-' or '_'")
    if raw["mode"] != "research":
        raise ResearchFileError(path, f"info.mode is {raw['mode'][:20]!r}, not 'research'")
    if not all(isinstance(s, str) for s in raw["symbols"]):
        raise ResearchFileError(path, "info.symbols must be a list of text")
    balances = raw["balances"]
    if not all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool)
               and math.isfinite(v) for k, v in balances.items()):
        raise ResearchFileError(path, "info.balances must map currencies to numbers")
    known = {f.name for f in fields(SessionInfo)}
    values = {k: v for k, v in raw.items() if k in known}
    values["symbols"] = tuple(raw["symbols"])
    values["balances"] = {k: float(v) for k, v in balances.items()}
    return SessionInfo(**values)


def _read(root: Path, files: dict[str, Any], name: str, schema: dict[str, str]) -> pa.Table:
    """One Parquet file, checked against the header's size and digest and ``schema``."""
    path = root / name
    meta = files.get(name)
    if not (isinstance(meta, dict) and isinstance(meta.get("bytes"), int)
            and isinstance(meta.get("rows"), int) and isinstance(meta.get("sha256"), str)):
        raise ResearchFileError(root / HEADER, f"'files' has no size, rows and sha256 for {name}")
    if not path.is_file():
        raise ResearchFileError(path, "is missing")
    size = path.stat().st_size
    if size != meta["bytes"]:
        raise ResearchFileError(path, f"has {size:,} bytes, the header says {meta['bytes']:,} (truncated or "
                                      "changed after saving)")
    if _sha256(path) != meta["sha256"]:
        raise ResearchFileError(path, "its SHA-256 differs from the header's "
                                      "(corrupted or changed after saving)")
    try:
        table = pq.read_table(path)
    except Exception as exc:  # pyarrow's errors vary by what is wrong; the file is unusable either way
        raise ResearchFileError(path, f"is not a readable Parquet file ({type(exc).__name__}: "
                                      f"{str(exc)[:200]})") from None
    if table.num_rows != meta["rows"]:
        raise ResearchFileError(path, f"has {table.num_rows:,} rows, the header says {meta['rows']:,}")
    for col, kind in schema.items():
        if col not in table.column_names:
            raise ResearchFileError(path, f"has no column {col!r}")
        typ = table.schema.field(col).type
        text = pa.types.is_string(typ) or pa.types.is_large_string(typ)
        ok = text if kind == _TEXT else typ == _ARROW[kind]
        if not ok:
            raise ResearchFileError(path, f"column {col!r} is {typ}, not {_ARROW[kind]}")
        if table.column(col).null_count:
            raise ResearchFileError(path, f"column {col!r} has missing values")
    return table


def _ints(path: Path, table: pa.Table, col: str, *, increasing: bool) -> np.ndarray:
    ts = np.asarray(table.column(col).to_numpy(), dtype="int64")
    steps = np.diff(ts)
    if len(steps) and ((steps <= 0).any() if increasing else (steps < 0).any()):
        raise ResearchFileError(path, f"column {col!r} is not in time order")
    return ts


def _finite(path: Path, table: pa.Table, col: str) -> None:
    if not np.isfinite(table.column(col).to_numpy()).all():
        raise ResearchFileError(path, f"column {col!r} has a non-finite value")


def research_results(home_dir: str | Path) -> list[ResearchSource]:
    """The saved results under ``<home_dir>/research/*/`` (``$LYRA_HOME/research``), by folder
    name. A folder that does not load is skipped with a warning naming it and its problem
    (hidden folders are a save in progress)."""
    root = Path(home_dir).expanduser() / "research"
    if not root.is_dir():
        return []
    out = []
    for path in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            out.append(load_research(path))
        except Exception as exc:  # one bad folder must not keep the dashboards from starting
            log.warning("skipping research result %s: %s", path, exc)
    return out


# ============================================================================ serving
class CombinedSource:
    """The database's sessions and saved research results as one dashboard source.

    ``sessions()`` lists the database's sessions, then the research ones. A question about a
    research session (by id) goes to its result in memory; everything else — the log
    (``head_seq``, ``changes_since``, ``events``), risk state, order books, bars the market
    store has — to ``primary``. Questions over *all* sessions (``fills()``, ``positions()``,
    ``fees()``, ``orders()`` without an id) add the research sessions' rows to the database's,
    as the session list does; the event log and risk decisions stay the database's.

    Research ids never shadow a database session: a research result whose id the database
    has is renamed (``research-demo-2``) when the source is made, and a database session
    created later with a research id wins (the research one leaves the list, with a warning).
    ``engine`` and ``market_dir`` are ``primary``'s (the order ticket and risk actions write
    through the engine; research sessions are finished and take no orders).
    """

    def __init__(self, primary: ReadModel, research: Sequence[ResearchSource] = ()) -> None:
        self.primary = primary
        self.engine = primary.engine
        self.market_dir = primary.market_dir
        try:
            taken = {s.session_id for s in primary.sessions()}
        except Exception as exc:  # the database may be down at start: the runtime check still holds
            log.warning("research sessions: could not list the database's sessions: %r", exc)
            taken = set()
        self.research: dict[str, ResearchSource] = {}
        for src in research:
            if not isinstance(src, ResearchSource):
                raise ValidationError("research", type(src).__name__, "must be ResearchSource objects",
                                      "load them with research_results(home) or ResearchSource.load(dir)")
            sid = src.info.session_id
            if sid in taken or sid in self.research:
                new = _free_id(sid, taken | set(self.research))
                log.warning("research session %r: the id is taken (%s); shown as %r", sid,
                            "a database session" if sid in taken else "another research result", new)
                src = src.renamed(new)
                sid = new
            self.research[sid] = src
        self._shadowed: set[str] = set()

    def __repr__(self) -> str:
        return f"CombinedSource({self.primary!r}, research={list(self.research)})"

    def _shadow(self, sid: str) -> None:
        if sid not in self._shadowed:
            self._shadowed.add(sid)
            log.warning("research session %r is hidden: a database session now has that id", sid)

    def _res(self, session_id: Any) -> ResearchSource | None:
        """The research result answering for ``session_id`` (None: the database does)."""
        if isinstance(session_id, str) and session_id not in self._shadowed:
            return self.research.get(session_id)
        return None

    def _all_research(self) -> list[ResearchSource]:
        return [s for sid, s in self.research.items() if sid not in self._shadowed]

    # -------------------------------------------------------------- the log (the database's)
    def head_seq(self) -> int:
        return self.primary.head_seq()

    def changes_since(self, seq: int, session_id: str | None = None) -> Changes:
        res = self._res(session_id)
        return res.changes_since(seq, session_id) if res else self.primary.changes_since(seq, session_id)

    def events(self, *, since_seq: int = 0, kinds: list[str] | None = None,
               session_id: str | None = None, limit: int | None = 500) -> pd.DataFrame:
        """A research session's equity snapshots by its id; otherwise the database's log."""
        res = self._res(session_id)
        src: Any = res if res else self.primary
        return src.events(since_seq=since_seq, kinds=kinds, session_id=session_id, limit=limit)

    # -------------------------------------------------------------- sessions
    def sessions(self) -> list[SessionInfo]:
        db = self.primary.sessions()
        ids = {s.session_id for s in db}
        for sid in self.research:
            if sid in ids:
                self._shadow(sid)
        return db + [s.info for s in self._all_research()]

    def session(self, session_id: str) -> SessionInfo | None:
        found = self.primary.session(session_id)
        if found is not None:
            if session_id in self.research:
                self._shadow(session_id)
            return found
        res = self._res(session_id)
        return res.info if res else None

    def default_session_id(self) -> str | None:
        """The database's default session; the first research one when the database has none."""
        sid = self.primary.default_session_id()
        if sid is None:
            rest = self._all_research()
            return rest[0].info.session_id if rest else None
        return sid

    # -------------------------------------------------------------- per session
    def orders(self, session_id: str | list[str] | None = None, *, open_only: bool = False,
               limit: int | None = None) -> pd.DataFrame:
        if isinstance(session_id, list):
            mine = [s for s in session_id if self._res(s)]
            rest = [s for s in session_id if not self._res(s)]
            frames = [self.primary.orders(rest, open_only=open_only, limit=limit)] if rest or not mine else []
            frames += [self.research[s].orders(s, open_only=open_only, limit=limit) for s in mine]
            return _cap(_concat(frames), limit, newest_first=True)
        res = self._res(session_id)
        if res:
            return res.orders(session_id, open_only=open_only, limit=limit)
        frame = self.primary.orders(session_id, open_only=open_only, limit=limit)
        if session_id is None:
            frame = _cap(_concat([frame] + [r.orders(None, open_only=open_only, limit=limit)
                                            for r in self._all_research()]), limit, newest_first=True)
        return frame

    def fills(self, session_id: str | None = None, *, since_seq: int = 0,
              limit: int | None = None) -> pd.DataFrame:
        """A session's fills; without one, the database's and (a research result never has
        anything new: only when ``since_seq`` is 0) the research sessions'."""
        res = self._res(session_id)
        if res:
            return res.fills(session_id, since_seq=since_seq, limit=limit)
        frame = self.primary.fills(session_id, since_seq=since_seq, limit=limit)
        if session_id is None and since_seq == 0:
            frame = _cap(_concat([frame] + [r.fills(limit=limit) for r in self._all_research()]), limit,
                         newest_first=False)
        return frame

    def positions(self, session_id: str | None = None) -> pd.DataFrame:
        res = self._res(session_id)
        if res:
            return res.positions(session_id)
        frame = self.primary.positions(session_id)
        if session_id is None:
            frame = _concat([frame] + [r.positions() for r in self._all_research()])
        return frame

    def equity_curve(self, session_id: str) -> pd.DataFrame:
        res = self._res(session_id)
        return res.equity_curve(session_id) if res else self.primary.equity_curve(session_id)

    def last_marks(self, session_id: str) -> dict[str, float]:
        res = self._res(session_id)
        return res.last_marks(session_id) if res else self.primary.last_marks(session_id)

    def risk_state(self, *, limit: int = 50) -> RiskState:
        return self.primary.risk_state(limit=limit)

    def risk_decisions(self, session_id: str | None = None, *, limit: int | None = 1000) -> pd.DataFrame:
        res = self._res(session_id)
        return (res.risk_decisions(session_id, limit=limit) if res
                else self.primary.risk_decisions(session_id, limit=limit))

    def fees(self, session_id: str | None = None) -> pd.DataFrame:
        res = self._res(session_id)
        if res:
            return res.fees(session_id)
        frame = self.primary.fees(session_id)
        if session_id is None:
            frame = _concat([frame] + [r.fees() for r in self._all_research()])
        return frame

    # -------------------------------------------------------------- market data
    def bars(self, venue: str, symbol: str, timeframe: str, *, start: int | None = None,
             end: int | None = None) -> pd.DataFrame:
        """The market store's bars; a research result's own when the store has none."""
        frame = None
        if self.primary.market_dir is not None:
            frame = self.primary.bars(venue, symbol, timeframe, start=start, end=end)
            if len(frame):
                return frame
        for res in self._all_research():
            if (venue, symbol, timeframe) in res._bars:
                return res.bars(venue, symbol, timeframe, start=start, end=end)
        # no market store and no result with these bars: the read model says so (its error)
        if frame is None:
            frame = self.primary.bars(venue, symbol, timeframe, start=start, end=end)
        return frame

    def book(self, instrument_id: str, at_ts: int | None = None, *,
             session_id: str | None = None) -> BookView | None:
        res = self._res(session_id)
        return res.book(instrument_id, at_ts, session_id=session_id) if res else \
            self.primary.book(instrument_id, at_ts, session_id=session_id)

    def spread_depth(self, instrument_id: str, start: int | None = None, end: int | None = None,
                     max_points: int = 2000, *, session_id: str | None = None) -> pd.DataFrame:
        res = self._res(session_id)
        src: Any = res if res else self.primary
        return src.spread_depth(instrument_id, start, end, max_points, session_id=session_id)

    def book_instruments(self) -> list[str]:
        return self.primary.book_instruments()


def _free_id(sid: str, taken: set[str]) -> str:
    """``sid-2``, ``sid-3``... (at most 40 characters, as a link's session id)."""
    for n in range(2, 10_000):
        suffix = f"-{n}"
        new = sid[: 40 - len(suffix)] + suffix
        if new not in taken:
            return new
    raise ValidationError("session_id", sid, "no free id for the research session")


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """Rows of several sources' frames in the first one's columns (empty frames add nothing:
    their dtypes would turn the others' into object)."""
    full = [f for f in frames if len(f)]
    if not full:
        return frames[0]
    if len(full) == 1:
        return full[0].reset_index(drop=True)
    return pd.concat(full, ignore_index=True)[list(frames[0].columns)]


def _cap(frame: pd.DataFrame, limit: int | None, *, newest_first: bool) -> pd.DataFrame:
    if limit is None or len(frame) <= limit:
        return frame
    return (frame.head(limit) if newest_first else frame.tail(limit)).reset_index(drop=True)
