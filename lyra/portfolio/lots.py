"""FIFO lots: which buys a sale closes, for realised PnL by lot (and, later, tax reports).

Average cost (``lyra.core.Position``) and FIFO agree on the total realised PnL once a
position is flat again; in between they split it differently, and tax rules usually want FIFO.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from decimal import Decimal

from lyra.core.enums import Side
from lyra.core.orders import Fill
from lyra.core.values import ZERO


@dataclass(slots=True)
class Lot:
    """An open lot: ``quantity`` left of a fill at ``price`` (signed: > 0 long, < 0 short)."""

    quantity: Decimal
    price: Decimal
    ts: int
    fill_id: str


@dataclass(frozen=True, slots=True)
class ClosedLot:
    """A (part of a) lot closed by a later fill."""

    quantity: Decimal  #: always positive
    open_price: Decimal
    close_price: Decimal
    open_ts: int
    close_ts: int
    open_fill_id: str
    close_fill_id: str
    long: bool  #: the lot was long (closed by a sale) or short (closed by a buy)

    @property
    def pnl(self) -> Decimal:
        """Realised PnL of this piece, gross of fees."""
        d = self.close_price - self.open_price
        return self.quantity * (d if self.long else -d)


class LotBook:
    """Open lots of one instrument, closed first-in first-out."""

    __slots__ = ("closed", "lots", "realized_pnl")

    def __init__(self) -> None:
        self.lots: deque[Lot] = deque()
        self.closed: list[ClosedLot] = []
        self.realized_pnl = ZERO

    @property
    def quantity(self) -> Decimal:
        return sum((lot.quantity for lot in self.lots), ZERO)

    def apply(self, fill: Fill) -> list[ClosedLot]:
        """Apply a fill: close opposite lots oldest first, open a lot with what remains."""
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        out: list[ClosedLot] = []
        lots = self.lots
        while signed and lots and (lots[0].quantity > 0) != (signed > 0):
            lot = lots[0]
            q = min(abs(lot.quantity), abs(signed))
            piece = ClosedLot(q, lot.price, fill.price, lot.ts, fill.ts, lot.fill_id, fill.fill_id,
                              lot.quantity > 0)
            out.append(piece)
            self.realized_pnl += piece.pnl
            if q == abs(lot.quantity):
                lots.popleft()
            else:
                lot.quantity += q if lot.quantity < 0 else -q
            signed += q if signed < 0 else -q
        if signed:
            lots.append(Lot(signed, fill.price, fill.ts, fill.fill_id))
        self.closed.extend(out)
        return out
