"""Point-in-time state from the event log, and the projection tables rebuilt from it.

:func:`state_at` is what a restore must reproduce: for each session its orders, fills,
positions, open orders and cash balances, and the trading state of every risk scope — from the
log alone (what ``lyra audit replay --until`` shows, plus cash and risk states). Cash is the
session's starting balances (its ``session.started`` entry) moved by every fill: base +/- the
quantity, quote -/+ quantity x price, the fee off its currency.

:func:`rebuild_projections` rewrites the projection tables of a restored database from its
log: ``orders``, ``fills``, ``positions`` (the same :class:`~lyra.audit.projections.Projector`
as the live path) and ``trading_state`` / ``breaker_trips`` (from the ``risk.*`` entries).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from lyra.audit.chain import EventRecord
from lyra.audit.ledger import state_as_rows
from lyra.audit.projections import Change, Projector
from lyra.core.enums import Side
from lyra.core.orders import Fill
from lyra.core.values import ZERO
from lyra.store.tables import fills, orders, positions
from lyra.store.tables_risk import breaker_trips, trading_state

_RISK_STATE_KINDS = ("risk.state_change", "risk.kill_switch", "risk.rearm")


def _base_quote(instrument_id: str) -> tuple[str, str]:
    # "venue:BASE/QUOTE" or "venue:BASE/QUOTE:SETTLE"
    symbol = instrument_id.split(":", 1)[1] if ":" in instrument_id else instrument_id
    base, _, quote = symbol.partition("/")
    return base, quote.split(":")[0]


class PointState:
    """Folds log entries into the state at the last one (see the module doc)."""

    def __init__(self) -> None:
        self.projector = Projector()
        self.cash: dict[str, dict[str, Decimal]] = {}
        self.risk: dict[str, dict[str, Any]] = {}
        self.trips: list[dict[str, Any]] = []

    def apply(self, rec: EventRecord) -> Change | None:
        """Fold one entry in; returns what it changed in the order projection (if anything)."""
        ch = self.projector.apply(rec)
        if ch is not None:
            if ch.fill is not None:
                self._book(rec.session_id, ch.fill)
            return ch
        kind = rec.kind
        if kind == "session.started" and rec.session_id not in self.cash:
            cfg = json.loads(rec.payload).get("config", {})
            self.cash[rec.session_id] = {k: Decimal(str(v)) for k, v in (cfg.get("balances") or {}).items()}
        elif kind in _RISK_STATE_KINDS:
            p = json.loads(rec.payload)
            prev = self.risk.get(p["scope"], {"rearms": 0})
            self.risk[p["scope"]] = {"state": p["to"], "reason": p["reason"], "actor": p["actor"],
                                     "ts": rec.ts, "version": int(p["version"]),
                                     "rearms": prev["rearms"] + (kind == "risk.rearm")}
        elif kind == "risk.breaker_trip":
            p = json.loads(rec.payload)
            self.trips.append({"account_id": p["account_id"], "breaker": p["breaker"],
                               "instrument_id": p["instrument_id"], "action": p["action"],
                               "reason": p["reason"], "ts": int(p["ts"]), "until_ts": p.get("until_ts"),
                               "epoch": int(p.get("epoch", 0)), "session_id": rec.session_id})
        return None

    def _book(self, session_id: str, f: Fill) -> None:
        cash = self.cash.setdefault(session_id, {})
        base, quote = _base_quote(f.instrument_id)
        signed = f.quantity if f.side is Side.BUY else -f.quantity
        cash[base] = cash.get(base, ZERO) + signed
        cash[quote] = cash.get(quote, ZERO) - signed * f.price
        cash[f.fee_currency] = cash.get(f.fee_currency, ZERO) - f.fee

    def summary(self) -> dict[str, Any]:
        """Orders, fills, positions (as ``lyra audit replay``), open orders, cash, risk states."""
        st = self.projector.state
        rows = state_as_rows(st)
        rows["open_orders"] = sorted(cid for cid, o in st.orders.items() if o.status.is_open)
        rows["fills"].sort(key=_fill_key)
        rows["cash"] = {sid: dict(sorted(c.items())) for sid, c in sorted(self.cash.items())}
        rows["risk"] = dict(sorted(self.risk.items()))
        rows["last_seq"] = st.last_seq
        return rows


def _fill_key(r: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(v) for v in r.values())


def state_at(records: Iterable[EventRecord]) -> dict[str, Any]:
    """The state that ``records`` (e.g. ``log.read(until_ts=T)``) imply; see :class:`PointState`."""
    ps = PointState()
    for rec in records:
        ps.apply(rec)
    return ps.summary()


def rebuild_projections(conn: Connection, records: Iterable[EventRecord]) -> PointState:
    """Rewrite the projection tables on ``conn`` from ``records`` (the whole log, in order)."""
    ps = PointState()
    order_rows: dict[str, dict[str, Any]] = {}
    fill_rows: list[dict[str, Any]] = []
    pos_rows: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in records:
        ch = ps.apply(rec)
        if ch is None:
            continue
        o = ch.order
        assert o is not None
        i = o.intent
        order_rows[o.client_order_id] = {
            "client_order_id": o.client_order_id, "session_id": ch.session_id,
            "instrument_id": i.instrument_id, "side": i.side.value, "order_type": i.order_type.value,
            "time_in_force": i.time_in_force.value, "quantity": i.quantity,
            "limit_price": i.limit_price, "stop_price": i.stop_price, "status": o.status.value,
            "filled_quantity": o.filled_quantity, "avg_fill_price": o.avg_fill_price, "fees": o.fees,
            "venue_order_id": o.venue_order_id, "created_ts": o.created_ts,
            "updated_ts": o.history[-1].ts if o.history else o.created_ts, "last_seq": rec.seq,
        }
        if ch.fill is not None:
            f = ch.fill
            fill_rows.append({
                "fill_id": f.fill_id, "client_order_id": f.client_order_id, "session_id": ch.session_id,
                "instrument_id": f.instrument_id, "side": f.side.value, "quantity": f.quantity,
                "price": f.price, "fee": f.fee, "fee_currency": f.fee_currency,
                "liquidity": f.liquidity.value, "ts": f.ts, "seq": rec.seq,
            })
        if ch.position is not None:
            p = ch.position
            pos_rows[(ch.session_id, p.instrument_id)] = {
                "session_id": ch.session_id, "instrument_id": p.instrument_id, "quantity": p.quantity,
                "avg_price": p.avg_price, "realized_pnl": p.realized_pnl, "fees": p.fees,
                "last_ts": p.last_ts, "last_seq": rec.seq,
            }
    for table in (fills, positions, orders, trading_state, breaker_trips):
        conn.execute(table.delete())
    for table, rows in ((orders, list(order_rows.values())), (fills, fill_rows),
                        (positions, list(pos_rows.values()))):
        for k in range(0, len(rows), 5000):
            conn.execute(table.insert(), rows[k: k + 5000])
    if ps.risk:
        conn.execute(trading_state.insert(), [{"scope": s, **v} for s, v in ps.risk.items()])
    if ps.trips:
        conn.execute(breaker_trips.insert(), ps.trips)
    return ps


def table_state(conn: Connection) -> dict[str, Any]:
    """The restored database's own projection tables, in :func:`state_at`'s shape (for checks)."""
    from lyra.audit.ledger import read_tables

    t = read_tables(conn)
    keep = {"orders": ("client_order_id", "session_id", "status", "filled_quantity", "avg_fill_price",
                       "fees", "quantity"),
            "fills": ("fill_id", "session_id", "quantity", "price", "fee"),
            "positions": ("session_id", "instrument_id", "quantity", "avg_price", "realized_pnl", "fees")}
    out: dict[str, Any] = {k: [{c: r[c] for c in cols} for r in t[k]] for k, cols in keep.items()}
    out["fills"].sort(key=_fill_key)
    rs = conn.execute(sa.select(trading_state).order_by(trading_state.c.scope)).mappings().all()
    out["risk"] = {r["scope"]: {k: r[k] for k in ("state", "reason", "actor", "ts", "version", "rearms")}
                   for r in rs}
    return out
