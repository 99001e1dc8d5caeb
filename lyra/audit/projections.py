"""Projections: the state that the event log implies (orders, fills, positions).

:class:`Projector` is the one function from events to state. The live path
(:class:`lyra.audit.ledger.Ledger`) runs it as it appends and writes what changed to the
projection tables in the same transaction; :func:`replay` runs it over the stored log, up to
any moment, to rebuild the state at that time (point-in-time recovery). Stored payloads are
read through the event catalogue (:mod:`lyra.audit.events`), strictly: an entry that does not
have its kind's shape stops the replay with an error naming the kind and the field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from lyra.audit.chain import EventRecord
from lyra.audit.codec import ORDER_CREATED, ORDER_EVENT_PREFIX
from lyra.audit.events import ORDER_TRANSITIONS, OrderCreated, OrderTransition, event_type
from lyra.core.errors import IntegrityError
from lyra.core.orders import Fill, Order, OrderEvent
from lyra.core.positions import Position

_TRANSITIONS: dict[str, type[OrderTransition]] = {c.KIND: c for c in ORDER_TRANSITIONS.values()}


def _transition(kind: str) -> type[OrderTransition]:
    cls = _TRANSITIONS.get(kind)
    if cls is None:
        event_type(kind)  # an order.* kind the catalogue does not know: its error
        raise IntegrityError(f"{kind} is not an order transition")
    return cls


@dataclass(slots=True)
class Change:
    """What one event changed, so the live path knows which rows to write."""

    order: Order | None = None
    session_id: str = ""
    fill: Fill | None = None
    position: Position | None = None


@dataclass(slots=True)
class ProjectedState:
    """Orders, fills and positions as the log says. Keys: client order id; (session, instrument)."""

    orders: dict[str, Order] = field(default_factory=dict)
    order_sessions: dict[str, str] = field(default_factory=dict)
    fills: list[tuple[str, Fill]] = field(default_factory=list)
    positions: dict[tuple[str, str], Position] = field(default_factory=dict)
    last_seq: int = 0
    last_ts: int = 0


class Projector:
    """Applies event-log entries to a :class:`ProjectedState`."""

    def __init__(self, state: ProjectedState | None = None) -> None:
        self.state = state or ProjectedState()

    def apply(self, rec: EventRecord) -> Change | None:
        """Apply one stored entry (parsing its payload)."""
        kind = rec.kind
        if kind == ORDER_CREATED:
            created = OrderCreated.from_json(rec.payload)
            return self.created(created.to_order(), rec.session_id, rec.seq, rec.ts)
        if kind.startswith(ORDER_EVENT_PREFIX):
            t = _transition(kind).from_json(rec.payload)
            return self.event(t.client_order_id, t.to_event(), rec.session_id, rec.seq, rec.ts)
        self.state.last_seq = rec.seq
        self.state.last_ts = rec.ts
        return None  # other kinds (risk decisions, logins...) change no projection here

    def created(self, order: Order, session_id: str, seq: int, ts: int) -> Change:
        """A new order (the live path hands the object itself: no JSON round trip)."""
        st = self.state
        if order.client_order_id in st.orders:
            raise IntegrityError(f"entry {seq}: order {order.client_order_id} created twice")
        st.orders[order.client_order_id] = order
        st.order_sessions[order.client_order_id] = session_id
        st.last_seq = seq
        st.last_ts = ts
        return Change(order=order, session_id=session_id)

    def event(self, cid: str, ev: OrderEvent, session_id: str, seq: int, ts: int) -> Change:
        """An order event: moves the order and, for fills, the position."""
        st = self.state
        existing = st.orders.get(cid)
        if existing is None:
            raise IntegrityError(f"entry {seq}: event for unknown order {cid}")
        existing.apply(ev)
        st.last_seq = seq
        st.last_ts = ts
        change = Change(order=existing, session_id=session_id)
        if ev.fill is not None:
            key = (session_id, ev.fill.instrument_id)
            pos = st.positions.get(key)
            if pos is None:
                pos = st.positions[key] = Position(ev.fill.instrument_id)
            pos.apply(ev.fill)
            st.fills.append((session_id, ev.fill))
            change.fill = ev.fill
            change.position = pos
        return change


def replay(records: Iterable[EventRecord]) -> ProjectedState:
    """Rebuild the projections from log entries (e.g. ``log.read(until_ts=...)``)."""
    p = Projector()
    for rec in records:
        p.apply(rec)
    return p.state
