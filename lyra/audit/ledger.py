"""The live write path: every order change is appended to the event log and reflected in
the projection tables in the same database transaction.

    ledger = Ledger(log)
    with ledger.transaction() as tx:
        tx.create_order("s1", order, actor="session:s1")
        tx.order_event("s1", order.client_order_id, OrderEvent(OrderEventType.SUBMIT, ts))

If anything in the transaction fails (an illegal transition, the database), nothing is
written and the ledger's in-memory state is rebuilt from the log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from lyra.audit.chain import EventRecord
from lyra.audit.codec import (
    ORDER_CREATED,
    order_created_payload,
    order_event_kind,
    order_event_payload,
)
from lyra.audit.log import EventLog, LogTransaction
from lyra.audit.projections import Change, ProjectedState, Projector
from lyra.core.orders import Order, OrderEvent
from lyra.store.engine import writer
from lyra.store.tables import fills, orders, positions


class LedgerTransaction:
    """Records order changes inside one database transaction."""

    def __init__(self, ledger: Ledger, tx: LogTransaction) -> None:
        self._ledger = ledger
        self.log_tx = tx
        # Projection rows, written in a few executemany calls at flush(); last write wins.
        self._orders: dict[str, dict[str, Any]] = {}
        self._fills: list[dict[str, Any]] = []
        self._positions: dict[tuple[str, str], dict[str, Any]] = {}

    @property
    def conn(self) -> Connection:
        return self.log_tx.conn

    def append(self, kind: str, payload: Any, *, actor: str = "system", session_id: str = "",
               ts: int | None = None) -> EventRecord:
        """Append any other entry (a signal, a risk decision...) in this transaction."""
        return self.log_tx.append(kind, payload, actor=actor, session_id=session_id, ts=ts)

    def create_order(self, session_id: str, order: Order, *, actor: str = "system") -> Order:
        """Record a new order (state INITIALIZED); returns the ledger's copy to work with."""
        rec = self.log_tx.append(ORDER_CREATED, order_created_payload(order), actor=actor,
                                 session_id=session_id, ts=order.created_ts)
        change = self._ledger.projector.created(order, session_id, rec.seq, rec.ts)
        self._write(change, rec.seq)
        assert change.order is not None
        return change.order

    def order_event(self, session_id: str, client_order_id: str, event: OrderEvent, *,
                    actor: str = "system") -> Order:
        """Record an order event (submit, accept, fill...); returns the updated order."""
        rec = self.log_tx.append(order_event_kind(event.type), order_event_payload(client_order_id, event),
                                 actor=actor, session_id=session_id, ts=event.ts)
        change = self._ledger.projector.event(client_order_id, event, session_id, rec.seq, rec.ts)
        self._write(change, rec.seq)
        assert change.order is not None
        return change.order

    def _write(self, ch: Change, seq: int) -> None:
        o = ch.order
        assert o is not None
        i = o.intent
        avg = o.avg_fill_price
        self._orders[o.client_order_id] = {
            "client_order_id": o.client_order_id, "session_id": ch.session_id,
            "instrument_id": i.instrument_id, "side": i.side.value, "order_type": i.order_type.value,
            "time_in_force": i.time_in_force.value, "quantity": i.quantity,
            "limit_price": i.limit_price, "stop_price": i.stop_price, "status": o.status.value,
            "filled_quantity": o.filled_quantity, "avg_fill_price": avg, "fees": o.fees,
            "venue_order_id": o.venue_order_id, "created_ts": o.created_ts,
            "updated_ts": o.history[-1].ts if o.history else o.created_ts, "last_seq": seq,
        }
        if ch.fill is not None:
            f = ch.fill
            self._fills.append({
                "fill_id": f.fill_id, "client_order_id": f.client_order_id, "session_id": ch.session_id,
                "instrument_id": f.instrument_id, "side": f.side.value, "quantity": f.quantity,
                "price": f.price, "fee": f.fee, "fee_currency": f.fee_currency,
                "liquidity": f.liquidity.value, "ts": f.ts, "seq": seq,
            })
        if ch.position is not None:
            p = ch.position
            self._positions[(ch.session_id, p.instrument_id)] = {
                "session_id": ch.session_id, "instrument_id": p.instrument_id, "quantity": p.quantity,
                "avg_price": p.avg_price, "realized_pnl": p.realized_pnl, "fees": p.fees,
                "last_ts": p.last_ts, "last_seq": seq,
            }

    def flush(self) -> None:
        """Write the buffered projection rows and the log entries (called before commit)."""
        self.log_tx.flush()
        if self._orders:
            _upsert_many(self.conn, orders, ["client_order_id"], list(self._orders.values()))
            self._orders.clear()
        if self._fills:
            self.conn.execute(fills.insert(), self._fills)
            self._fills = []
        if self._positions:
            keys = ["session_id", "instrument_id"]
            _upsert_many(self.conn, positions, keys, list(self._positions.values()))
            self._positions.clear()


def _upsert_many(conn: Connection, table: sa.Table, keys: list[str], rows: list[dict[str, Any]]) -> None:
    dialect = conn.dialect.name
    ins: Any = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)
    update = {k: ins.excluded[k] for k in rows[0] if k not in keys}
    conn.execute(ins.on_conflict_do_update(index_elements=keys, set_=update), rows)


class Ledger:
    """Orders, fills and positions kept by appending to the event log."""

    def __init__(self, log: EventLog, *, session_id: str | None = None) -> None:
        self.log = log
        self.session_id = session_id
        self.projector = Projector()
        self._reload()

    def _reload(self) -> None:
        self.projector = Projector()
        for rec in self.log.read(session_id=self.session_id):
            self.projector.apply(rec)

    @property
    def state(self) -> ProjectedState:
        return self.projector.state

    @contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        """A transaction for order changes; on any error nothing is written."""
        try:
            with self.log.transaction() as tx:
                ltx = LedgerTransaction(self, tx)
                yield ltx
                ltx.flush()
        except BaseException:
            self._reload()  # the in-memory projection may hold the failed change
            raise

    def group_commit(self, *, max_entries: int = 1000, max_wait_s: float = 0.05) -> GroupCommit:
        """A committer that batches many small transactions into one database commit."""
        return GroupCommit(self, max_entries=max_entries, max_wait_s=max_wait_s)


class GroupCommit:
    """Many small ledger transactions, one database commit per batch.

    A batch is committed when it holds ``max_entries`` log entries, when ``max_wait_s`` of
    wall time passed since it opened, or on :meth:`commit`. Durability is per batch: a crash
    loses at most the open batch, which a deterministic session re-run produces again. If a
    transaction fails, the whole open batch is rolled back, the ledger reloads from the
    database, and the error propagates (the caller stops; a resume re-runs it).
    """

    def __init__(self, ledger: Ledger, *, max_entries: int = 1000, max_wait_s: float = 0.05) -> None:
        self.ledger = ledger
        self.max_entries = max_entries
        self.max_wait_s = max_wait_s
        self._conn: Connection | None = None
        self._trans: Any = None
        self._tx: LedgerTransaction | None = None
        self._opened = 0.0

    @property
    def pending(self) -> int:
        return 0 if self._tx is None else len(self._tx.log_tx.records)

    @contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        if self._tx is None:
            self._conn = writer(self.ledger.log.engine).connect()
            self._trans = self._conn.begin()
            self._tx = LedgerTransaction(self.ledger, LogTransaction(self.ledger.log, self._conn))
            self._opened = time.monotonic()
        try:
            yield self._tx
        except BaseException:
            self.rollback()
            raise
        if (len(self._tx.log_tx.records) >= self.max_entries
                or time.monotonic() - self._opened >= self.max_wait_s):
            self.commit()

    def commit(self) -> None:
        """Write and commit the open batch (no-op if none), then mirror it to the file."""
        if self._tx is None:
            return
        tx, conn, trans = self._tx, self._conn, self._trans
        self._tx = self._conn = self._trans = None
        assert conn is not None
        try:
            tx.flush()
            trans.commit()
        except BaseException:
            trans.rollback()
            conn.close()
            self.ledger._reload()
            raise
        conn.close()
        self.ledger.log.mirror(tx.log_tx.records)

    def rollback(self) -> None:
        """Drop the open batch and reload the ledger from what is committed."""
        if self._tx is None:
            return
        conn, trans = self._conn, self._trans
        self._tx = self._conn = self._trans = None
        assert conn is not None
        trans.rollback()
        conn.close()
        self.ledger._reload()


def read_tables(conn: Connection, session_id: str | None = None) -> dict[str, Any]:
    """The projection tables as plain dicts, for comparing with :func:`replay` output."""
    def rows(table: sa.Table, order_by: Any) -> list[dict[str, Any]]:
        q = sa.select(table).order_by(*order_by)
        if session_id is not None:
            q = q.where(table.c.session_id == session_id)
        return [dict(r._mapping) for r in conn.execute(q)]

    return {
        "orders": rows(orders, [orders.c.client_order_id]),
        "fills": rows(fills, [fills.c.seq]),
        "positions": rows(positions, [positions.c.session_id, positions.c.instrument_id]),
    }


def state_as_rows(state: ProjectedState) -> dict[str, Any]:
    """A projected state in the same shape as :func:`read_tables` (without bookkeeping columns)."""
    out_orders = []
    for cid in sorted(state.orders):
        o = state.orders[cid]
        out_orders.append({
            "client_order_id": cid, "session_id": state.order_sessions[cid], "status": o.status.value,
            "filled_quantity": o.filled_quantity, "avg_fill_price": o.avg_fill_price, "fees": o.fees,
            "quantity": o.quantity,
        })
    out_pos = []
    for (sid, iid) in sorted(state.positions):
        p = state.positions[(sid, iid)]
        out_pos.append({"session_id": sid, "instrument_id": iid, "quantity": p.quantity,
                        "avg_price": p.avg_price, "realized_pnl": p.realized_pnl, "fees": p.fees})
    out_fills = [{"fill_id": f.fill_id, "session_id": sid, "quantity": f.quantity, "price": f.price,
                  "fee": f.fee} for sid, f in state.fills]
    return {"orders": out_orders, "fills": out_fills, "positions": out_pos}
