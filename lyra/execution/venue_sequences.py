"""From successive venue views of an order to a legal sequence of execution reports.

A live broker sees an order through snapshots (REST ``fetch_order``, websocket updates) and
through its trades, in any order, sometimes twice. This module turns that into what the
session needs:

- :func:`dedupe_fills` / :func:`dedupe_orders`: the same fill or order seen twice counts once;
  the same id with different content is a conflict, never silently merged.
- :func:`order_updates_in_order`: keeps only the views that move an order forward (filled
  quantity never goes back, a final state stays final); stale and duplicate views are dropped
  and listed with the reason.
- :func:`execution_reports`: the :class:`ExecutionReport` s that take the session's order from
  the previous venue view to the current one, legal under :data:`lyra.core.orders.TRANSITIONS`.

Views are compared by what they say (filled quantity, then lifecycle stage), not by their
timestamps: venues stamp updates of one order with equal or coarse times.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from lyra.core.enums import Liquidity, OrderEventType, OrderStatus
from lyra.core.errors import ValidationError
from lyra.core.orders import Fill
from lyra.core.values import ZERO, plain_str
from lyra.execution.broker import ExecutionReport, OrderReport
from lyra.execution.venue_shapes import UnknownVenueShape, accounting_currency

S = OrderStatus
E = OrderEventType

#: how far along its lifecycle a venue view is (with equal filled quantities)
_STAGE: dict[OrderStatus, int] = {
    S.SUBMITTED: 0,
    S.UNKNOWN: 0,
    S.ACCEPTED: 1,
    S.PARTIALLY_FILLED: 1,
    S.PENDING_CANCEL: 2,
    S.FILLED: 3,
    S.CANCELLED: 3,
    S.EXPIRED: 3,
    S.REJECTED: 3,
}


def _venue(report: OrderReport | Fill) -> str:
    return report.instrument_id.partition(":")[0]


def dedupe_fills(fills: Iterable[Fill]) -> list[Fill]:
    """Fills with each ``fill_id`` once, the first kept, in their order.

    The same id with a different quantity, price, fee, side or order is a conflict (a
    venue correction we cannot interpret): :class:`UnknownVenueShape`."""
    seen: dict[str, Fill] = {}
    out: list[Fill] = []
    for f in fills:
        first = seen.get(f.fill_id)
        if first is None:
            seen[f.fill_id] = f
            out.append(f)
            continue
        if (first.quantity, first.price, first.fee, first.fee_currency, first.side, first.client_order_id,
                first.instrument_id) != (f.quantity, f.price, f.fee, f.fee_currency, f.side,
                                         f.client_order_id, f.instrument_id):
            raise UnknownVenueShape(_venue(f), f"fill {f.fill_id} seen twice with different content",
                                    (first, f))
    return out


def is_forward(last: OrderReport | None, update: OrderReport) -> str:
    """``""`` if ``update`` moves the order on from ``last``, else why it does not.

    Forward: more filled; or as much filled and a later lifecycle stage. A final state stays
    final, except that a cancelled order may still learn of fills matched before the cancel
    (``CANCELLED`` -> ``CANCELLED``/``FILLED`` with more filled). Raises
    :class:`~lyra.core.errors.ValidationError` if the two views are of different orders."""
    if last is None:
        return ""
    _same_order(last, update)
    if update.filled_quantity < last.filled_quantity:
        return f"stale: filled {update.filled_quantity} < {last.filled_quantity} already seen"
    if update.filled_quantity > last.filled_quantity:
        if last.status.is_terminal and last.status is not S.CANCELLED:
            return f"fills after the final state {last.status.value}"
        if last.status is S.CANCELLED and update.status not in (S.CANCELLED, S.FILLED):
            return f"stale: {update.status.value} after {last.status.value}"
        return ""
    if update.status is last.status:
        return "duplicate: nothing changed"
    if last.status.is_terminal and update.status.is_terminal:
        return f"conflicting final states: {last.status.value} then {update.status.value}"
    if _STAGE.get(update.status, 0) <= _STAGE.get(last.status, 0):
        return f"stale: {update.status.value} after {last.status.value}"
    return ""


def _same_order(a: OrderReport, b: OrderReport) -> None:
    if a.client_order_id and b.client_order_id and a.client_order_id != b.client_order_id:
        raise ValidationError("client_order_id", b.client_order_id, f"not the order {a.client_order_id}")
    if a.venue_order_id and b.venue_order_id and a.venue_order_id != b.venue_order_id:
        raise ValidationError("venue_order_id", b.venue_order_id, f"not the venue order {a.venue_order_id}")
    if (a.instrument_id, a.side, a.quantity) != (b.instrument_id, b.side, b.quantity):
        raise ValidationError(
            "order", b.venue_order_id or b.client_order_id,
            f"instrument/side/quantity {b.instrument_id} {b.side.value} {b.quantity} differ from "
            f"{a.instrument_id} {a.side.value} {a.quantity}")


@dataclass(frozen=True, slots=True)
class OrderedUpdates:
    """The result of :func:`order_updates_in_order`."""

    accepted: list[OrderReport] = field(default_factory=list)  #: views that moved the order on
    dropped: list[tuple[OrderReport, str]] = field(default_factory=list)  #: the rest, with why

    @property
    def last(self) -> OrderReport | None:
        """The newest view kept."""
        return self.accepted[-1] if self.accepted else None


def order_updates_in_order(
    reports: Iterable[OrderReport], last: OrderReport | None = None
) -> OrderedUpdates:
    """The views of one order (as they arrived, e.g. websocket updates out of order) that move
    it forward from ``last`` (see :func:`is_forward`); the others are dropped and reported:
    a PARTIALLY_FILLED view arriving after the FILLED one, the same view twice.
    """
    out = OrderedUpdates()
    for report in reports:
        why = is_forward(last, report)
        if why:
            out.dropped.append((report, why))
            continue
        out.accepted.append(report)
        last = report
    return out


def dedupe_orders(reports: Iterable[OrderReport]) -> list[OrderReport]:
    """Order views with each venue order once (e.g. an order listed both as open and in the
    history): the most advanced view is kept, at the place the order was first seen.

    Two views of one venue order id that disagree on the client id, instrument, side or
    quantity raise :class:`~lyra.core.errors.ValidationError`."""
    best: dict[tuple[str, str], OrderReport] = {}
    order: list[tuple[str, str]] = []
    for r in reports:
        key = (_venue(r), r.venue_order_id or f"client:{r.client_order_id}")
        kept = best.get(key)
        if kept is None:
            best[key] = r
            order.append(key)
        elif not is_forward(kept, r):
            best[key] = r
    return [best[k] for k in order]


def execution_reports(
    previous: OrderReport | None, current: OrderReport, new_fills: Sequence[Fill] = ()
) -> list[ExecutionReport]:
    """The reports that take the session's order from the venue's ``previous`` view to
    ``current``; ``previous=None`` means the order was just sent (state SUBMITTED).

    ``new_fills`` are the fills learned since ``previous`` (not counted in it). Emitted, in
    order: ACCEPT (first view only, unless rejected), a PARTIAL_FILL or FILL per fill (oldest
    first), then CANCEL, EXPIRE or REJECT as ``current`` says. When the fills do not account
    for all the quantity ``current`` shows filled (the venue gave only its cumulative figure),
    one synthetic fill covers the rest: priced so the order's notional matches
    ``current.avg_price``, its fee the change in ``fees``, its liquidity TAKER (unknown; the
    fee is the venue's, not derived from it), its id ``"{venue}:{venue_order_id}:cum:{filled}"``
    so that replaying the same two views gives the same fill. Once a synthetic fill covers a
    quantity, trades for it that arrive later must be dropped by the caller.

    A REJECT after the order was accepted is not legal in Lyra's state machine; it is sent as
    CANCEL with the venue's reason. Raises :class:`~lyra.core.errors.ValidationError` when
    ``current`` is older than ``previous`` (filter with :func:`order_updates_in_order`), when
    the fills do not belong to the order or exceed what ``current`` shows filled, or when a
    synthetic fill cannot be priced."""
    cid = current.client_order_id
    if not cid:
        raise ValidationError("current.client_order_id", cid, "the venue view has no client order id",
                              "set it from the broker's own records before asking for reports")
    if previous is not None:
        why = is_forward(previous, current)
        if why and why != "duplicate: nothing changed":
            raise ValidationError("current", current.status.value,
                                  f"does not follow the previous view: {why}")
        if why and not new_fills:
            return []  # nothing new (fills against an unchanged view are refused below)
    if current.status in (S.INITIALIZED, S.DENIED, S.SUBMITTED, S.UNKNOWN):
        raise ValidationError("current.status", current.status.value, "not a state a venue reports")
    filled = previous.filled_quantity if previous is not None else ZERO
    fills = sorted(dedupe_fills(new_fills), key=lambda f: (f.ts, f.fill_id))
    for f in fills:
        if f.client_order_id != cid or f.instrument_id != current.instrument_id or f.side is not current.side:
            raise ValidationError("fill", f.fill_id, f"does not belong to order {cid}")
    known = sum((f.quantity for f in fills), ZERO)
    if filled + known > current.filled_quantity:
        raise ValidationError(
            "new_fills", known, f"more than the {current.filled_quantity - filled} the venue shows filled "
            f"since the previous view", "the order view is older than the fills: fetch it again")
    out: list[ExecutionReport] = []
    vid = current.venue_order_id
    if previous is None and not (current.status is S.REJECTED and current.filled_quantity == 0):
        first_ts = min([current.ts, *(f.ts for f in fills)])
        out.append(ExecutionReport(cid, E.ACCEPT, first_ts, venue_order_id=vid))
    synthetic = _synthetic_fill(previous, current, fills, filled + known)
    for f in [*fills, *synthetic]:
        filled += f.quantity
        kind = E.FILL if filled == current.quantity else E.PARTIAL_FILL
        out.append(ExecutionReport(cid, kind, f.ts, fill=f, venue_order_id=vid))
    closing = _closing(previous, current)
    if closing is not None:
        out.append(closing)
    return out


def _synthetic_fill(
    previous: OrderReport | None, current: OrderReport, fills: list[Fill], counted: Decimal
) -> list[Fill]:
    rest = current.filled_quantity - counted
    if rest <= 0:
        return []
    if not current.venue_order_id:
        raise ValidationError("current.venue_order_id", "", "needed to name a synthetic fill")
    if current.avg_price is None:
        raise ValidationError("current.avg_price", None, f"{rest} filled without individual fills or "
                                                         "an average price: cannot price it")
    before = ZERO
    if previous is not None and previous.filled_quantity > 0:
        if previous.avg_price is None:
            raise ValidationError("previous.avg_price", None, "needed to price a synthetic fill")
        before = previous.avg_price * previous.filled_quantity
    notional = current.avg_price * current.filled_quantity - before - sum(
        (f.quantity * f.price for f in fills), ZERO)
    price = notional / rest
    if price <= 0:
        raise ValidationError("current.avg_price", current.avg_price,
                              f"with the fills already known it implies a price of {price} for the rest")
    ccy = accounting_currency(current.instrument_id)
    fee = current.fees - (previous.fees if previous is not None else ZERO) - sum(
        (f.fee for f in fills if f.fee_currency == ccy), ZERO)
    return [Fill(
        fill_id=f"{_venue(current)}:{current.venue_order_id}:cum:{plain_str(current.filled_quantity)}",
        client_order_id=current.client_order_id,
        instrument_id=current.instrument_id,
        side=current.side,
        quantity=rest,
        price=price,
        fee=fee,
        fee_currency=ccy,
        liquidity=Liquidity.TAKER,
        ts=current.ts,
    )]


def _closing(previous: OrderReport | None, current: OrderReport) -> ExecutionReport | None:
    status = current.status
    if previous is not None and previous.status is status:
        return None  # already there (e.g. late fills of a cancelled order)
    cid, vid, ts = current.client_order_id, current.venue_order_id, current.ts
    if status is S.CANCELLED:
        return ExecutionReport(cid, E.CANCEL, ts, reason=current.reason or "cancelled at the venue",
                               venue_order_id=vid)
    if status is S.EXPIRED:
        return ExecutionReport(cid, E.EXPIRE, ts, reason=current.reason or "expired at the venue",
                               venue_order_id=vid)
    if status is S.REJECTED:
        reason = "rejected by the venue" + (f": {current.reason}" if current.reason else "")
        if previous is None and current.filled_quantity == 0:
            return ExecutionReport(cid, E.REJECT, ts, reason=current.reason or reason, venue_order_id=vid)
        # the state machine has no REJECT once an order works: the venue took it off
        return ExecutionReport(cid, E.CANCEL, ts, reason=reason, venue_order_id=vid)
    return None
