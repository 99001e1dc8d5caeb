"""Positions with average cost and realised PnL, in exact ``Decimal``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext

from lyra.core.orders import Fill
from lyra.core.values import ZERO

_QUANTUM = Decimal("1e-18")


@dataclass(slots=True)
class Position:
    """A net position in one instrument. ``quantity`` is signed: > 0 long, < 0 short.

    The position keeps its exact ``cost`` (what the open quantity cost, or for a short what
    it was sold for) rather than an average price: a partial close removes a pro-rata share
    of the cost, and a full close removes all of it, so the realised PnL of a round trip is
    exact to the last digit. ``avg_price`` is derived from it. ``realized_pnl`` is gross of
    fees; ``fees`` are what the fills cost (quote currency).
    """

    instrument_id: str
    quantity: Decimal = ZERO
    cost: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    last_ts: int = 0

    @property
    def avg_price(self) -> Decimal:
        """Average entry price of the open quantity (0 when flat)."""
        return self.cost / abs(self.quantity) if self.quantity else ZERO

    def apply(self, fill: Fill) -> Decimal:
        """Apply a fill; returns the PnL it realised (gross of fees)."""
        signed = fill.quantity * fill.side.sign
        q = self.quantity
        realized = ZERO
        if q == 0 or (q > 0) == (signed > 0):
            self.cost += fill.quantity * fill.price
            self.quantity = q + signed
        else:
            closing = min(abs(q), fill.quantity)
            with localcontext() as ctx:
                # Sums of prices x quantities must never round: 60 digits is far beyond any
                # ledger value. The pro-rata share is fixed at 1e-18, so what it leaves in
                # ``cost`` is exact and the final close takes exactly the rest.
                ctx.prec = 60
                if closing == abs(q):
                    removed = self.cost
                else:
                    removed = (self.cost * closing / abs(q)).quantize(_QUANTUM)
                proceeds = closing * fill.price
                realized = proceeds - removed if q > 0 else removed - proceeds
                self.cost -= removed
            new_q = q + signed
            if new_q != 0 and (new_q > 0) != (q > 0):
                self.cost = abs(new_q) * fill.price  # flipped: the remainder opened here
            self.quantity = new_q
        self.realized_pnl += realized
        self.fees += fill.fee
        self.last_ts = fill.ts
        return realized

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """PnL of the open quantity at ``mark``."""
        if not self.quantity:
            return ZERO
        value = abs(self.quantity) * mark
        return value - self.cost if self.quantity > 0 else self.cost - value

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0
