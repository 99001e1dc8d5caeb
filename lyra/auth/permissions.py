"""Roles, protected actions and THE permission table (DESIGN invariant 6: least privilege).

Every protected action asks this module, and only this module, whether a role may do it:

>>> is_allowed(Role.VIEWER, Action.PLACE_ORDER)
False
>>> require(Role.TRADER, Action.PLACE_ORDER)   # allowed: returns quietly
>>> require(Role.VIEWER, Action.PLACE_ORDER)
Traceback (most recent call last):
...
lyra.auth.permissions.PermissionDenied: role 'viewer' may not 'place_order': not permitted for this role

Changing who may do what means editing :data:`PERMISSIONS` below, and the permission-matrix
test, which spells out every role x action on purpose so a change is a deliberate choice.
Anything not in the table is denied (unknown roles, unknown actions).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import ParamSpec, TypeVar

from lyra.core.errors import LyraError, ValidationError


class Role(StrEnum):
    """The six roles. A user has exactly one."""

    ADMIN = "admin"  # runs the installation: users, keys, schedules; can do everything
    RISK_MANAGER = "risk_manager"  # owns risk: kill switch (pull and re-arm), cancels, audit
    TRADER = "trader"  # places and cancels orders, submits rebalances, may pull the kill switch
    ANALYST = "analyst"  # research: notebooks, schedules, read-only dashboards; never trades
    AUDITOR = "auditor"  # read-only audit log, fees and tax reports; never trades
    VIEWER = "viewer"  # read-only look at the main dashboards


class Action(StrEnum):
    """Every protected action. Dashboards are ``view_<app>``."""

    VIEW_TRADING = "view_trading"  # the trading dashboard (orders, fills, positions)
    VIEW_RISK = "view_risk"  # the live risk dashboard (limits, kill-switch state)
    VIEW_EXECUTIVE = "view_executive"  # the executive summary (equity, PnL, drawdown)
    VIEW_HFT = "view_hft"  # the high-frequency / microstructure dashboard
    VIEW_PORTFOLIO = "view_portfolio"  # the portfolio dashboard (holdings, allocation)
    VIEW_RISK_ANALYTICS = "view_risk_analytics"  # VaR/ES, stress tests, correlations
    VIEW_REBALANCING = "view_rebalancing"  # targets vs holdings, proposed trades
    VIEW_FEES = "view_fees"  # fees and costs dashboard
    VIEW_AUDIT = "view_audit"  # the audit-log viewer app
    PLACE_ORDER = "place_order"  # send a new order (paper or live) through risk
    CANCEL_ORDER = "cancel_order"  # cancel an open order
    PULL_KILL_SWITCH = "pull_kill_switch"  # halt trading: cancel all, block new orders
    REARM_KILL_SWITCH = "rearm_kill_switch"  # allow trading again after a kill
    MANAGE_USERS = "manage_users"  # add users, set roles, reset MFA, lock accounts
    READ_AUDIT_LOG = "read_audit_log"  # read raw audit-log entries (API, export)
    DOWNLOAD_TAX_REPORT = "download_tax_report"  # export tax reports
    RUN_NOTEBOOK = "run_notebook"  # execute a papermill notebook run
    MANAGE_SCHEDULE = "manage_schedule"  # create/change/delete scheduled runs
    MANAGE_API_KEYS = "manage_api_keys"  # create/rotate/revoke one's own API keys
    SUBMIT_REBALANCE = "submit_rebalance"  # turn a rebalance proposal into orders


_A = Action
_ALL_DASHBOARDS = frozenset(a for a in Action if a.value.startswith("view_"))

#: THE permission table: role -> the actions it may perform. Nothing else grants anything.
PERMISSIONS: Mapping[Role, frozenset[Action]] = MappingProxyType(
    {
        Role.ADMIN: frozenset(Action),
        Role.RISK_MANAGER: _ALL_DASHBOARDS
        | {
            _A.CANCEL_ORDER,
            _A.PULL_KILL_SWITCH,
            _A.REARM_KILL_SWITCH,
            _A.READ_AUDIT_LOG,
            _A.RUN_NOTEBOOK,
            _A.MANAGE_API_KEYS,
            # no PLACE_ORDER / SUBMIT_REBALANCE: who limits trading does not trade
        },
        Role.TRADER: frozenset(
            {
                _A.VIEW_TRADING,
                _A.VIEW_RISK,
                _A.VIEW_HFT,
                _A.VIEW_PORTFOLIO,
                _A.VIEW_RISK_ANALYTICS,
                _A.VIEW_REBALANCING,
                _A.VIEW_FEES,
                _A.PLACE_ORDER,
                _A.CANCEL_ORDER,
                _A.PULL_KILL_SWITCH,  # anyone who trades can stop trading...
                _A.SUBMIT_REBALANCE,
                _A.RUN_NOTEBOOK,
                _A.MANAGE_API_KEYS,
                # ...but only risk_manager/admin can re-arm
            }
        ),
        Role.ANALYST: frozenset(
            {
                _A.VIEW_TRADING,
                _A.VIEW_RISK,
                _A.VIEW_EXECUTIVE,
                _A.VIEW_HFT,
                _A.VIEW_PORTFOLIO,
                _A.VIEW_RISK_ANALYTICS,
                _A.VIEW_REBALANCING,
                _A.VIEW_FEES,
                _A.RUN_NOTEBOOK,
                _A.MANAGE_SCHEDULE,
                _A.MANAGE_API_KEYS,
            }
        ),
        Role.AUDITOR: frozenset(
            {
                _A.VIEW_EXECUTIVE,
                _A.VIEW_PORTFOLIO,
                _A.VIEW_FEES,
                _A.VIEW_AUDIT,
                _A.READ_AUDIT_LOG,
                _A.DOWNLOAD_TAX_REPORT,
            }
        ),
        Role.VIEWER: frozenset({_A.VIEW_TRADING, _A.VIEW_EXECUTIVE, _A.VIEW_PORTFOLIO}),
    }
)

#: Dashboard app name (as served, e.g. ``/risk``) -> the action that guards it.
DASHBOARD_ACTIONS: Mapping[str, Action] = MappingProxyType(
    {a.value.removeprefix("view_"): a for a in _ALL_DASHBOARDS}
)


class PermissionDenied(LyraError):
    """A role (or an API key's scopes) does not allow an action. Final: do not retry."""

    def __init__(self, role: str, action: str, reason: str = "not permitted for this role") -> None:
        self.role = role
        self.action = action
        self.reason = reason
        super().__init__(f"role {role!r} may not {action!r}: {reason}")


def parse_role(value: str | Role) -> Role:
    """``"trader"`` -> ``Role.TRADER``; anything else raises ValidationError."""
    try:
        return Role(value)
    except ValueError:
        raise ValidationError(
            "role", str(value)[:64], "unknown role", f"one of {', '.join(r.value for r in Role)}"
        ) from None


def parse_action(value: str | Action) -> Action:
    """``"place_order"`` -> ``Action.PLACE_ORDER``; anything else raises ValidationError."""
    try:
        return Action(value)
    except ValueError:
        raise ValidationError("action", str(value)[:64], "unknown action") from None


def actions_for(role: str | Role) -> frozenset[Action]:
    """Everything ``role`` may do (empty for an unknown role)."""
    try:
        return PERMISSIONS.get(Role(role), frozenset())
    except ValueError:
        return frozenset()


def is_allowed(role: str | Role, action: str | Action) -> bool:
    """True when the table lets ``role`` perform ``action``; unknown names are denied."""
    try:
        return Action(action) in actions_for(role)
    except ValueError:
        return False


def require(role: str | Role, action: str | Action) -> None:
    """Raise :class:`PermissionDenied` unless ``role`` may perform ``action``."""
    if not is_allowed(role, action):
        raise PermissionDenied(str(role), str(action))


@dataclass(frozen=True)
class Principal:
    """Who is asking: a logged-in user (``scopes`` None) or an API key (its scopes)."""

    subject: str
    role: Role
    scopes: frozenset[Action] | None = None
    via: str = "session"  # "session" or "api_key"
    key_id: str | None = None  # the API key's public prefix, when via == "api_key"

    def can(self, action: str | Action) -> bool:
        """The role allows ``action`` and, for an API key, its scopes include it."""
        if not is_allowed(self.role, action):
            return False
        return self.scopes is None or Action(action) in self.scopes

    def require(self, action: str | Action) -> None:
        """Raise :class:`PermissionDenied` unless :meth:`can` says yes."""
        if not is_allowed(self.role, action):
            raise PermissionDenied(self.role.value, str(action))
        if self.scopes is not None and Action(action) not in self.scopes:
            raise PermissionDenied(self.role.value, str(action), "outside the API key's scopes")


def check_scopes(role: str | Role, scopes: Iterable[str | Action]) -> frozenset[Action]:
    """Parse ``scopes`` and make sure each one is allowed for ``role`` (for API keys)."""
    parsed = frozenset(parse_action(s) for s in scopes)
    extra = parsed - actions_for(role)
    if extra:
        raise PermissionDenied(
            str(role), ",".join(sorted(extra)), "a key's scopes must be a subset of its role"
        )
    return parsed


P = ParamSpec("P")
R = TypeVar("R")


def requires(action: str | Action) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorator: the call is refused unless its principal may perform ``action``.

    The decorated function must take a ``principal`` parameter (a :class:`Principal`, or a
    ``Role``/role name). It is checked before the body runs::

        @requires(Action.PLACE_ORDER)
        def place_order(principal: Principal, order: Order) -> None: ...
    """
    wanted = parse_action(action)

    def decorate(func: Callable[P, R]) -> Callable[P, R]:
        signature = inspect.signature(func)
        if "principal" not in signature.parameters:
            raise TypeError(f"@requires needs {func.__qualname__} to take a 'principal' argument")

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            bound = signature.bind_partial(*args, **kwargs)
            who = bound.arguments.get("principal")
            if isinstance(who, Principal):
                who.require(wanted)
            elif isinstance(who, str):
                require(who, wanted)
            else:
                raise PermissionDenied(repr(type(who).__name__), wanted.value, "no principal given")
            return func(*args, **kwargs)

        return wrapper

    return decorate
