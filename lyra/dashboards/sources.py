"""Data sources of the dashboard views: what a view may ask, and a source over a research backtest.

Every view (``TradingView``, ``ExecutiveView``, ...) reads through a :class:`DashboardSource`.
:class:`lyra.readside.ReadModel` is one (the sessions of a database, live or finished);
:func:`research_source` makes another from a :func:`lyra.backtest` result, held in memory::

    import lyra
    from lyra.dashboards import TradingView, research_source
    from lyra.research import sample_data
    from lyra.strategy import SmaCross

    data = sample_data("coinbase_BTC-USD_1h")
    result = lyra.backtest(SmaCross(fast=10, slow=30), data)
    src = research_source(result, data=data, venue="coinbase", symbol="BTC/USD")
    TradingView(src, live=False)

A backtest is finished and static: ``head_seq()`` is 0 and ``changes_since()`` never reports a
change, so a view over it never re-queries. What a backtest does not have (open orders, risk
decisions, order books, a trading state) comes back empty with the columns the views expect,
so the views show their empty states.

A research source is saved with :meth:`ResearchSource.save` (Parquet and JSON, atomically) and
read back with :meth:`ResearchSource.load`; ``lyra serve`` shows the results saved under
``$LYRA_HOME/research/`` beside the database's sessions (:mod:`lyra.dashboards.combined`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np
import pandas as pd

from lyra.core.errors import ValidationError
from lyra.readside.book import BookView
from lyra.readside.model import Changes, RiskState, SessionInfo
from lyra.store.tables import orders as orders_table
from lyra.store.tables_risk import breaker_trips, kill_requests, trading_state

__all__ = ["DashboardSource", "ResearchSource", "research_source"]


@runtime_checkable
class DashboardSource(Protocol):
    """The read methods the dashboard views call (:class:`lyra.readside.ReadModel` has them
    all; see its docstrings for the columns). Views never write through a source."""

    def head_seq(self) -> int: ...
    def changes_since(self, seq: int, session_id: str | None = None) -> Changes: ...
    def events(self, *, since_seq: int = 0, kinds: list[str] | None = None,
               session_id: str | None = None, limit: int | None = 500) -> pd.DataFrame: ...
    def sessions(self) -> list[SessionInfo]: ...
    def session(self, session_id: str) -> SessionInfo | None: ...
    def default_session_id(self) -> str | None: ...
    def orders(self, session_id: str | list[str] | None = None, *, open_only: bool = False,
               limit: int | None = None) -> pd.DataFrame: ...
    def fills(self, session_id: str | None = None, *, since_seq: int = 0,
              limit: int | None = None) -> pd.DataFrame: ...
    def positions(self, session_id: str | None = None) -> pd.DataFrame: ...
    def equity_curve(self, session_id: str) -> pd.DataFrame: ...
    def last_marks(self, session_id: str) -> dict[str, float]: ...
    def risk_state(self, *, limit: int = 50) -> RiskState: ...
    def risk_decisions(self, session_id: str | None = None, *, limit: int | None = 1000) -> pd.DataFrame: ...
    def fees(self, session_id: str | None = None) -> pd.DataFrame: ...
    def bars(self, venue: str, symbol: str, timeframe: str, *, start: int | None = None,
             end: int | None = None) -> pd.DataFrame: ...
    def book(self, instrument_id: str, at_ts: int | None = None, *,
             session_id: str | None = None) -> BookView | None: ...
    def spread_depth(self, instrument_id: str, start: int | None = None, end: int | None = None,
                     max_points: int = 2000, *, session_id: str | None = None) -> pd.DataFrame: ...
    def book_instruments(self) -> list[str]: ...


#: Column order of ``ReadModel.fills`` (the fills table, the exact ledger values, derived columns).
FILL_COLUMNS = ("fill_id", "client_order_id", "session_id", "instrument_id", "side", "quantity", "price",
                "fee", "fee_currency", "liquidity", "ts", "seq", "quantity_exact", "price_exact",
                "fee_exact", "notional", "signed_qty", "venue", "symbol", "time")
FEE_COLUMNS = ("seq", "ts", "time", "session_id", "strategy", "venue", "symbol", "instrument_id", "side",
               "liquidity", "quantity", "price", "notional", "fee", "fee_currency")
POSITION_COLUMNS = ("session_id", "instrument_id", "quantity", "avg_price", "realized_pnl", "fees", "last_ts",
                    "last_seq", "mark", "market_value", "unrealized_pnl", "venue", "symbol")
BAR_COLUMNS = ("ts", "open", "high", "low", "close", "volume")
SPREAD_COLUMNS = ("ts", "time", "mid", "spread_bps", "bid_depth_10bps", "ask_depth_10bps", "bid_depth_50bps",
                  "ask_depth_50bps", "spread_bps_max", "snapshots")
EVENT_COLUMNS = ("seq", "ts", "actor", "kind", "session_id", "payload", "time")
DECISION_COLUMNS = ("seq", "ts", "time", "client_order_id", "approved", "check", "reason", "quantity")


def _time(ts: pd.Series) -> pd.Series:
    # as lyra.readside.model: naive UTC from int ms, so the dtypes match the database's frames
    return pd.to_datetime(ts.astype("int64"), unit="ms")


def _empty(columns: tuple[str, ...] | list[str], *, time: bool = True) -> pd.DataFrame:
    frame = pd.DataFrame({c: pd.Series(dtype="float64" if c not in ("ts", "seq") else "int64")
                          for c in columns if c != "time"})
    if time and "time" in columns:
        frame["time"] = _time(pd.Series([], dtype="int64"))
    return frame[list(columns)]


def timeframe_of(freq: pd.Timedelta) -> str:
    """A bar length as a Lyra timeframe (``1h``, ``15m``, ``1d``)."""
    secs = int(pd.Timedelta(freq).total_seconds())
    if secs <= 0:
        raise ValidationError("freq", str(freq), "must be a positive bar length")
    for unit, n in (("w", 7 * 86_400), ("d", 86_400), ("h", 3_600), ("m", 60)):
        if secs % n == 0 and (unit != "w" or secs >= n):
            return f"{secs // n}{unit}"
    return f"{secs}s"


def _decimal(x: float) -> Decimal:
    return Decimal(repr(float(x)))  # the float's shortest repr, as the ledger would have stored it


def fills_frame(session_id: str, quote: str, instrument_id: Any, side: Any, quantity: Any, price: Any,
                fee: Any, ts: Any) -> pd.DataFrame:
    """A research source's fills (``ReadModel.fills``' columns) from one array per field, in
    execution order: ids and ``seq`` are the position, every fill a taker fill in ``quote``.
    (One constructor for a fresh result and a saved one, so both have the same dtypes.)"""
    n = len(quantity)
    fills = pd.DataFrame({
        "fill_id": [f"bt-fill-{k + 1}" for k in range(n)],
        "client_order_id": [f"bt-{k + 1}" for k in range(n)],
        "session_id": session_id,
        "instrument_id": np.asarray(instrument_id, dtype=str).reshape(n),
        "side": np.asarray(side, dtype=str).reshape(n),
        "quantity": np.asarray(quantity, dtype="float64"),
        "price": np.asarray(price, dtype="float64"),
        "fee": np.asarray(fee, dtype="float64"),
        "fee_currency": quote,
        "liquidity": "taker",
        "ts": pd.Series(np.asarray(ts, dtype="int64"), dtype="int64"),
        "seq": pd.Series(np.arange(1, n + 1), dtype="int64"),
    })  # text columns typed as pandas infers them, like the database's frames
    for c in ("quantity", "price", "fee"):
        fills[f"{c}_exact"] = [_decimal(x) for x in fills[c]]
    fills["notional"] = fills["quantity"] * fills["price"]
    fills["signed_qty"] = np.where(fills["side"] == "buy", fills["quantity"], -fills["quantity"])
    fills["venue"] = fills["instrument_id"].map(lambda v: v.partition(":")[0]).astype(object)
    fills["symbol"] = fills["instrument_id"].map(lambda v: v.partition(":")[2]).astype(object)
    fills["time"] = _time(fills["ts"])
    return fills[list(FILL_COLUMNS)]


def equity_frame(ts: Any, value: Any, iids: list[str], close: Any, assets: Any) -> pd.DataFrame:
    """The equity curve (``ReadModel.equity_curve``' columns) from the bar times, the
    portfolio's value and the (bars x instruments) closes and holdings."""
    ts = np.asarray(ts, dtype="int64")
    close = np.asarray(close, dtype="float64").reshape(len(ts), len(iids))
    assets = np.asarray(assets, dtype="float64").reshape(len(ts), len(iids))
    equity = pd.DataFrame({
        "seq": pd.Series(np.zeros(len(ts)), dtype="int64"),
        "ts": pd.Series(ts, dtype="int64"),
        "equity": np.asarray(value, dtype="float64"),
        "marks": [dict(zip(iids, map(float, row), strict=True)) for row in close],
        "positions": [{i: float(q) for i, q in zip(iids, row, strict=True) if q} for row in assets],
    })
    equity["time"] = _time(equity["ts"])
    return equity


def bars_frame(ts: Any, open_: Any, high: Any, low: Any, close: Any, volume: Any) -> pd.DataFrame:
    """Bars with ``ReadModel.bars``' columns (ts int ms UTC, time naive UTC)."""
    bars = pd.DataFrame({
        "ts": np.asarray(ts, dtype="int64"),
        "open": np.asarray(open_, dtype="float64"),
        "high": np.asarray(high, dtype="float64"),
        "low": np.asarray(low, dtype="float64"),
        "close": np.asarray(close, dtype="float64"),
        "volume": np.asarray(volume, dtype="float64"),
    })
    bars["time"] = _time(bars["ts"])
    return bars


def positions_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Positions (``ReadModel.positions``' columns) from one dict per instrument."""
    return pd.DataFrame(rows, columns=list(POSITION_COLUMNS)).astype(
        {"last_ts": "int64", "last_seq": "int64", "quantity": "float64"})


class ResearchSource:
    """A finished research backtest as a dashboard data source (one session, mode ``research``).

    Built by :func:`research_source`; every frame is computed once, from the vectorbt
    portfolio inside the result (its order records are the fills, its value the equity)."""

    #: A finished backtest never changes: views over it start no poller (see ``LiveView``).
    live = False

    def __init__(self, *, info: SessionInfo, fills: pd.DataFrame, equity: pd.DataFrame,
                 positions: pd.DataFrame, bars: dict[tuple[str, str, str], pd.DataFrame]) -> None:
        self.info = info
        self._fills = fills
        self._equity = equity
        self._positions = positions
        self._bars = bars

    def __repr__(self) -> str:
        return (f"ResearchSource({self.info.session_id!r}: {self.info.strategy} on {self.info.venue} "
                f"{', '.join(self.info.symbols)} {self.info.timeframe}, {len(self._fills)} fills)")

    # -------------------------------------------------------------- on disk (lyra.dashboards.combined)
    def save(self, directory: str | Path) -> Path:
        """Write this result to ``directory`` (Parquet frames and a JSON header, no pickle),
        atomically: a server never sees a half-written result; an earlier result there is
        replaced. ``lyra serve`` shows the results under ``$LYRA_HOME/research/``."""
        from lyra.dashboards.combined import save_research

        return save_research(self, directory)

    @classmethod
    def load(cls, directory: str | Path) -> ResearchSource:
        """A result written by :meth:`save`, checked file by file; a missing, truncated or
        malformed file raises :class:`~lyra.dashboards.combined.ResearchFileError` naming it."""
        from lyra.dashboards.combined import load_research

        return load_research(directory)

    def renamed(self, session_id: str) -> ResearchSource:
        """The same result shown as session ``session_id``."""
        if not session_id or not isinstance(session_id, str):
            raise ValidationError("session_id", session_id, "must be a non-empty string")
        fills = self._fills.assign(session_id=session_id).astype(
            {"session_id": self._fills["session_id"].dtype})
        positions = self._positions.assign(session_id=session_id).astype(
            {"session_id": self._positions["session_id"].dtype})
        return ResearchSource(info=dataclasses.replace(self.info, session_id=session_id), fills=fills,
                              equity=self._equity, positions=positions, bars=self._bars)

    # -------------------------------------------------------------- the (static) log
    def head_seq(self) -> int:
        """Always 0: a backtest's data never changes."""
        return 0

    def changes_since(self, seq: int, session_id: str | None = None) -> Changes:
        """Never any change (views over a backtest do not re-query)."""
        return Changes(seq)

    def events(self, *, since_seq: int = 0, kinds: list[str] | None = None,
               session_id: str | None = None, limit: int | None = 500) -> pd.DataFrame:
        """The backtest has no event log; its ``session.equity`` snapshots (one per bar, newest
        first) are made from the equity curve, every other kind is empty."""
        import json

        from lyra.audit.events import EquitySnapshot

        frame = _empty(EVENT_COLUMNS).astype({"actor": object, "kind": object, "session_id": object,
                                              "payload": object})
        mine = session_id is None or session_id == self.info.session_id
        if not mine or (kinds is not None and "session.equity" not in kinds) or since_seq > 0:
            return frame
        e = self._equity.iloc[::-1].head(500 if limit is None else limit)
        payloads = [json.dumps(EquitySnapshot(equity=_decimal(q), marks=m,
                                              positions={k: _decimal(v) for k, v in p.items()}).to_payload())
                    for q, p, m in zip(e["equity"], e["positions"], e["marks"], strict=True)]
        out = pd.DataFrame({"seq": e["seq"].to_numpy(), "ts": e["ts"].to_numpy(), "actor": "research",
                            "kind": "session.equity", "session_id": self.info.session_id,
                            "payload": payloads})
        out["time"] = _time(out["ts"])
        return out.astype({"actor": object, "kind": object, "session_id": object, "payload": object})

    # -------------------------------------------------------------- sessions
    def sessions(self) -> list[SessionInfo]:
        return [self.info]

    def session(self, session_id: str) -> SessionInfo | None:
        return self.info if session_id == self.info.session_id else None

    def default_session_id(self) -> str | None:
        return self.info.session_id

    def _mine(self, session_id: str | list[str] | None) -> bool:
        if session_id is None:
            return True
        wanted = [session_id] if isinstance(session_id, str) else list(session_id)
        return self.info.session_id in wanted

    # -------------------------------------------------------------- projections
    def orders(self, session_id: str | list[str] | None = None, *, open_only: bool = False,
               limit: int | None = None) -> pd.DataFrame:
        """One filled market order per fill (newest first); none is ever open."""
        f = self._fills
        if open_only or not self._mine(session_id) or f.empty:
            frame = _empty([c.name for c in orders_table.columns] + ["venue", "symbol", "time"])
            text = ("client_order_id", "session_id", "instrument_id", "side", "order_type", "time_in_force",
                    "status", "venue_order_id", "venue", "symbol")
            return frame.astype({c: object for c in text})
        frame = pd.DataFrame({
            "client_order_id": f["client_order_id"], "session_id": f["session_id"],
            "instrument_id": f["instrument_id"], "side": f["side"], "order_type": "market",
            "time_in_force": "gtc", "quantity": f["quantity"], "limit_price": np.nan, "stop_price": np.nan,
            "status": "filled", "filled_quantity": f["quantity"], "avg_fill_price": f["price"],
            "fees": f["fee"],
            "venue_order_id": "", "created_ts": f["ts"], "updated_ts": f["ts"], "last_seq": f["seq"],
            "venue": f["venue"], "symbol": f["symbol"], "time": f["time"],
        })
        frame = frame.iloc[::-1].reset_index(drop=True)
        return frame if limit is None else frame.head(limit)

    def fills(self, session_id: str | None = None, *, since_seq: int = 0,
              limit: int | None = None) -> pd.DataFrame:
        """vectorbt's order records as fills (oldest first), with ``ReadModel.fills``' columns."""
        f = self._fills if self._mine(session_id) else self._fills.iloc[0:0]
        f = f[f["seq"] > since_seq]
        return (f if limit is None else f.tail(limit)).reset_index(drop=True)

    def positions(self, session_id: str | None = None) -> pd.DataFrame:
        """Positions at the end of the backtest, marked at the last close."""
        p = self._positions if self._mine(session_id) else self._positions.iloc[0:0]
        return p.reset_index(drop=True)

    def equity_curve(self, session_id: str) -> pd.DataFrame:
        """Portfolio value at each bar's close (ts = the bar's time), with marks and positions."""
        return self._equity if session_id == self.info.session_id else self._equity.iloc[0:0]

    def last_marks(self, session_id: str) -> dict[str, float]:
        e = self.equity_curve(session_id)
        return dict(e["marks"].iloc[-1]) if len(e) else {}

    # -------------------------------------------------------------- what a backtest has not
    def risk_state(self, *, limit: int = 50) -> RiskState:
        """No trading states, breaker trips or kill requests (empty frames)."""
        sc = _empty([c.name for c in trading_state.columns] + ["time"])
        tr = _empty([c.name for c in breaker_trips.columns] + ["time"])
        kr = _empty([c.name for c in kill_requests.columns] + ["time"])
        kr["open"] = pd.Series(dtype=bool)
        return RiskState(sc, tr, kr)

    def risk_decisions(self, session_id: str | None = None, *, limit: int | None = 1000) -> pd.DataFrame:
        """No pre-trade risk ran: an empty frame."""
        return _empty(DECISION_COLUMNS)

    def fees(self, session_id: str | None = None) -> pd.DataFrame:
        """Every fill's fee (all taker: vectorbt fills at market)."""
        f = self.fills(session_id).copy()
        f["strategy"] = self.info.strategy
        return f[list(FEE_COLUMNS)]

    def bars(self, venue: str, symbol: str, timeframe: str, *, start: int | None = None,
             end: int | None = None) -> pd.DataFrame:
        """Bars in [start, end) of the backtest's data; empty for another instrument."""
        b = self._bars.get((venue, symbol, timeframe))
        if b is None:
            return _empty(BAR_COLUMNS)
        keep = np.ones(len(b), dtype=bool)
        if start is not None:
            keep &= b["ts"].to_numpy() >= start
        if end is not None:
            keep &= b["ts"].to_numpy() < end
        return b[keep].reset_index(drop=True)

    def book(self, instrument_id: str, at_ts: int | None = None, *,
             session_id: str | None = None) -> BookView | None:
        """No level-2 data in a bar backtest."""
        return None

    def spread_depth(self, instrument_id: str, start: int | None = None, end: int | None = None,
                     max_points: int = 2000, *, session_id: str | None = None) -> pd.DataFrame:
        return _empty(SPREAD_COLUMNS)

    def book_instruments(self) -> list[str]:
        return []


def research_source(
    result: Any,
    *,
    data: pd.DataFrame | Mapping[str, pd.DataFrame] | None = None,
    session_id: str = "research",
    venue: str = "research",
    symbol: str | None = None,
    timeframe: str | None = None,
) -> ResearchSource:
    """A dashboard source over a :func:`lyra.backtest` result (single instrument or weights).

    ``data`` is the OHLCV the backtest ran on (a DataFrame, or the ``{instrument: DataFrame}``
    of a weights backtest): the chart's candles. Without it the candles are made from what
    the result keeps (closes; opens for ``fill="next_open"``), high/low from those.
    ``symbol`` names a single-instrument backtest's instrument (e.g. ``"BTC/USD"``; its
    quote is the money currency; default ``ASSET/USD``); a weights backtest's instruments are its data's keys
    (``"BTC/USD"`` or ``"venue:BTC/USD"``). ``timeframe`` defaults to the result's bar
    length. Fills are time-stamped at the bar they filled in; fees are in the quote currency.
    """
    from lyra.research.backtest import BacktestResult, WeightsBacktestResult

    if not isinstance(result, BacktestResult):
        raise ValidationError("result", type(result).__name__, "must be a lyra.backtest(...) result",
                              "run lyra.backtest(strategy, data) first")
    if not session_id or not isinstance(session_id, str):
        raise ValidationError("session_id", session_id, "must be a non-empty string")
    weights = isinstance(result, WeightsBacktestResult)
    pf = result.portfolio
    cols = [str(c) for c in pf.wrapper.columns] if weights else [symbol or "ASSET/USD"]
    if not weights and symbol is not None and "/" not in symbol:
        raise ValidationError("symbol", symbol, "must be BASE/QUOTE, e.g. 'BTC/USD'")
    iids = [c if ":" in c else f"{venue}:{c}" for c in cols]
    syms = [i.partition(":")[2] for i in iids]
    quotes = {s.partition("/")[2].split(":")[0] for s in syms}
    if len(quotes) != 1 or "" in quotes:
        raise ValidationError("symbol", syms, "the instruments must share one quote currency (BASE/QUOTE)",
                              "name the data's keys like 'BTC/USD'")
    quote = quotes.pop()
    venues = {i.partition(":")[0] for i in iids}
    tf = timeframe or timeframe_of(result.freq)
    index = pd.DatetimeIndex(pf.wrapper.index)
    ts = (index.as_unit("ns").asi8 // 1_000_000).astype("int64")

    close = np.asarray(result.vbt_kwargs["close"], dtype="float64").reshape(len(index), -1)
    assets = np.asarray(pf.assets(), dtype="float64").reshape(len(index), -1)
    value = np.asarray(pf.value(), dtype="float64").reshape(-1)

    # fills: vectorbt's order records in execution order (by bar, then its call order)
    o = pf.orders.records_arr
    o = o[np.lexsort((o["id"], o["idx"]))]
    col = o["col"] if weights else np.zeros(len(o), dtype=np.int64)
    fills = fills_frame(session_id, quote, [iids[c] for c in col], np.where(o["side"] == 0, "buy", "sell"),
                        o["size"], o["price"], o["fees"], ts[o["idx"]])
    equity = equity_frame(ts, value, iids, close, assets)

    positions = _final_positions(fills, iids, assets[-1], close[-1], session_id)
    bars = _bars(result, data, cols, iids, index, tf)
    strategy = type(result.strategy).name() if hasattr(type(result.strategy), "name") else \
        type(result.strategy).__name__
    params = getattr(getattr(result.strategy, "params", None), "as_dict", dict)()
    info = SessionInfo(
        session_id=session_id, mode="research", status="finished", strategy=strategy,
        venue=venues.pop() if len(venues) == 1 else venue, symbols=tuple(syms), timeframe=tf,
        balances={quote: float(result.init_cash)}, quote=quote, created_ts=int(ts[0]),
        heartbeat_ts=int(ts[-1]), data_ts=int(ts[-1]), events_processed=len(index), error="",
        config={"strategy": strategy, "params": params, "venue": venue, "symbols": syms, "timeframe": tf,
                "balances": {quote: str(result.init_cash)}, "fill": result.fill,
                "taker_fee": str(result.cost.taker_fee_float), "slippage": str(result.cost.slippage_float)},
    )
    return ResearchSource(info=info, fills=fills, equity=equity, positions=positions, bars=bars)


def _final_positions(fills: pd.DataFrame, iids: list[str], qty: Any, mark: Any,
                     session_id: str) -> pd.DataFrame:
    """Each instrument's position at the end: average cost, realised PnL (gross of fees, as
    the ledger's) and fees, from the fills; the quantity is vectorbt's own holding."""
    rows = []
    for k, iid in enumerate(iids):
        q = cost = realized = 0.0
        mine = fills[fills["instrument_id"] == iid]
        for s, p in zip(mine["signed_qty"], mine["price"], strict=True):
            if q == 0 or (q > 0) == (s > 0):
                cost += abs(s) * p
                q += s
                continue
            closing = min(abs(q), abs(s))
            removed = cost * closing / abs(q)
            realized += closing * p - removed if q > 0 else removed - closing * p
            cost -= removed
            new_q = q + s
            if abs(new_q) < 1e-12 * max(abs(q), 1.0):
                new_q, cost = 0.0, 0.0
            elif (new_q > 0) != (q > 0):
                cost = abs(new_q) * p
            q = new_q
        if mine.empty:
            continue
        hold = float(qty[k])
        avg = cost / abs(q) if q else 0.0
        rows.append({
            "session_id": session_id, "instrument_id": iid, "quantity": hold, "avg_price": avg,
            "realized_pnl": realized, "fees": float(mine["fee"].sum()), "last_ts": int(mine["ts"].iloc[-1]),
            "last_seq": int(mine["seq"].iloc[-1]), "mark": float(mark[k]),
            "market_value": hold * float(mark[k]), "unrealized_pnl": hold * (float(mark[k]) - avg),
            "venue": iid.partition(":")[0], "symbol": iid.partition(":")[2],
        })
    return positions_frame(rows)


def _bars(result: Any, data: pd.DataFrame | Mapping[str, pd.DataFrame] | None, cols: list[str],
          iids: list[str], index: pd.DatetimeIndex, tf: str) -> dict[tuple[str, str, str], pd.DataFrame]:
    """The chart's bars per (venue, symbol, timeframe)."""
    if isinstance(data, pd.DataFrame):
        frames = {cols[0]: data} if len(cols) == 1 else None
        if frames is None:
            raise ValidationError("data", "DataFrame", "a weights backtest needs {instrument: DataFrame}")
    elif isinstance(data, Mapping):
        missing = [c for c in cols if c not in data]
        if missing:
            raise ValidationError("data", sorted(map(str, data)), f"has no data for {missing}")
        frames = {c: data[c] for c in cols}
    elif data is None:
        close = pd.DataFrame(np.asarray(result.vbt_kwargs["close"], dtype="float64").reshape(len(index), -1),
                             columns=cols)
        price = result.vbt_kwargs.get("price")
        opens = (pd.DataFrame(np.asarray(price, dtype="float64").reshape(len(index), -1), columns=cols)
                 if price is not None else close.shift(1).fillna(close))
        frames = {c: pd.DataFrame({"open": opens[c].to_numpy(), "close": close[c].to_numpy(),
                                   "volume": 0.0}, index=index) for c in cols}
    else:
        raise ValidationError("data", type(data).__name__,
                              "must be an OHLCV DataFrame or {instrument: DataFrame}")
    out = {}
    for c, iid in zip(cols, iids, strict=True):
        f = frames[c]
        idx = pd.DatetimeIndex(f.index)
        idx = idx.tz_convert("UTC").tz_localize(None) if idx.tz is not None else idx
        o = f["open"].to_numpy(dtype="float64")
        cl = f["close"].to_numpy(dtype="float64")
        bars = bars_frame(idx.as_unit("ns").asi8 // 1_000_000, o,
                          f["high"].to_numpy(dtype="float64") if "high" in f else np.maximum(o, cl),
                          f["low"].to_numpy(dtype="float64") if "low" in f else np.minimum(o, cl),
                          cl, f["volume"].to_numpy(dtype="float64") if "volume" in f else np.zeros(len(f)))
        v, _, s = iid.partition(":")
        out[(v, s, tf)] = bars
    return out
