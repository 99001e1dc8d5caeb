"""Execution algorithms inside the session runtime (see :mod:`lyra.execution.algos`).

:class:`AlgoBook` holds a session's working parents; :class:`AlgoDriver` wraps a strategy's
incremental form so the parents see every bar of their instrument. The session builds them
only when it runs algorithms (``session.algos`` is set), and then calls the helpers below:
starting a parent (``algo.started``), routing the broker's reports on children to their
parents, and acting on what changed — cancelling the working children of a stopped parent,
logging ``algo.finished``, sending the children a parent can release now. Children are sent
through the session's order gateway (:class:`lyra.session.gateway.OrderGateway`, via
``Session._submit``: risk decision, order, submit, broker) like any other order.
Everything here follows from the data and the log, so a resumed run reproduces it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any, ClassVar

from lyra.core.enums import OrderEventType
from lyra.core.errors import ConfigError, ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import Bar
from lyra.core.orders import TRANSITIONS, Order, OrderIntent
from lyra.core.values import ZERO, to_decimal
from lyra.execution.algos import EXECUTION_KEY, AlgoSpec, ChildIntent, ParentIntent, ParentOrder
from lyra.execution.algos import WORKABLE_ORDER_TYPES as WORKABLE
from lyra.execution.broker import ExecutionReport

if TYPE_CHECKING:
    from lyra.session.config import SessionConfig
    from lyra.session.runtime import Session

E = OrderEventType


class AlgoBook:
    """The working parent orders of one session, by parent, child and instrument."""

    def __init__(self, session_id: str, instruments: Mapping[str, Instrument]) -> None:
        self._prefix = session_id
        self._n = 0
        self.instruments = dict(instruments)
        #: working parents, in start order
        self.active: dict[str, ParentOrder] = {}
        self.by_child: dict[str, ParentOrder] = {}
        self._by_instrument: dict[str, list[ParentOrder]] = {}
        self._touched: dict[str, ParentOrder] = {}
        #: something changed that the session must act on (finished parents, cancels, follow-ups)
        self.dirty = False

    def next_id(self) -> str:
        """A deterministic parent id: the session id and a counter."""
        self._n += 1
        return f"{self._prefix}-algo-{self._n:06d}"

    def open(self, parent_id: str, request: ParentIntent, now_ms: int,
             reference_price: Decimal | None) -> ParentOrder:
        """Start a parent (raises ValidationError if it cannot be worked)."""
        inst = self.instruments.get(request.instrument_id)
        if inst is None:
            raise ValidationError("instrument_id", request.instrument_id, "not an instrument of this session")
        p = ParentOrder(parent_id, request.intent, request.spec, inst, now_ms, reference_price)
        self.active[parent_id] = p
        self._by_instrument.setdefault(inst.id, []).append(p)
        self._touched[parent_id] = p
        self.dirty = True
        return p

    def has_parents(self, instrument_id: str) -> bool:
        return bool(self._by_instrument.get(instrument_id))

    def tick(self, instrument_id: str, event: Any, now_ms: int) -> list[ChildIntent]:
        """Children due after a market event of ``instrument_id``."""
        out: list[ChildIntent] = []
        for p in self._by_instrument.get(instrument_id, ()):
            out += p.on_market(event, now_ms)
            if p.done or p.stopping:
                self.dirty = True
        return out

    def child_sent(self, intent: ChildIntent, client_id: str, quantity: Decimal, approved: bool,
                   reason: str = "") -> None:
        p = self.active[intent.parent_id]
        self.by_child[client_id] = p
        p.on_child_sent(intent, client_id, quantity, approved, reason)
        self._touched[p.parent_id] = p
        self.dirty = True

    def child_update(self, client_id: str, filled_delta: Decimal, terminal: bool, *,
                     price: Decimal | None = None, reason: str = "") -> None:
        p = self.by_child.get(client_id)
        if p is None:
            return
        p.on_child_update(client_id, filled_delta, terminal, price=price, reason=reason)
        self._touched[p.parent_id] = p
        self.dirty = True

    def cancel_all(self, reason: str) -> None:
        """Stop every working parent (the kill switch)."""
        for p in self.active.values():
            p.cancel(reason)
        self.dirty = bool(self.active)

    def cancels_due(self) -> list[tuple[str, str]]:
        """(child, reason) for working children of stopped parents, to cancel at the venue."""
        return [(c, f"parent {p.parent_id}: {p.stop_reason}") for p in self.active.values()
                for c in p.cancels_due()]

    def follow_ups(self, now_ms: int) -> list[ChildIntent]:
        """Children that parents touched since the last call can release now (an iceberg's
        next child after a fill)."""
        touched, self._touched = self._touched, {}
        out: list[ChildIntent] = []
        for p in touched.values():
            out += p.on_market(None, now_ms)
        return out

    def pop_finished(self) -> list[ParentOrder]:
        """Parents that left ``working``, in start order, removed from the book."""
        done = [p for p in self.active.values() if p.done]
        for p in done:
            del self.active[p.parent_id]
            self._by_instrument[p.instrument.id].remove(p)
            for c in p.children:
                self.by_child.pop(c, None)
            self._touched.pop(p.parent_id, None)
        return done


class AlgoDriver:
    """A strategy's incremental form with algorithms in front of it, for the session.

    On each bar: the parents working on this instrument release what is due, then the
    strategy runs; its intents become :class:`ParentIntent` with ``spec`` (when given), and
    its own ``ParentIntent`` pass through. Has no ``on_close``: a session with algorithms
    uses the generic loop, which hands every bar (with its volume) to the parents.
    """

    __slots__ = ("_clock", "_on_change", "book", "inner", "instrument_id", "spec")

    emits_parents: ClassVar[bool] = True

    def __init__(self, inner: Any, instrument_id: str, book: AlgoBook, spec: AlgoSpec | None,
                 clock: Any, on_change: Callable[[int], None]) -> None:
        self.inner = inner
        self.instrument_id = instrument_id
        self.book = book
        self.spec = spec
        self._clock = clock
        self._on_change = on_change

    def on_bar(self, bar: Bar) -> list[OrderIntent | ParentIntent]:
        """Children due, then the strategy's intents as parents."""
        book = self.book
        out: list[OrderIntent | ParentIntent] = []
        if book.has_parents(self.instrument_id):
            now = self._clock.now_ms()
            out.extend(book.tick(self.instrument_id, bar, now))
            if book.dirty:
                self._on_change(now)  # finished parents logged, stopped parents' children cancelled
        intents = self.inner.on_bar(bar)
        if intents:
            spec = self.spec
            if spec is None:
                out.extend(intents)
            else:
                # Stop orders are not worked by an algorithm: they go out as they are.
                out.extend(ParentIntent(i, spec) if type(i) is OrderIntent and i.order_type in WORKABLE
                           else i for i in intents)
        return out

    @property
    def target_position(self) -> int:
        return int(self.inner.target_position)

    @target_position.setter
    def target_position(self, value: int) -> None:
        self.inner.target_position = value


def execution_spec(config: SessionConfig) -> AlgoSpec | None:
    """The algorithm of ``params.execution`` in a session config (None if absent); errors
    name the key, e.g. ``params.execution.participation``."""
    raw = config.params.get(EXECUTION_KEY)
    if raw is None:
        return None
    where = f"params.{EXECUTION_KEY}"
    try:
        spec = AlgoSpec.from_dict(raw)
    except ValidationError as exc:
        field = where if exc.field == EXECUTION_KEY else f"{where}.{exc.field}"
        raise ConfigError(field, exc.value, exc.problem, exc.hint) from None
    if spec.display_quantity is not None and spec.display_quantity > config.quantity:
        raise ConfigError(f"{where}.display_quantity", spec.display_quantity,
                          f"larger than the order quantity {config.quantity}",
                          "an iceberg shows part of the order")
    return spec


def strategy_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The strategy's own parameters (``execution`` belongs to the session)."""
    return {k: v for k, v in params.items() if k != EXECUTION_KEY}


def start_parent(s: Session, request: ParentIntent, t: int) -> None:
    """Open a parent order, log ``algo.started`` and send its first children."""
    book = s.algos
    iid = request.instrument_id
    if book is None or not isinstance(s.strategies.get(iid), AlgoDriver):
        raise ConfigError("strategy", s.config.strategy, "returned a ParentIntent but the session drives no "
                          "algorithms for it", "set emits_parents = True on its incremental class")
    pid = book.next_id()
    mark = s.marks.get(iid)
    ref = to_decimal(mark, "mark") if mark is not None else None
    it = request.intent
    started = {"parent_id": pid, "instrument_id": iid, "side": it.side.value, "quantity": str(it.quantity),
               "order_type": it.order_type.value, "reduce_only": it.reduce_only, "tag": it.tag,
               "spec": request.spec.to_dict(), "reference_price": None if ref is None else str(ref)}
    try:
        parent = book.open(pid, request, t, ref)
        error = ""
    except ValidationError as exc:
        parent, error = None, str(exc)
    with s.recorder.transaction() as tx:
        tx.append("algo.started", started, actor=s.actor, session_id=s.sid, ts=t)
        if parent is None:  # cannot be worked on this instrument: recorded, never sent
            tx.append("algo.finished", {"parent_id": pid, "status": "failed", "reason": error,
                                        "quantity": str(it.quantity), "filled": "0", "avg_price": None,
                                        "children": 0, "child_ids": []},
                      actor=s.actor, session_id=s.sid, ts=t)
    if parent is None:
        s._sync_strategy(iid)
        return
    first = parent.on_market(None, t)
    if first:
        s._submit(first, t)
    pump(s, t)


def route_reports(s: Session, reports: list[ExecutionReport], t: int) -> None:
    """Tell parents about fills and ends of their children, then act on it."""
    book = s.algos
    assert book is not None
    owned = book.by_child
    seen: dict[str, None] = {}
    for r in reports:
        cid = r.client_order_id
        if cid not in owned:
            continue
        f = r.fill
        if f is not None:
            book.child_update(cid, f.quantity, False, price=f.price)
        seen[cid] = None
    orders = s.ledger.state.orders
    for cid in seen:
        o = orders[cid]
        if o.status.is_terminal:
            book.child_update(cid, ZERO, True, reason=_end_reason(o))
    pump(s, t)


def _end_reason(o: Order) -> str:
    last = o.history[-1].reason if o.history else ""
    return f"{o.status.value}" + (f" ({last})" if last else "")


def pump(s: Session, t: int, *, submit: bool = True) -> None:
    """Act on what changed: cancel the working children of stopped parents, log the parents
    that finished, send the children parents can release now (``submit``). Not re-entrant:
    a nested call (from the ``_submit`` it makes) leaves the work to the outer loop."""
    book = s.algos
    if book is None or s._algo_busy:
        return
    s._algo_busy = True
    try:
        while book.dirty:
            book.dirty = False
            for cid, reason in book.cancels_due():
                request_cancel(s, cid, t, reason)
            for p in book.pop_finished():
                with s.recorder.transaction() as tx:
                    tx.append("algo.finished", p.summary(), actor=s.actor, session_id=s.sid, ts=t)
                if p.filled != p.quantity:
                    s._sync_strategy(p.instrument.id)
            if submit:
                due = book.follow_ups(t)
                if due:
                    s._submit(due, t)
    finally:
        s._algo_busy = False


def request_cancel(s: Session, cid: str, t: int, reason: str) -> bool:
    """Record a cancel request for a working order and send it to the broker (False if the
    order can no longer be cancelled)."""
    order = s.ledger.state.orders[cid]
    if (order.status, E.REQUEST_CANCEL) not in TRANSITIONS:
        return False
    s.gateway.request_cancel(cid, t, reason)
    return True
