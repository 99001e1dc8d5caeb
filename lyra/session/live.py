"""Live mode: the same session loop against a real venue through :class:`CcxtBroker`.

A paper session resumes by re-running its deterministic history. A live one cannot (the venue
is not deterministic), so on restart its **log is the state**: orders, fills and positions are
rebuilt from the ledger, then :func:`~lyra.execution.reconcile.reconcile` asks the venue what
happened while the process was down, every difference is recorded (``reconcile.difference``),
fills are adopted through the normal report path, and if balances disagree beyond the
tolerance the account is **halted** until a person re-arms it (``lyra risk rearm``).

Guards before anything is sent:

- ``mode = "live"`` needs ``live_confirm = true`` in the config (refused otherwise);
- credentials come only from the environment (``LYRA_<VENUE>_API_KEY``, ``..._API_SECRET``,
  optional ``..._PASSWORD``) or a secrets file ``$LYRA_HOME/secrets/<venue>.json`` readable
  by its owner only — never from a config, a notebook cell or the database;
- ``sandbox = true`` uses the venue's testnet (``set_sandbox_mode``); a venue without one is
  refused with a clear message (ccxt raises ``TypeError`` or ``NotSupported`` there).
"""

from __future__ import annotations

import json
import logging
import os
import stat
from collections import deque
from collections.abc import Iterable, Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from lyra.audit.ledger import Ledger
from lyra.core.clock import WALL_CLOCK, Clock, ReplayClock
from lyra.core.errors import ConfigError
from lyra.core.instrument import Instrument
from lyra.core.market import MarketEvent
from lyra.core.orders import Order
from lyra.core.values import ZERO, plain_str
from lyra.execution.broker import OrderReport
from lyra.execution.gateway import RiskGate
from lyra.portfolio import Portfolio
from lyra.session.config import SessionConfig
from lyra.session.recorder import SessionRecorder
from lyra.session.runtime import Session
from lyra.venues import get_venue

if TYPE_CHECKING:
    from lyra.execution.ccxt_broker import CcxtBroker
    from lyra.execution.reconcile import ReconcilePolicy, ReconcileResult

log = logging.getLogger(__name__)

_BASELINE = "live.baseline"
_RECONCILED = "reconcile.completed"
_DIFFERENCE = "reconcile.difference"


# ---------------------------------------------------------------------------- credentials
def live_credentials(venue_name: str, *, home: Path | None = None,
                     environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """API credentials for ``venue_name`` from the environment, else from the owner-only
    secrets file ``<home>/secrets/<venue>.json`` (``{"apiKey": ..., "secret": ...}``)."""
    env = os.environ if environ is None else environ
    prefix = f"LYRA_{venue_name.upper()}_"
    key, secret = env.get(prefix + "API_KEY"), env.get(prefix + "API_SECRET")
    if key and secret:
        creds = {"apiKey": key, "secret": secret}
        if env.get(prefix + "PASSWORD"):
            creds["password"] = env[prefix + "PASSWORD"]
        return creds
    if home is not None:
        path = home / "secrets" / f"{venue_name}.json"
        if path.exists():
            mode = stat.S_IMODE(path.stat().st_mode)
            if mode & 0o077:
                raise ConfigError("credentials", str(path), f"readable by others (mode {oct(mode)})",
                                  f"chmod 600 {path}")
            try:
                data = json.loads(path.read_text())
            except json.JSONDecodeError as exc:
                raise ConfigError("credentials", str(path), f"not valid JSON: {exc}") from None
            if not isinstance(data, dict) or not data.get("apiKey") or not data.get("secret"):
                raise ConfigError("credentials", str(path), "needs \"apiKey\" and \"secret\"")
            return {k: str(v) for k, v in data.items() if k in ("apiKey", "secret", "password", "uid")}
    raise ConfigError("credentials", venue_name, "no API credentials found",
                      f"set {prefix}API_KEY and {prefix}API_SECRET, or write "
                      f"$LYRA_HOME/secrets/{venue_name}.json (mode 600)")


def live_exchange(venue_name: str, credentials: Mapping[str, str], *, sandbox: bool, pro: bool = False,
                  **options: Any) -> Any:
    """A configured ccxt (or ccxt.pro) exchange; ``sandbox`` switches to the venue's testnet."""
    import ccxt
    import ccxt.pro

    caps = get_venue(venue_name)
    module: Any = ccxt.pro if pro else ccxt
    ex = getattr(module, caps.ccxt_id)({"enableRateLimit": True, **credentials, **options})
    if sandbox:
        try:
            ex.set_sandbox_mode(True)
        except (TypeError, ccxt.NotSupported) as exc:
            # ccxt raises TypeError (not NotSupported) where a venue has no test URLs at all.
            raise ConfigError("sandbox", True, f"{venue_name} has no sandbox/testnet ({type(exc).__name__})",
                              "set sandbox = false to trade the real venue") from None
    return ex


def check_live_config(config: SessionConfig) -> None:
    """Refuse a live config that cannot be traded safely (with what and where)."""
    if config.mode != "live":
        raise ConfigError("mode", config.mode, "not a live session")
    if not config.live_confirm:
        raise ConfigError("live_confirm", False, "live mode trades real money: set live_confirm = true")
    caps = get_venue(config.venue)
    longest = len(config.session_id) + 9  # "<session>-<8 digits>"
    if longest > caps.client_order_id_max_len:
        raise ConfigError("session_id", config.session_id,
                          f"too long for {config.venue}: client order ids may have at most "
                          f"{caps.client_order_id_max_len} characters",
                          f"use at most {caps.client_order_id_max_len - 9} characters")


# ---------------------------------------------------------------------------- the session
class _ContinuingRecorder(SessionRecorder):
    """Writes only: a live session's history is not a script to re-verify."""

    def __init__(self, ledger: Ledger, session_id: str, actor: str) -> None:
        self.ledger = ledger
        self.session_id = session_id
        self.actor = actor
        self._expected = deque()
        self.replayed = 0
        self._group = ledger.group_commit(max_entries=1000, max_wait_s=0.05)


class LiveSession(Session):
    """A session on a real venue. Build with :func:`lyra.session.factory.open_session`
    (``mode = "live"``); after a restart the same call continues where the log ends.
    ``clock`` follows the market data; ``wall_clock`` stamps what happens at the venue meanwhile
    (the reconciliation on start)."""

    broker: CcxtBroker

    def __init__(self, config: SessionConfig, *, engine: Engine, feed: Iterable[MarketEvent],
                 broker: CcxtBroker, risk: RiskGate | None, instruments: Mapping[str, Instrument],
                 clock: ReplayClock, jsonl_path: Path | None = None, risk_context: Any = None,
                 policy: ReconcilePolicy | None = None, wall_clock: Clock = WALL_CLOCK) -> None:
        check_live_config(config)
        self.wall_clock = wall_clock
        super().__init__(config, engine=engine, feed=feed, broker=broker, risk=risk,
                         instruments=instruments, clock=clock, jsonl_path=jsonl_path,
                         risk_context=risk_context)
        self.ledger._reload()  # the base recorder cleared it for a re-run; the log is the state
        self.recorder = _ContinuingRecorder(self.ledger, self.sid, self.actor)
        self._kills_at = {}
        self.fast_path = False
        self.poll_mask = 0  # a live kill switch acts within a heartbeat, not after 1024 bars
        from lyra.execution.reconcile import ReconcilePolicy

        self.policy = policy or ReconcilePolicy()
        self.reconciliation: ReconcileResult | None = None
        #: what to stop when the run ends (the market-data stream, the book recorder)
        self.closers: list[Any] = []
        # The venue's dead-man switch (where it has one): armed before the first live order,
        # renewed while this process holds the lease, disarmed at a clean stop.
        from lyra.execution.deadman import DeadmanSwitch

        # (the lease looked up at each call: a standby hands the session the one it took)
        self.deadman = broker.deadman = DeadmanSwitch(
            broker.exchange, venue=config.venue, owned=lambda: self.control.lease.held,
            epoch=lambda: self.control.lease.epoch, record=self._record_deadman)
        self._restore()

    def _record_deadman(self, payload: dict[str, Any]) -> None:
        """``session.deadman_armed`` (wall time), in its own fenced transaction."""
        self.log.append("session.deadman_armed", payload, actor=self.actor, session_id=self.sid,
                        ts=self.wall_clock.now_ms())

    # -- state from the log ---------------------------------------------------------------
    def _mine(self) -> dict[str, Order]:
        st = self.ledger.state
        return {c: o for c, o in st.orders.items() if st.order_sessions.get(c) == self.sid}

    def _baseline(self) -> dict[str, Decimal] | None:
        for rec in self.log.read(session_id=self.sid, kinds=(_BASELINE,)):
            return {k: Decimal(v) for k, v in rec.data()["balances"].items()}
        return None

    def _restore(self) -> None:
        mine = self._mine()
        self.seq = max((int(c.rsplit("-", 1)[1]) for c in mine if c.rsplit("-", 1)[-1].isdigit()), default=0)
        self.working = {c for c, o in mine.items() if not o.status.is_terminal}
        self.gateway.know_orders(mine.values())  # operator orders stay in the operator book
        base = self._baseline()
        if base is not None:
            self._open_portfolio(base)
            for sid, f in self.ledger.state.fills:
                if sid == self.sid:
                    self._book_fill(f)
            self.result.fills = 0
            self.result.fees = ZERO
        for iid in self.instruments:
            self._sync_strategy(iid)

    def _open_portfolio(self, balances: Mapping[str, Decimal]) -> None:
        assets = {a for i in self.instruments.values() for a in (i.base, i.quote)}
        self.portfolio = Portfolio.open(self.instruments, {a: balances.get(a, ZERO) for a in sorted(assets)})
        self.cash = self.portfolio.cash
        self.holdings = self.portfolio.holdings()

    def expected_balances(self) -> dict[str, Decimal]:
        """What the log implies the venue should hold, per traded asset."""
        return {a: v for a, v in self.cash.items()}

    # -- start: reconcile -------------------------------------------------------------------
    def start(self) -> ReconcileResult:
        """Reconcile with the venue and record the outcome; called by :meth:`run` if needed."""
        from lyra.execution.reconcile import compare_balances, reconcile

        first = self._baseline() is None
        mine = self._mine()
        known_fills = [f.fill_id for sid, f in self.ledger.state.fills if sid == self.sid]
        since = min((o.created_ts for o in mine.values()), default=None)
        res = reconcile(self.broker, mine, client_id_prefix=f"{self.sid}-", known_fill_ids=known_fills,
                        fills_since_ts=since, policy=self.policy)
        res.differences.extend(self._interrupted_algos())
        # Wall time for these entries; the session clock stays with the market data.
        now = max(self.clock.now_ms(), self.wall_clock.now_ms())
        with self.recorder.transaction() as tx:
            if first:
                totals = {a: plain_str(b.total) for a, b in sorted(res.venue_balances.items())}
                tx.append(_BASELINE, {"balances": totals}, actor=self.actor, session_id=self.sid, ts=now)
            for view in res.adopted:
                self._adopt_orphan(tx, view, now)
            for d in res.differences:
                tx.append(_DIFFERENCE, d.to_payload(), actor=self.actor, session_id=self.sid, ts=now)
        self.recorder.commit()
        if first:
            self._open_portfolio({a: b.total for a, b in res.venue_balances.items()})
        # The reports that bring our orders to the venue's state: the normal path.
        self._drain(now)
        # Now the log holds every fill the venue has: its balances must agree with ours.
        gaps = compare_balances(res, self.expected_balances(), self.policy)
        with self.recorder.transaction() as tx:
            for d in gaps:
                tx.append(_DIFFERENCE, d.to_payload(), actor=self.actor, session_id=self.sid, ts=now)
            tx.append(_RECONCILED, res.summary(), actor=self.actor, session_id=self.sid, ts=now)
        self.recorder.commit()
        if not res.balances_ok:
            self._halt(res)
        if self.working:  # orders rest on the venue (a takeover, a restart): cover them now
            from lyra.execution.deadman import arm_deadman

            arm_deadman(self.deadman)
        self.reconciliation = res
        self.broker.start_streams()
        return res

    def _interrupted_algos(self) -> list[Any]:
        """Parent orders (TWAP, iceberg, POV) that were working when the process died. A live
        run cannot replay its market data to rebuild their schedule: they are recorded as
        interrupted (their children are reconciled like any order) and not resumed."""
        from lyra.execution.reconcile import Difference

        started: dict[str, dict[str, Any]] = {}
        for rec in self.log.read(session_id=self.sid, kinds=("algo.started", "algo.finished")):
            d = rec.data()
            if rec.kind == "algo.started":
                started[str(d["parent_id"])] = d
            else:
                started.pop(str(d.get("parent_id")), None)
        keep = ("instrument_id", "side", "quantity")
        return [Difference("algo-interrupted", pid, {k: d.get(k, "") for k in keep})
                for pid, d in sorted(started.items())]

    def _adopt_orphan(self, tx: Any, view: OrderReport, now: int) -> None:
        from lyra.core.orders import OrderIntent

        intent = OrderIntent(view.instrument_id, view.side, view.quantity, view.order_type,
                             view.limit_price, view.stop_price, view.time_in_force, tag="adopted")
        order = Order(view.client_order_id, intent, created_ts=view.ts or now)
        stored = self.gateway.adopt(tx, order, view.ts or now)  # the one door, its id never reused
        self.working.add(view.client_order_id)
        self.broker.track(stored)
        self.broker.refresh(view.client_order_id)

    def _halt(self, res: ReconcileResult) -> None:
        from lyra.risk._types import TradingState, account_scope

        state = getattr(self.risk, "state", None)
        reason = "balances disagree with the venue: " + ", ".join(
            f"{a} expected {g['expected']} venue {g['venue']}" for a, g in res.balance_gaps.items())
        if state is None:
            raise ConfigError("risk", None, "a live session needs the risk engine's trading state")
        state.set_state(account_scope(self.sid), TradingState.HALTED, actor=self.actor,
                        reason=reason + "; acknowledge with `lyra risk rearm`", session_id=self.sid,
                        kind="risk.state_change")
        log.error("session %s halted: %s", self.sid, reason)

    def run(self, *, max_events: int | None = None, on_progress: Any = None) -> Any:
        """Reconcile (once per process), then run the loop on the live feed."""
        clean = False
        try:
            self.control.acquire()  # own the session before reconciling writes to its log
            if self.reconciliation is None:
                try:
                    self.start()
                except BaseException:
                    self.control.finish()  # give the lease back
                    raise
            result = super().run(max_events=max_events, on_progress=on_progress)
            clean = not self.control.lease.lost
            return result
        finally:
            # A clean end disarms the venue's timer; a crash or a lost session leaves it to fire.
            self.deadman.close(disarm=clean)
            self.broker.close()
            for close in self.closers:
                close()


def bars_from_trades(events: Iterable[MarketEvent], timeframe_ms: int, timeframe: str
                     ) -> Iterable[MarketEvent]:
    """Turn a live trade stream into closed bars (a bar is emitted when the first trade of a
    later bar arrives); other events pass through. Late trades (older than the open bar) are
    dropped with a log line: a closed bar is never changed."""
    from lyra.core.market import Bar, Trade

    open_bars: dict[str, list[float]] = {}
    starts: dict[str, int] = {}
    for ev in events:
        if type(ev) is not Trade:
            yield ev
            continue
        iid = ev.instrument_id
        start = ev.ts - ev.ts % timeframe_ms
        cur = starts.get(iid)
        if cur is not None and start < cur:
            log.warning("late trade %s at %d for a closed bar: dropped", ev.trade_id, ev.ts)
            continue
        if cur is not None and start > cur:
            o, h, lo, c, v = open_bars[iid]
            yield Bar(iid, timeframe, cur, o, h, lo, c, v)
            cur = None
        if cur is None:
            starts[iid] = start
            open_bars[iid] = [ev.price, ev.price, ev.price, ev.price, ev.size]
        else:
            b = open_bars[iid]
            b[1] = max(b[1], ev.price)
            b[2] = min(b[2], ev.price)
            b[3] = ev.price
            b[4] += ev.size
