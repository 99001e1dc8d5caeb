"""Value types shared by the risk engine, its breakers and its state store (no I/O here)."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class TradingState(StrEnum):
    """What a scope (everything, or one account) may do."""

    ACTIVE = "active"  #: every order that passes the checks
    REDUCING = "reducing"  #: only orders that reduce an existing position
    HALTED = "halted"  #: nothing (except, if configured, the kill switch's own flattening)

    @property
    def severity(self) -> int:
        return _SEVERITY[self]


_SEVERITY = {TradingState.ACTIVE: 0, TradingState.REDUCING: 1, TradingState.HALTED: 2}

GLOBAL_SCOPE = "global"


def account_scope(account_id: str) -> str:
    """The trading-state scope of one account (a session trades as one account)."""
    return f"account:{account_id}"


@dataclass(frozen=True, slots=True)
class ScopeState:
    """The persisted trading state of one scope, as last read."""

    scope: str  #: ``global`` or ``account:<id>``
    state: TradingState
    reason: str
    actor: str
    ts: int  #: ms UTC (wall clock) of the last change
    version: int  #: grows on every change (0: never set, i.e. ACTIVE by default)
    rearms: int  #: how many times it was re-armed

    @classmethod
    def default(cls, scope: str) -> ScopeState:
        return cls(scope, TradingState.ACTIVE, "", "", 0, 0, 0)


@dataclass(frozen=True, slots=True)
class BreakerTrip:
    """A circuit breaker that tripped: what, where, why, and until when."""

    breaker: str  #: daily_loss, drawdown, consecutive_losses, volatility, stale_data
    account_id: str
    instrument_id: str  #: "" for account-wide breakers
    action: TradingState  #: REDUCING or HALTED
    reason: str
    ts: int  #: session clock, ms UTC
    until_ts: int | None  #: None: until a person re-arms the account
    epoch: int = 0  #: re-arms (global + account) when it tripped; a re-arm ends it

    def active(self, now: int, epoch: int) -> bool:
        return self.epoch == epoch and (self.until_ts is None or now < self.until_ts)

    def to_payload(self) -> dict[str, object]:
        """The ``risk.breaker_trip`` entry's payload (``epoch`` stays in the table)."""
        from lyra.audit.events import BreakerTripped  # here: `import lyra.risk` loads no database code

        return BreakerTripped(breaker=self.breaker, account_id=self.account_id,
                              instrument_id=self.instrument_id, action=self.action.value,
                              reason=self.reason, ts=self.ts, until_ts=self.until_ts).to_payload()


@dataclass(frozen=True, slots=True)
class KillRequest:
    """A pulled kill switch that running sessions must act on."""

    id: int
    scope: str  #: ``global`` or ``account:<id>``
    flatten: bool  #: also close every position
    actor: str  #: who pulled it
    reason: str
    ts: int  #: ms UTC

    def applies_to(self, account_id: str) -> bool:
        return self.scope == GLOBAL_SCOPE or self.scope == account_scope(account_id)

    @property
    def flatten_tag(self) -> str:
        """The ``OrderIntent.tag`` of the orders that carry out this request's flattening."""
        return f"kill-flatten:{self.id}"
