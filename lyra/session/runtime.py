"""The session runtime: feed -> strategy -> risk -> broker -> portfolio -> event log.

One loop for every mode. ``backtest`` replays stored data as fast as possible, ``paper``
replays it paced (or takes a live feed) against the paper broker, ``live`` (a later issue)
swaps in the ccxt broker. The loop never branches on the mode: the broker and the feed are
adapters.

Bars that change nothing cost little: the broker sees market data only while the session
has working orders, the strategy's incremental form is O(1), and the log is written only
when something happens (a decision, an order event, an equity snapshot).
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from lyra.audit.chain import canonical_json
from lyra.audit.ledger import Ledger
from lyra.audit.log import EventLog
from lyra.core.clock import ReplayClock
from lyra.core.enums import OrderEventType, OrderStatus
from lyra.core.errors import ConfigError, IntegrityError, ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import Bar, MarketEvent
from lyra.core.orders import Fill, Order, OrderIntent
from lyra.core.timeutil import timeframe_to_ms
from lyra.core.values import ZERO, to_decimal
from lyra.execution.algos import ParentIntent
from lyra.execution.broker import Broker
from lyra.execution.gateway import RiskGate
from lyra.feeds.replay import ReplayFeed
from lyra.portfolio.portfolio import Portfolio
from lyra.risk.engine import RiskEngine
from lyra.session import algo_runtime
from lyra.session.commands import SessionCommands
from lyra.session.config import SessionConfig
from lyra.session.control import ControlPlane, FeedSleep, StopRun
from lyra.session.gateway import OrderGateway
from lyra.session.lease import LeaseLost
from lyra.session.protocols import CloseOnly, TracksPosition, emits_parents, survives_restart
from lyra.session.recorder import SessionRecorder
from lyra.session.registry import SessionRegistry
from lyra.session.strategies import build_strategy

log = logging.getLogger(__name__)
E = OrderEventType

#: Wall-clock interval between heartbeats / stop and kill-switch polls.
POLL_INTERVAL_S = 0.25


@dataclass(slots=True)
class SessionResult:
    """What a finished (or stopped) run did."""

    session_id: str
    events: int = 0
    orders: int = 0
    fills: int = 0
    denied: int = 0
    fees: Decimal = ZERO
    balances: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Decimal] = field(default_factory=dict)
    equity: Decimal = ZERO
    replayed_entries: int = 0
    stopped: bool = False
    seconds: float = 0.0


def session_instruments(config: SessionConfig) -> dict[str, Instrument]:
    """Instrument definitions: the venue's recorded markets, or the config's own specs."""
    from lyra.execution.markets import load_instruments

    try:
        known = load_instruments(config.venue)
    except (ValidationError, FileNotFoundError, KeyError):
        known = {}
    out: dict[str, Instrument] = {}
    for sym in config.symbols:
        iid = f"{config.venue}:{sym}"
        spec = config.instruments.get(sym)
        if spec is not None:
            base, _, quote = sym.partition("/")
            out[iid] = Instrument(sym, config.venue, base, quote.split(":")[0], **spec.model_dump())
        elif iid in known:
            out[iid] = known[iid]
        else:
            raise ConfigError(
                "symbols", sym, f"not in the recorded {config.venue} markets",
                f"add [instruments.\"{sym}\"] with price_increment and size_increment",
            )
    return out


class Session:
    """A running session. Build with :meth:`create` (new) or the same call again (resume)."""

    def __init__(self, config: SessionConfig, *, engine: Engine, feed: Iterable[MarketEvent],
                 broker: Broker, risk: RiskGate | None, instruments: Mapping[str, Instrument],
                 clock: ReplayClock, jsonl_path: Path | None = None,
                 risk_context: Callable[[Session, Order], Any] | None = None,
                 feed_sleep: FeedSleep | None = None) -> None:
        self.config = config
        self.sid = config.session_id
        self.engine = engine
        self.feed = feed
        #: the paced feed's sleep (given to it when built), taken over by the control plane
        self.feed_sleep = feed_sleep
        self.broker = broker
        self.risk = risk
        self._risk_context = risk_context
        #: the covariance model of a max_var limit (lyra.session.var_model), set by the factory
        self.var_model: Any = None
        self.instruments = dict(instruments)
        self.clock = clock
        self.tf_ms = timeframe_to_ms(config.timeframe)
        self.log = EventLog(engine, jsonl_path, clock=clock)
        # Lease, polls, pacing, signals, kill switch. Created before the log is read: it notes
        # how far the log went, so that a takeover can tell if another process wrote since.
        self.control = ControlPlane(self)
        self.ledger = Ledger(self.log, session_id=self.sid)
        self.actor = f"session:{self.sid}"
        self.recorder = SessionRecorder(self.ledger, self.sid, self.actor)
        self.registry = SessionRegistry(engine)
        strategy = build_strategy(config.strategy, config.params)
        self.strategies = {iid: strategy.incremental(iid, config.quantity) for iid in self.instruments}
        # Execution algorithms (``params.execution``, or strategies that emit ParentIntents):
        # only then are the strategies wrapped; other sessions run exactly as before.
        self.algos: algo_runtime.AlgoBook | None = None
        self._algo_busy = False
        spec = algo_runtime.execution_spec(config)
        if spec is not None or any(emits_parents(st) for st in self.strategies.values()):
            book = self.algos = algo_runtime.AlgoBook(self.sid, self.instruments)
            self.strategies = {iid: algo_runtime.AlgoDriver(st, iid, book, spec, clock, self._algo_changed)
                               for iid, st in self.strategies.items()}
        self.seq = 0
        self.working: set[str] = set()
        # Cash per currency (base assets included: sells need them), average-cost positions,
        # FIFO lots and fees, in exact Decimal. Starting balances in the quote currencies.
        self.portfolio = Portfolio.open(self.instruments, config.balances)
        self.cash = self.portfolio.cash
        self.holdings: dict[str, Decimal] = self.portfolio.holdings()
        self.marks: dict[str, float] = {}
        #: the latest bar per instrument, shown to the broker before an operator's order
        self._latest_bars: dict[str, Bar] = {}
        self.last_data_ts: dict[str, int] = {}
        self.result = SessionResult(self.sid)
        self._bars_since_equity = 0
        # Venues that keep state across our restarts (live) need write-ahead commits.
        self._write_ahead = survives_restart(broker)
        # Breaker hooks, only for the breakers that are switched on (they cost per bar/fill,
        # and a trip writes to the database, so the open batch is committed first).
        b = risk.config.breakers if isinstance(risk, RiskEngine) else None
        self._fill_hooks = b is not None and any(
            x is not None for x in (b.daily_loss_limit, b.daily_loss_pct, b.max_drawdown_pct,
                                    b.max_consecutive_losses))
        self._bar_hooks = b is not None and (b.vol_spike_ratio is not None or b.stale_after_ms is not None)
        #: the risk engine whose breakers the session feeds (bars, fills, equity), if any is on
        self._breakers: RiskEngine | None = risk if isinstance(risk, RiskEngine) and (
            self._fill_hooks or self._bar_hooks) else None
        self._realized: dict[str, Decimal] = {}
        # Kill switch: requests pulled from any process (``lyra kill``), polled with the
        # heartbeat. Where one was acted on is recorded (``session.kill`` with the event
        # count), so a resumed run acts on it at the same point and its log stays identical.
        self._kills_at: dict[int, dict[str, Any]] = {
            int(r.data()["at_event"]): r.data() for r in self.recorder.expected if r.kind == "session.kill"}
        self.killed = False
        self._stop_when_idle = False
        self._flatten_after: Any = None  # a kill's flattening, waiting for its cancels to complete
        self._kill_pending = False  # either of the two above: checked once per event
        self.gateway = OrderGateway(self)  # the one path from an intent to an order
        self.commands = SessionCommands(self)  # operator orders: taken and re-done like kills
        self._commands_at: dict[int, list[dict[str, Any]]] = {}  # resuming: by event (set by run)
        #: use the array loop for a plain replay of one bar series (same results, faster)
        self.fast_path = True
        #: heartbeat every (mask + 1) events in an unpaced replay; 0: check the clock every event
        self.poll_mask = 1023

    # ------------------------------------------------------------------ the loop
    def run(self, *, max_events: int | None = None, on_progress: Callable[[int], None] | None = None
            ) -> SessionResult:
        """Run until the data ends, a stop is requested (``lyra session stop``, the kill switch,
        SIGTERM/SIGINT), or ``max_events`` events. Refused (``LeaseHeld``) if another live
        process owns the session; stops with ``LeaseLost`` if one takes it over."""
        t_start = time.perf_counter()
        self.control.start(POLL_INTERVAL_S, on_progress)  # own the session before anything is written
        n, stopped = 0, False
        try:
            self._begin()
            fast = self._fast_bars()  # the array loop for a plain replay of one bar series
            if fast is not None:
                n, stopped, _ = self._run_fast(fast, max_events, on_progress)
            else:
                n, stopped = self._run_events(max_events, on_progress)
            status = self._end(stopped)
            self.registry.update(self.sid, status=status, data_ts=self.clock.now_ms(), events_processed=n)
            self.commands.close(status)
        except LeaseLost:
            self.recorder.rollback()  # another process owns the session now: leave it all to it
            raise
        except BaseException as exc:
            self.recorder.rollback()
            self.registry.update(self.sid, status="failed", error=f"{type(exc).__name__}: {exc}"[:2000])
            self.commands.close("failed")
            raise
        finally:
            self.control.finish()
        return self._finished_result(n, stopped, time.perf_counter() - t_start)

    def _begin(self) -> None:
        """Registered as running; ``session.started`` logged (verified when resuming); the
        logged operator commands to redo scheduled."""
        self.registry.upsert(self.sid, self.config, status="running", pid=os.getpid(),
                             host=socket.gethostname())
        started = {"config": self.config.model_dump(mode="json", exclude=_unlogged(self.config))}
        if self.recorder.resuming or not self._has_logged_start():
            with self.recorder.transaction() as tx:
                tx.append("session.started", started, actor=self.actor, session_id=self.sid,
                          ts=self.clock.now_ms())
        self._commands_at = self.commands.schedule()

    def _end(self, stopped: bool) -> str:
        """Close the run's log (orders in flight drained, final equity, ``session.finished`` or
        ``session.stopped``); its status. Refused if the log holds more than the re-run made."""
        if stopped and self.recorder.resuming:
            return "stopped"  # before the re-run caught up with its log: nothing to add
        clock = self.clock
        self._drain(clock.now_ms())  # orders still in flight finish against the last data
        if not stopped:  # a stop is an operational marker: it must not add state entries
            self._snapshot_equity(clock.now_ms())
        status = "stopped" if stopped else "finished"
        with self.recorder.transaction() as tx:
            tx.append(f"session.{status}", self._summary(), actor=self.actor, session_id=self.sid,
                      ts=clock.now_ms())
        if self.recorder.resuming:
            raise IntegrityError(
                f"session {self.sid}: the log holds {len(self.recorder.expected)} entries the "
                "re-run never produced (data shortened since the session started?)"
            )
        self.recorder.commit()
        return status

    def _finished_result(self, n: int, stopped: bool, seconds: float) -> SessionResult:
        r = self.result
        r.events, r.stopped, r.seconds = n, stopped, seconds
        r.replayed_entries = self.recorder.replayed
        r.balances = dict(self.cash)
        r.positions = dict(self.holdings)
        r.equity = self.equity()
        return r

    def _run_events(self, max_events: int | None, on_progress: Callable[[int], None] | None
                    ) -> tuple[int, bool]:
        """The generic loop over the feed's events: (events processed, stopped)."""
        tf = self.tf_ms
        advance = self.clock.advance_to
        strategies = self.strategies
        marks = self.marks
        latest = self._latest_bars
        last_data_ts = self.last_data_ts
        working = self.working
        broker_on_market = self.broker.on_market
        equity_every = self.config.equity_every
        since_equity = self._bars_since_equity
        bar_hooks = self._bar_hooks
        ctl = self.control
        # Polls: on time (the clock checked every event, and between events while a paced feed
        # waits) when a person watches; every 1024 events of an unpaced replay.
        poll_mask = 0 if ctl.paced else self.poll_mask
        redo_at = self._commands_at
        n = 0
        try:
            # The hot loop: a bar that changes nothing costs a clock step, two dict stores and
            # the strategy's O(1) update. Everything else happens only when there is work.
            for ev in self.feed:
                n += 1
                ctl.n = n
                iid = ev.instrument_id
                if type(ev) is Bar:
                    t = ev.ts + tf
                    advance(t)
                    fed = bool(working)
                    if fed:
                        broker_on_market(ev)
                        self._drain(t)
                    marks[iid] = ev.close
                    latest[iid] = ev
                    last_data_ts[iid] = t
                    if bar_hooks and not self.recorder.resuming and self._breakers is not None:
                        self.recorder.commit()
                        self._breakers.on_bar(iid, t, ev.close)
                    intents = strategies[iid].on_bar(ev)
                    if intents:
                        if not fed:  # the venue must know the price the strategy saw
                            broker_on_market(ev)
                        self._submit(intents, t)
                    since_equity += 1
                    if since_equity >= equity_every:
                        self._snapshot_equity(t)
                        since_equity = 0
                else:
                    t = ev.ts
                    advance(t)
                    if working:
                        broker_on_market(ev)
                        self._drain(t)
                if max_events is not None and n >= max_events:
                    break
                if self._kills_at and n in self._kills_at:
                    # Resuming: do again what the kill switch made the run do at this point.
                    ctl.act_on_kill(self._kills_at.pop(n), n, t)
                if redo_at and n in redo_at:
                    self.commands.redo(redo_at.pop(n), n, t)
                # A kill's flattening waits for its cancels (a resumed run too, at the same
                # event); a killed run stops once that is all done.
                if self._kill_pending and not working and ctl.idle_after_kill(t) and self._stop_when_idle:
                    return n, True
                if not n & poll_mask and time.monotonic() >= ctl.next_poll:
                    ctl.next_poll = time.monotonic() + POLL_INTERVAL_S
                    if ctl.poll(n, t):
                        return n, True
                    if on_progress is not None:
                        on_progress(n)
        except StopRun:  # asked while the paced feed waited for its next event
            return n, True
        return n, False

    def _fast_bars(self) -> Any:
        """The one bar series of a plain replay (no pacing, no hooks per bar), for the fast
        loop; None when the generic loop is needed."""
        if not self.fast_path or self._bar_hooks:
            return None
        feed = self.feed
        if not isinstance(feed, ReplayFeed) or feed.speed is not None or feed.clock is not None:
            return None
        srcs = feed.sources
        if len(srcs) != 1 or srcs[0].bars is None:
            return None
        if not isinstance(self.strategies.get(srcs[0].instrument_id), CloseOnly):
            return None
        return srcs[0]

    def _run_fast(self, src: Any, max_events: int | None, on_progress: Callable[[int], None] | None
                  ) -> tuple[int, bool, int]:
        """The generic loop's exact semantics for one replayed bar series, without building a
        Bar object for bars that change nothing (arrays in, the strategy's ``on_close``)."""
        tf = self.tf_ms
        tf_name = src.timeframe
        iid = src.instrument_id
        on_close = self.strategies[iid].on_close
        advance = self.clock.advance_to
        marks = self.marks
        working = self.working
        broker_on_market = self.broker.on_market
        equity_every = self.config.equity_every
        since_equity = self._bars_since_equity
        b = src.bars
        n = 0
        t = 0
        ctl = self.control
        redo_at = self._commands_at
        chunk = 65_536
        for a in range(0, len(b.ts), chunk):
            z = slice(a, a + chunk)
            ts_l = b.ts[z].tolist()
            cl = b.close[z].tolist()
            for i, close in enumerate(cl):
                n += 1
                t0 = ts_l[i]
                t = t0 + tf
                advance(t)
                bar = None
                if working:
                    bar = Bar(iid, tf_name, t0, float(b.open[a + i]), float(b.high[a + i]),
                              float(b.low[a + i]), close, float(b.volume[a + i]))
                    broker_on_market(bar)
                    self._drain(t)
                marks[iid] = close
                intents = on_close(close)
                if intents:
                    self.last_data_ts[iid] = t
                    if bar is None:  # the venue must know the price the strategy saw
                        bar = Bar(iid, tf_name, t0, float(b.open[a + i]), float(b.high[a + i]),
                                  float(b.low[a + i]), close, float(b.volume[a + i]))
                        broker_on_market(bar)
                    self._submit(intents, t)
                since_equity += 1
                if since_equity >= equity_every:
                    self._snapshot_equity(t)
                    since_equity = 0
                if max_events is not None and n >= max_events:
                    self.last_data_ts[iid] = t
                    return n, False, t
                if self._kills_at and n in self._kills_at:
                    ctl.act_on_kill(self._kills_at.pop(n), n, t)
                if redo_at and n in redo_at:
                    self._latest_bars[iid] = _bar_at(b, a + i, iid, tf_name)
                    self.commands.redo(redo_at.pop(n), n, t)
                if self._kill_pending and not working and ctl.idle_after_kill(t) and self._stop_when_idle:
                    self.last_data_ts[iid] = t
                    return n, True, t
                if not n & 1023 and time.monotonic() >= ctl.next_poll:
                    ctl.next_poll = time.monotonic() + POLL_INTERVAL_S
                    self.last_data_ts[iid] = t
                    self._latest_bars[iid] = _bar_at(b, a + i, iid, tf_name)
                    if ctl.poll(n, t):
                        return n, True, t
                    if on_progress is not None:
                        on_progress(n)
        if n:
            self.last_data_ts[iid] = t
        return n, False, t

    def _has_logged_start(self) -> bool:
        return any(True for _ in self.log.read(session_id=self.sid, kinds=("session.started",)))

    # ------------------------------------------------------------------ orders
    def show_market(self, instrument_id: str, t: int) -> None:
        """Show the broker the latest bar of ``instrument_id`` before an operator's order, so a
        market order taken between the strategy's trades is priced at the current market (the
        loop shows the broker bars only while it has work; a bar already seen is ignored)."""
        bar = self._latest_bars.get(instrument_id)
        if bar is not None:
            self.broker.on_market(bar)
            self._drain(t)

    def _submit(self, intents: Sequence[OrderIntent | ParentIntent], t: int) -> None:
        """Send ``intents`` through the session's order gateway (:mod:`lyra.session.gateway`)."""
        self.gateway.submit(intents, t)

    def _algo_changed(self, t: int) -> None:
        """A parent finished or stopped on a market event: log it, cancel its children."""
        algo_runtime.pump(self, t, submit=False)

    def _drain(self, t: int) -> None:
        reports = self.broker.poll_reports()
        if not reports:
            return
        fills: list[Fill] = []
        unfilled: list[str] = []
        watching = self.commands.watching  # operator orders whose ticket waits for their end
        for r, order in zip(reports, self.gateway.record_reports(reports), strict=True):
            if r.fill is not None:
                fills.append(r.fill)
            if order.status.is_terminal:
                self.working.discard(order.client_order_id)
                if order.status is not OrderStatus.FILLED:
                    unfilled.append(order.instrument_id)
                if watching and order.client_order_id in watching:
                    self.commands.order_done(order, r.fill.fee_currency if r.fill is not None else "")
        for f in fills:
            self._book_fill(f)
        for iid in unfilled:
            self._sync_strategy(iid)
        if fills and self._fill_hooks and not self.recorder.resuming:
            self._feed_breakers(fills, t)
        if self.algos is not None and self.algos.by_child:
            algo_runtime.route_reports(self, reports, t)

    def _feed_breakers(self, fills: list[Fill], t: int) -> None:
        breakers = self._breakers
        if breakers is None:
            return
        self.recorder.commit()
        positions = self.ledger.state.positions
        for f in fills:
            pos = positions.get((self.sid, f.instrument_id))
            total = pos.realized_pnl if pos is not None else ZERO
            realized = total - self._realized.get(f.instrument_id, ZERO)
            self._realized[f.instrument_id] = total
            breakers.on_fill(f.ts, realized, f.fee)
        breakers.on_equity(t, self.equity())

    def _book_fill(self, f: Fill) -> None:
        self.portfolio.apply(f)
        self.gateway.book_fill(f)
        self.holdings[f.instrument_id] = self.portfolio.quantity(f.instrument_id)
        self.result.fills += 1
        self.result.fees += f.fee

    def _sync_strategy(self, instrument_id: str) -> None:
        """After an order did not (fully) happen, the strategy's idea of its position follows
        the real one, so it does not act on a position it never got."""
        st = self.strategies.get(instrument_id)
        if not isinstance(st, TracksPosition):
            return
        q = self.gateway.strategy_quantity(instrument_id)  # never the operator's holdings
        st.target_position = (q > 0) - (q < 0)

    # ------------------------------------------------------------------ portfolio
    def equity(self) -> Decimal:
        """Cash in the quote currencies plus positions at the last marks (exact Decimal)."""
        marks = {iid: to_decimal(self.marks[iid])
                 for iid, q in self.holdings.items() if q and iid in self.marks}
        return self.portfolio.equity(marks)

    def _snapshot_equity(self, t: int) -> None:
        payload = {"equity": str(self.equity().quantize(Decimal("0.00000001"))),
                   "positions": {k: str(v) for k, v in self.holdings.items() if v},
                   "marks": {k: repr(v) for k, v in self.marks.items()}}
        with self.recorder.transaction() as tx:
            tx.append("session.equity", payload, actor=self.actor, session_id=self.sid, ts=t)

    def _summary(self) -> dict[str, Any]:
        return {"orders": self.result.orders, "fills": self.result.fills, "denied": self.result.denied,
                "fees": str(self.result.fees), "equity": str(self.equity()),
                "balances": {k: str(v) for k, v in self.cash.items()},
                "positions": {k: str(v) for k, v in self.holdings.items()}}


def _unlogged(config: SessionConfig) -> set[str]:
    """Config keys left out of ``session.started``: operational ones, and ones added later
    while at their default (so a log written before they existed still verifies on resume)."""
    out = {"lease_s"}
    if config.denied_in_row_limit == SessionConfig.model_fields["denied_in_row_limit"].default:
        out.add("denied_in_row_limit")
    return out


def _bar_at(b: Any, k: int, iid: str, timeframe: str) -> Bar:
    """Bar ``k`` of the fast loop's bar arrays."""
    return Bar(iid, timeframe, int(b.ts[k]), float(b.open[k]), float(b.high[k]), float(b.low[k]),
               float(b.close[k]), float(b.volume[k]))


def config_fingerprint(config: SessionConfig) -> str:
    """A stable text of the config, to refuse resuming with a different one."""
    return canonical_json(config.model_dump(mode="json"))
