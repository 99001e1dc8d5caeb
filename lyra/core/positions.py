"""Positions with average cost and realised PnL, in exact ``Decimal``."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from lyra.core.orders import Fill
from lyra.core.values import ZERO


@dataclass(slots=True)
class Position:
    """A net position in one instrument. ``quantity`` is signed: > 0 long, < 0 short.

    ``realized_pnl`` is gross of fees; ``fees`` are what the fills cost (quote currency).
    """

    instrument_id: str
    quantity: Decimal = ZERO
    avg_price: Decimal = ZERO
    realized_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    last_ts: int = 0

    def apply(self, fill: Fill) -> Decimal:
        """Apply a fill; returns the PnL it realised (gross of fees)."""
        signed = fill.quantity * fill.side.sign
        q = self.quantity
        realized = ZERO
        if q == 0 or (q > 0) == (signed > 0):
            new_q = q + signed
            self.avg_price = (abs(q) * self.avg_price + fill.quantity * fill.price) / abs(new_q)
            self.quantity = new_q
        else:
            closing = min(abs(q), fill.quantity)
            direction = Decimal(1) if q > 0 else Decimal(-1)
            realized = closing * (fill.price - self.avg_price) * direction
            new_q = q + signed
            if new_q == 0:
                self.avg_price = ZERO
            elif (new_q > 0) != (q > 0):
                self.avg_price = fill.price  # flipped: the remainder opened at this price
            self.quantity = new_q
        self.realized_pnl += realized
        self.fees += fill.fee
        self.last_ts = fill.ts
        return realized

    def unrealized_pnl(self, mark: Decimal) -> Decimal:
        """PnL of the open quantity at ``mark``."""
        return (mark - self.avg_price) * self.quantity if self.quantity else ZERO

    @property
    def is_flat(self) -> bool:
        return self.quantity == 0
