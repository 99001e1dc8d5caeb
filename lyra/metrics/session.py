"""Metrics of a running session, at almost no cost to its loop.

Nothing is added to the per-bar loop. Observers are attached from outside, on this session's
objects only (instance attributes; the classes are untouched):

- the **committed log entries**: every ``GroupCommit`` commit hands its records to the event
  log's ``mirror``; :class:`SessionMetrics` wraps that one call on this session's log and
  counts what was committed (risk decisions, submits, denials, venue rejects, fills, fees,
  cancels, ack and fill latencies). Counting committed entries also means the counters agree
  with the database exactly: on attach they start from the session's log, so a resumed
  session reports the same totals as ``SELECT count(*)``;
- the **heartbeat**: the control plane's ``poll`` (4 times a second) notes the wall time and
  the events processed;
- the **decision price** of each order: the gateway's ``submit`` notes the marks its intents
  saw, for the slippage of their fills (:mod:`lyra.metrics.execution`);
- a live broker's **venue errors**: its ccxt exchange's ``fetch`` counts what the venue refused
  (rate limits apart).

Everything else (equity, positions, PnL, balances, open orders, trading state, risk limits,
the drawdown breaker's view, and the live feeds of :mod:`lyra.metrics.feeds`) is read from
the session when Prometheus scrapes, on the scrape's thread; a value that cannot be read
consistently at that instant is left out of that scrape rather than blocking the loop.
"""

from __future__ import annotations

import json
import logging
import platform
import re
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from lyra.audit.chain import EventRecord
from lyra.metrics.catalogue import BY_NAME
from lyra.metrics.endpoint import MetricsEndpoint
from lyra.metrics.execution import SLIPPAGE_BUCKETS, DecisionPrices, VenueErrors, risk_families, venue_errors
from lyra.metrics.feeds import FeedCollector
from lyra.metrics.hist import PlainHistogram as _Hist
from lyra.metrics.labels import BoundedLabel
from lyra.store.tables import events

log = logging.getLogger(__name__)

#: Session-clock latencies: paper latency models (tens of ms) up to a slow live venue.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: One group commit of the event log.
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
_TERMINAL = frozenset({"order.fill", "order.cancel", "order.reject", "order.expire", "order.deny"})
_COUNTED = frozenset({"risk.decision", "order.submit", "order.deny", "order.reject", "order.accept",
                      "order.fill", "order.partial_fill", "order.cancel", "order.expire", "order.lose_track",
                      "session.kill", "reconcile.completed", "reconcile.difference"})


# Fields of canonical JSON payloads (sorted keys, no spaces; ids never contain quotes).
_CID = re.compile(r'"client_order_id":"([^"]*)"')
_CHECK = re.compile(r'"check":"([^"]*)"')
_LIQ = re.compile(r'"liquidity":"([^"]*)"')
_FEE = re.compile(r'"fee":"([^"]*)"')
_KIND = re.compile(r'"kind":"([^"]*)"')
_FEE_CUR = re.compile(r'"fee_currency":"([^"]*)"')
_IID = re.compile(r'"instrument_id":"([^"]*)"')
_CID_HEAD = '{"client_order_id":"'
_SUBMITTED = ("lyra_orders_submitted",)
#: A fill's adjacent keys in canonical JSON: fee, fee_currency, (fill_id, instrument_id),
#: liquidity, price, quantity, side.
_FILL = re.compile(r'"fee":"([^"]*)","fee_currency":"([^"]*)","fill_id":"[^"]*","instrument_id":"[^"]*",'
                   r'"liquidity":"([^"]*)","price":"([^"]*)","quantity":"([^"]*)","side":"([a-z]*)"')
_PRICE = re.compile(r'"price":"([^"]*)"')
_QTY = re.compile(r'"quantity":"([^"]*)"')


def _cid(text: str) -> str:
    if text.startswith(_CID_HEAD):  # order entries: the id is the first key (sorted keys)
        return text[20:text.find('"', 20)]
    m = _CID.search(text)
    return m.group(1) if m else ""


def _help(name: str) -> str:
    return BY_NAME[name].help


def build_info(registry: CollectorRegistry) -> None:
    """``lyra_build_info{version, python}`` on ``registry``."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version("lyra")
    except PackageNotFoundError:  # pragma: no cover - running from a checkout without install
        v = "unknown"
    Info("lyra_build", _help("lyra_build"), registry=registry).info(
        {"version": v, "python": platform.python_version()})


def standard_registry() -> CollectorRegistry:
    """A registry with the process's CPU/memory metrics and ``lyra_build_info``."""
    from prometheus_client.process_collector import ProcessCollector

    reg = CollectorRegistry()
    ProcessCollector(registry=reg)
    build_info(reg)
    return reg


class SessionMetrics(Collector):
    """The metrics of one session (see the module doc). :func:`session_metrics` attaches and
    serves them; tests and benchmarks can build one without an HTTP endpoint."""

    def __init__(self, session: Any, registry: CollectorRegistry | None = None) -> None:
        self.s = session
        sid = session.sid
        self.sid = sid
        self.registry = reg = registry if registry is not None else standard_registry()
        # Counts from committed entries: plain dict increments on the commit path (cheaper
        # than prometheus_client's locked children), turned into families at scrape time.
        # Key: (family, *label values without session_id).
        self.counts: dict[tuple[str, ...], float] = dict.fromkeys(
            [("lyra_orders_submitted",), ("lyra_orders_cancelled",), ("lyra_orders_expired",),
             ("lyra_kill_switch_activations",), ("lyra_audit_entries_appended",),
             ("lyra_reconciliations",)], 0)
        self.ack_latency = _Hist(LATENCY_BUCKETS)
        self.fill_latency = _Hist(LATENCY_BUCKETS)
        self.append_latency = _Hist(COMMIT_BUCKETS)
        self.slippage = _Hist(SLIPPAGE_BUCKETS)
        self.slippage_cost = 0.0
        self.decisions = DecisionPrices(session.marks)
        self.venue: VenueErrors | None = None
        self.balances_ok: float | None = None
        self._recon_kind = BoundedLabel(20, normalise=False)
        # Label guards: reasons and checks are normalised and capped (no unbounded series).
        self._venue_reason = BoundedLabel(25)
        self._check = BoundedLabel(40, normalise=False)
        self._currency = BoundedLabel(20, normalise=False)
        # Orders in flight, by client order id: submit time (latencies), denying check, unknown.
        self._submit_ts: dict[str, int] = {}
        self._acked: set[str] = set()
        self._deny_check: dict[str, str] = {}
        self._unknown: set[str] = set()
        self._filled: set[str] = set()
        self.heartbeat_s = 0.0
        self.polled_events = 0
        self._peak: float | None = None
        self._orig: dict[str, Any] = {}
        reg.register(self)
        reg.register(FeedCollector())  # the live feeds of this process (lyra.metrics.feeds)

    # ------------------------------------------------------------------ attach / detach
    def attach(self) -> SessionMetrics:
        """Start observing: seed the counters from the session's log, wrap the two hooks."""
        s = self.s
        self.seed(s.engine)
        log_ = s.log
        group = s.recorder.group
        ctl = s.control
        gw = s.gateway
        self._orig = {"mirror": log_.mirror, "commit": group.commit, "poll": ctl.poll, "submit": gw.submit}
        mirror, commit, poll, submit = (self._orig[k] for k in ("mirror", "commit", "poll", "submit"))
        note = self.decisions.note
        on_records = self.on_records
        observe = self.append_latency.observe

        def observed_mirror(records: list[EventRecord]) -> None:
            mirror(records)
            try:
                on_records(records)
            except Exception:  # metrics never stop trading
                log.exception("metrics: could not count committed entries of %s", self.sid)

        def timed_commit() -> None:
            t0 = time.perf_counter()
            pending = group.pending
            commit()
            if pending:
                observe(time.perf_counter() - t0)

        def noted_poll(n: int, t: int) -> bool:
            self.heartbeat_s = time.time()
            self.polled_events = n
            return bool(poll(n, t))

        def noted_submit(intents: Any, t: int) -> None:
            try:
                note(intents, t)  # the decision price of each order (lyra.metrics.execution)
            except Exception:  # metrics never stop trading
                log.exception("metrics: could not note decision prices of %s", self.sid)
            submit(intents, t)

        # Instance attributes shadow the methods for this session only (the classes are untouched).
        log_.mirror = observed_mirror
        group.commit = timed_commit
        ctl.poll = noted_poll
        gw.submit = noted_submit
        try:
            self.venue = venue_errors(s)
        except Exception:
            log.exception("metrics: venue errors of %s are not counted", self.sid)
        return self

    def detach(self) -> None:
        """Give the session its own methods back."""
        if not self._orig:
            return
        s = self.s
        for obj, name in ((s.log, "mirror"), (s.recorder.group, "commit"), (s.control, "poll"),
                          (s.gateway, "submit")):
            if name in vars(obj):
                delattr(obj, name)
        if self.venue is not None:
            self.venue.detach()
        self._orig = {}

    def seed(self, engine: Any) -> None:
        """Count what the session already committed (a resumed session): the counters then
        equal the database's totals."""
        q = (sa.select(events.c.seq, events.c.ts, events.c.actor, events.c.kind, events.c.session_id,
                       events.c.payload)
             .where(events.c.session_id == self.sid, events.c.kind.in_(_COUNTED)).order_by(events.c.seq))
        batch: list[EventRecord] = []
        with engine.connect() as conn:
            for r in conn.execute(q):
                batch.append(EventRecord(r.seq, r.ts, r.actor, r.kind, r.session_id, r.payload, "", ""))
                if len(batch) >= 5000:
                    self.on_records(batch, count_appended=False)
                    batch = []
        self.on_records(batch, count_appended=False)

    # ------------------------------------------------------------------ committed entries
    def on_records(self, records: Sequence[EventRecord], *, count_appended: bool = True) -> None:
        """Count committed log entries (called after each commit with its records).

        Payloads are canonical JSON (sorted keys, no spaces): the few fields needed are read
        with anchored patterns instead of parsing every payload, and labelled children are
        cached, so a batch of a thousand entries costs well under a millisecond. The kinds
        every order writes come first: this runs on the session's loop."""
        sid = self.sid
        c = self.counts
        get = c.get
        submit_ts, acked, filled, unknown = self._submit_ts, self._acked, self._filled, self._unknown
        decisions = self.decisions
        key: tuple[str, ...]
        for r in records:
            kind = r.kind
            if kind not in _COUNTED or r.session_id != sid:
                continue
            text = r.payload
            if kind == "risk.decision":
                approved = '"approved":true' in text
                if approved and '"check":""' in text:  # the common case: no check decided it
                    check = "none"
                else:
                    m = _CHECK.search(text)
                    check = self._check(m.group(1) if m and m.group(1) else "none")
                key = ("lyra_risk_checks", check, "approved" if approved else "denied")
                c[key] = get(key, 0) + 1
                if not approved:
                    self._deny_check[_cid(text)] = check
                else:
                    m = _IID.search(text)
                    if m is not None:
                        decisions.decided(_cid(text), m.group(1), int(r.ts))
                continue
            if kind[:6] != "order.":
                self._other(kind, text)
                continue
            cid = _cid(text)
            if kind == "order.submit":
                c[_SUBMITTED] += 1
                submit_ts[cid] = int(r.ts)
                continue
            if kind == "order.accept":
                t0 = submit_ts.get(cid)
                if t0 is not None and cid not in acked:
                    acked.add(cid)
                    self.ack_latency.observe(max(0, int(r.ts) - t0) / 1000)
                if cid in unknown:
                    unknown.discard(cid)  # reconciled: the venue has it working
                continue
            if kind == "order.fill" or kind == "order.partial_fill":
                self._fill(text, decisions.price(cid))
                t0 = submit_ts.get(cid)
                if t0 is not None and cid not in filled:
                    filled.add(cid)
                    self.fill_latency.observe(max(0, int(r.ts) - t0) / 1000)
            elif kind == "order.deny":
                key = ("lyra_orders_rejected", "risk", self._deny_check.pop(cid, "risk"))
                c[key] = get(key, 0) + 1
            elif kind == "order.reject":
                reason = json.loads(text).get("reason") or ""  # rare: parse it properly
                key = ("lyra_orders_rejected", "venue", self._venue_reason(str(reason)))
                c[key] = get(key, 0) + 1
            elif kind == "order.cancel":
                c[("lyra_orders_cancelled",)] += 1
            elif kind == "order.expire":
                c[("lyra_orders_expired",)] += 1
            elif kind == "order.lose_track":
                unknown.add(cid)
            if kind in _TERMINAL:
                decisions.done(cid)
                submit_ts.pop(cid, None)
                acked.discard(cid)
                unknown.discard(cid)
                filled.discard(cid)
        if count_appended and records:
            c[("lyra_audit_entries_appended",)] += len(records)

    def _other(self, kind: str, text: str) -> None:
        """The rare kinds: kill switch, reconciliation."""
        c = self.counts
        if kind == "session.kill":
            c[("lyra_kill_switch_activations",)] += 1
        elif kind == "reconcile.difference":
            m = _KIND.search(text)
            key = ("lyra_reconciliation_differences", self._recon_kind(m.group(1) if m else ""))
            c[key] = c.get(key, 0) + 1
        elif kind == "reconcile.completed":
            c[("lyra_reconciliations",)] += 1
            self.balances_ok = 0.0 if '"balances_ok":false' in text else 1.0

    def _fill(self, text: str, decided: float | None) -> None:
        """Fills by liquidity, fees by currency, slippage against ``decided`` (the order's
        decision price, if known): one pattern over the fill's adjacent keys."""
        c = self.counts
        m = _FILL.search(text)
        if m is not None:
            fee_s, cur, liq, price, qty, side = m.groups()
        else:  # a fill with other keys in between: the fields one by one
            fee_s, cur, liq, price, qty = (x.group(1) if x else "" for x in (
                _FEE.search(text), _FEE_CUR.search(text), _LIQ.search(text), _PRICE.search(text),
                _QTY.search(text)))
            side = "sell" if '"side":"sell"' in text else "buy"
        key = ("lyra_fills", liq)
        c[key] = c.get(key, 0) + 1
        if fee_s:
            fee = float(fee_s)
            if fee > 0:
                key = ("lyra_fees", self._currency(cur))
                c[key] = c.get(key, 0) + fee
        if decided is not None and price and qty:
            # signed as a cost: a buy above, or a sell below, the price it was decided at
            diff = (float(price) - decided) if side != "sell" else (decided - float(price))
            self.slippage.observe(diff / decided)
            self.slippage_cost += diff * float(qty)

    # ------------------------------------------------------------------ scrape time
    def describe(self) -> list[Any]:
        return []  # collected dynamically: no fixed description to check for clashes

    def collect(self) -> Iterator[Any]:
        """Read the session's current state (on the scrape's thread)."""
        s = self.s
        sid = self.sid
        cfg = s.config
        info = GaugeMetricFamily("lyra_session_info", _help("lyra_session"),
                                 labels=["session_id", "mode", "strategy", "venue"])
        info.add_metric([sid, str(cfg.mode), str(cfg.strategy), str(cfg.venue)], 1)
        yield info
        yield _gauge("lyra_session_heartbeat_timestamp_seconds", sid, self.heartbeat_s or None)
        per_instrument = _copy(s.last_data_ts)
        data_ts = max(list(per_instrument.values()) or [0])
        yield _gauge("lyra_session_data_timestamp_seconds", sid, data_ts / 1000 if data_ts else None)
        name = "lyra_instrument_data_timestamp_seconds"
        g = GaugeMetricFamily(name, _help(name), labels=["session_id", "instrument"])
        for iid, ts in sorted(per_instrument.items()):
            g.add_metric([sid, iid], ts / 1000)
        yield g
        n = max(int(getattr(s.control, "n", 0)), self.polled_events, int(s.result.events))
        ev = CounterMetricFamily("lyra_session_events_processed", _help("lyra_session_events_processed"),
                                 labels=["session_id"])
        ev.add_metric([sid], n)
        yield ev
        yield from self._counted()
        yield _gauge("lyra_session_killed", sid, 1.0 if s.killed else 0.0)
        yield _gauge("lyra_orders_open", sid, float(len(s.working)))
        yield _gauge("lyra_orders_unknown", sid, float(len(self._unknown)))
        yield _gauge("lyra_reconciliation_balances_ok", sid, self.balances_ok)
        yield _gauge("lyra_risk_limit_drawdown_ratio", sid, _drawdown_limit(s))
        state = _trading_state(s)
        if state is not None:
            g = GaugeMetricFamily("lyra_session_trading_state", _help("lyra_session_trading_state"),
                                  labels=["session_id", "state"])
            for st in ("active", "reducing", "halted"):
                g.add_metric([sid, st], 1.0 if state == st else 0.0)
            yield g
        yield _gauge("lyra_slippage_cost", sid, self.slippage_cost)
        if self.venue is not None:
            yield from self.venue.families(sid)
        yield from risk_families(s)
        yield from self._portfolio()

    def _counted(self) -> Iterator[Any]:
        """The counts of committed entries, and the three histograms."""
        sid = self.sid
        for _ in range(3):  # a commit may add a key while we copy: try again
            try:
                counts = dict(self.counts)
                break
            except RuntimeError:
                continue
        else:
            return
        families: dict[str, CounterMetricFamily] = {}
        for key, value in sorted(counts.items()):
            name = key[0]
            fam = families.get(name)
            if fam is None:
                fam = families[name] = _counter(name)
            fam.add_metric([sid, *key[1:]], value)
        for name in _COUNTER_NAMES:  # declared even before the first increment
            yield families.get(name) or _counter(name)
        for name, h in (("lyra_order_ack_latency_seconds", self.ack_latency),
                        ("lyra_order_fill_latency_seconds", self.fill_latency),
                        ("lyra_audit_append_latency_seconds", self.append_latency),
                        ("lyra_fill_slippage_ratio", self.slippage)):
            fam_h = HistogramMetricFamily(name, _help(name), labels=["session_id"])
            fam_h.add_metric([sid], h.cumulative(), h.sum)
            yield fam_h

    def _portfolio(self) -> Iterator[Any]:
        s = self.s
        sid = self.sid
        for _ in range(3):  # the loop may change a dict while we read it: try again
            try:
                equity = float(s.equity())
                holdings = dict(s.holdings)
                cash = dict(s.cash)
                marks = dict(s.marks)
                positions = {iid: p for (psid, iid), p in list(s.ledger.state.positions.items())
                             if psid == sid}
                break
            except RuntimeError:
                continue
        else:
            return
        self._peak = equity if self._peak is None else max(self._peak, equity)
        yield _gauge("lyra_equity", sid, equity)
        yield _gauge("lyra_equity_peak", sid, self._peak)
        yield _gauge("lyra_drawdown_ratio", sid, 1 - equity / self._peak if self._peak > 0 else 0.0)
        q = GaugeMetricFamily("lyra_position_quantity", _help("lyra_position_quantity"),
                              labels=["session_id", "instrument"])
        rp = GaugeMetricFamily("lyra_pnl_realized", _help("lyra_pnl_realized"),
                               labels=["session_id", "instrument"])
        up = GaugeMetricFamily("lyra_pnl_unrealized", _help("lyra_pnl_unrealized"),
                               labels=["session_id", "instrument"])
        for iid in s.instruments:
            qty = holdings.get(iid, Decimal(0))
            q.add_metric([sid, iid], float(qty))
            pos = positions.get(iid)
            rp.add_metric([sid, iid], float(pos.realized_pnl) if pos is not None else 0.0)
            mark = marks.get(iid)
            unreal = 0.0
            if pos is not None and pos.quantity and mark is not None:
                unreal = (mark - float(pos.avg_price)) * float(pos.quantity)
            up.add_metric([sid, iid], unreal)
        yield q
        yield rp
        yield up
        b = GaugeMetricFamily("lyra_balance", _help("lyra_balance"), labels=["session_id", "currency"])
        for cur, amount in sorted(cash.items()):
            b.add_metric([sid, cur], float(amount))
        yield b


_COUNTER_NAMES = ("lyra_orders_submitted", "lyra_orders_rejected", "lyra_orders_cancelled",
                  "lyra_orders_expired", "lyra_fills", "lyra_fees", "lyra_risk_checks",
                  "lyra_kill_switch_activations", "lyra_audit_entries_appended", "lyra_reconciliations",
                  "lyra_reconciliation_differences")


def _counter(name: str) -> CounterMetricFamily:
    return CounterMetricFamily(name, _help(name), labels=list(BY_NAME[name].labels))


def _copy(d: dict[str, Any]) -> dict[str, Any]:
    """A copy of a dict the loop may be changing (an empty one if it keeps changing)."""
    for _ in range(3):
        try:
            return dict(d)
        except RuntimeError:
            continue
    return {}


def _gauge(name: str, sid: str, value: float | None) -> GaugeMetricFamily:
    g = GaugeMetricFamily(name, _help(name), labels=["session_id"])
    if value is not None:
        g.add_metric([sid], value)
    return g


def _drawdown_limit(s: Any) -> float | None:
    b = getattr(getattr(s.risk, "config", None), "breakers", None)
    pct = getattr(b, "max_drawdown_pct", None)
    return None if pct is None else float(pct) / 100


def _trading_state(s: Any) -> str | None:
    state = getattr(s.risk, "state", None)
    if state is None or not hasattr(state, "effective"):
        return None
    try:
        return str(state.effective(s.sid).state.value)
    except Exception:  # a cached read only; never worth failing a scrape
        return None


class _Attached:
    """What :func:`session_metrics` returns: the metrics and their endpoint."""

    def __init__(self, metrics: SessionMetrics, endpoint: MetricsEndpoint | None,
                 linger_s: float = 0.0) -> None:
        self.metrics = metrics
        self.endpoint = endpoint
        self.linger_s = linger_s

    def close(self) -> None:
        """Detach and stop serving (after ``linger_s``, for a last scrape)."""
        if self.endpoint is not None and self.endpoint.port and self.linger_s > 0:
            # A short run ends between two scrapes: keep its final counts up for one more.
            time.sleep(self.linger_s)
        self.metrics.detach()
        if self.endpoint is not None:
            self.endpoint.stop()

    def __enter__(self) -> _Attached:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def session_metrics(session: Any, *, port: int | None = None, serve: bool = True,
                    settings: Any = None) -> _Attached:
    """Attach metrics to ``session`` and serve them on loopback; use as a context manager
    around ``session.run()``. Settings (``LYRA_METRICS``, ``LYRA_METRICS_PORT``,
    ``LYRA_METRICS_LINGER_S``; see :class:`lyra.settings.Settings`) say whether, on which port
    (0: ephemeral, recorded in ``metrics_endpoints``) and how long a finished run keeps
    serving; ``port`` overrides the setting. Never raises: anything wrong is logged and the
    session runs without metrics."""
    try:
        if settings is None:
            from lyra.settings import load_settings

            settings = load_settings()
        enabled, p, linger = settings.metrics, settings.metrics_port, settings.metrics_linger_s
    except Exception as exc:  # a bad setting must not stop the session: say so, run without
        log.warning("metrics for session %s: settings unusable (%s); running without /metrics",
                    session.sid, exc)
        return _Attached(_Noop(session), None)
    if not enabled:
        return _Attached(_Noop(session), None)
    try:
        metrics = SessionMetrics(session).attach()
    except Exception:
        log.exception("metrics for session %s could not be attached; running without them", session.sid)
        return _Attached(_Noop(session), None)
    endpoint = None
    if serve:
        endpoint = MetricsEndpoint(metrics.registry, kind="session", name=session.sid,
                                   port=p if port is None else port, engine=session.engine).start()
    return _Attached(metrics, endpoint, float(linger))


class _Noop(SessionMetrics):
    def __init__(self, session: Any) -> None:
        self.s = session
        self._orig = {}

    def detach(self) -> None:
        return None


__all__ = ["COMMIT_BUCKETS", "LATENCY_BUCKETS", "SessionMetrics", "build_info", "session_metrics",
           "standard_registry"]
