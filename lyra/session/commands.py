"""Operator orders for running sessions: typed on the dashboard, executed by the session.

A dashboard (or a notebook) cannot reach into a session's process, so it *queues* a command
in the ``session_commands`` table with :class:`CommandQueue` (permission-checked, validated
against the session's config). The session takes its pending commands at its heartbeat
(where it also polls the kill switch) and executes them through the same path as its
strategy's orders, the order gateway (:mod:`lyra.session.gateway`): a submit becomes an
:class:`~lyra.core.orders.OrderIntent` tagged ``manual:<user>`` that goes through risk
(``risk.decision``), the ledger and the broker; a rebalance (target weights) becomes orders
tagged ``rebalance:<user>`` sized net of costs (:mod:`lyra.session.rebalance`); both are
booked to the session's operator book, never to its strategy. A cancel requests the cancel
of one of its working orders at the broker. The row is then
marked ``done`` or ``refused`` with what happened::

    q = CommandQueue(engine)
    cmd = q.submit_order("paper1", OrderIntent("coinbase:BTC/USD", Side.BUY, Decimal("0.01")),
                         Principal("alice", Role.TRADER), "hedge")
    q.wait(cmd.id).describe()   # 'sent to session paper1: order paper1-00000042 accepted ...'

**Never twice, never lost.** Where the session acted on a command is recorded in its own log
(``session.command`` with the event count ``at_event``), so a resumed paper session re-does
it at the same event and its log stays identical (exactly like the kill switch). A command
whose ``session.command`` entry is in the log is never applied again, even if its row was
not marked before a crash (live sessions do not replay). The request and the outcome are
logged too (``command.requested``, ``command.done``); those record what happened *to* the
session and are not part of its deterministic stream (see
:func:`lyra.session.recorder.is_operational`).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.chain import canonical_json
from lyra.audit.codec import order_created_payload, order_from_created
from lyra.audit.log import EventLog
from lyra.auth.permissions import Action, Principal
from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.enums import OrderEventType, OrderStatus
from lyra.core.errors import LyraError, ValidationError
from lyra.core.orders import TRANSITIONS, Order, OrderIntent
from lyra.core.values import plain_str
from lyra.store.tables_session import session_commands as sc

if TYPE_CHECKING:
    from lyra.session.runtime import Session

log = logging.getLogger(__name__)

#: A running session whose heartbeat is older than this takes no command (wall clock, ms).
STALE_AFTER_MS = 60_000
#: A command not taken within this long is refused, never executed late (wall clock, ms).
COMMAND_TTL_MS = 60_000
KINDS = ("submit", "cancel", "rebalance")
_INTENT_KEYS = ("instrument_id", "side", "order_type", "quantity", "limit_price", "stop_price",
                "time_in_force", "post_only", "reduce_only")


def intent_payload(intent: OrderIntent) -> dict[str, Any]:
    """The JSON fields of an order intent (its tag is the session's to set)."""
    p = order_created_payload(Order("-", intent, 0))
    return {k: p[k] for k in _INTENT_KEYS}


def parse_weights(weights: Any, instruments: Any) -> dict[str, Decimal]:
    """Target weights of a rebalance, checked: a mapping of the session's instrument ids to
    fractions of equity in [0, 1] whose sum is at most 1 (the rest stays cash). Raises
    ValidationError naming the field (``weights[<instrument>]`` or ``weights``) and value."""
    if not isinstance(weights, dict) or not weights:
        raise ValidationError("weights", weights, "give instrument_id = weight pairs",
                              "e.g. {'coinbase:BTC/USD': '0.5'}")
    out: dict[str, Decimal] = {}
    for iid, raw in weights.items():
        if iid not in instruments:
            raise ValidationError(f"weights[{iid}]", raw, f"{iid} is not traded by this session",
                                  f"one of {', '.join(sorted(instruments))}")
        try:
            w = Decimal(str(raw))
        except ArithmeticError:
            raise ValidationError(f"weights[{iid}]", raw, "not a number") from None
        if not w.is_finite() or w < 0 or w > 1:
            raise ValidationError(f"weights[{iid}]", raw, "a weight is a fraction of equity in [0, 1]")
        out[str(iid)] = w
    total = sum(out.values(), Decimal(0))
    if total > 1:
        raise ValidationError("weights", {k: str(v) for k, v in out.items()},
                              f"the weights sum to {total}, more than 1", "scale them down to sum <= 1")
    return out


def intent_from_payload(payload: dict[str, Any], *, tag: str = "") -> OrderIntent:
    """The intent back from :func:`intent_payload` (validated again: raises InvalidOrder)."""
    return order_from_created({**payload, "client_order_id": "-", "created_ts": 0, "tag": tag}).intent


@dataclass(frozen=True)
class Command:
    """One row of ``session_commands``."""

    id: int
    session_id: str
    kind: str  #: submit / cancel
    payload: dict[str, Any]  #: the intent's fields, or {"client_order_id": ...}
    actor: str  #: who asked
    role: str  #: their role then
    reason: str
    created_ts: int  #: wall clock, ms
    status: str  #: pending / done / refused
    result: str  #: what happened: the order and its risk verdict, or why not
    client_order_id: str
    done_ts: int | None

    @property
    def finished(self) -> bool:
        """The session answered (done or refused)."""
        return self.status != "pending"

    @property
    def settled(self) -> bool:
        """Nothing more will be said: refused, a cancel, or an order (or rebalance) whose orders
        all ended — :meth:`SessionCommands.order_done` then appends ``; <cid> filled ...`` (or
        cancelled, rejected) to the answer. A ticket follows its command until this is true."""
        if not self.finished or self.status != "done":
            return self.finished
        if self.kind not in ("submit", "rebalance") or not self.client_order_id:
            return True
        return f"; {self.client_order_id} " in self.result

    def describe(self) -> str:
        """One line for a person: ``sent to session X: order <cid> accepted`` and the like."""
        if not self.finished:
            return f"sent to session {self.session_id}: waiting for it to take command #{self.id}"
        return f"sent to session {self.session_id}: {self.result}"


@dataclass
class _FollowUp:
    """A taken command whose orders are still working: its answer so far and their outcomes."""

    command_id: int
    status: str
    result: str
    client_order_id: str
    outcomes: dict[str, str]  #: client order id -> how it ended ("" while working)
    filled: bool = False  #: any of its orders filled (else a rejection refuses the command)


def outcome(order: Order, instrument: Any = None, fee_currency: str = "") -> str:
    """How an order ended, for a person: ``filled 0.05 at 10000.01, fee 3.00 USD``,
    ``cancelled (filled 0.01 of 0.05 at ...)``, ``rejected by the venue: no market price``."""
    q = plain_str(order.filled_quantity)
    avg = order.avg_fill_price
    # the average price on the venue's tick (2 decimals for a 0.01 tick: money as people write it)
    px = "" if avg is None else f"{avg.quantize(instrument.price_increment):f}" if instrument is not None \
        else plain_str(avg)
    ccy = f" {fee_currency}" if fee_currency else (f" {instrument.quote}" if instrument is not None else "")
    filled = f"{q} at {px}, fee {plain_str(order.fees)}{ccy}" if avg is not None else ""
    st = order.status
    reason = order.history[-1].reason if order.history else ""
    if st is OrderStatus.FILLED:
        return f"{order.client_order_id} filled {filled}"
    if st is OrderStatus.REJECTED:
        return f"{order.client_order_id} rejected by the venue: {reason}"
    part = f" (filled {filled} of {plain_str(order.quantity)})" if filled else ""
    return f"{order.client_order_id} {st.value}{part}" + (f": {reason}" if reason and not part else "")


def _row(r: Any) -> Command:
    return Command(int(r.id), r.session_id, r.kind, json.loads(r.payload), r.actor, r.role, r.reason,
                   int(r.created_ts), r.status, r.result, r.client_order_id,
                   None if r.done_ts is None else int(r.done_ts))


class CommandQueue:
    """Queue operator orders for running sessions and read their outcome (any process).

    ``clock`` (wall time, ms) stamps the commands and judges heartbeats and time-to-live
    (:data:`STALE_AFTER_MS`, :data:`COMMAND_TTL_MS`); tests hand in a
    :class:`~lyra.core.clock.ManualClock` and move it past a limit instead of waiting a minute.
    """

    def __init__(self, engine: Engine, jsonl_path: Path | None = None, *, clock: Clock = WALL_CLOCK
                 ) -> None:
        self.engine = engine
        self.log = EventLog(engine, jsonl_path)
        self.clock = clock

    # -- asking ------------------------------------------------------------------------------
    def submit_order(self, session_id: str, intent: OrderIntent, principal: Principal,
                     reason: str = "") -> Command:
        """Queue ``intent`` for ``session_id`` (``place_order`` permission). Refused at once,
        with the field and the value, if the session is not running or the order cannot be
        traded there (unknown instrument, quantity or price off the venue's grid)."""
        principal.require(Action.PLACE_ORDER)
        if not isinstance(intent, OrderIntent):
            raise ValidationError("intent", type(intent).__name__, "not an OrderIntent")
        instruments = self._running(session_id)
        inst = instruments.get(intent.instrument_id)
        if inst is None:
            known = ", ".join(sorted(instruments))
            raise ValidationError("instrument_id", intent.instrument_id,
                                  f"not traded by session {session_id}", f"one of {known}")
        inst.check_order(intent.quantity, intent.limit_price)
        return self._insert(session_id, "submit", intent_payload(intent), principal, reason)

    def submit_rebalance(self, session_id: str, weights: dict[str, Any], principal: Principal,
                         reason: str = "rebalance") -> Command:
        """Queue a rebalance of ``session_id`` to target ``weights`` (instrument id -> fraction
        of equity; ``submit_rebalance`` permission). Refused at once, nothing written, if the
        weights sum to more than 1 or name an instrument the session does not trade. The
        session sizes the orders net of fees and slippage and sends them through risk."""
        principal.require(Action.SUBMIT_REBALANCE)
        instruments = self._running(session_id)
        parsed = parse_weights(weights, instruments)
        payload = {"weights": {k: str(v) for k, v in sorted(parsed.items())}}
        return self._insert(session_id, "rebalance", payload, principal, reason)

    def cancel_order(self, session_id: str, client_order_id: str, principal: Principal,
                     reason: str = "") -> Command:
        """Ask ``session_id`` to cancel its working order ``client_order_id`` (``cancel_order``
        permission). The session refuses an order that is not its own or no longer working."""
        principal.require(Action.CANCEL_ORDER)
        self._running(session_id)
        cid = (client_order_id or "").strip()
        if not cid.startswith(f"{session_id}-"):
            raise ValidationError("client_order_id", client_order_id, f"not an order of session {session_id}",
                                  f"its orders are named {session_id}-NNNNNNNN")
        return self._insert(session_id, "cancel", {"client_order_id": cid}, principal, reason)

    def _running(self, session_id: str) -> dict[str, Any]:
        """The instruments of ``session_id`` if it can take a command now; else why not."""
        from lyra.session.config import load_session_config
        from lyra.session.registry import SessionRegistry
        from lyra.session.runtime import session_instruments

        row = SessionRegistry(self.engine).get(session_id)
        if row is None:
            raise ValidationError("session_id", session_id, "no such session",
                                  "`lyra session status` lists them")
        if row["status"] != "running":
            raise ValidationError("session_id", session_id,
                                  f"session is {row['status']}, not running: nothing would execute the order",
                                  f"`lyra session resume {session_id}` to run it again")
        if row["mode"] not in ("paper", "live"):
            raise ValidationError("session_id", session_id,
                                  f"a {row['mode']} session takes no operator orders")
        from lyra.session.lease import read_lease, session_statuses, stale_reason

        now = self.clock.now_ms()
        if session_statuses(self.engine, [row], now)[session_id] == "stale":  # its owner died
            why = stale_reason(read_lease(self.engine, session_id), int(row["heartbeat_ts"]), now)
            raise ValidationError("session_id", session_id, f"session is stale: {why}; nothing would "
                                  "execute the order", f"`lyra session resume {session_id}` to run it again")
        age = now - int(row["heartbeat_ts"])
        if age > STALE_AFTER_MS:
            raise ValidationError("session_id", session_id,
                                  f"not responding: its last heartbeat was {age // 1000} s ago",
                                  "is its process alive? `lyra session status`")
        return dict(session_instruments(load_session_config(json.loads(row["config"]))))

    def _insert(self, session_id: str, kind: str, payload: dict[str, Any], principal: Principal,
                reason: str) -> Command:
        now = self.clock.now_ms()
        values = {"session_id": session_id, "kind": kind, "payload": canonical_json(payload),
                  "actor": principal.subject, "role": principal.role.value, "reason": reason.strip(),
                  "created_ts": now, "status": "pending", "result": "", "client_order_id": "",
                  "done_ts": None}
        with self.log.transaction() as tx:  # the request and its audit entry, atomically
            pk = tx.conn.execute(sc.insert().values(**values)).inserted_primary_key
            assert pk is not None
            cid = int(pk[0])
            tx.append("command.requested", {"command_id": cid, "kind": kind, "payload": payload,
                                            "role": principal.role.value, "reason": values["reason"]},
                      actor=f"user:{principal.subject}", session_id=session_id, ts=now)
        got = self.get(cid)
        assert got is not None
        return got

    # -- reading -----------------------------------------------------------------------------
    def get(self, command_id: int) -> Command | None:
        """One command (None if there is no such id)."""
        with self.engine.connect() as conn:
            r = conn.execute(sa.select(sc).where(sc.c.id == command_id)).one_or_none()
        return None if r is None else _row(r)

    def pending(self, session_id: str) -> list[Command]:
        """Commands for ``session_id`` not yet taken, oldest first."""
        q = sa.select(sc).where(sc.c.session_id == session_id, sc.c.status == "pending").order_by(sc.c.id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def recent(self, session_id: str | None = None, limit: int = 50) -> list[Command]:
        """The latest commands (of one session, or all), newest first."""
        q = sa.select(sc).order_by(sc.c.id.desc()).limit(limit)
        if session_id is not None:
            q = q.where(sc.c.session_id == session_id)
        with self.engine.connect() as conn:
            return [_row(r) for r in conn.execute(q)]

    def wait(self, command_id: int, timeout_s: float = 5.0, interval_s: float = 0.05) -> Command:
        """Poll until the session answered (or ``timeout_s``); the command as it then is."""
        deadline = time.monotonic() + timeout_s
        while True:
            cmd = self.get(command_id)
            if cmd is None:
                raise ValidationError("command_id", command_id, "no such command")
            if cmd.finished or time.monotonic() >= deadline:
                return cmd
            time.sleep(interval_s)

    # -- answering (the session) -------------------------------------------------------------
    def mark(self, command_id: int, status: str, result: str, *, client_order_id: str = "",
             only_pending: bool = True) -> bool:
        """Record the outcome (``done``/``refused``) and log ``command.done``; False if the
        command was not pending any more (``only_pending``): an outcome is written once.
        With ``only_pending=False`` (an order's final state, once it is known) the row is
        written only if its status or result change, so a resumed run marks nothing twice."""
        if status not in ("done", "refused"):
            raise ValidationError("status", status, "must be done or refused")
        now = self.clock.now_ms()
        q = sc.update().where(sc.c.id == command_id)
        if only_pending:
            q = q.where(sc.c.status == "pending")
        else:
            q = q.where(sa.or_(sc.c.status != status, sc.c.result != result))
        with self.log.transaction() as tx:
            n = tx.conn.execute(q.values(status=status, result=result, client_order_id=client_order_id,
                                         done_ts=now)).rowcount
            if not n:
                return False
            sid = tx.conn.execute(sa.select(sc.c.session_id).where(sc.c.id == command_id)).scalar_one()
            tx.append("command.done", {"command_id": command_id, "status": status, "result": result,
                                       "client_order_id": client_order_id},
                      actor=f"session:{sid}", session_id=sid, ts=now)
        return True


# ---------------------------------------------------------------------------- the session side
class SessionCommands:
    """What a :class:`~lyra.session.runtime.Session` does with its commands: take the pending
    ones at a heartbeat (:meth:`take`), re-do logged ones at the same event on resume
    (:meth:`schedule` + :meth:`redo`), refuse what is left when it ends (:meth:`close`).
    Time-to-live is wall time (``clock``), not the session's data clock: a replay of 2018
    still refuses a command queued a minute before it was taken."""

    def __init__(self, session: Session, *, clock: Clock = WALL_CLOCK) -> None:
        self.s = session
        self.queue = CommandQueue(session.engine, session.log.jsonl_path, clock=clock)
        self._applied: set[int] | None = None  # command ids in this session's log
        #: operator orders still working, by client order id -> their command's follow-up
        self.watching: dict[str, _FollowUp] = {}

    def schedule(self) -> dict[int, list[dict[str, Any]]]:
        """Logged commands still to be re-verified, by the event count they were taken at
        (empty when not resuming: a live session continues, it does not replay)."""
        out: dict[int, list[dict[str, Any]]] = {}
        for r in self.s.recorder.expected:
            if r.kind == "session.command":
                d = r.data()
                out.setdefault(int(d["at_event"]), []).append(d)
        return out

    def take(self, n: int, t: int) -> None:
        """Execute the commands queued for this session (at a heartbeat, not while resuming)."""
        pending = self.queue.pending(self.s.sid)
        if not pending:
            return
        applied = self._applied_ids()
        now = self.queue.clock.now_ms()
        for cmd in pending:
            if cmd.id in applied:  # acted on before a restart, its row never marked: not twice
                self.queue.mark(cmd.id, "done", "applied before the session restarted (see its log)")
                continue
            why = self._invalid(cmd, now)
            if why:  # refused before it touches the session: nothing for its log
                self.queue.mark(cmd.id, "refused", f"refused: {why}")
                continue
            info = {"command_id": cmd.id, "kind": cmd.kind, "payload": cmd.payload, "actor": cmd.actor,
                    "role": cmd.role, "reason": cmd.reason, "at_event": n}
            status, result, cid = self._apply(info, t)
            applied.add(cmd.id)
            self.s.recorder.commit()  # on record before the row says so (and SQLite: one writer)
            self.queue.mark(cmd.id, status, result, client_order_id=cid)
            self._follow(cmd.id, cmd.kind, status, result, cid)

    def redo(self, infos: list[dict[str, Any]], n: int, t: int) -> None:
        """Resuming: do again what the logged commands made the run do at this event. Their
        rows are normally marked already; one left pending by a crash gets its outcome now."""
        for info in infos:
            status, result, cid = self._apply(info, t)
            self._applied_ids().add(int(info["command_id"]))
            self.s.recorder.commit()
            self.queue.mark(int(info["command_id"]), status, result, client_order_id=cid)
            self._follow(int(info["command_id"]), str(info["kind"]), status, result, cid)

    def order_done(self, order: Order, fee_currency: str = "") -> None:
        """An operator's order reached its final state (filled, cancelled, rejected, expired):
        its command's answer says so, with the fill price and fee (called by the session
        for orders in :attr:`watching`)."""
        fu = self.watching.pop(order.client_order_id, None)
        if fu is None:
            return
        fu.outcomes[order.client_order_id] = outcome(order, self.s.instruments.get(order.instrument_id),
                                                     fee_currency)
        if order.filled_quantity > 0:
            fu.filled = True
        if any(c in self.watching for c in fu.outcomes):
            return  # a rebalance: answered once all its orders are done
        result = "; ".join([fu.result, *fu.outcomes.values()])
        rejected = all(" rejected by the venue" in text for text in fu.outcomes.values())
        status = "refused" if rejected and not fu.filled else fu.status
        self.s.recorder.commit()  # the order's end is on record before its command says so
        try:
            self.queue.mark(fu.command_id, status, result, client_order_id=fu.client_order_id,
                            only_pending=False)
        except Exception:  # the answer is a courtesy: the order's end is in the log either way
            log.exception("could not record the outcome of command %s", fu.command_id)

    def close(self, status: str) -> None:
        """The session ends: refuse what it will not take any more (never run it late)."""
        try:
            for cmd in self.queue.pending(self.s.sid):
                self.queue.mark(cmd.id, "refused", f"refused: session {self.s.sid} {status} before taking it")
        except Exception:  # ending must not fail on this (the database may be what failed)
            log.exception("could not refuse the pending commands of %s", self.s.sid)

    # -- internals -----------------------------------------------------------------------------
    def _follow(self, command_id: int, kind: str, status: str, result: str, first_cid: str) -> None:
        """Watch the orders a taken submit or rebalance sent until each is done (see
        :meth:`order_done`)."""
        if kind not in ("submit", "rebalance") or status != "done" or not first_cid:
            return
        state = self.s.ledger.state
        cids = [c for c, o in state.orders.items() if c >= first_cid and o.intent.tag.startswith(
            ("manual:", "rebalance:")) and state.order_sessions.get(c) == self.s.sid
            and o.status is not OrderStatus.DENIED and c not in self.watching]
        fu = _FollowUp(command_id, status, result, first_cid, {c: "" for c in sorted(cids)})
        done = [state.orders[c] for c in fu.outcomes if state.orders[c].status.is_terminal]
        for c in fu.outcomes:
            self.watching[c] = fu
        for o in done:
            self.order_done(o)

    def _applied_ids(self) -> set[int]:
        if self._applied is None:
            self._applied = {int(r.data()["command_id"])
                             for r in self.s.log.read(session_id=self.s.sid, kinds=("session.command",))}
        return self._applied

    def _invalid(self, cmd: Command, now: int) -> str:
        if now - cmd.created_ts > COMMAND_TTL_MS:
            return f"expired: not taken within {COMMAND_TTL_MS // 1000} s (the session was not running)"
        if cmd.kind not in KINDS:
            return f"unknown command {cmd.kind!r}"
        if cmd.kind == "cancel":
            return "" if isinstance(cmd.payload.get("client_order_id"), str) else "no client_order_id"
        if cmd.kind == "rebalance":
            try:
                parse_weights(cmd.payload.get("weights"), self.s.instruments)
            except ValidationError as exc:
                return f"not a valid rebalance: {exc}"
            return ""
        try:
            intent = intent_from_payload(cmd.payload)
        except (LyraError, KeyError, TypeError, ValueError) as exc:
            return f"not a valid order: {exc}"
        if intent.instrument_id not in self.s.instruments:
            return f"{intent.instrument_id} is not traded by session {self.s.sid}"
        return ""

    def _apply(self, info: dict[str, Any], t: int) -> tuple[str, str, str]:
        s = self.s
        with s.recorder.transaction() as tx:
            tx.append("session.command", info, actor=f"user:{info['actor']}", session_id=s.sid, ts=t)
        if info["kind"] == "submit":
            return self._submit(info, t)
        if info["kind"] == "rebalance":
            from lyra.session.rebalance import rebalance

            return rebalance(s, info, t)
        return self._cancel(info, t)

    def _submit(self, info: dict[str, Any], t: int) -> tuple[str, str, str]:
        s = self.s
        intent = intent_from_payload(info["payload"], tag=f"manual:{info['actor']}")
        s.show_market(intent.instrument_id, t)  # priced at the current market, not a stale one
        cid = s.gateway.next_client_id()  # the id the gateway gives it (children may follow)
        s._submit([intent], t)
        order = s.ledger.state.orders[cid]
        if order.status is OrderStatus.DENIED:
            return "refused", f"order {cid} denied by risk: {order.history[-1].reason}", cid
        return "done", f"order {cid} accepted by risk (status {order.status.value})", cid

    def _cancel(self, info: dict[str, Any], t: int) -> tuple[str, str, str]:
        from lyra.session import algo_runtime

        s = self.s
        cid = str(info["payload"]["client_order_id"])
        order = s.ledger.state.orders.get(cid)
        if order is None or s.ledger.state.order_sessions.get(cid) != s.sid:
            return "refused", f"refused: order {cid} is not an order of session {s.sid}", cid
        if order.status is OrderStatus.SUBMITTED:  # the broker contract: cancel what the venue acknowledged
            return "refused", (f"refused: order {cid} is not acknowledged by the venue yet; "
                               "cancel it again in a moment"), cid
        if cid not in s.working or (order.status, OrderEventType.REQUEST_CANCEL) not in TRANSITIONS:
            return "refused", f"refused: order {cid} is {order.status.value}, nothing to cancel", cid
        s.gateway.request_cancel(cid, t, f"cancel by {info['actor']}")
        s._drain(t)
        if s.algos is not None and s.algos.dirty:
            algo_runtime.pump(s, t)
        st = s.ledger.state.orders[cid].status
        if st is OrderStatus.CANCELLED:
            return "done", f"order {cid} cancelled", cid
        return "done", f"cancel of order {cid} sent (status {st.value})", cid


__all__ = ["COMMAND_TTL_MS", "STALE_AFTER_MS", "Command", "CommandQueue", "SessionCommands",
           "intent_from_payload", "intent_payload", "parse_weights"]
