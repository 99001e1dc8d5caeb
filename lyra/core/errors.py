"""The tree of Lyra errors.

    LyraError
    ├── ValidationError        bad input: names the field, the value and the fix (final)
    │   ├── InvalidOrder       an order that can never be accepted as given (final)
    │   └── ConfigError        a setting or config file that cannot be used (final)
    ├── IllegalTransition      an order event that its current state does not allow (final)
    ├── InsufficientFunds      the balance does not cover the order (final)
    ├── RiskRejected           a pre-trade check said no (final)
    ├── IntegrityError         stored state is inconsistent (tampering, wrong migration level)
    └── TemporaryError         worth retrying: network, rate limit, busy venue
        ├── NetworkError
        └── RateLimited

Callers retry only ``TemporaryError``; everything else is final and must be fixed.
"""

from __future__ import annotations


class LyraError(Exception):
    """Base class of every error Lyra raises on purpose."""


class ValidationError(LyraError, ValueError):
    """Bad input. ``field`` and ``value`` say what and where; ``hint`` says how to fix it."""

    def __init__(self, field: str, value: object, problem: str, hint: str | None = None) -> None:
        self.field = field
        self.value = value
        self.problem = problem
        self.hint = hint
        text = f"{field}={value!r}: {problem}"
        if hint:
            text += f" ({hint})"
        super().__init__(text)


class InvalidOrder(ValidationError):
    """An order that can never be accepted as given (size, price, symbol...)."""


class ConfigError(ValidationError):
    """A setting or config file that cannot be used."""


class IllegalTransition(LyraError):
    """An order event that the order's current state does not allow."""

    def __init__(self, order_id: str, state: str, event: str) -> None:
        self.order_id = order_id
        self.state = state
        self.event = event
        super().__init__(f"order {order_id}: event {event!r} is not allowed in state {state!r}")


class InsufficientFunds(LyraError):
    """The account balance does not cover the order."""


class RiskRejected(LyraError):
    """A pre-trade risk check rejected the order; ``reason`` says which and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class IntegrityError(LyraError):
    """Stored state is inconsistent: a broken audit chain, a wrong schema version..."""


class TemporaryError(LyraError):
    """A failure worth retrying later (network, rate limit, busy venue)."""


class NetworkError(TemporaryError):
    """The venue or server could not be reached or did not answer in time."""


class RateLimited(TemporaryError):
    """The venue asked us to slow down."""
