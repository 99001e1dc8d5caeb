"""Running a routed order: send the children, collect fills, re-route what the moved books left.

:func:`execute_route` is synchronous and does no I/O itself: the caller's ``send_child`` puts
each child through risk and the venue's broker and returns its fills, ``refresh_quotes`` reads
the books. Nothing here decides whether an order may be sent — that stays with risk.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from lyra.core.enums import Side
from lyra.core.errors import LyraError, ValidationError
from lyra.core.orders import Fill, OrderIntent
from lyra.core.values import ZERO, to_decimal
from lyra.execution.routing_types import RoutePlan, VenueQuote

#: ``plan_fn(quantity, quotes) -> RoutePlan``: plans the remainder on fresh books.
PlanFn = Callable[[Decimal, Sequence[VenueQuote]], RoutePlan]
#: ``send_child(venue, intent) -> fills``: risk check + broker, synchronously.
SendChild = Callable[[str, OrderIntent], Sequence[Fill]]
#: ``refresh_quotes() -> quotes``: the venues' books now.
RefreshQuotes = Callable[[], Sequence[VenueQuote]]


def planner(side: Side | str, *, limit_price: Decimal | None = None) -> PlanFn:
    """A ``plan_fn`` for :func:`execute_route` that calls ``plan_route`` with a fixed side/limit."""
    from lyra.execution.routing import plan_route

    s = Side(side)

    def plan(quantity: Decimal, quotes: Sequence[VenueQuote]) -> RoutePlan:
        return plan_route(s, quantity, quotes, limit_price=limit_price)

    return plan


def _s(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


def _net(side: Side, gross: Decimal, fees: Decimal) -> Decimal:
    return gross + fees if side is Side.BUY else gross - fees


@dataclass(frozen=True, slots=True)
class ChildExecution:
    """What happened to one child: what was sent, what filled, and any error or anomaly."""

    venue: str
    intent: OrderIntent
    expected_net: Decimal
    fills: tuple[Fill, ...]
    error: str = ""
    anomalies: tuple[str, ...] = ()

    @property
    def filled(self) -> Decimal:
        return sum((f.quantity for f in self.fills), ZERO)

    @property
    def gross(self) -> Decimal:
        return sum((f.quantity * f.price for f in self.fills), ZERO)

    @property
    def fees(self) -> Decimal:
        return sum((f.fee for f in self.fills), ZERO)

    def to_record(self) -> dict[str, Any]:
        return {"venue": self.venue, "quantity": str(self.intent.quantity),
                "limit_price": _s(self.intent.limit_price), "tag": self.intent.tag,
                "expected_net": str(self.expected_net), "filled": str(self.filled),
                "gross": str(self.gross), "fees": str(self.fees),
                "fills": [{"fill_id": f.fill_id, "client_order_id": f.client_order_id,
                           "quantity": str(f.quantity), "price": str(f.price), "fee": str(f.fee),
                           "fee_currency": f.fee_currency, "ts": f.ts} for f in self.fills],
                "error": self.error, "anomalies": list(self.anomalies)}


@dataclass(frozen=True, slots=True)
class RouteRound:
    """One round: the plan made on the books of that moment and what each child did."""

    number: int
    plan: RoutePlan
    children: tuple[ChildExecution, ...]

    @property
    def filled(self) -> Decimal:
        return sum((c.filled for c in self.children), ZERO)

    def to_record(self) -> dict[str, Any]:
        return {"round": self.number, "plan": self.plan.to_record(),
                "filled": str(self.filled), "children": [c.to_record() for c in self.children]}


@dataclass(frozen=True, slots=True)
class RouteResult:
    """The outcome of :func:`execute_route`: fills, averages achieved vs expected, every round.

    ``expected_avg_price`` (net of fees) and ``expected_avg_price_gross`` come from the first
    plan, made before anything was sent; ``slippage_bps`` compares the achieved net average
    with it, positive when the result is worse (paid more on a buy, received less on a sell).
    Fees are summed as the fills report them, i.e. assumed to be in the quote currency.
    """

    side: Side
    quantity: Decimal
    rounds: tuple[RouteRound, ...]
    stop_reason: str

    @property
    def fills(self) -> tuple[tuple[str, Fill], ...]:
        """Every fill with the venue it came from, in the order they were reported."""
        return tuple((c.venue, f) for r in self.rounds for c in r.children for f in c.fills)

    @property
    def filled_quantity(self) -> Decimal:
        return sum((r.filled for r in self.rounds), ZERO)

    @property
    def remainder(self) -> Decimal:
        return self.quantity - self.filled_quantity

    @property
    def gross(self) -> Decimal:
        return sum((c.gross for r in self.rounds for c in r.children), ZERO)

    @property
    def fees(self) -> Decimal:
        return sum((c.fees for r in self.rounds for c in r.children), ZERO)

    @property
    def net(self) -> Decimal:
        """Paid including fees (buy) or received after fees (sell)."""
        return _net(self.side, self.gross, self.fees)

    @property
    def avg_price_gross(self) -> Decimal | None:
        q = self.filled_quantity
        return self.gross / q if q else None

    @property
    def avg_price_net(self) -> Decimal | None:
        q = self.filled_quantity
        return self.net / q if q else None

    @property
    def expected_avg_price(self) -> Decimal | None:
        return self.rounds[0].plan.expected_avg_price if self.rounds else None

    @property
    def expected_avg_price_gross(self) -> Decimal | None:
        return self.rounds[0].plan.expected_avg_price_gross if self.rounds else None

    @property
    def slippage_bps(self) -> Decimal | None:
        """Achieved vs expected net average, in basis points; positive = worse than planned."""
        exp, got = self.expected_avg_price, self.avg_price_net
        if exp is None or got is None:
            return None
        diff = got - exp if self.side is Side.BUY else exp - got
        return diff / exp * 10_000

    def to_record(self) -> dict[str, Any]:
        """JSON-safe: requested, filled, expected vs achieved averages and every round."""
        return {
            "side": self.side.value, "quantity": str(self.quantity),
            "filled": str(self.filled_quantity), "remainder": str(self.remainder),
            "gross": str(self.gross), "fees": str(self.fees), "net": str(self.net),
            "avg_price_gross": _s(self.avg_price_gross), "avg_price_net": _s(self.avg_price_net),
            "expected_avg_price": _s(self.expected_avg_price),
            "expected_avg_price_gross": _s(self.expected_avg_price_gross),
            "slippage_bps": _s(self.slippage_bps), "stop_reason": self.stop_reason,
            "rounds": [r.to_record() for r in self.rounds],
        }


def _check_fills(side: Side, intent: OrderIntent, fills: Sequence[Fill]) -> tuple[str, ...]:
    """Things a broker should never report; recorded, never silently dropped (it is money)."""
    out: list[str] = []
    lim = intent.limit_price
    total = ZERO
    for f in fills:
        total += f.quantity
        if f.side is not side:
            out.append(f"fill {f.fill_id}: side {f.side.value}, expected {side.value}")
        if lim is not None and (f.price > lim if side is Side.BUY else f.price < lim):
            out.append(f"fill {f.fill_id}: price {f.price} beyond the child's limit {lim}")
    if total > intent.quantity:
        out.append(f"fills total {total} > child quantity {intent.quantity}")
    return tuple(out)


def execute_route(plan_fn: PlanFn, send_child: SendChild, refresh_quotes: RefreshQuotes, *,
                  quantity: Decimal, max_rounds: int = 3, tag: str = "route") -> RouteResult:
    """Route ``quantity``, send the children, and re-route what did not fill.

    Each round reads the books (``refresh_quotes()``), plans what remains (``plan_fn``), and
    sends every child as an IOC limit order at its worst planned price through
    ``send_child(venue, intent)``, which returns the child's fills. If the books moved and
    something is left, the next round re-plans it on fresh books over all venues, for at most
    ``max_rounds`` rounds. A child that raises a :class:`LyraError` (risk rejected it, the venue
    refused it, the network failed) is recorded with its error and counts as unfilled; any
    other exception propagates.

    Stops when everything filled (``"filled"``), when the books have nothing routable
    (``"no liquidity"``), or after ``max_rounds`` (``"max rounds"``).
    """
    qty = to_decimal(quantity, "quantity")
    if qty <= 0:
        raise ValidationError("quantity", qty, "must be positive")
    if isinstance(max_rounds, bool) or not isinstance(max_rounds, int) or max_rounds < 1:
        raise ValidationError("max_rounds", max_rounds, "must be a whole number >= 1")
    rounds: list[RouteRound] = []
    remaining = qty
    side: Side | None = None
    stop = "max rounds"
    for n in range(1, max_rounds + 1):
        plan = plan_fn(remaining, refresh_quotes())
        if side is not None and plan.side is not side:
            raise ValidationError("plan.side", plan.side.value, f"changed from {side.value} between rounds")
        side = plan.side
        if plan.routed > remaining:
            raise ValidationError("plan.routed", plan.routed, f"more than the {remaining} that remains")
        done: list[ChildExecution] = []
        for child in plan.children:
            intent = child.intent(f"{tag}:r{n}:{child.venue}")
            try:
                fills = tuple(send_child(child.venue, intent))
                error = ""
            except LyraError as exc:
                fills, error = (), f"{type(exc).__name__}: {exc}"
            done.append(ChildExecution(child.venue, intent, child.expected_net, fills, error,
                                       _check_fills(plan.side, intent, fills)))
        rnd = RouteRound(n, plan, tuple(done))
        rounds.append(rnd)
        remaining -= rnd.filled
        if remaining <= 0:
            stop = "filled"
            break
        if not plan.children:
            stop = "no liquidity"
            break
    return RouteResult(rounds[0].plan.side, qty, tuple(rounds), stop)
