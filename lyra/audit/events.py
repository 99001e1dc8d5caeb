"""The event catalogue: one frozen type per kind of event-log entry.

Every entry's payload is a JSON object whose shape its kind fixes. Each kind has a type here
(``order.fill`` -> :class:`OrderFilled`, ``risk.decision`` -> :class:`RiskDecided`...), built
from the payloads Lyra writes, with

* ``to_payload()``: the dict to append (``canonical_json`` of it is what the chain hashes);
* ``from_payload(d)`` / ``from_json(text)``: strict reading -- a missing or unknown field, a
  value of the wrong JSON type, or text a writer would not have written raises
  :class:`EventPayloadError` naming the kind and the field.

Whatever is read writes back byte for byte, so logs written before this catalogue still
verify and replay::

    >>> from lyra.audit.events import parse_event
    >>> ev = parse_event("order.submit", '{"client_order_id":"s1-00000001","ts":1500000000000}')
    >>> type(ev).__name__, ev.client_order_id
    ('OrderSubmitted', 's1-00000001')
    >>> ev.to_payload()
    {'client_order_id': 's1-00000001', 'ts': 1500000000000}

:data:`EVENT_TYPES` maps every kind to its type; :func:`parse_event` reads any entry.
The writers are listed in each type's docstring; ``lyra.session`` and ``lyra.audit.ledger``
still build their payloads themselves (the order gateway moves them onto these types).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from lyra.audit._payload import Event, EventPayloadError, Json, Payload, freeze, thaw
from lyra.audit.chain import EventRecord
from lyra.audit.events_auth import (
    AUTH_TYPES,
    AuthAccountUnlocked,
    AuthApikeyCreated,
    AuthApikeyRejected,
    AuthApikeyRevoked,
    AuthApikeyRotated,
    AuthEntry,
    AuthLockout,
    AuthLoginFailed,
    AuthLoginOk,
    AuthLoginThrottled,
    AuthLogout,
    AuthLogoutAll,
    AuthMfaEnrolled,
    AuthMfaFailed,
    AuthMfaOk,
    AuthMfaReset,
    AuthPasswordChanged,
    AuthPermissionDenied,
    AuthRecoveryCodeUsed,
    AuthRoleChanged,
    AuthSessionExpired,
    AuthTokenRefreshed,
    AuthTokenRejected,
    AuthTokenReuse,
    AuthUserCreated,
)
from lyra.audit.events_ops import (
    AlgoFinished,
    AlgoStarted,
    BreakerTripped,
    CommandApplied,
    CommandDone,
    CommandRequested,
    DeadmanArmed,
    EquitySnapshot,
    KillAcknowledged,
    KillSwitchPulled,
    KillSwitchRearmed,
    LiveBaseline,
    ReconcileCompleted,
    ReconcileDifference,
    RouteCompleted,
    RouteDecided,
    SessionFailover,
    SessionFinished,
    SessionKilled,
    SessionStarted,
    SessionStopped,
    StrategyDenied,
    TradingStateChanged,
)
from lyra.audit.events_orders import (
    ORDER_TRANSITIONS,
    FillRecord,
    OrderAccepted,
    OrderCancelled,
    OrderCancelRejected,
    OrderCancelRequested,
    OrderCreated,
    OrderDenied,
    OrderExpired,
    OrderFilled,
    OrderPartiallyFilled,
    OrderRejected,
    OrderSubmitted,
    OrderTrackingLost,
    OrderTransition,
    RiskDecided,
    order_transition,
)

_ALL: tuple[type[Event], ...] = (
    OrderCreated, *ORDER_TRANSITIONS.values(), RiskDecided,
    SessionStarted, SessionFinished, SessionStopped, EquitySnapshot, SessionKilled, StrategyDenied,
    CommandApplied,
    CommandRequested, CommandDone,
    TradingStateChanged, KillSwitchPulled, KillSwitchRearmed, KillAcknowledged, BreakerTripped,
    AlgoStarted, AlgoFinished, RouteDecided, RouteCompleted,
    LiveBaseline, ReconcileDifference, ReconcileCompleted,
    SessionFailover, DeadmanArmed,
    *AUTH_TYPES,
)

#: Every event kind Lyra writes -> its type.
EVENT_TYPES: Mapping[str, type[Event]] = MappingProxyType({c.KIND: c for c in _ALL})
assert len(EVENT_TYPES) == len(_ALL), "two types claim one kind"


def event_type(kind: str) -> type[Event]:
    """The type of ``kind``; :class:`EventPayloadError` for a kind the catalogue does not know."""
    cls = EVENT_TYPES.get(kind)
    if cls is None:
        families = sorted({k.split(".", 1)[0] + ".*" for k in EVENT_TYPES})
        raise EventPayloadError(kind, "", kind, "unknown event kind", "known: " + ", ".join(families))
    return cls


def parse_event(kind: str, payload: Mapping[str, Any] | str) -> Event:
    """Read one entry's payload (the parsed dict, or the stored JSON text) as its kind's type."""
    cls = event_type(kind)
    if not isinstance(payload, str):
        return cls.from_payload(payload)
    try:
        data = json.loads(payload)
    except ValueError as exc:
        raise EventPayloadError(kind, "", payload[:80], f"is not JSON: {exc}") from None
    return cls.from_payload(data)


def parse_record(rec: EventRecord) -> Event:
    """Read a stored entry (``EventLog.read`` yields them)."""
    return parse_event(rec.kind, rec.payload)


__all__ = [
    "EVENT_TYPES",
    "ORDER_TRANSITIONS",
    "AlgoFinished",
    "AlgoStarted",
    "AuthAccountUnlocked",
    "AuthApikeyCreated",
    "AuthApikeyRejected",
    "AuthApikeyRevoked",
    "AuthApikeyRotated",
    "AuthEntry",
    "AuthLockout",
    "AuthLoginFailed",
    "AuthLoginOk",
    "AuthLoginThrottled",
    "AuthLogout",
    "AuthLogoutAll",
    "AuthMfaEnrolled",
    "AuthMfaFailed",
    "AuthMfaOk",
    "AuthMfaReset",
    "AuthPasswordChanged",
    "AuthPermissionDenied",
    "AuthRecoveryCodeUsed",
    "AuthRoleChanged",
    "AuthSessionExpired",
    "AuthTokenRefreshed",
    "AuthTokenRejected",
    "AuthTokenReuse",
    "AuthUserCreated",
    "BreakerTripped",
    "CommandApplied",
    "CommandDone",
    "CommandRequested",
    "EquitySnapshot",
    "Event",
    "EventPayloadError",
    "FillRecord",
    "Json",
    "KillAcknowledged",
    "KillSwitchPulled",
    "KillSwitchRearmed",
    "LiveBaseline",
    "OrderAccepted",
    "OrderCancelRejected",
    "OrderCancelRequested",
    "OrderCancelled",
    "OrderCreated",
    "OrderDenied",
    "OrderExpired",
    "OrderFilled",
    "OrderPartiallyFilled",
    "OrderRejected",
    "OrderSubmitted",
    "OrderTrackingLost",
    "OrderTransition",
    "Payload",
    "ReconcileCompleted",
    "ReconcileDifference",
    "RiskDecided",
    "RouteCompleted",
    "RouteDecided",
    "SessionFinished",
    "SessionKilled",
    "SessionStarted",
    "SessionStopped",
    "StrategyDenied",
    "TradingStateChanged",
    "event_type",
    "freeze",
    "order_transition",
    "parse_event",
    "parse_record",
    "thaw",
]
