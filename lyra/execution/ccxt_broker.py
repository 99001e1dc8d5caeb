"""CcxtBroker: a real venue behind the :class:`~lyra.execution.broker.Broker` protocol.

Talks to the venue through ccxt's REST API (sync), and, where the venue has them, listens to
its private websocket streams (``ccxt.pro`` ``watch_orders`` / ``watch_my_trades``) in a
background thread. Everything the venue says is parsed strictly
(:mod:`lyra.execution.venue_reports`) and turned into :class:`ExecutionReport` s whose
sequence is legal for the session's order: the broker keeps a shadow copy of every order and
applies each report to it before handing it on, so an out-of-order or stale update can never
corrupt the session's state (it is recorded in :attr:`CcxtBroker.anomalies` instead).

Never twice, never lost (DESIGN.md invariants 1-3):

- Every order carries our deterministic client order id to the venue (the parameter is a venue
  capability, :attr:`lyra.venues.Venue.client_order_id_param`).
- A timeout or network error on create is ambiguous: the venue may have the order. Before
  sending again the broker asks the venue for the client order id; only a definite "no such
  order" allows a re-send. Retries are bounded with exponential backoff and only for
  retryable errors (network, timeouts, 5xx, rate limits — honouring ``Retry-After``).
- An order whose fate cannot be learned is reported ``LOSE_TRACK`` (status UNKNOWN), blocks
  new orders on its instrument (they are rejected with the reason), and is resolved by the
  next :meth:`CcxtBroker.sync` or by restart reconciliation — never silently dropped.
- A venue that says "duplicate client order id" is proof the first send landed: the broker
  adopts the venue's order instead of failing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import ccxt

from lyra.core.clock import WALL_CLOCK
from lyra.core.enums import OrderType, Side, TimeInForce
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import MarketEvent
from lyra.core.orders import Fill, Order, OrderEvent
from lyra.execution.broker import (
    Balance,
    BrokerCapabilities,
    DuplicateOrder,
    ExecutionReport,
    MissingRiskDecision,
    OrderReport,
    UnknownOrder,
)
from lyra.execution.ccxt_streams import PrivateStreams
from lyra.execution.ccxt_support import (
    _AMBIGUOUS,
    _NEVER_RECEIVED,
    _NOT_EXECUTED,
    E,
    RetryPolicy,
    S,
    _entry_fill,
    _retry_after,
    _Tracked,
    _unchanged,
    _with_client_id,
)
from lyra.execution.deadman import DeadmanSwitch, arm_deadman
from lyra.execution.venue_reports import (
    UnknownVenueShape,
    balances_from_ccxt,
    fill_from_trade,
    order_report,
    venue_ids,
)
from lyra.venues import Venue, get_venue

log = logging.getLogger(__name__)

class CcxtBroker(PrivateStreams):
    """A live (or testnet) venue through ccxt. See the module docstring for the guarantees.

    ``exchange`` is a configured ``ccxt.<venue>`` instance (keys, sandbox already set);
    ``ws_exchange`` an optional ``ccxt.pro.<venue>`` instance for order and fill streams.
    ``instruments`` are the markets the session trades (``venue:BASE/QUOTE`` ids).
    """

    #: the venue keeps our orders across our restarts: the session commits before sending
    survives_restart = True

    def __init__(self, exchange: Any, instruments: Iterable[Instrument], *,
                 venue_name: str | None = None, ws_exchange: Any = None,
                 retry: RetryPolicy | None = None, rest_sync_interval_s: float = 1.0,
                 sleep: Callable[[float], None] = time.sleep,
                 now_ms: Callable[[], int] | None = None) -> None:
        self.exchange = exchange
        self.retry = retry or RetryPolicy()
        if isinstance(getattr(exchange, "options", None), dict) and "recvWindow" in exchange.options:
            exchange.options["recvWindow"] = int(self.retry.settle_s * 1000)
        self.venue_name = venue_name or str(exchange.id)
        self.venue: Venue = get_venue(self.venue_name)
        self.instruments = {i.id: i for i in instruments}
        self.symbols = {i.symbol: i.id for i in self.instruments.values()}
        self.rest_sync_interval_s = rest_sync_interval_s
        self._sleep = sleep
        self._now_ms = now_ms or WALL_CLOCK.now_ms
        self._orders: dict[str, _Tracked] = {}
        self._by_venue_id: dict[str, str] = {}
        self._reports: list[ExecutionReport] = []
        self._unknown: dict[str, str] = {}  # client id -> instrument id, state undetermined
        self._lock = threading.RLock()
        #: what the venue said that we could not use (unknown shapes, stale updates, ...)
        self.anomalies: list[dict[str, Any]] = []
        #: every create request sent, by client id (attempts); for audits and tests
        self.sends: dict[str, int] = {}
        self._last_sync = 0.0
        self._ws = ws_exchange
        self._ws_queue: queue.Queue[tuple[str, Any]] = queue.Queue()
        self._ws_thread: threading.Thread | None = None
        self._ws_stop = threading.Event()
        self._ws_loop: asyncio.AbstractEventLoop | None = None
        self.ws_healthy = False
        #: order and trade updates received through the private stream
        self.stream_updates = 0
        self._need_sync = False
        #: the venue's cancel-all-after timer, armed before the first order is sent
        #: (:mod:`lyra.execution.deadman`; set by the live session)
        self.deadman: DeadmanSwitch | None = None

    # ------------------------------------------------------------------ protocol
    @property
    def capabilities(self) -> BrokerCapabilities:
        return BrokerCapabilities(
            order_types=frozenset({OrderType.MARKET, OrderType.LIMIT}),
            time_in_force=frozenset(TimeInForce), post_only=True, reduce_only=True, fill_history=True)

    @property
    def blocked_instruments(self) -> dict[str, str]:
        """Instruments that take no new orders: instrument id -> the order we lost track of."""
        with self._lock:
            return {iid: cid for cid, iid in self._unknown.items()}

    def submit(self, order: Order, decision_id: str) -> None:
        """Send ``order`` once: see the module docstring for what happens on errors."""
        cid = order.client_order_id
        if not decision_id:
            raise MissingRiskDecision(cid)
        with self._lock:
            if cid in self._orders:
                raise DuplicateOrder("client_order_id", cid, "already sent to the venue; never send twice")
            inst = self.instruments.get(order.instrument_id)
            shadow = Order(cid, order.intent, order.created_ts)
            shadow.apply(OrderEvent(E.SUBMIT, order.created_ts))
            symbol = inst.symbol if inst else order.instrument_id.partition(":")[2]
            t = _Tracked(shadow, symbol, time.monotonic())
            self._orders[cid] = t
            reason = self._refusal(order, inst)
            if reason:
                self._emit(t, ExecutionReport(cid, E.REJECT, self._now_ms(), reason=reason))
                return
        if self.deadman is not None:
            arm_deadman(self.deadman)  # the order rests covered by the venue's timer from the start
        self._send(t)

    def cancel(self, client_order_id: str) -> None:
        """Ask the venue to cancel; the answer comes as a report. Safe to retry (idempotent)."""
        with self._lock:
            t = self._orders.get(client_order_id)
            if t is None:
                raise UnknownOrder("client_order_id", client_order_id, "never submitted through this broker")
            if t.order.status.is_terminal:
                return
            if t.order.status is not S.PENDING_CANCEL:
                t.order.apply(OrderEvent(E.REQUEST_CANCEL, self._now_ms()))
        q = self.venue.client_order_id_query_param
        for attempt in range(self.retry.attempts):
            try:
                raw = self.exchange.cancel_order(t.order.venue_order_id or None, t.symbol,
                                                 {q: client_order_id})
            except ccxt.OrderNotFound:
                # Gone already (filled or cancelled): learn how, then report.
                self._refresh(t)
                if t.order.status is S.PENDING_CANCEL:
                    self._emit(t, ExecutionReport(client_order_id, E.CANCEL_REJECT, self._now_ms(),
                                                  reason="venue: order not open"))
                return
            except (ccxt.OperationRejected, ccxt.InvalidOrder) as exc:
                self._refresh(t)
                if t.order.status is S.PENDING_CANCEL:
                    self._emit(t, ExecutionReport(client_order_id, E.CANCEL_REJECT, self._now_ms(),
                                                  reason=f"venue: {exc}"[:300]))
                return
            except (*_NOT_EXECUTED, *_AMBIGUOUS) as exc:
                log.warning("cancel %s: %s (attempt %d)", client_order_id, exc, attempt + 1)
                self._sleep(self.retry.delay(attempt))
                continue
            self._absorb_order(raw, t)
            if t.order.status is S.PENDING_CANCEL:
                self._refresh(t)
            return
        self._need_sync = True  # the next poll learns what happened

    def open_orders(self) -> list[OrderReport]:
        """The venue's open orders on our instruments."""
        out: list[OrderReport] = []
        for raw in self._list("fetch_open_orders"):
            rep = self._parse_order(raw)
            if rep is not None:
                out.append(rep)
        return out

    def get_order(self, client_order_id: str) -> OrderReport | None:
        """The venue's view of one order by client id; ``None`` if the venue never saw it."""
        t = self._orders.get(client_order_id)
        symbols = [t.symbol] if t else list(self.symbols)
        for sym in symbols:
            raw = self._fetch_by_client_id(client_order_id, sym)
            if raw is not None:
                return self._parse_order(raw)
        return None

    def fills_since(self, since_ts: int) -> list[Fill]:
        """The venue's fills on our instruments at or after ``since_ts`` (ms), deduplicated."""
        seen: set[str] = set()
        out: list[Fill] = []
        for raw in self._list("fetch_my_trades", since=since_ts):
            f = self._parse_fill(raw)
            if f is not None and f.fill_id not in seen and f.ts >= since_ts:
                seen.add(f.fill_id)
                out.append(f)
        out.sort(key=lambda f: (f.ts, f.fill_id))
        return out

    def balances(self) -> dict[str, Balance]:
        raw = self._call(self.exchange.fetch_balance)
        return balances_from_ccxt(raw, self.venue_name)

    def poll_reports(self) -> list[ExecutionReport]:
        """Reports since the last poll: websocket updates first, then a REST sync when the
        stream is down, an update was incomplete, or orders are in an unknown state."""
        self._drain_ws()
        now = time.monotonic()
        due = now - self._last_sync >= self.rest_sync_interval_s
        if self._need_sync or (due and (self._unknown or (not self.ws_healthy and self._has_open()))):
            self.sync()
        with self._lock:
            out, self._reports = self._reports, []
        return out

    def on_market(self, event: MarketEvent) -> None:
        """Market data is not needed to trade on a real venue."""

    # ------------------------------------------------------------------ sync and adoption
    def sync(self) -> None:
        """Ask the venue (REST) about every order not finished: one open-orders list per
        symbol, then each order that left it (to learn how) or that we lost track of, with its
        fills. Safe to call any time."""
        self._last_sync = time.monotonic()
        self._need_sync = False
        with self._lock:
            pending = [t for t in self._orders.values() if not t.order.status.is_terminal]
        if not pending:
            return
        try:
            listed = {}
            for raw in self._list("fetch_open_orders"):
                _voi, cid = venue_ids(raw, self.venue_name)
                listed[cid] = raw
        except ccxt.BaseError as exc:
            log.warning("sync: open orders: %s", exc)
            self._need_sync = True
            return
        for t in pending:
            o = t.order
            raw = listed.get(o.client_order_id)
            try:
                if raw is None or o.status in (S.SUBMITTED, S.UNKNOWN):
                    self._refresh(t)  # finished, never arrived, or unknown: ask for it by id
                elif _unchanged(raw, o):
                    continue
                else:
                    self._absorb_order(raw, t, fetch_trades=True)
            except ccxt.BaseError as exc:
                log.warning("sync %s: %s", o.client_order_id, exc)
                self._need_sync = True

    def track(self, order: Order, symbol: str | None = None) -> None:
        """Take over an order the session already sent (after a restart), so its venue
        updates reach the session. ``order`` is the session's current view."""
        with self._lock:
            if order.client_order_id in self._orders:
                return
            shadow = Order(order.client_order_id, order.intent, order.created_ts)
            for ev in order.history:
                shadow.apply(ev)
            inst = self.instruments.get(order.instrument_id)
            t = _Tracked(shadow, symbol or (inst.symbol if inst else order.instrument_id.partition(":")[2]),
                         time.monotonic() - 3600)
            for ev in order.history:
                if ev.fill is not None:
                    t.fill_ids.add(ev.fill.fill_id)
            if order.venue_order_id:
                self._by_venue_id[order.venue_order_id] = order.client_order_id
            if shadow.status is S.UNKNOWN:
                self._unknown[order.client_order_id] = order.instrument_id
            self._orders[order.client_order_id] = t

    def adopt(self, view: OrderReport, instrument_fills: Iterable[Fill] = ()) -> None:
        """Bring a tracked order up to the venue's ``view`` (fills first, then its state)."""
        t = self._orders.get(view.client_order_id)
        if t is None:
            raise UnknownOrder("client_order_id", view.client_order_id, "not tracked by this broker")
        self._apply_view(t, view, [f for f in instrument_fills if f.client_order_id == view.client_order_id])

    def refresh(self, client_order_id: str) -> None:
        """Ask the venue about one tracked order now (REST, retried) and report any change."""
        t = self._orders.get(client_order_id)
        if t is None:
            raise UnknownOrder("client_order_id", client_order_id, "not tracked by this broker")
        self._call(self._refresh, t)

    def resolve_absent(self, client_order_id: str) -> None:
        """The venue has no order with this client id: close it in our books with the reason
        (never arrived: rejected; was working: cancelled by the venue)."""
        with self._lock:
            t = self._orders[client_order_id]
            o = t.order
            if o.status.is_terminal:
                return
            now = self._now_ms()
            if o.status in (S.SUBMITTED, S.UNKNOWN, S.PENDING_CANCEL) and o.filled_quantity == 0:
                self._emit(t, ExecutionReport(client_order_id, E.REJECT, now,
                                              reason=_NEVER_RECEIVED))
            else:
                self._emit(t, ExecutionReport(client_order_id, E.CANCEL, now,
                                              reason="the venue no longer knows the order"))
            self._unknown.pop(client_order_id, None)

    def add_fill(self, fill: Fill) -> None:
        """Report a fill the venue has for a tracked order (e.g. a late fill of an order the
        log already closed). Duplicates and overfills are refused and recorded."""
        with self._lock:
            t = self._orders.get(fill.client_order_id)
            if t is None:
                raise UnknownOrder("client_order_id", fill.client_order_id, "not tracked by this broker")
            self._take_fill(t, fill)

    def cancel_untracked(self, view: OrderReport) -> None:
        """Cancel an order the session does not track (an orphan found by reconciliation)."""
        symbol = next((i.symbol for i in self.instruments.values() if i.id == view.instrument_id),
                      view.instrument_id.partition(":")[2])
        q = self.venue.client_order_id_query_param
        params = {q: view.client_order_id} if view.client_order_id else {}
        with contextlib.suppress(ccxt.OrderNotFound):  # finished in the meantime
            self._call(self.exchange.cancel_order, view.venue_order_id or None, symbol, params)

    # ------------------------------------------------------------------ sending
    def _refusal(self, order: Order, inst: Instrument | None) -> str:
        if inst is None:
            return f"instrument {order.instrument_id} is not traded by this broker"
        why = self.capabilities.unsupported(order.intent)
        if why:
            return why
        if order.intent.reduce_only and order.side is Side.BUY:
            # Spot: a sell can never open a short (the venue checks the balance), so a reduce-only
            # sell needs no venue flag; a reduce-only buy has nothing to reduce.
            return "reduce-only buy on a spot venue: there is no short position to reduce"
        blocked = self.blocked_instruments.get(order.instrument_id)
        if blocked:
            return (f"instrument {order.instrument_id} is blocked: order {blocked} is in an unknown state "
                    "until reconciliation resolves it")
        return ""

    def _params(self, order: Order) -> dict[str, Any]:
        intent = order.intent
        p: dict[str, Any] = {self.venue.client_order_id_param: order.client_order_id}
        if intent.order_type is OrderType.LIMIT:
            p["timeInForce"] = intent.time_in_force.value.upper()
        if intent.post_only:
            p["postOnly"] = True
        return p

    def _send(self, t: _Tracked) -> None:
        o = t.order
        cid = o.client_order_id
        intent = o.intent
        price = float(intent.limit_price) if intent.limit_price is not None else None
        ambiguous = False
        for attempt in range(self.retry.attempts):
            self.sends[cid] = self.sends.get(cid, 0) + 1
            last_send = time.monotonic()
            try:
                raw = self.exchange.create_order(t.symbol, intent.order_type.value, intent.side.value,
                                                 float(intent.quantity), price, self._params(o))
            except ccxt.InsufficientFunds as exc:
                self._reject(t, f"venue: insufficient funds: {exc}")
                return
            except ccxt.InvalidOrder as exc:
                # "Duplicate client id" (or any refusal after an ambiguous send) may mean the
                # first send landed: adopt the venue's order, never send again.
                if (self._is_duplicate(exc) or ambiguous) and self._lookup(t) == "found":
                    return
                self._reject(t, f"venue: {exc}")
                return
            except (ccxt.AuthenticationError, ccxt.PermissionDenied, ccxt.BadRequest, ccxt.BadSymbol,
                    ccxt.NotSupported) as exc:
                self._reject(t, f"venue: {type(exc).__name__}: {exc}")
                return
            except _NOT_EXECUTED as exc:
                log.warning("order %s: %s; retrying (attempt %d)", cid, exc, attempt + 1)
                self._sleep(self.retry.delay(attempt, _retry_after(self.exchange)))
                continue
            except _AMBIGUOUS as exc:
                # The venue may have it. Ask before sending again.
                ambiguous = True
                log.warning("order %s: %s; asking the venue before re-sending", cid, exc)
                found = self._lookup(t)
                wait = last_send + self.retry.settle_s - time.monotonic()
                if found == "absent" and wait > 0:
                    # Not there *yet* may be a slow request: ask again once its window closed.
                    self._sleep(wait)
                    found = self._lookup(t)
                if found == "found":
                    return
                if found == "undetermined":
                    self._lose_track(t, f"{type(exc).__name__} on send and the venue could not be asked")
                    return
                self._sleep(self.retry.delay(attempt))
                continue
            except ccxt.ExchangeError as exc:
                self._reject(t, f"venue: {type(exc).__name__}: {exc}")
                return
            self._absorb_order(raw, t)
            return
        if ambiguous:
            found = self._lookup(t)
            if found == "found":
                return
            if found == "undetermined":
                self._lose_track(t, "retries exhausted and the venue could not be asked")
                return
        self._reject(t, f"venue unavailable: gave up after {self.retry.attempts} attempts")

    def _is_duplicate(self, exc: Exception) -> bool:
        if isinstance(exc, ccxt.DuplicateOrderId):
            return True
        text = str(exc)
        return any(m in text for m in self.venue.duplicate_order_messages)

    def _lookup(self, t: _Tracked) -> str:
        """``found`` (and adopted), ``absent`` (the venue never saw it), or ``undetermined``."""
        cid = t.order.client_order_id
        for attempt in range(self.retry.attempts):
            try:
                raw = self._fetch_by_client_id(cid, t.symbol, raise_errors=True)
            except ccxt.BaseError as exc:
                log.warning("lookup %s: %s (attempt %d)", cid, exc, attempt + 1)
                self._sleep(self.retry.delay(attempt))
                continue
            if raw is None:
                return "absent"
            self._absorb_order(raw, t)
            return "found"
        return "undetermined"

    def _fetch_by_client_id(self, cid: str, symbol: str, *, raise_errors: bool = False) -> Any:
        q = self.venue.client_order_id_query_param
        try:
            return self.exchange.fetch_order(None, symbol, {q: cid})
        except ccxt.OrderNotFound:
            return None
        except ccxt.BaseError:
            if raise_errors:
                raise
            return None

    def _reject(self, t: _Tracked, reason: str) -> None:
        with self._lock:
            self._emit(t, ExecutionReport(t.order.client_order_id, E.REJECT, self._now_ms(),
                                          reason=reason[:500]))

    def _lose_track(self, t: _Tracked, reason: str) -> None:
        with self._lock:
            cid = t.order.client_order_id
            self._unknown[cid] = t.order.instrument_id
            self._emit(t, ExecutionReport(cid, E.LOSE_TRACK, self._now_ms(), reason=reason))
            self._need_sync = True

    # ------------------------------------------------------------------ learning the venue's view
    def _refresh(self, t: _Tracked) -> None:
        """Fetch the order and its trades by REST and bring the shadow up to date."""
        cid = t.order.client_order_id
        raw = self._fetch_by_client_id(cid, t.symbol, raise_errors=True)
        if raw is None:
            if t.order.status is S.UNKNOWN and time.monotonic() - t.sent_at >= self.retry.settle_s:
                self._emit(t, ExecutionReport(cid, E.REJECT, self._now_ms(),
                                              reason=_NEVER_RECEIVED))
                self._unknown.pop(cid, None)
            return
        self._absorb_order(raw, t, fetch_trades=True)

    def _absorb_order(self, raw: Any, t: _Tracked, *, fetch_trades: bool = False) -> None:
        view = self._parse_order(raw, t)
        if view is None:
            return
        fills = [f for f in (self._parse_fill(_entry_fill(x, raw), t) for x in (raw.get("trades") or []))
                 if f is not None]
        known = sum((f.quantity for f in fills if f.fill_id not in t.fill_ids), t.order.filled_quantity)
        if view.filled_quantity > known and (fetch_trades or view.status.is_terminal):
            fills.extend(self._order_trades(t, view))
        self._apply_view(t, view, fills)

    def _order_trades(self, t: _Tracked, view: OrderReport) -> list[Fill]:
        try:
            raws = self.exchange.fetch_order_trades(view.venue_order_id, t.symbol)
        except ccxt.NotSupported:
            raws = self.exchange.fetch_my_trades(t.symbol, params={"orderId": view.venue_order_id})
        except ccxt.BaseError as exc:
            log.warning("trades of %s: %s", t.order.client_order_id, exc)
            self._need_sync = True
            return []
        return [f for f in (self._parse_fill(x, t) for x in raws) if f is not None]

    def _apply_view(self, t: _Tracked, view: OrderReport, fills: list[Fill]) -> None:
        """Fills first (deduplicated, oldest first), then the state change the view implies."""
        with self._lock:
            o = t.order
            cid = o.client_order_id
            if view.venue_order_id and not o.venue_order_id:
                self._by_venue_id[view.venue_order_id] = cid
            t.venue_filled = max(t.venue_filled, view.filled_quantity)
            ts = view.ts or self._now_ms()
            if o.status in (S.SUBMITTED, S.UNKNOWN) and view.status in (S.ACCEPTED, S.PARTIALLY_FILLED,
                                                                        S.PENDING_CANCEL):
                self._emit(t, ExecutionReport(cid, E.ACCEPT, ts, venue_order_id=view.venue_order_id))
            for f in sorted(fills, key=lambda f: (f.ts, f.fill_id)):
                self._take_fill(t, f, view.venue_order_id)
            if o.filled_quantity < view.filled_quantity:
                # The venue says more has filled than the fills we have seen: they are on
                # their way (stream) or must be fetched; never invent them.
                self._need_sync = True
                return
            closing = {S.CANCELLED: E.CANCEL, S.EXPIRED: E.EXPIRE, S.REJECTED: E.REJECT}.get(view.status)
            if closing is not None and not o.status.is_terminal:
                if closing is E.REJECT and o.status not in (S.SUBMITTED, S.PENDING_CANCEL, S.UNKNOWN):
                    closing = E.CANCEL
                why = view.reason or f"venue: {view.status.value}"
                self._emit(t, ExecutionReport(cid, closing, ts, reason=why,
                                              venue_order_id=view.venue_order_id))
            if o.status.is_terminal or o.status is not S.UNKNOWN:
                self._unknown.pop(cid, None)

    def _take_fill(self, t: _Tracked, f: Fill, venue_order_id: str = "", source: str = "") -> None:
        """The one way a venue's fill reaches the session: once per fill id, never more than
        the order has left (an overfill is recorded as an anomaly, not applied)."""
        with self._lock:
            if f.fill_id in t.fill_ids:
                return
            o = t.order
            if f.quantity > o.remaining:
                self._anomaly("overfill", o.client_order_id,
                              f"{source}fill {f.fill_id} of {f.quantity} > remaining {o.remaining}")
                return
            t.fill_ids.add(f.fill_id)
            self._emit(t, ExecutionReport(o.client_order_id, o.fill_event_type(f.quantity), f.ts, fill=f,
                                          venue_order_id=venue_order_id))

    def _emit(self, t: _Tracked, report: ExecutionReport) -> None:
        """Apply to the shadow first: only legal reports reach the session."""
        try:
            t.order.apply(report.to_event())
        except ValidationError as exc:
            self._anomaly("illegal", report.client_order_id, f"{report.type.value}: {exc}")
            return
        self._reports.append(report)

    def _anomaly(self, what: str, cid: str, detail: str, raw: Any = None) -> None:
        log.warning("venue %s: %s %s: %s", self.venue_name, what, cid, detail)
        self.anomalies.append({"what": what, "client_order_id": cid, "detail": detail[:500],
                               "raw": raw if isinstance(raw, dict | list | str | None) else repr(raw)})

    # ------------------------------------------------------------------ parsing
    def _parse_order(self, raw: Any, t: _Tracked | None = None) -> OrderReport | None:
        try:
            iid = self.symbols.get(str(raw.get("symbol")), None) if isinstance(raw, dict) else None
            rep = order_report(raw, self.venue_name, iid)
        except UnknownVenueShape as exc:
            self._anomaly("unknown-shape", t.order.client_order_id if t else "", str(exc), exc.raw)
            return None
        if t is not None and rep.client_order_id and rep.client_order_id != t.order.client_order_id:
            self._anomaly("foreign-order", t.order.client_order_id,
                          f"venue answered with client id {rep.client_order_id}")
            return None
        if t is not None and not rep.client_order_id:
            rep = _with_client_id(rep, t.order.client_order_id)
        return rep

    def _parse_fill(self, raw: Any, t: _Tracked | None = None) -> Fill | None:
        ids = dict(self._by_venue_id)
        if t is not None and isinstance(raw, dict) and raw.get("order"):
            ids.setdefault(str(raw["order"]), t.order.client_order_id)
        try:
            f = fill_from_trade(raw, self.venue_name, client_ids=ids)
        except UnknownVenueShape as exc:
            self._anomaly("unknown-shape", t.order.client_order_id if t else "", str(exc), exc.raw)
            return None
        if t is not None and not f.client_order_id:
            return None
        return f

    # ------------------------------------------------------------------ REST plumbing
    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """A read with bounded retries on retryable errors (reads are always safe to repeat)."""
        for attempt in range(self.retry.attempts):
            try:
                return fn(*args, **kwargs)
            except (*_NOT_EXECUTED, *_AMBIGUOUS) as exc:
                if attempt + 1 == self.retry.attempts:
                    raise
                log.warning("%s: %s (attempt %d)", getattr(fn, "__name__", fn), exc, attempt + 1)
                self._sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")

    def _list(self, method: str, **kwargs: Any) -> list[Any]:
        fn = getattr(self.exchange, method)
        if self.venue.private_lists_need_symbol:
            out: list[Any] = []
            for sym in self.symbols:
                out.extend(self._call(fn, sym, **kwargs))
            return out
        return [x for x in self._call(fn, None, **kwargs) if x.get("symbol") in self.symbols]

    def _has_open(self) -> bool:
        return any(not t.order.status.is_terminal for t in self._orders.values())

    def __enter__(self) -> CcxtBroker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
