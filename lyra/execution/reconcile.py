"""Restart reconciliation: what the log says against what the venue says.

Run when a live session starts or resumes, before it trades. For every order the log holds
open (working, submitted, or lost track of) the venue is asked by client order id; fills that
happened while we were down are adopted; orders the venue has that the log does not know
(orphans) are cancelled, adopted or left alone per :class:`ReconcilePolicy`; and the venue's
balances are compared with what the log implies. **Every difference is returned as a
:class:`Difference`** for the caller to record in the event log — nothing is corrected
silently. Balances that disagree beyond the tolerance make the result ``balances_ok = False``:
the caller halts trading until a person acknowledges (``lyra risk rearm``).

The venue is the truth for what happened to our orders; the log is the truth for what we
decided. Reports that bring our orders up to date come out of the broker's
``poll_reports()`` afterwards, like any other report, so the session applies them through
its normal path.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from lyra.audit.events import ReconcileCompleted, ReconcileDifference, freeze
from lyra.core.enums import OrderStatus
from lyra.core.errors import ValidationError
from lyra.core.orders import Fill, Order
from lyra.core.values import plain_str
from lyra.execution.broker import Balance, OrderReport
from lyra.execution.ccxt_broker import CcxtBroker

log = logging.getLogger(__name__)
S = OrderStatus


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """How to treat what the venue has and the log does not.

    ``orphans``: ``cancel`` (default: an order nobody is watching must not rest), ``adopt``
    (track it as the session's), or ``leave`` (record it, do nothing). Only orders whose
    client id carries the session's prefix are ever adopted or cancelled; other orders on the
    account are recorded and left alone. ``balance_abs_tol`` / ``balance_rel_tol``: how far
    the venue's total of an asset may be from the expected one before trading is refused.
    """

    orphans: Literal["cancel", "adopt", "leave"] = "cancel"
    balance_abs_tol: Decimal = Decimal("1e-8")
    balance_rel_tol: Decimal = Decimal("1e-6")

    def __post_init__(self) -> None:
        if self.orphans not in ("cancel", "adopt", "leave"):
            raise ValidationError("reconcile.orphans", self.orphans, "use cancel, adopt or leave")
        for name in ("balance_abs_tol", "balance_rel_tol"):
            v = getattr(self, name)
            if not isinstance(v, Decimal) or not v.is_finite() or v < 0:
                raise ValidationError(f"reconcile.{name}", v, "must be a Decimal >= 0")


@dataclass(frozen=True, slots=True)
class Difference:
    """One thing the venue and the log disagreed on, and what was done about it."""

    kind: str  #: order-resolved, order-missing, fill-adopted, orphan-cancelled, orphan-adopted, ...
    client_order_id: str = ""
    detail: dict[str, Any] = field(default_factory=dict)

    def to_event(self) -> ReconcileDifference:
        """The ``reconcile.difference`` entry (``detail`` becomes the payload's other keys)."""
        return ReconcileDifference(kind=self.kind, client_order_id=self.client_order_id,
                                   detail=freeze(self.detail))

    def to_payload(self) -> dict[str, Any]:
        return self.to_event().to_payload()


@dataclass
class ReconcileResult:
    """What reconciliation found. ``differences`` go to the event log."""

    differences: list[Difference] = field(default_factory=list)
    venue_balances: dict[str, Balance] = field(default_factory=dict)
    balance_gaps: dict[str, dict[str, str]] = field(default_factory=dict)
    adopted: list[OrderReport] = field(default_factory=list)  #: orphans to create as our orders

    @property
    def balances_ok(self) -> bool:
        return not self.balance_gaps

    def summary(self) -> dict[str, Any]:
        counts: dict[str, int] = {}
        for d in self.differences:
            counts[d.kind] = counts.get(d.kind, 0) + 1
        return ReconcileCompleted(
            differences=counts, balances_ok=self.balances_ok,
            balance_gaps={a: {k: Decimal(v) for k, v in g.items()} for a, g in self.balance_gaps.items()},
            venue_balances={a: b.total for a, b in sorted(self.venue_balances.items())},
        ).to_payload()


def _view_detail(before: Order, view: OrderReport) -> dict[str, Any]:
    return {"log_status": before.status.value, "venue_status": view.status.value,
            "log_filled": str(before.filled_quantity), "venue_filled": str(view.filled_quantity),
            "venue_order_id": view.venue_order_id}


def reconcile(broker: CcxtBroker, local_orders: Mapping[str, Order], *, client_id_prefix: str,
              known_fill_ids: Iterable[str] = (), fills_since_ts: int | None = None,
              expected_balances: Mapping[str, Decimal] | None = None,
              policy: ReconcilePolicy | None = None) -> ReconcileResult:
    """Compare the log's view (``local_orders``: every order of the session, by client id)
    with the venue's, bring the broker's tracking up to date, and return the differences.

    After this call, ``broker.poll_reports()`` holds the reports that move the session's
    orders to the venue's state (fills adopted first). ``expected_balances`` (asset -> total
    the log implies) are compared with the venue's totals.
    """
    policy = policy or ReconcilePolicy()
    res = ReconcileResult()
    known = set(known_fill_ids)
    # 1. Every order the log holds open: ask the venue by client id.
    for cid, order in sorted(local_orders.items()):
        if order.status.is_terminal:
            continue
        broker.track(order)
        view = broker.get_order(cid)
        if view is None:
            if order.status in (S.SUBMITTED, S.UNKNOWN):
                res.differences.append(Difference("order-never-arrived", cid,
                                                  {"log_status": order.status.value}))
            else:
                res.differences.append(Difference("order-missing-at-venue", cid,
                                                  {"log_status": order.status.value}))
            broker.resolve_absent(cid)
            continue
        before_filled = order.filled_quantity
        if view.status is not order.status or view.filled_quantity != before_filled:
            res.differences.append(Difference("order-resolved", cid, _view_detail(order, view)))
        broker.refresh(cid)
    # 2. Fills the venue has that the log does not (fills while we were down, late fills of
    # orders the log already closed, trades on the account that are not ours).
    if fills_since_ts is not None:
        for f in broker.fills_since(fills_since_ts):
            if f.fill_id in known:
                continue
            if f.client_order_id in local_orders:
                res.differences.append(Difference("fill-adopted", f.client_order_id, _fill_detail(f)))
                if local_orders[f.client_order_id].status.is_terminal:
                    broker.track(local_orders[f.client_order_id])
                    broker.add_fill(f)
            else:
                res.differences.append(Difference("foreign-fill", f.client_order_id, _fill_detail(f)))
    # 3. Open orders at the venue the log does not know.
    for view in broker.open_orders():
        cid = view.client_order_id
        if cid in local_orders:
            continue
        ours = bool(cid) and cid.startswith(client_id_prefix)
        detail = {"venue_order_id": view.venue_order_id, "instrument_id": view.instrument_id,
                  "side": view.side.value, "quantity": str(view.quantity),
                  "filled": str(view.filled_quantity),
                  "limit_price": None if view.limit_price is None else str(view.limit_price)}
        if not ours or policy.orphans == "leave":
            res.differences.append(Difference("orphan-left" if ours else "foreign-order", cid, detail))
        elif policy.orphans == "cancel":
            broker.cancel_untracked(view)
            res.differences.append(Difference("orphan-cancelled", cid, detail))
        else:
            res.adopted.append(view)
            res.differences.append(Difference("orphan-adopted", cid, detail))
    # 4. Balances (compare them with :func:`compare_balances` once the adopted fills are booked).
    res.venue_balances = dict(broker.balances())
    if expected_balances is not None:
        compare_balances(res, expected_balances, policy)
    for d in res.differences:
        log.warning("reconcile: %s %s %s", d.kind, d.client_order_id, d.detail)
    return res


def compare_balances(res: ReconcileResult, expected: Mapping[str, Decimal],
                     policy: ReconcilePolicy | None = None) -> list[Difference]:
    """Compare the venue's totals in ``res`` with ``expected`` (asset -> total the log implies);
    gaps beyond the tolerance are added to ``res`` (and returned)."""
    policy = policy or ReconcilePolicy()
    found: list[Difference] = []
    for asset, want in sorted(expected.items()):
        have = res.venue_balances.get(asset, Balance(asset)).total
        tol = max(policy.balance_abs_tol, abs(want) * policy.balance_rel_tol)
        if abs(have - want) > tol:
            gap = {"expected": plain_str(want), "venue": plain_str(have),
                   "difference": plain_str(have - want)}
            res.balance_gaps[asset] = gap
            found.append(Difference("balance-mismatch", "", {"asset": asset, **gap}))
    res.differences.extend(found)
    return found


def _fill_detail(f: Fill) -> dict[str, Any]:
    return {"fill_id": f.fill_id, "instrument_id": f.instrument_id, "side": f.side.value,
            "quantity": str(f.quantity), "price": str(f.price), "fee": str(f.fee), "ts": f.ts}
