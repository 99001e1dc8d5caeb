"""The permission matrix, written out by hand: changing the table must change this test."""

from __future__ import annotations

import pytest

from lyra.auth.permissions import (
    DASHBOARD_ACTIONS,
    PERMISSIONS,
    Action,
    PermissionDenied,
    Principal,
    Role,
    actions_for,
    check_scopes,
    is_allowed,
    parse_role,
    require,
    requires,
)
from lyra.core.errors import LyraError, ValidationError

# Y = allowed, . = denied.  Columns: admin, risk_manager, trader, analyst, auditor, viewer.
MATRIX = """
view_trading         Y Y Y Y . Y
view_risk            Y Y Y Y . .
view_executive       Y Y . Y Y Y
view_hft             Y Y Y Y . .
view_portfolio       Y Y Y Y Y Y
view_risk_analytics  Y Y Y Y . .
view_rebalancing     Y Y Y Y . .
view_fees            Y Y Y Y Y .
view_audit           Y Y . . Y .
place_order          Y . Y . . .
cancel_order         Y Y Y . . .
pull_kill_switch     Y Y Y . . .
rearm_kill_switch    Y Y . . . .
manage_users         Y . . . . .
read_audit_log       Y Y . . Y .
download_tax_report  Y . . . Y .
run_notebook         Y Y Y Y . .
manage_schedule      Y . . Y . .
manage_api_keys      Y Y Y Y . .
submit_rebalance     Y . Y . . .
"""
COLUMNS = [Role.ADMIN, Role.RISK_MANAGER, Role.TRADER, Role.ANALYST, Role.AUDITOR, Role.VIEWER]


def expected() -> dict[tuple[Role, Action], bool]:
    table: dict[tuple[Role, Action], bool] = {}
    for line in MATRIX.strip().splitlines():
        name, *marks = line.split()
        assert len(marks) == len(COLUMNS), line
        for role, mark in zip(COLUMNS, marks, strict=True):
            table[(role, Action(name))] = mark == "Y"
    return table


def test_matrix_covers_every_role_and_action() -> None:
    assert set(COLUMNS) == set(Role)
    assert len(Role) == 6
    assert {a for _, a in expected()} == set(Action)
    assert len(expected()) == 6 * len(Action)


@pytest.mark.parametrize(("role", "action"), sorted(expected(), key=str))
def test_permission_matrix(role: Role, action: Action) -> None:
    allowed = expected()[(role, action)]
    assert is_allowed(role, action) is allowed
    assert is_allowed(role.value, action.value) is allowed
    if allowed:
        require(role, action)
    else:
        with pytest.raises(PermissionDenied):
            require(role, action)


def test_table_has_nothing_beyond_the_matrix() -> None:
    for role in Role:
        assert PERMISSIONS[role] == {a for (r, a), ok in expected().items() if r is role and ok}
    with pytest.raises(TypeError):
        PERMISSIONS[Role.VIEWER] = frozenset(Action)  # type: ignore[index]


def test_unknown_names_are_denied() -> None:
    assert not is_allowed("root", Action.PLACE_ORDER)
    assert not is_allowed(Role.ADMIN, "launch_missiles")
    assert actions_for("nobody") == frozenset()
    with pytest.raises(PermissionDenied):
        require("root", "place_order")
    with pytest.raises(ValidationError):
        parse_role("root")


def test_permission_denied_is_a_lyra_error() -> None:
    with pytest.raises(PermissionDenied) as info:
        require(Role.VIEWER, Action.PLACE_ORDER)
    assert isinstance(info.value, LyraError)
    assert (info.value.role, info.value.action) == ("viewer", "place_order")


def test_dashboard_actions() -> None:
    assert DASHBOARD_ACTIONS["risk"] is Action.VIEW_RISK
    assert DASHBOARD_ACTIONS["risk_analytics"] is Action.VIEW_RISK_ANALYTICS
    assert len(DASHBOARD_ACTIONS) == 9


def test_principal_with_scopes() -> None:
    trader_key = Principal("alice", Role.TRADER, scopes=frozenset({Action.VIEW_TRADING}))
    assert trader_key.can(Action.VIEW_TRADING)
    assert not trader_key.can(Action.PLACE_ORDER)  # role allows, scope does not
    with pytest.raises(PermissionDenied, match="scopes"):
        trader_key.require(Action.PLACE_ORDER)
    over_scoped = Principal("v", Role.VIEWER, scopes=frozenset({Action.PLACE_ORDER}))
    assert not over_scoped.can(Action.PLACE_ORDER)  # scope cannot exceed the role
    assert check_scopes(Role.TRADER, ["place_order"]) == {Action.PLACE_ORDER}
    with pytest.raises(PermissionDenied):
        check_scopes(Role.VIEWER, ["place_order"])


def test_requires_decorator() -> None:
    calls: list[str] = []

    @requires(Action.PLACE_ORDER)
    def place_order(principal: Principal | str, symbol: str) -> str:
        calls.append(symbol)
        return symbol

    assert place_order(Principal("t", Role.TRADER), "BTC/USDT") == "BTC/USDT"
    assert place_order(principal="trader", symbol="ETH/USDT") == "ETH/USDT"
    with pytest.raises(PermissionDenied):
        place_order(Principal("v", Role.VIEWER), "BTC/USDT")  # a viewer calling a trader action
    with pytest.raises(PermissionDenied):
        place_order(None, "BTC/USDT")  # type: ignore[arg-type]
    assert calls == ["BTC/USDT", "ETH/USDT"]  # the body never ran for the refused calls

    with pytest.raises(TypeError):

        @requires(Action.PLACE_ORDER)
        def no_principal(symbol: str) -> None: ...
