"""The live write path: every order change is appended to the event log and reflected in
the projection tables in the same database transaction.

    ledger = Ledger(log)
    with ledger.transaction() as tx:
        tx.create_order("s1", order, actor="session:s1", pen=pen)
        tx.order_event("s1", order.client_order_id, OrderEvent(OrderEventType.SUBMIT, ts), pen=pen)

If anything in the transaction fails (an illegal transition, the database), nothing is
written and the ledger's in-memory state is rebuilt from the log.

**One door.** ``order.*`` and ``risk.decision`` entries are written only with an
:class:`OrderPen`, the capability the order gateway (:mod:`lyra.execution.gateway`) holds: the
ledger refuses them from anyone else (``PermissionError``). Pens are issued only to the
gateway's module and to test fixtures (:data:`PEN_ISSUERS`, checked at issue time).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from lyra.audit.chain import EventRecord, canonical_json
from lyra.audit.codec import (
    ORDER_CREATED,
    order_created_payload,
    order_event_kind,
    order_event_payload,
)
from lyra.audit.log import EventLog, LogTransaction, _check_names, _is_json_text
from lyra.audit.projections import Change, ProjectedState, Projector
from lyra.core.orders import Order, OrderEvent
from lyra.store.engine import writer
from lyra.store.tables import fills, orders, positions

#: Modules that may be issued an :class:`OrderPen`: the order gateway, and test fixtures that
#: seed a log (``lyra.testing``). Everything else that wants an order goes through the gateway.
PEN_ISSUERS = ("lyra.execution.gateway", "lyra.testing.")

_PEN_KEY = object()


class OrderPen:
    """The capability to write ``order.*`` and ``risk.decision`` entries (one door: invariant 1).

    Get one with :func:`issue_order_pen`, which only the modules in :data:`PEN_ISSUERS` may
    call; the ledger checks for it on every order write."""

    __slots__ = ("holder",)

    def __init__(self, holder: str, key: object) -> None:
        if key is not _PEN_KEY:
            raise PermissionError("an OrderPen is issued by issue_order_pen(), to the order gateway only")
        self.holder = holder

    def __repr__(self) -> str:
        return f"OrderPen({self.holder!r})"


def issue_order_pen(holder: str) -> OrderPen:
    """The pen for ``holder``; refused (``PermissionError``) unless called from a module in
    :data:`PEN_ISSUERS` (the order gateway, test fixtures)."""
    caller = str(sys._getframe(1).f_globals.get("__name__", ""))
    if not any(caller == m or (m.endswith(".") and caller.startswith(m)) for m in PEN_ISSUERS):
        raise PermissionError(
            f"{caller or 'this code'} may not write orders or risk decisions: send orders through "
            "the order gateway (lyra.execution.gateway / the session's OrderGateway)")
    return OrderPen(holder, _PEN_KEY)


def is_order_kind(kind: str) -> bool:
    """True for the entries only the order gateway writes (``order.*``, ``risk.decision``)."""
    return kind == "risk.decision" or kind.startswith("order.")


def check_pen(pen: OrderPen | None, kind: str) -> None:
    """Refuse an order write without the gateway's pen."""
    if type(pen) is not OrderPen:
        raise PermissionError(
            f"refused to write {kind!r}: only the order gateway writes order.* and risk.decision "
            "entries (send the order through lyra.execution.gateway / the session's OrderGateway)")


class LedgerTransaction:
    """Records order changes inside one database transaction."""

    def __init__(self, ledger: Ledger, tx: LogTransaction | _BatchLog) -> None:
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
               ts: int | None = None, pen: OrderPen | None = None) -> EventRecord:
        """Append any other entry (a signal, a risk decision...) in this transaction; a
        ``risk.decision`` or ``order.*`` entry needs the gateway's ``pen``."""
        if kind == "risk.decision" or kind.startswith("order."):
            check_pen(pen, kind)
        return self.log_tx.append(kind, payload, actor=actor, session_id=session_id, ts=ts)

    def create_order(self, session_id: str, order: Order, *, actor: str = "system",
                     pen: OrderPen | None = None) -> Order:
        """Record a new order (state INITIALIZED); returns the ledger's copy to work with.
        Only with the order gateway's ``pen``."""
        if type(pen) is not OrderPen:
            check_pen(pen, ORDER_CREATED)
        rec = self.log_tx.append(ORDER_CREATED, order_created_payload(order), actor=actor,
                                 session_id=session_id, ts=order.created_ts)
        change = self._ledger.projector.created(order, session_id, rec.seq, rec.ts)
        self._write(change, rec.seq)
        assert change.order is not None
        return change.order

    def order_event(self, session_id: str, client_order_id: str, event: OrderEvent, *,
                    actor: str = "system", pen: OrderPen | None = None) -> Order:
        """Record an order event (submit, accept, fill...); returns the updated order. Only
        with the order gateway's ``pen``."""
        if type(pen) is not OrderPen:
            check_pen(pen, order_event_kind(event.type))
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
        self.flush_rows(self.conn)

    def flush_rows(self, conn: Connection, shift: int = 0) -> None:
        """Write the buffered projection rows on ``conn``; ``shift`` moves their log seqs from
        provisional to final (a group-committed batch is numbered when it commits)."""
        if self._orders:
            rows = list(self._orders.values())
            if shift:
                rows = [{**r, "last_seq": r["last_seq"] + shift} for r in rows]
            _upsert_many(conn, orders, ["client_order_id"], rows)
            self._orders.clear()
        if self._fills:
            fill_rows = self._fills if not shift else [{**r, "seq": r["seq"] + shift} for r in self._fills]
            conn.execute(fills.insert(), fill_rows)
            self._fills = []
        if self._positions:
            keys = ["session_id", "instrument_id"]
            rows = list(self._positions.values())
            if shift:
                rows = [{**r, "last_seq": r["last_seq"] + shift} for r in rows]
            _upsert_many(conn, positions, keys, rows)
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


class _BatchLog:
    """Stands in for a :class:`LogTransaction` while a :class:`GroupCommit` batch fills up: the
    entries wait in memory (payloads already canonical JSON) with provisional sequence numbers
    after the last head this process saw; they are chained, hashed and written by
    :meth:`write` at commit, in one short database transaction."""

    def __init__(self, log: EventLog, base_seq: int) -> None:
        self._log = log
        self.base_seq = base_seq
        self._entries: list[tuple[str, Any, str, str, int]] = []
        self.records: list[EventRecord] = []

    @property
    def conn(self) -> Connection:
        raise RuntimeError("a group-committed batch has no open connection until it commits")

    def append(self, kind: str, payload: Any, *, actor: str = "system", session_id: str = "",
               ts: int | None = None) -> EventRecord:
        return self.append_many([(kind, payload, actor, session_id, ts)])[0]

    def append_many(self, entries: list[tuple[str, Any, str, str, int | None]]) -> list[EventRecord]:
        log = self._log
        checked = log._checked_names
        now = log.clock.now_ms()
        seq = self.base_seq + len(self._entries)
        out: list[EventRecord] = []
        for kind, payload, actor, session_id, ts in entries:
            if (kind, actor, session_id) not in checked:
                _check_names(kind, actor, session_id)  # bad names fail here, not at commit
                if len(checked) < 10_000:
                    checked.add((kind, actor, session_id))
            text = payload if isinstance(payload, str) and _is_json_text(payload) else canonical_json(payload)
            t = now if ts is None else int(ts)
            seq += 1
            # Object text is taken as is at write time; anything else is encoded again there.
            self._entries.append((kind, text if text[:1] == "{" else payload, actor, session_id, t))
            out.append(EventRecord(seq, t, actor, kind, session_id, text, "", ""))
        self.records.extend(out)
        return out

    def flush(self) -> None:
        raise RuntimeError("a group-committed batch is written by GroupCommit.commit()")

    def write(self, conn: Connection) -> tuple[LogTransaction, int]:
        """Chain and insert the entries on ``conn`` (the log's fence included); returns the
        transaction with the final records and the shift from provisional to final seqs."""
        tx = LogTransaction(self._log, conn)
        final = tx.append_many([(k, p, a, sid, t) for k, p, a, sid, t in self._entries])
        tx.flush()
        return tx, final[0].seq - self.records[0].seq if final else 0


class GroupCommit:
    """Many small ledger transactions, one database commit per batch.

    A batch is committed when it holds ``max_entries`` log entries, when ``max_wait_s`` of
    wall time passed since it opened, or on :meth:`commit`. Until then it lives in memory: the
    database is written in one short transaction at commit (lock the chain head, check the
    log's fence, insert, commit), so a session never holds the write lock between events or
    while it waits for the next bar, and other writers (a stop, the kill switch, a login) get
    it within milliseconds. Projections and log entries still go in that one transaction.

    Durability is per batch: a crash loses at most the open batch, which a deterministic
    session re-run produces again. If a transaction or a commit fails (the database, the
    fence), the whole open batch is dropped, the ledger reloads from the database, and the
    error propagates (the caller stops; a resume re-runs it).
    """

    def __init__(self, ledger: Ledger, *, max_entries: int = 1000, max_wait_s: float = 0.05) -> None:
        self.ledger = ledger
        self.max_entries = max_entries
        self.max_wait_s = max_wait_s
        self._tx: LedgerTransaction | None = None
        self._batch: _BatchLog | None = None
        self._opened = 0.0
        self._head_seq: int | None = None
        #: seq of the last entry this committer wrote (0: none yet)
        self.last_seq = 0

    @property
    def pending(self) -> int:
        return 0 if self._batch is None else len(self._batch.records)

    @contextmanager
    def transaction(self) -> Iterator[LedgerTransaction]:
        if self._tx is None:
            if self._head_seq is None:
                self._head_seq = self.ledger.log.head()[0]
            self._batch = _BatchLog(self.ledger.log, self._head_seq)
            self._tx = LedgerTransaction(self.ledger, self._batch)
            self._opened = time.monotonic()
        try:
            yield self._tx
        except BaseException:
            self.rollback()
            raise
        assert self._batch is not None
        if (len(self._batch.records) >= self.max_entries
                or time.monotonic() - self._opened >= self.max_wait_s):
            self.commit()

    def commit(self) -> None:
        """Write and commit the open batch (no-op if none), then mirror it to the file."""
        if self._tx is None:
            return
        ltx, batch = self._tx, self._batch
        self._tx = self._batch = None
        assert batch is not None
        if not batch.records:
            return
        log = self.ledger.log
        try:
            with writer(log.engine).begin() as conn:
                tx, shift = batch.write(conn)
                ltx.flush_rows(conn, shift)
        except BaseException:
            self._head_seq = None
            self.ledger._reload()
            raise
        if shift:  # others appended since our last commit: our entries moved up
            st = self.ledger.projector.state
            if st.last_seq > batch.base_seq:
                st.last_seq += shift
        self.last_seq = self._head_seq = tx.records[-1].seq
        log.mirror(tx.records)

    def rollback(self) -> None:
        """Drop the open batch and reload the ledger from what is committed."""
        if self._tx is None:
            return
        self._tx = self._batch = None
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
