"""Everything around the orders: ``session.*``, operator ``command.*``, ``risk.*`` trading
states and the kill switch, ``algo.*`` parents, ``route.*`` decisions, ``live.baseline`` and
``reconcile.*``. Each type names the module that writes it.

Where a part of a payload is another module's free-form record (a session's config, an
algorithm's spec, a route's books and children, a command's order), it is kept as read-only
JSON (``Json``): typed here would mean a second definition of those records.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, ClassVar

from lyra.audit._payload import Event, Json, extra_keys, key, plain
from lyra.core.enums import OrderType, Side

# --------------------------------------------------------------------------------- session


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStarted(Event):
    """``session.started`` (``lyra.session.runtime``): the config the session runs with (its
    ``model_dump(mode="json")``, without the lease length)."""

    KIND: ClassVar[str] = "session.started"
    config: Mapping[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class _SessionEnd(Event):
    orders: int
    fills: int
    denied: int
    fees: Decimal
    equity: Decimal
    balances: Mapping[str, Decimal]  #: asset -> cash
    positions: Mapping[str, Decimal]  #: instrument -> quantity


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFinished(_SessionEnd):
    """``session.finished`` (``lyra.session.runtime``): the data ended; the run's totals."""

    KIND = "session.finished"


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionStopped(_SessionEnd):
    """``session.stopped`` (``lyra.session.runtime``): stopped on request (``lyra session stop``,
    a signal, the kill switch); the totals so far. An operational marker: a resume may add
    another."""

    KIND = "session.stopped"


@dataclass(frozen=True, slots=True, kw_only=True)
class EquitySnapshot(Event):
    """``session.equity`` (``lyra.session.runtime``): equity every ``equity_every`` bars and at
    the end; ``marks`` are the last prices (float, as the strategy saw them)."""

    KIND: ClassVar[str] = "session.equity"
    equity: Decimal  #: quantized to 1e-8
    positions: Mapping[str, Decimal]  #: instrument -> quantity (non-zero only)
    marks: Mapping[str, float]  #: instrument -> last price


@dataclass(frozen=True, slots=True, kw_only=True)
class StrategyDenied(Event):
    """``session.denials`` (``lyra.session.gateway``): risk denied a strategy's orders on one
    instrument ``count`` times in a row; the session stops sending that intent (the same side)
    until the strategy's signal changes, rather than burn the session on denials."""

    KIND: ClassVar[str] = "session.denials"
    instrument_id: str
    side: str  #: the side no longer sent
    count: int
    reason: str  #: the last denial's reason
    client_order_id: str  #: the last denied order


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionKilled(Event):
    """``session.kill`` (``lyra.session.control``): the session acted on a kill-switch request
    at event ``at_event`` (a resume acts on it at the same event)."""

    KIND: ClassVar[str] = "session.kill"
    request_id: int
    flatten: bool
    scope: str  #: "global" or "account:<session>"
    actor: str  #: who pulled it
    at_event: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandApplied(Event):
    """``session.command`` (``lyra.session.commands``): the session took an operator command at
    event ``at_event`` (a resume re-does it there). ``payload``: the order's fields for
    ``submit``, ``{"client_order_id": ...}`` for ``cancel``."""

    KIND: ClassVar[str] = "session.command"
    command_id: int
    kind: str  #: submit / cancel
    payload: Mapping[str, Json]
    actor: str  #: the user
    role: str
    reason: str
    at_event: int


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandRequested(Event):
    """``command.requested`` (``lyra.session.commands``): a person queued a command for a
    running session (written with its ``session_commands`` row)."""

    KIND: ClassVar[str] = "command.requested"
    command_id: int
    kind: str  #: submit / cancel
    payload: Mapping[str, Json]
    role: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandDone(Event):
    """``command.done`` (``lyra.session.commands``): the command's outcome."""

    KIND: ClassVar[str] = "command.done"
    command_id: int
    status: str  #: done / refused
    result: str  #: what happened, for the person who asked
    client_order_id: str  #: the order it made or cancelled ("" if none)


# --------------------------------------------------------------------------------- risk


@dataclass(frozen=True, slots=True, kw_only=True)
class _StateChange(Event):
    scope: str  #: "global" or "account:<id>"
    from_state: str = key("from")  #: active / reducing / halted
    to_state: str = key("to")
    reason: str
    actor: str
    version: int  #: the scope's state version after the change


@dataclass(frozen=True, slots=True, kw_only=True)
class TradingStateChanged(_StateChange):
    """``risk.state_change`` (``lyra.risk.state``): a trading state set by a person (``lyra
    risk halt``), a breaker that lasts until re-armed, or a live session whose balances
    disagree with the venue."""

    KIND = "risk.state_change"


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSwitchPulled(_StateChange):
    """``risk.kill_switch`` (``lyra.risk.killswitch``): the scope is halted; sessions cancel
    their open orders (and flatten if asked) when they see request ``request_id``."""

    KIND = "risk.kill_switch"
    request_id: int
    flatten: bool
    cancel_open_orders: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class KillSwitchRearmed(_StateChange):
    """``risk.rearm`` (``lyra.risk.killswitch``): a person with ``role`` set the scope active."""

    KIND = "risk.rearm"
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class KillAcknowledged(Event):
    """``risk.kill_ack`` (``lyra.risk.killswitch``): a session did what request ``request_id``
    asked: ``cancelled`` orders, ``flatten_orders`` orders sent to flatten."""

    KIND: ClassVar[str] = "risk.kill_ack"
    request_id: int
    scope: str
    cancelled: int
    flatten_orders: int


@dataclass(frozen=True, slots=True, kw_only=True)
class BreakerTripped(Event):
    """``risk.breaker_trip`` (``lyra.risk.state``): a circuit breaker tripped."""

    KIND: ClassVar[str] = "risk.breaker_trip"
    breaker: str  #: daily_loss, drawdown, consecutive_losses, volatility, stale_data
    account_id: str
    instrument_id: str  #: "" for account-wide breakers
    action: str  #: reducing / halted
    reason: str
    ts: int  #: ms UTC, the session's clock
    until_ts: int | None  #: None: until a person re-arms


# --------------------------------------------------------------------------------- algorithms


@dataclass(frozen=True, slots=True, kw_only=True)
class AlgoStarted(Event):
    """``algo.started`` (``lyra.session.algo_runtime``): a parent order an execution algorithm
    works through children; ``spec`` is its ``AlgoSpec.to_dict()``."""

    KIND: ClassVar[str] = "algo.started"
    parent_id: str
    instrument_id: str
    side: Side
    quantity: Decimal
    order_type: OrderType
    reduce_only: bool
    tag: str
    spec: Mapping[str, Json]
    reference_price: Decimal | None  #: the mark when it started (None: no price yet)


@dataclass(frozen=True, slots=True, kw_only=True)
class AlgoFinished(Event):
    """``algo.finished`` (``lyra.session.algo_runtime``): a parent ended (or could not start)."""

    KIND: ClassVar[str] = "algo.finished"
    parent_id: str
    status: str  #: completed, cancelled, failed...
    reason: str
    quantity: Decimal
    filled: Decimal
    avg_price: Decimal | None
    children: int
    child_ids: tuple[str, ...]


# --------------------------------------------------------------------------------- routing


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteDecided(Event):
    """``route.decision`` (``lyra.execution.routed_desk``): one round's split across venues
    (``RoutePlan.to_record()`` with the account and round). ``children``, ``single_venue``,
    ``single_venue_best`` and ``books`` are the plan's own records."""

    KIND: ClassVar[str] = "route.decision"
    account_id: str
    round: int
    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    routed: Decimal
    unroutable: Decimal
    children: tuple[Json, ...]
    expected_gross: Decimal
    expected_fees: Decimal
    expected_net: Decimal
    expected_avg_price: Decimal | None
    expected_avg_price_gross: Decimal | None
    single_venue: tuple[Json, ...]
    single_venue_best: Mapping[str, Json] | None
    improvement: Decimal | None
    exact: bool
    subsets_searched: int
    combos_searched: int
    books: tuple[Json, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteCompleted(Event):
    """``route.completed`` (``lyra.execution.routed_desk``): a routed order's outcome
    (``RouteResult.to_record()`` with the account); ``rounds`` are its rounds' records."""

    KIND: ClassVar[str] = "route.completed"
    account_id: str
    side: Side
    quantity: Decimal
    filled: Decimal
    remainder: Decimal
    gross: Decimal
    fees: Decimal
    net: Decimal
    avg_price_gross: Decimal | None
    avg_price_net: Decimal | None
    expected_avg_price: Decimal | None
    expected_avg_price_gross: Decimal | None
    slippage_bps: Decimal | None
    stop_reason: str
    rounds: tuple[Json, ...]


# --------------------------------------------------------------------------------- live venues


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveBaseline(Event):
    """``live.baseline`` (``lyra.session.live``): the venue's balances when a live session
    first started; its cash is this plus every fill since."""

    KIND: ClassVar[str] = "live.baseline"
    balances: Mapping[str, Decimal] = plain()  #: asset -> total, plain digits


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileDifference(Event):
    """``reconcile.difference`` (``lyra.session.live`` with ``lyra.execution.reconcile``): one
    thing the venue and the log disagreed on; ``detail`` holds the rest of the payload, which
    depends on ``kind`` (order-resolved: log/venue status and filled; fill-adopted: the fill;
    balance-mismatch: the asset and the totals...)."""

    KIND: ClassVar[str] = "reconcile.difference"
    kind: str  #: order-resolved, order-never-arrived, fill-adopted, orphan-cancelled, ...
    client_order_id: str  #: "" when it is about no order
    detail: Mapping[str, Json] = extra_keys()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReconcileCompleted(Event):
    """``reconcile.completed`` (``lyra.session.live``): counts of differences by kind, and the
    balance check's outcome."""

    KIND: ClassVar[str] = "reconcile.completed"
    differences: Mapping[str, int]
    balances_ok: bool
    #: asset -> {"expected", "venue", "difference"}, plain digits
    balance_gaps: Mapping[str, Mapping[str, Decimal]] = plain()
    venue_balances: Mapping[str, Decimal] = plain()  #: asset -> total, plain digits


# --------------------------------------------------------------------------------- failover


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionFailover(Event):
    """``session.failover`` (``lyra.session.standby``): a standby took over a session whose
    owner's lease ran out (or whose owner process died on the standby's host), under a new
    epoch, before resuming it. An operational marker (``lyra.session.recorder.is_operational``):
    a resume does not re-verify it. ``ts`` is wall time."""

    KIND: ClassVar[str] = "session.failover"
    reason: str  #: "owner process gone" / "lease expired"
    old_pid: int
    old_host: str
    old_epoch: int
    old_expires_ts: int  #: wall ms: when the old owner's lease ran out (or would have)
    new_pid: int
    new_host: str
    new_epoch: int
    waited_ms: int  #: how long the standby had waited when it took over


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadmanArmed(Event):
    """``session.deadman_armed`` (``lyra.execution.deadman``): a live session armed the venue's
    dead-man switch (ccxt ``cancel_all_orders_after``): if no owner renews it within
    ``timeout_ms`` the venue cancels every resting order. Written when first armed by a
    process (``renewals`` 0) and when it is disarmed at a clean stop (``timeout_ms`` 0), not at
    every renewal. An operational marker, like ``session.failover``."""

    KIND: ClassVar[str] = "session.deadman_armed"
    venue: str
    timeout_ms: int  #: 0: disarmed
    renew_every_ms: int
    renewals: int  #: renewals by this process before this entry
    pid: int
    epoch: int  #: the lease epoch of the process that armed it (0: not known)
