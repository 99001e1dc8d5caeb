"""Payloads built by the writers' own code (risk, reconciliation, routing, auth) read back
through the catalogue to the same canonical JSON. The whole-session paths are in
tests/integration/audit/test_event_catalogue.py."""

from __future__ import annotations

import csv
import gzip
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra.audit import canonical_json, parse_event
from lyra.audit.events import (
    BreakerTripped,
    ReconcileCompleted,
    ReconcileDifference,
    RiskDecided,
    RouteCompleted,
    RouteDecided,
)
from lyra.core import Side
from lyra.core.enums import Liquidity
from lyra.core.orders import Fill, OrderIntent
from lyra.execution.broker import Balance
from lyra.execution.reconcile import Difference, ReconcileResult
from lyra.execution.routing import VenueQuote, execute_route, planner
from lyra.risk import BreakerTrip, RiskDecision, TradingState

D = Decimal
FIX = Path(__file__).resolve().parents[2] / "fixtures"


def reads_back(kind: str, payload: dict[str, Any]) -> Any:
    text = canonical_json(payload)
    ev = parse_event(kind, text)
    assert canonical_json(ev.to_payload()) == text
    return ev


def test_the_risk_engines_decision_and_breaker_trip() -> None:
    d = RiskDecision("rd-s1-00000007", "s1-00000007", "s1", "coinbase:BTC/USD", True, "max_position",
                     "resized to the position limit", D("0.05"), D("0.10"), TradingState.REDUCING, 1_500_000_000_000)
    ev = reads_back("risk.decision", d.to_payload())
    assert isinstance(ev, RiskDecided) and ev == d.to_event()
    assert ev.resized and ev.state == "reducing" and ev.requested_quantity == D("0.10")
    trip = BreakerTrip("daily_loss", "s1", "", TradingState.HALTED, "lost 5.2%", 1_500_000_000_000, None, 3)
    ev2 = reads_back("risk.breaker_trip", trip.to_payload())
    assert isinstance(ev2, BreakerTripped) and ev2.until_ts is None and ev2.action == "halted"
    assert "epoch" not in trip.to_payload()  # the epoch stays in the table, as before


def test_reconciliation_differences_and_summary() -> None:
    fill = Fill("t9", "lv1-00000002", "binance:XRP/USDT", Side.SELL, D("50"), D("1.9601"), D("0.0490025"),
                "USDT", Liquidity.MAKER, 1_700_000_000_000)
    diffs = [
        Difference("order-never-arrived", "lv1-00000003", {"log_status": "submitted"}),
        Difference("fill-adopted", fill.client_order_id,
                   {"fill_id": fill.fill_id, "instrument_id": fill.instrument_id, "side": "sell",
                    "quantity": str(fill.quantity), "price": str(fill.price), "fee": str(fill.fee), "ts": fill.ts}),
        Difference("orphan-cancelled", "lv1-00000099", {"venue_order_id": "42", "limit_price": None}),
        Difference("balance-mismatch", "", {"asset": "XRP", "expected": "1000", "venue": "1000.5",
                                            "difference": "0.5"}),
    ]
    for d in diffs:
        ev = reads_back("reconcile.difference", d.to_payload())
        assert isinstance(ev, ReconcileDifference) and (ev.kind, ev.client_order_id) == (d.kind, d.client_order_id)
        assert dict(ev.detail) == d.detail
    res = ReconcileResult(differences=diffs,
                          venue_balances={"XRP": Balance("XRP", D("1000.50"), D(0)),
                                          "USDT": Balance("USDT", D("49000.000"), D("1000"))},
                          balance_gaps={"XRP": {"expected": "1000", "venue": "1000.5", "difference": "0.5"}})
    summary = res.summary()
    assert summary["venue_balances"] == {"USDT": "50000", "XRP": "1000.5"}  # plain digits, as before
    ev = reads_back("reconcile.completed", summary)
    assert isinstance(ev, ReconcileCompleted) and not ev.balances_ok
    assert ev.balance_gaps["XRP"]["difference"] == D("0.5") and ev.differences["fill-adopted"] == 1


def _books() -> list[tuple[int, list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]]:
    books: dict[int, tuple[list[tuple[Decimal, Decimal]], list[tuple[Decimal, Decimal]]]] = {}
    with gzip.open(FIX / "routing" / "bybit_XRPUSDT_books_top50.csv.gz", "rt") as f:
        for r in csv.DictReader(f):
            b = books.setdefault(int(r["timestamp_ms"]), ([], []))
            b[0 if r["side"] == "bid" else 1].append((D(r["price"]), D(r["size"])))
    return [(ts, *books[ts]) for ts in sorted(books)]


def test_a_routed_orders_decision_and_outcome() -> None:
    """A real split over three recorded books; each child 'fills' half at its limit, so the
    route re-plans (two rounds, fills, remainders: every part of both records)."""
    books = _books()
    quotes = [VenueQuote(n, books[i][1], books[i][2], D(fee), D(1), D(1), D(5), D("0.0001"), books[i][0])
              for n, i, fee in (("A", 0, "0.001"), ("B", 2, "0.0004"), ("C", 4, "0.0002"))]
    records: list[dict[str, Any]] = []
    plan_fn = planner(Side.BUY)

    def plan_and_record(qty: Decimal, qs: Any) -> Any:
        plan = plan_fn(qty, qs)
        records.append({"account_id": "router", "round": len(records) + 1, **plan.to_record()})
        return plan

    def send_child(venue: str, intent: OrderIntent) -> list[Fill]:
        assert intent.limit_price is not None
        half = (intent.quantity / 2).quantize(D(1))
        return [Fill(f"{venue}-{len(records)}", f"router-{venue}", "binance:XRP/USDT", intent.side, half,
                     intent.limit_price, half * intent.limit_price * D("0.001"), "USDT", Liquidity.TAKER, 1)]

    result = execute_route(plan_and_record, send_child, lambda: quotes, quantity=D(20000), max_rounds=2)
    assert len(records) == 2
    for rec in records:
        ev = reads_back("route.decision", rec)
        assert isinstance(ev, RouteDecided) and ev.account_id == "router" and len(ev.children) >= 2
    done = reads_back("route.completed", {"account_id": "router", **result.to_record()})
    assert isinstance(done, RouteCompleted) and done.filled == result.filled_quantity and len(done.rounds) == 2


def test_every_auth_event_as_the_service_writes_it() -> None:
    from lyra.auth.policy import AuthEvent, AuthEventKind
    from lyra.auth.service import event_kind

    at = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    for k in AuthEventKind:
        ev = AuthEvent(k, "alice", {"reason": "because", "client": "127.0.0.1", "failures": 2, "scopes": ["a"]},
                       at=at)
        back = reads_back(event_kind(k), ev.to_dict())
        assert back.subject == "alice" and back.at == at  # type: ignore[attr-defined]
    bare = AuthEvent(AuthEventKind.LOGIN_FAILED, "Bad Name!", {})
    assert reads_back("auth.login_failed", bare.to_dict()).at is None  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["risk.state_change", "risk.kill_switch", "risk.rearm"])
def test_trading_state_entries_refuse_fields_their_kind_does_not_have(kind: str) -> None:
    base = {"scope": "global", "from": "active", "to": "halted", "reason": "", "actor": "ops", "version": 1}
    extra = {"risk.state_change": {}, "risk.kill_switch": {"request_id": 1, "flatten": True,
                                                          "cancel_open_orders": True},
             "risk.rearm": {"role": "risk_manager"}}[kind]
    reads_back(kind, {**base, **extra})
    with pytest.raises(ValueError, match=f"{kind}.role=.*unknown field" if kind != "risk.rearm" else "missing"):
        if kind == "risk.rearm":
            parse_event(kind, base)
        else:
            parse_event(kind, {**base, **extra, "role": "admin"})
