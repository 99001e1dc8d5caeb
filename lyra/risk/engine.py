"""The pre-trade risk engine: every order passes here before any broker sees it.

>>> from decimal import Decimal
>>> from lyra.audit import EventLog
>>> from lyra.core import Instrument, Order, OrderIntent, ReplayClock
>>> from lyra.risk import Limits, RiskConfig, RiskContext, TradingStateStore
>>> from lyra.store import create_engine_for, upgrade
>>> db = create_engine_for("sqlite://")       # any migrated Lyra database
>>> upgrade(db)
>>> btc = Instrument("BTC/USDT", "binance", "BTC", "USDT", Decimal("0.01"), Decimal("0.001"))
>>> now = 1_700_000_000_000
>>> config = RiskConfig(defaults=Limits(max_order_qty=Decimal(2)))
>>> engine = RiskEngine(config, TradingStateStore(EventLog(db)), clock=ReplayClock(now), account_id="s1")
>>> ctx = RiskContext(account_id="s1", positions={}, marks={btc.id: Decimal(30_000)},  # the session
...                   equity=Decimal(100_000), balances={"USDT": Decimal(100_000)},   # builds this
...                   open_orders=[], instruments={btc.id: btc}, now=now, last_md_ts={btc.id: now})
>>> decision = engine.check(Order("s1-00000001", OrderIntent(btc.id, "buy", Decimal(1)), now), ctx)
>>> decision.approved, decision.quantity
(True, Decimal('1'))
>>> decision = engine.check(Order("s1-00000002", OrderIntent(btc.id, "buy", Decimal(3)), now), ctx)
>>> decision.approved, decision.reason
(False, 'max_order_qty: 3 > 2 BTC')
>>> db.dispose()

The session records ``decision.to_payload()`` (kind ``risk.decision``) in the same
transaction as the order, and hands ``decision.decision_id`` to the broker, which refuses an
order without one. What the engine changes itself — breaker trips, state changes — it writes
to the event log through its :class:`~lyra.risk.state.TradingStateStore`.

Order of evaluation: the shared trading state (re-read from the database if the cached copy
is older than the poll interval), the account's and the instrument's circuit breakers, stale
data, then the checks of :mod:`lyra.risk.checks`, then the pre-trade VaR, then any custom
checks. The first rejection decides. The engine never fails open: an exception anywhere
becomes a rejection naming the check and the error.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from lyra.core.clock import Clock
from lyra.core.costs import CostRule
from lyra.core.enums import Side
from lyra.core.instrument import Instrument
from lyra.core.orders import Order, OrderIntent
from lyra.core.values import ZERO
from lyra.risk._types import (
    GLOBAL_SCOPE,
    BreakerTrip,
    KillRequest,
    ScopeState,
    TradingState,
    account_scope,
)
from lyra.risk.breakers import CircuitBreakers
from lyra.risk.checks import (
    CHECKS,
    AccountBook,
    OrderView,
    Resize,
    ResolvedLimits,
    floor_to_lot,
    fmt_qty,
    run_var_check,
)
from lyra.risk.config import RiskConfig
from lyra.risk.var import CovarianceModel

if TYPE_CHECKING:
    from lyra.audit.events import RiskDecided
    from lyra.risk.state import TradingStateStore

_HALTED = TradingState.HALTED
_REDUCING = TradingState.REDUCING
_KILL_TAG = "kill-flatten:"

#: A custom check: ``(order, ctx) -> None`` to pass or a reason string to reject.
CustomCheck = Callable[[Order, "RiskContext"], "str | None"]


class ExposureBook:
    """Positions and marks with gross and net exposure kept up to date in ``O(1)`` per change.

    A session that keeps one (``set_position`` on fills, ``set_mark`` on prices) and passes it
    as ``RiskContext(positions=book.positions, marks=book.marks, exposure=book, ...)`` makes
    the exposure and leverage checks ``O(1)`` instead of a pass over every position. Exact
    ``Decimal`` arithmetic: no drift however many updates.
    """

    __slots__ = ("gross", "marks", "net", "positions", "unmarked")

    def __init__(self, positions: Mapping[str, Decimal] | None = None,
                 marks: Mapping[str, Decimal] | None = None) -> None:
        self.positions: dict[str, Decimal] = {}
        self.marks: dict[str, Decimal] = dict(marks or {})
        self.gross = ZERO  #: Σ |qty · mark|
        self.net = ZERO  #: Σ qty · mark
        self.unmarked: set[str] = set()  #: held instruments without a mark
        for iid, q in (positions or {}).items():
            self.set_position(iid, q)

    def value(self, instrument_id: str) -> Decimal:
        """Signed exposure of one instrument (0 if flat or without a mark)."""
        q = self.positions.get(instrument_id)
        m = self.marks.get(instrument_id)
        return ZERO if q is None or m is None else q * m

    def _swap(self, old: Decimal, new: Decimal) -> None:
        self.net += new - old
        self.gross += abs(new) - abs(old)

    def set_position(self, instrument_id: str, quantity: Decimal) -> None:
        old = self.value(instrument_id)
        if quantity == 0:
            self.positions.pop(instrument_id, None)
            self.unmarked.discard(instrument_id)
        else:
            self.positions[instrument_id] = quantity
            if instrument_id not in self.marks:
                self.unmarked.add(instrument_id)
        self._swap(old, self.value(instrument_id))

    def set_mark(self, instrument_id: str, mark: Decimal) -> None:
        old = self.value(instrument_id)
        self.marks[instrument_id] = mark
        self.unmarked.discard(instrument_id)
        self._swap(old, self.value(instrument_id))


@dataclass(frozen=True, slots=True)
class RiskContext:
    """What the caller knows at the moment of a check. Cheap to build: plain mappings.

    Money (marks, equity, balances) is in the config's ``currency``; positions are signed
    base quantities. ``covariance`` and ``covariance_instruments`` (its column order) are
    needed only when a ``max_var`` limit is set. ``exposure``, if given, must describe the
    same positions and marks (see :class:`ExposureBook`). ``costs`` are the broker's cost
    rules by instrument (e.g. ``PaperBroker.cost_rules()``): the balance check sizes buys by
    what that broker reserves; without them, the instrument's own rule
    (:meth:`lyra.core.costs.CostRule.of`).
    """

    account_id: str
    positions: Mapping[str, Decimal]
    marks: Mapping[str, Decimal]
    equity: Decimal
    balances: Mapping[str, Decimal]
    open_orders: Sequence[Order]
    instruments: Mapping[str, Instrument]
    now: int  #: ms UTC, from the session's clock
    last_md_ts: Mapping[str, int] = field(default_factory=dict)  #: last market data per instrument
    covariance: CovarianceModel | None = None
    covariance_instruments: Sequence[str] = ()
    exposure: ExposureBook | None = None  #: optional: makes the exposure checks O(1)
    costs: Mapping[str, CostRule] | None = None  #: optional: the broker's cost rule per instrument


@dataclass(frozen=True, slots=True)
class RiskDecision:
    """The verdict on one order. ``decision_id`` is deterministic: ``"rd-" + client_order_id``."""

    decision_id: str
    client_order_id: str
    account_id: str
    instrument_id: str
    approved: bool
    check: str  #: the check that decided ("" when every check passed unchanged)
    reason: str  #: exact reason of a rejection or resize; "" for a plain approval
    quantity: Decimal  #: approved: what may be sent (resized down, or the order's); rejected: the order's
    requested_quantity: Decimal
    state: TradingState  #: the effective trading state at the decision
    ts: int  #: ms UTC (session clock)

    @property
    def resized(self) -> bool:
        return self.approved and self.quantity != self.requested_quantity

    def to_event(self) -> RiskDecided:
        """The ``risk.decision`` event-log entry (every field of its shape set)."""
        from lyra.audit.events import RiskDecided  # here: `import lyra.risk` loads no database code

        return RiskDecided(decision_id=self.decision_id, client_order_id=self.client_order_id,
                           approved=self.approved, reason=self.reason, check=self.check,
                           quantity=self.quantity, account_id=self.account_id,
                           instrument_id=self.instrument_id, requested_quantity=self.requested_quantity,
                           state=self.state.value, ts=self.ts)

    def to_payload(self) -> dict[str, Any]:
        """JSON-ready dict for the ``risk.decision`` event-log entry."""
        return self.to_event().to_payload()


class RiskEngine:
    """Pre-trade checks, trading states and circuit breakers for one session.

    Not thread-safe: one engine per session loop. Sessions in other processes share the
    trading state (and the kill switch) through the database, not through this object.

    ``account_id`` is the account the breaker hooks feed (a session trades as one account);
    :meth:`check` uses the context's account for limits and state. ``instruments`` (optional)
    lets the config be checked for unknown instrument ids up front. ``extra_checks`` are
    custom checks run last.
    """

    def __init__(
        self,
        config: RiskConfig,
        state: TradingStateStore,
        *,
        clock: Clock,
        account_id: str = "default",
        session_id: str = "",
        instruments: Mapping[str, Instrument] | None = None,
        extra_checks: Sequence[tuple[str, CustomCheck]] = (),
    ) -> None:
        if instruments is not None:
            config.check_instruments(instruments)
        self.config = config
        self.state = state
        self.clock = clock
        self.account_id = account_id
        self.session_id = session_id
        self._extra = tuple(extra_checks)
        self._resize = config.resize
        self._ccy = config.currency
        self._limits: dict[tuple[str, str], ResolvedLimits] = {}
        self._books: dict[str, AccountBook] = {}
        self._var_index: tuple[Sequence[str], dict[str, int]] | None = None
        state.watch(account_id)
        self.breakers = CircuitBreakers(config.breakers, self._record_trip, state.epoch, config.currency)
        self.breakers.restore(state.load_trips(account_id, clock.now_ms()))
        self.trips: list[BreakerTrip] = []  #: trips of this engine since it started
        for iid in instruments or ():
            self.limits_for(account_id, iid)  # precompute the hot path's lookups

    # ------------------------------------------------------------------------------ limits
    def limits_for(self, account_id: str, instrument_id: str) -> ResolvedLimits:
        """The effective limits of an account and instrument (computed once, then cached)."""
        key = (account_id, instrument_id)
        lim = self._limits.get(key)
        if lim is None:
            lim = self._limits[key] = ResolvedLimits(self.config.resolve(account_id, instrument_id))
        return lim

    def _book(self, account_id: str) -> AccountBook:
        b = self._books.get(account_id)
        if b is None:
            b = self._books[account_id] = AccountBook()
            self.state.watch(account_id)
        return b

    # ------------------------------------------------------------------------------- check
    def check(self, order: Order, ctx: RiskContext) -> RiskDecision:
        """Approve, resize or reject ``order``. Never raises; never approves on an error."""
        stage = "trading_state"
        state = _HALTED
        try:
            book = self._book(ctx.account_id)
            self.state.refresh()
            sc = self.state.effective(ctx.account_id)
            state = sc.state
            stage = "instrument"
            inst = ctx.instruments.get(order.intent.instrument_id)
            if inst is None:
                return self._reject(order, ctx, state, "unknown_instrument",
                                    f"unknown_instrument: {order.intent.instrument_id} is not in the context")
            o = OrderView(order, ctx, inst)
            if o.tag.startswith(_KILL_TAG):
                return self._kill_flatten(o, ctx, state)
            stage = "trading_state"
            if state is not TradingState.ACTIVE:
                msg = _state_block(sc, o)
                if msg is not None:
                    return self._reject(order, ctx, state, "trading_state", msg)
            stage = "breakers"
            epoch = self.state.epoch(ctx.account_id)
            now = ctx.now
            br = self.breakers
            trip = br.account_block(ctx.account_id, now, epoch)
            if trip is not None and (trip.action is _HALTED or not o.reduces()):
                return self._reject(order, ctx, state, trip.breaker, _trip_msg(trip))
            trip = br.instrument_block(o.instrument_id, now, epoch)
            if trip is not None and not o.reduces():
                return self._reject(order, ctx, state, trip.breaker, _trip_msg(trip))
            stage = "stale_data"
            msg = br.stale_check(ctx.account_id, o.instrument_id, now, ctx.last_md_ts.get(o.instrument_id))
            if msg is not None:
                return self._reject(order, ctx, state, "stale_data", msg)
            lim = self.limits_for(ctx.account_id, o.instrument_id)
            resized_by = ""
            resize_reason = ""
            ccy = self._ccy
            for name, fn in CHECKS:
                stage = name
                res = fn(o, ctx, lim, book, ccy)
                if res is None:
                    continue
                if isinstance(res, Resize):
                    name = res.reason.partition(":")[0]
                    q = floor_to_lot(res.quantity, inst.size_increment)
                    if name in self._resize and q > 0 and q >= inst.min_size and q < o.qty:
                        o.qty = q
                        if not resized_by:
                            resized_by, resize_reason = name, res.reason
                        continue
                    return self._reject(order, ctx, state, name, res.reason)
                return self._reject(order, ctx, state, res.partition(":")[0], res)
            if lim.max_var is not None:
                stage = "pre_trade_var"
                msg = run_var_check(o, ctx, lim.max_var, self._index(ctx), self.config.var_confidence,
                                    self.config.var_horizon, self.config.var_include_mean, ccy)
                if msg is not None:
                    return self._reject(order, ctx, state, msg.partition(":")[0], msg)
            for stage, custom in self._extra:
                msg = custom(order, ctx)
                if msg is not None:
                    return self._reject(order, ctx, state, stage, f"{stage}: {msg}")
            stage = "record"
            d = RiskDecision("rd-" + order.client_order_id, order.client_order_id, ctx.account_id,
                             o.instrument_id, True, resized_by,
                             f"resized to {fmt_qty(o.qty)} by {resize_reason}" if resized_by else "",
                             o.qty, order.intent.quantity, state, ctx.now)
            book.record((o.instrument_id, o.side.value, order.intent.quantity, o.key_price), ctx.now,
                        d.decision_id)
            return d
        except Exception as exc:  # never fail open: any error is a rejection
            return self._reject(order, ctx, state, stage,
                                f"{stage}: check failed ({type(exc).__name__}: {exc}); order rejected")

    def _reject(self, order: Order, ctx: RiskContext, state: TradingState, check: str,
                reason: str) -> RiskDecision:
        cid = getattr(order, "client_order_id", "?")
        intent = getattr(order, "intent", None)
        qty = getattr(intent, "quantity", ZERO)
        return RiskDecision("rd-" + str(cid), str(cid), str(getattr(ctx, "account_id", "?")),
                            str(getattr(intent, "instrument_id", "?")), False, check, reason, qty,
                            qty, state, int(getattr(ctx, "now", 0)))

    def _kill_flatten(self, o: OrderView, ctx: RiskContext, state: TradingState) -> RiskDecision:
        """The kill switch's own flattening: allowed (if configured) when it only reduces."""
        order = o.order
        if not self.config.halted_allows_kill_flatten and state is _HALTED:
            return self._reject(order, ctx, state, "trading_state",
                                "trading_state: halted; kill-switch flattening is disabled by config")
        if not (o.reduce_only and o.reduces()):
            return self._reject(order, ctx, state, "kill_flatten",
                                f"kill_flatten: {o.side.value} {fmt_qty(o.qty)} does not only reduce "
                                f"position {fmt_qty(o.pos)} (and must be reduce_only)")
        return RiskDecision("rd-" + order.client_order_id, order.client_order_id, ctx.account_id,
                            o.instrument_id, True, "kill_flatten", f"kill_flatten: {o.tag}", o.qty,
                            o.qty, state, ctx.now)

    def _index(self, ctx: RiskContext) -> dict[str, int]:
        cols = ctx.covariance_instruments
        cached = self._var_index
        if cached is None or cached[0] is not cols:
            self._var_index = cached = (cols, {iid: j for j, iid in enumerate(cols)})
        return cached[1]

    # ------------------------------------------------------------------------------- hooks
    def on_equity(self, ts: int, equity: Decimal, *, account_id: str | None = None) -> BreakerTrip | None:
        """Feed the account's equity (daily loss and drawdown breakers). ``O(1)``."""
        return self.breakers.on_equity(account_id or self.account_id, ts, equity)

    def on_fill(self, ts: int, realized_pnl: Decimal, fee: Decimal = ZERO, *,
                account_id: str | None = None) -> BreakerTrip | None:
        """Feed a fill's realised PnL and fee (consecutive-loss breaker). ``O(1)``."""
        return self.breakers.on_fill(account_id or self.account_id, ts, realized_pnl, fee)

    def on_bar(self, instrument_id: str, ts: int, close: float) -> BreakerTrip | None:
        """Feed a bar close (volatility breaker). ``O(1)``."""
        return self.breakers.on_bar(self.account_id, instrument_id, ts, close)

    def _record_trip(self, trip: BreakerTrip) -> None:
        self.trips.append(trip)
        self.state.record_trip(trip, session_id=self.session_id)
        if trip.until_ts is None and not trip.instrument_id:
            # "Until re-armed": the persisted state carries it, so it survives restarts and
            # only a person with the right role can lift it.
            scope = account_scope(trip.account_id)
            if self.state.get(scope).state.severity < trip.action.severity:
                self.state.set_state(scope, trip.action, actor="risk-engine",
                                     reason=f"breaker {trip.breaker}: {trip.reason}",
                                     session_id=self.session_id)

    # ------------------------------------------------------------------------------ status
    def trading_state(self, account_id: str | None = None) -> ScopeState:
        """The effective persisted state of an account (re-read if the cache is old)."""
        self.state.refresh()
        return self.state.effective(account_id or self.account_id)

    def active_trips(self, now: int | None = None) -> list[BreakerTrip]:
        """Breaker trips in force now (session clock)."""
        return self.breakers.status(self.clock.now_ms() if now is None else now)

    def set_state(self, state: TradingState | str, *, actor: str, reason: str = "",
                  account_id: str | None = None, everything: bool = False) -> ScopeState:
        """Set ACTIVE/REDUCING/HALTED for the account (or ``everything``) and record it.

        Lifting a HALTED state needs a role: use :meth:`lyra.risk.killswitch.KillSwitch.rearm`.
        """
        scope = GLOBAL_SCOPE if everything else account_scope(account_id or self.account_id)
        self.state.refresh(force=True)
        cur = self.state.get(scope)
        if cur.state is _HALTED and TradingState(state) is not _HALTED:
            from lyra.core.errors import ValidationError

            raise ValidationError("state", str(state), f"{scope} is halted",
                                  "re-arm it with `lyra risk rearm` (needs a role allowed to)")
        return self.state.set_state(scope, state, actor=actor, reason=reason, session_id=self.session_id)


def flatten_intents(positions: Mapping[str, Decimal], instruments: Mapping[str, Instrument],
                    request: KillRequest) -> list[OrderIntent]:
    """Reduce-only market orders that close every position, tagged for ``request``.

    The engine lets them through a HALTED state (if ``halted_allows_kill_flatten``) because
    they only reduce. Quantities are rounded down to the lot; dust below a lot stays.
    """
    out: list[OrderIntent] = []
    for iid, q in sorted(positions.items()):
        inst = instruments.get(iid)
        if q == 0 or inst is None:
            continue
        qty = floor_to_lot(abs(q), inst.size_increment)
        if qty <= 0:
            continue
        side = Side.SELL if q > 0 else Side.BUY
        out.append(OrderIntent(iid, side, qty, reduce_only=True, tag=request.flatten_tag))
    return out


def _state_block(sc: ScopeState, o: OrderView) -> str | None:
    who = f" by {sc.actor}" if sc.actor else ""
    why = f": {sc.reason}" if sc.reason else ""
    if sc.state is _HALTED:
        return f"trading_state: halted ({sc.scope}){who}{why}"
    if not o.reduces():
        return (f"trading_state: reducing ({sc.scope}){who}{why}; {o.side.value} {fmt_qty(o.qty)} "
                f"does not reduce position {fmt_qty(o.pos)}")
    return None


def _trip_msg(trip: BreakerTrip) -> str:
    until = "until re-armed" if trip.until_ts is None else f"until {trip.until_ts}"
    verb = "halted" if trip.action is _HALTED else "reduce-only"
    return f"{trip.breaker}: {verb} {until}: {trip.reason}"
