"""The portfolio: cash per currency, positions (average cost) and FIFO lots, realised and
unrealised PnL, fees and the equity curve — all money in exact ``Decimal``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from lyra.core.enums import Side
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.orders import Fill
from lyra.core.positions import Position
from lyra.core.values import ZERO, to_decimal
from lyra.portfolio.lots import LotBook


@dataclass(slots=True)
class Portfolio:
    """What an account holds. ``cash`` includes base assets bought (a spot account).

    ``equity(marks)`` values it in the quote currency: quote cash plus each position at its
    mark. ``equity_curve`` is appended to by :meth:`mark` (time, equity).
    """

    instruments: Mapping[str, Instrument]
    cash: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    lots: dict[str, LotBook] = field(default_factory=dict)
    fees: Decimal = ZERO
    fills: int = 0
    equity_curve: list[tuple[int, Decimal]] = field(default_factory=list)

    @classmethod
    def open(cls, instruments: Mapping[str, Instrument], balances: Mapping[str, object]) -> Portfolio:
        """A portfolio with starting balances (negative ones are refused)."""
        cash: dict[str, Decimal] = {}
        for asset, amount in balances.items():
            d = to_decimal(amount, f"balances.{asset}")
            if d < 0:
                raise ValidationError(f"balances.{asset}", d, "must not be negative")
            cash[asset] = d
        p = cls(dict(instruments), cash)
        for iid, inst in p.instruments.items():
            p.cash.setdefault(inst.base, ZERO)
            p.cash.setdefault(inst.quote, ZERO)
            p.positions[iid] = Position(iid)
            p.lots[iid] = LotBook()
        return p

    def apply(self, fill: Fill) -> Decimal:
        """Book a fill; returns the realised PnL it made (average cost, gross of fees)."""
        inst = self.instruments.get(fill.instrument_id)
        if inst is None:
            raise ValidationError("fill.instrument_id", fill.instrument_id, "not in this portfolio")
        signed = fill.quantity if fill.side is Side.BUY else -fill.quantity
        self.cash[inst.base] = self.cash.get(inst.base, ZERO) + signed
        self.cash[inst.quote] = self.cash.get(inst.quote, ZERO) - signed * fill.price
        self.cash[fill.fee_currency] = self.cash.get(fill.fee_currency, ZERO) - fill.fee
        self.fees += fill.fee
        self.fills += 1
        self.lots[fill.instrument_id].apply(fill)
        return self.positions[fill.instrument_id].apply(fill)

    def quantity(self, instrument_id: str) -> Decimal:
        p = self.positions.get(instrument_id)
        return p.quantity if p is not None else ZERO

    def holdings(self) -> dict[str, Decimal]:
        """Signed position per instrument."""
        return {iid: p.quantity for iid, p in self.positions.items()}

    def equity(self, marks: Mapping[str, Decimal]) -> Decimal:
        """Quote cash plus positions at ``marks`` (instruments without a mark count at cost)."""
        bases = {i.base for i in self.instruments.values()}
        total = sum((v for k, v in self.cash.items() if k not in bases), ZERO)
        for iid, pos in self.positions.items():
            if pos.quantity:
                total += pos.quantity * marks.get(iid, pos.avg_price)
        return total

    def unrealized_pnl(self, marks: Mapping[str, Decimal]) -> Decimal:
        return sum((p.unrealized_pnl(marks[iid]) for iid, p in self.positions.items()
                    if p.quantity and iid in marks), ZERO)

    @property
    def realized_pnl(self) -> Decimal:
        """Average-cost realised PnL, gross of fees."""
        return sum((p.realized_pnl for p in self.positions.values()), ZERO)

    @property
    def realized_pnl_fifo(self) -> Decimal:
        """FIFO realised PnL, gross of fees."""
        return sum((b.realized_pnl for b in self.lots.values()), ZERO)

    def mark(self, ts: int, marks: Mapping[str, Decimal]) -> Decimal:
        """Record the equity at ``ts`` on the curve and return it."""
        e = self.equity(marks)
        self.equity_curve.append((ts, e))
        return e


def replay_fills(instruments: Mapping[str, Instrument], balances: Mapping[str, object],
                 fills: Iterable[Fill]) -> Portfolio:
    """A portfolio rebuilt from starting balances and fills (e.g. the ledger's)."""
    p = Portfolio.open(instruments, balances)
    for f in fills:
        p.apply(f)
    return p
