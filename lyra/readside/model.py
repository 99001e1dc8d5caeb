"""The read-side query layer: what the dashboards (and notebooks) ask the database.

Every query returns a pandas DataFrame (or a small dataclass) with plain float columns for
display; the ledger keeps exact Decimals, converted here, at the edge. Timestamps stay int ms
UTC in a ``ts`` column and a naive-UTC ``time`` column is added for charts.

Live views poll :meth:`ReadModel.head_seq` (one indexed ``max(seq)``) and re-query only when
the event log moved: the log's ``seq`` is monotonic, so "what changed since" is cheap.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.events import EquitySnapshot, RiskDecided
from lyra.core.clock import WALL_CLOCK
from lyra.core.errors import ValidationError
from lyra.readside.book import BookView, query_book, query_book_instruments, query_spread_depth
from lyra.session.lease import session_statuses
from lyra.store.tables import events, fills, orders, positions
from lyra.store.tables_risk import breaker_trips, kill_requests, trading_state
from lyra.store.tables_session import sessions

#: Order statuses that still work at the venue (what "open orders" shows).
OPEN_STATUSES = ("initialized", "submitted", "accepted", "partially_filled", "pending_cancel", "unknown")
#: A session whose heartbeat is older than this (wall clock) is shown as "not responding".
STALE_HEARTBEAT_MS = 10_000
MAX_ROWS = 100_000


def _time(ts: pd.Series) -> pd.Series:
    return pd.to_datetime(ts.astype("int64"), unit="ms")


def _float(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.map(lambda v: None if v is None else str(v)), errors="coerce").astype("float64")


def _split_iid(iid: pd.Series) -> tuple[pd.Series, pd.Series]:
    venue = iid.map(lambda v: v.partition(":")[0])
    symbol = iid.map(lambda v: v.partition(":")[2] or v)
    return venue.astype(object), symbol.astype(object)


def _check_limit(limit: int | None) -> int:
    if limit is None:
        return MAX_ROWS
    if not isinstance(limit, int) or limit < 1 or limit > MAX_ROWS:
        raise ValidationError("limit", limit, f"must be an integer in 1..{MAX_ROWS}")
    return limit


@dataclass(frozen=True)
class SessionInfo:
    """One session of the registry, with the config fields dashboards show."""

    session_id: str
    mode: str
    status: str
    strategy: str
    venue: str
    symbols: tuple[str, ...]
    timeframe: str
    balances: dict[str, float]
    quote: str
    created_ts: int
    heartbeat_ts: int
    data_ts: int
    events_processed: int
    error: str
    config: dict[str, Any] = field(default_factory=dict, repr=False)  #: the SessionConfig as stored

    @property
    def instrument_ids(self) -> list[str]:
        return [f"{self.venue}:{s}" for s in self.symbols]

    def responding(self, now_ms: int | None = None) -> bool:
        """A running session whose heartbeat is recent (wall clock)."""
        now = WALL_CLOCK.now_ms() if now_ms is None else now_ms
        return self.status == "running" and now - self.heartbeat_ts <= STALE_HEARTBEAT_MS


@dataclass(frozen=True)
class RiskState:
    """Trading states per scope, recent breaker trips and kill-switch requests."""

    scopes: pd.DataFrame  #: scope, state, reason, actor, ts, time, version, rearms
    trips: pd.DataFrame  #: account_id, breaker, instrument_id, action, reason, ts, time, until_ts
    kills: pd.DataFrame  #: id, scope, flatten, actor, reason, ts, time, open

    def state_of(self, session_id: str) -> str:
        """The effective state of a session's account: the stricter of global and account."""
        rank = {"active": 0, "reducing": 1, "halted": 2}
        found = self.scopes[self.scopes["scope"].isin(["global", f"account:{session_id}"])]
        if found.empty:
            return "active"
        return str(max(found["state"], key=lambda s: rank.get(s, 2)))


@dataclass
class Changes:
    """What the event log gained since a sequence number (for live updates)."""

    head_seq: int
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def any(self) -> bool:
        return bool(self.kinds)

    def touches(self, *prefixes: str) -> bool:
        """True if an entry of a kind starting with one of ``prefixes`` arrived."""
        return any(k.startswith(prefixes) for k in self.kinds)


class ReadModel:
    """Queries over the projections, the event log, the registry and the risk tables.

    ``market_dir`` (the market store) is needed only for :meth:`bars`. Safe to share across
    threads: every call opens its own connection from the engine's pool.
    """

    def __init__(self, engine: Engine, market_dir: Path | None = None) -> None:
        self.engine = engine
        self.market_dir = market_dir

    # ------------------------------------------------------------------ the log
    def head_seq(self) -> int:
        """Sequence number of the last event-log entry (0 for an empty log)."""
        with self.engine.connect() as conn:
            return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(events.c.seq), 0))).scalar_one())

    def changes_since(self, seq: int, session_id: str | None = None) -> Changes:
        """Entry kinds (with counts) appended after ``seq``: one indexed range query."""
        q = sa.select(events.c.kind, sa.func.count(), sa.func.max(events.c.seq)).where(events.c.seq > seq)
        if session_id is not None:
            q = q.where(events.c.session_id.in_([session_id, ""]))
        q = q.group_by(events.c.kind)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        head = max([seq, *(int(r[2]) for r in rows)])
        return Changes(head, {str(r[0]): int(r[1]) for r in rows})

    def events(
        self,
        *,
        since_seq: int = 0,
        kinds: list[str] | None = None,
        session_id: str | None = None,
        limit: int | None = 500,
    ) -> pd.DataFrame:
        """Latest entries after ``since_seq``, newest first (seq, ts, time, actor, kind,
        session_id, payload)."""
        n = _check_limit(limit)
        q = sa.select(
            events.c.seq, events.c.ts, events.c.actor, events.c.kind, events.c.session_id, events.c.payload
        ).where(events.c.seq > since_seq)
        if kinds:
            q = q.where(events.c.kind.in_(kinds))
        if session_id is not None:
            q = q.where(events.c.session_id == session_id)
        q = q.order_by(events.c.seq.desc()).limit(n)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(q).all(), columns=["seq", "ts", "actor", "kind", "session_id", "payload"]
            )
        frame["time"] = _time(frame["ts"])
        return frame

    # ------------------------------------------------------------------ sessions
    def sessions(self) -> list[SessionInfo]:
        """Every registered session, newest first. ``status`` is ``running`` only while the
        session's owner holds its lease; one whose process died shows ``stale``."""
        with self.engine.connect() as conn:
            q = sa.select(sessions).order_by(sessions.c.created_ts.desc())
            rows = [dict(r._mapping) for r in conn.execute(q)]
        live = session_statuses(self.engine, rows)
        return [_session_info(m, live[m["session_id"]]) for m in rows]

    def session(self, session_id: str) -> SessionInfo | None:
        """One session, or None when it does not exist (any more)."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(sessions).where(sessions.c.session_id == session_id)).one_or_none()
        if r is None:
            return None
        m = dict(r._mapping)
        return _session_info(m, session_statuses(self.engine, [m])[session_id])

    def default_session_id(self) -> str | None:
        """The session a dashboard opens on: a running one, else the newest that is not stale
        (a session whose process died is never opened by default); None if there is none."""
        found = [s for s in self.sessions() if s.status != "stale"]
        running = [s for s in found if s.status == "running"]
        pick = running or found
        return pick[0].session_id if pick else None

    # ------------------------------------------------------------------ projections
    def orders(
        self, session_id: str | list[str] | None = None, *, open_only: bool = False, limit: int | None = None
    ) -> pd.DataFrame:
        """Orders (newest first) of one session, a list of sessions or all, with float
        quantities/prices and venue/symbol columns."""
        n = _check_limit(limit)
        q = sa.select(orders)
        if isinstance(session_id, str):
            q = q.where(orders.c.session_id == session_id)
        elif session_id is not None:
            q = q.where(orders.c.session_id.in_(session_id))
        if open_only:
            q = q.where(orders.c.status.in_(OPEN_STATUSES))
        q = q.order_by(orders.c.last_seq.desc()).limit(n)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q).all(), columns=[c.name for c in orders.columns])
        for c in ("quantity", "limit_price", "stop_price", "filled_quantity", "avg_fill_price", "fees"):
            frame[c] = _float(frame[c])
        frame["venue"], frame["symbol"] = _split_iid(frame["instrument_id"].astype(str))
        frame["time"] = _time(frame["created_ts"])
        return frame

    def fills(
        self, session_id: str | None = None, *, since_seq: int = 0, limit: int | None = None
    ) -> pd.DataFrame:
        """Fills after ``since_seq`` (oldest first) with notional and signed quantity."""
        n = _check_limit(limit)
        q = sa.select(fills).where(fills.c.seq > since_seq)
        if session_id is not None:
            q = q.where(fills.c.session_id == session_id)
        q = q.order_by(fills.c.seq.desc()).limit(n)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(conn.execute(q).all(), columns=[c.name for c in fills.columns])
        frame = frame.iloc[::-1].reset_index(drop=True)
        for c in ("quantity", "price", "fee"):
            frame[f"{c}_exact"] = frame[c]  # the ledger's Decimal, for exact trade accounting
            frame[c] = _float(frame[c])
        frame["notional"] = frame["quantity"] * frame["price"]
        frame["signed_qty"] = np.where(frame["side"] == "buy", frame["quantity"], -frame["quantity"])
        frame["venue"], frame["symbol"] = _split_iid(frame["instrument_id"].astype(str))
        frame["time"] = _time(frame["ts"])
        return frame

    def positions(self, session_id: str | None = None) -> pd.DataFrame:
        """Net positions with the last mark (from equity snapshots), value and unrealised PnL."""
        q = sa.select(positions)
        if session_id is not None:
            q = q.where(positions.c.session_id == session_id)
        with self.engine.connect() as conn:
            frame = pd.DataFrame(
                conn.execute(q.order_by(positions.c.session_id, positions.c.instrument_id)).all(),
                columns=[c.name for c in positions.columns],
            )
        for c in ("quantity", "avg_price", "realized_pnl", "fees"):
            frame[c] = _float(frame[c])
        marks = {sid: self.last_marks(sid) for sid in frame["session_id"].unique()}
        frame["mark"] = [
            marks[s].get(i, np.nan) for s, i in zip(frame["session_id"], frame["instrument_id"], strict=True)
        ]
        frame["market_value"] = frame["quantity"] * frame["mark"]
        frame["unrealized_pnl"] = frame["quantity"] * (frame["mark"] - frame["avg_price"])
        frame["venue"], frame["symbol"] = _split_iid(frame["instrument_id"].astype(str))
        return frame

    # ------------------------------------------------------------------ equity
    def equity_curve(self, session_id: str) -> pd.DataFrame:
        """The session's ``session.equity`` snapshots: ts, time, equity, and the raw marks/positions."""
        q = (
            sa.select(events.c.seq, events.c.ts, events.c.payload)
            .where(events.c.session_id == session_id, events.c.kind == "session.equity")
            .order_by(events.c.seq)
        )
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        snaps = [EquitySnapshot.from_json(p) for _s, _t, p in rows]
        frame = pd.DataFrame(
            {
                "seq": [int(r[0]) for r in rows],
                "ts": [int(r[1]) for r in rows],
                "equity": [float(s.equity) for s in snaps],
                "marks": [dict(s.marks) for s in snaps],
                "positions": [{k: float(v) for k, v in s.positions.items()} for s in snaps],
            }
        )
        frame["time"] = _time(frame["ts"]) if len(frame) else pd.Series([], dtype="datetime64[ns]")
        return frame

    def last_marks(self, session_id: str) -> dict[str, float]:
        """The marks of the session's last equity snapshot (instrument -> price)."""
        q = (
            sa.select(events.c.payload)
            .where(events.c.session_id == session_id, events.c.kind == "session.equity")
            .order_by(events.c.seq.desc())
            .limit(1)
        )
        with self.engine.connect() as conn:
            p = conn.execute(q).scalar()
        return {} if p is None else dict(EquitySnapshot.from_json(p).marks)

    # ------------------------------------------------------------------ risk
    def risk_state(self, *, limit: int = 50) -> RiskState:
        """Trading states, the latest breaker trips and kill-switch requests."""
        _check_limit(limit)
        with self.engine.connect() as conn:
            sc = pd.DataFrame(
                conn.execute(sa.select(trading_state).order_by(trading_state.c.scope)).all(),
                columns=[c.name for c in trading_state.columns],
            )
            tr = pd.DataFrame(
                conn.execute(sa.select(breaker_trips).order_by(breaker_trips.c.id.desc()).limit(limit)).all(),
                columns=[c.name for c in breaker_trips.columns],
            )
            kr = pd.DataFrame(
                conn.execute(sa.select(kill_requests).order_by(kill_requests.c.id.desc()).limit(limit)).all(),
                columns=[c.name for c in kill_requests.columns],
            )
        for f in (sc, tr, kr):
            f["time"] = _time(f["ts"])
        kr["open"] = kr["closed_ts"].isna()
        return RiskState(sc, tr, kr)

    def risk_decisions(self, session_id: str | None = None, *, limit: int | None = 1000) -> pd.DataFrame:
        """``risk.decision`` entries: seq, ts, client_order_id, approved, check, reason, quantity
        (check "" and quantity NaN where the writer's shape has none: see
        :class:`lyra.audit.events.RiskDecided`)."""
        ev = self.events(kinds=["risk.decision"], session_id=session_id, limit=limit)
        data = [RiskDecided.from_json(p) for p in ev["payload"]]
        return pd.DataFrame(
            {
                "seq": ev["seq"],
                "ts": ev["ts"],
                "time": ev["time"],
                "client_order_id": [d.client_order_id for d in data],
                "approved": [d.approved for d in data],
                "check": [d.check or "" for d in data],
                "reason": [d.reason for d in data],
                "quantity": [float("nan") if d.quantity is None else float(d.quantity) for d in data],
            }
        )

    # ------------------------------------------------------------------ fees
    def fees(self, session_id: str | None = None) -> pd.DataFrame:
        """Every fill's fee with venue, instrument, strategy (the session's), liquidity and time."""
        f = self.fills(session_id)
        strategy = {s.session_id: s.strategy for s in self.sessions()}
        f["strategy"] = f["session_id"].map(strategy).fillna("manual")
        return f[
            [
                "seq",
                "ts",
                "time",
                "session_id",
                "strategy",
                "venue",
                "symbol",
                "instrument_id",
                "side",
                "liquidity",
                "quantity",
                "price",
                "notional",
                "fee",
                "fee_currency",
            ]
        ]

    # ------------------------------------------------------------------ market data
    def bars(
        self, venue: str, symbol: str, timeframe: str, *, start: int | None = None, end: int | None = None
    ) -> pd.DataFrame:
        """Bars from the market store: ts, time (naive UTC), open, high, low, close, volume.
        Empty when the store has no such dataset."""
        # the store module only: lyra.feeds' __init__ also loads the importer and downloader
        from lyra.feeds.store import MarketStore

        if self.market_dir is None:
            raise ValidationError("market_dir", None, "no market store configured", "pass market_dir")
        try:
            arr = MarketStore(self.market_dir).read_bars_arrays(venue, symbol, timeframe, start, end)
        except (FileNotFoundError, ValidationError):
            return pd.DataFrame(
                {c: pd.Series(dtype="float64") for c in ("ts", "open", "high", "low", "close", "volume")}
            )
        frame = pd.DataFrame(
            {
                "ts": arr.ts,
                "open": arr.open,
                "high": arr.high,
                "low": arr.low,
                "close": arr.close,
                "volume": arr.volume,
            }
        )
        frame["time"] = _time(frame["ts"])
        return frame


    # ------------------------------------------------------------------ level-2 books
    def book(self, instrument_id: str, at_ts: int | None = None, *, session_id: str | None = None
             ) -> BookView | None:
        """The latest recorded order-book snapshot of ``instrument_id`` at or before ``at_ts``
        (ms UTC; None: the latest), from any session unless ``session_id``; None if none."""
        with self.engine.connect() as conn:
            return query_book(conn, instrument_id, at_ts, session_id)

    def spread_depth(
        self,
        instrument_id: str,
        start: int | None = None,
        end: int | None = None,
        max_points: int = 2000,
        *,
        session_id: str | None = None,
    ) -> pd.DataFrame:
        """Spread and depth of the recorded snapshots between ``start`` and ``end`` (ms UTC,
        inclusive), oldest first: ts, time, mid, spread_bps, bid/ask_depth_10bps,
        bid/ask_depth_50bps, spread_bps_max, snapshots. More than ``max_points`` snapshots
        are averaged in equal time buckets (``ts`` = the bucket's first snapshot,
        ``spread_bps_max`` its widest spread, ``snapshots`` how many it holds)."""
        with self.engine.connect() as conn:
            return query_spread_depth(conn, instrument_id, start, end, max_points, session_id)

    def book_instruments(self) -> list[str]:
        """Instruments with recorded order-book snapshots, the most recently updated first."""
        with self.engine.connect() as conn:
            return query_book_instruments(conn)


def _session_info(m: Any, status: str | None = None) -> SessionInfo:
    try:
        cfg = json.loads(m["config"])
    except (TypeError, ValueError):
        cfg = {}
    symbols = tuple(cfg.get("symbols", ()))
    quote = symbols[0].partition("/")[2].split(":")[0] if symbols else ""
    return SessionInfo(
        session_id=m["session_id"],
        mode=m["mode"],
        status=m["status"] if status is None else status,
        strategy=cfg.get("strategy", ""),
        venue=cfg.get("venue", ""),
        symbols=symbols,
        timeframe=cfg.get("timeframe", ""),
        balances={k: float(v) for k, v in cfg.get("balances", {}).items()},
        quote=quote,
        created_ts=int(m["created_ts"]),
        heartbeat_ts=int(m["heartbeat_ts"]),
        data_ts=int(m["data_ts"] or 0),
        events_processed=int(m["events_processed"] or 0),
        error=m["error"] or "",
        config=cfg,
    )
