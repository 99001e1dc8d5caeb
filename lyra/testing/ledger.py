"""A pen for tests and fixtures that seed a log with orders directly (the ledger's own tests,
a dashboard fixture's fills): everything else writes orders through the order gateway
(:mod:`lyra.execution.gateway`), which holds the ledger's other pen."""

from __future__ import annotations

from lyra.audit.ledger import OrderPen, issue_order_pen


def fixture_pen() -> OrderPen:
    """An :class:`~lyra.audit.ledger.OrderPen` for seeding test logs."""
    return issue_order_pen("test-fixture")


__all__ = ["fixture_pen"]
