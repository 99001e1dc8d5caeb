"""How a session writes to the event log — or, while resuming, checks what it would write
against what it wrote before it died.

A session is deterministic (same data, params and seed give the same events). On resume it
re-runs from the start: while its log has entries left, :class:`SessionRecorder` compares
each entry it would append with the logged one (same kind, same payload) and applies the
logged entry to the projection without writing anything. When the logged entries run out,
it switches to writing. Nothing is sent twice (the paper venue is rebuilt deterministically;
a live venue is asked by client order id) and nothing is lost (what the dead process never
logged is produced again).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lyra.audit.chain import EventRecord, canonical_json
from lyra.audit.codec import ORDER_CREATED, order_created_payload, order_event_kind, order_event_payload
from lyra.audit.ledger import GroupCommit, Ledger, LedgerTransaction, OrderPen, check_pen, is_order_kind
from lyra.audit.projections import Projector
from lyra.core.errors import IntegrityError
from lyra.core.orders import Order, OrderEvent

#: Session markers written around its run, not by it: a stop, a standby's takeover, the venue's
#: dead-man switch armed (``lyra.session.standby``, ``lyra.execution.deadman``).
_OPERATIONAL = frozenset({"session.stopped", "session.failover", "session.deadman_armed"})


def is_operational(kind: str) -> bool:
    """Entries that record what happened *to* a session rather than what it did (breaker
    trips, state changes, kill switch, stop markers, operator commands asked and answered):
    written outside the session's own deterministic stream, so a resume does not re-verify
    them. (Where the session *acted* on a kill or a command, ``session.kill`` and
    ``session.command``, is part of its stream.)"""
    return (kind in _OPERATIONAL or kind.startswith("command.")
            or (kind.startswith("risk.") and kind != "risk.decision"))


class _Verifier:
    """Stands in for a LedgerTransaction while replaying logged entries."""

    def __init__(self, rec: SessionRecorder) -> None:
        self._rec = rec

    def append(self, kind: str, payload: Any, *, actor: str = "system", session_id: str = "",
               ts: int | None = None, pen: OrderPen | None = None) -> EventRecord:
        if is_order_kind(kind):  # the same door as a write: a re-run is checked like the run
            check_pen(pen, kind)
        return self._rec._match(kind, payload, ts)

    def create_order(self, session_id: str, order: Order, *, actor: str = "system",
                     pen: OrderPen | None = None) -> Order:
        check_pen(pen, ORDER_CREATED)
        rec = self._rec._match(ORDER_CREATED, order_created_payload(order), order.created_ts)
        change = self._rec.ledger.projector.apply(rec)
        assert change is not None
        assert change.order is not None
        return change.order

    def order_event(self, session_id: str, client_order_id: str, event: OrderEvent, *,
                    actor: str = "system", pen: OrderPen | None = None) -> Order:
        check_pen(pen, order_event_kind(event.type))
        rec = self._rec._match(order_event_kind(event.type), order_event_payload(client_order_id, event),
                               event.ts)
        change = self._rec.ledger.projector.apply(rec)
        assert change is not None
        assert change.order is not None
        return change.order


class SessionRecorder:
    """Appends a session's entries through its :class:`Ledger`, or verifies them on resume."""

    def __init__(self, ledger: Ledger, session_id: str, actor: str, *, max_entries: int = 1000,
                 max_wait_s: float = 0.05) -> None:
        self.ledger = ledger
        self.session_id = session_id
        self.actor = actor
        # Resume: the entries this session logged before, in order.
        self._expected: deque[EventRecord] = deque(
            r for r in ledger.log.read(session_id=session_id) if not is_operational(r.kind))
        self.replayed = 0
        self._group = ledger.group_commit(max_entries=max_entries, max_wait_s=max_wait_s)
        if self._expected:
            # Rebuild the projection as we go, not from the end state.
            ledger.projector = Projector()

    @property
    def group(self) -> GroupCommit:
        """The batcher behind this recorder (its ``max_entries``/``max_wait_s`` may be tuned)."""
        return self._group

    @property
    def resuming(self) -> bool:
        """True while earlier entries are being re-verified instead of written."""
        self._skip_markers()
        return bool(self._expected)

    @property
    def expected(self) -> deque[EventRecord]:
        return self._expected

    def _skip_markers(self) -> None:
        # Where a run was stopped is not part of its deterministic history (a resumed run never
        # stops while re-verifying): skip those markers.
        while self._expected and self._expected[0].kind == "session.stopped":
            self._expected.popleft()
            self.replayed += 1

    def _match(self, kind: str, payload: Any, ts: int | None) -> EventRecord:
        self._skip_markers()
        if not self._expected:
            raise IntegrityError(
                f"session {self.session_id}: its log ends inside a transaction the re-run made; "
                "the log was cut or the code changed since the session started"
            )
        rec = self._expected.popleft()
        text = canonical_json(payload)
        if rec.kind != kind or rec.payload != text or (ts is not None and rec.ts != ts):
            raise IntegrityError(
                f"session {self.session_id} diverged from its log at entry {rec.seq}: "
                f"logged {rec.kind} {rec.payload[:200]} but the re-run produced {kind} {text[:200]}; "
                "the data or the code changed since the session started"
            )
        self.replayed += 1
        return rec

    def peek_kind(self) -> str | None:
        self._skip_markers()
        return self._expected[0].kind if self._expected else None

    @contextmanager
    def transaction(self) -> Iterator[LedgerTransaction | _Verifier]:
        """A ledger transaction (group-committed), or a verifier while resuming."""
        if self.resuming:
            yield _Verifier(self)
            return
        with self._group.transaction() as tx:
            yield tx

    @property
    def committed_seq(self) -> int:
        """Seq of the last entry this recorder committed (0: none yet)."""
        return self._group.last_seq

    def commit(self) -> None:
        """Make everything recorded so far durable (before talking to a real venue, on
        stop, at the end)."""
        self._group.commit()

    def rollback(self) -> None:
        self._group.rollback()
