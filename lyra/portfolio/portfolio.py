"""The portfolio: cash per currency, positions (average cost) and FIFO lots, realised and
unrealised PnL, fees and the equity curve — all money in exact ``Decimal``.

Fees in any currency (each case hand-worked in tests/unit/portfolio):

- **quote**: leaves the quote cash; the position's ``fees`` (quote) grow by it.
- **base** (live venues take a buy's fee from what it bought): leaves the base holding too —
  the position shrinks by the fee, booked as a disposal of that quantity at the fill's price
  (FIFO lots likewise), so position, lots and base cash agree; its quote value (fee x fill
  price) is the position's fee. A 1 BTC buy at 100 paying 0.001 BTC holds 0.999 BTC whose
  cost is 99.9: equity from 1,000 USD is 900 + 0.999 x 100 = 999.9.
- **a third asset** (BNB): leaves that asset's cash; it has no quote value at the fill, so it
  is kept in ``fees_by_currency`` only and never added to a quote amount.

Money in different currencies is never summed as is: :meth:`Portfolio.valuation` converts
every amount to the portfolio's ``currency`` through a rate whose source it shows (a mark of
an instrument linking the two currencies, or a rate the caller gives), and refuses when
there is none.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from lyra.analytics.trades import FeeRate
from lyra.core.enums import Liquidity, Side
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.orders import Fill
from lyra.core.positions import Position
from lyra.core.values import ZERO, to_decimal
from lyra.portfolio.lots import LotBook


@dataclass(slots=True)
class Portfolio:
    """What an account holds. ``cash`` includes base assets bought (a spot account).

    ``equity(marks)`` values it in ``currency`` (by default the first instrument's quote):
    cash in currencies that are not an instrument's base, plus each position at its mark, all
    converted to ``currency`` (:meth:`valuation`). ``fees`` is the fees' value in
    ``currency`` (fees that have none: ``fees_by_currency``). ``equity_curve`` is appended to
    by :meth:`mark` (time, equity).
    """

    instruments: Mapping[str, Instrument]
    cash: dict[str, Decimal] = field(default_factory=dict)
    positions: dict[str, Position] = field(default_factory=dict)
    lots: dict[str, LotBook] = field(default_factory=dict)
    fees: Decimal = ZERO
    fills: int = 0
    equity_curve: list[tuple[int, Decimal]] = field(default_factory=list)
    currency: str = ""
    fees_by_currency: dict[str, Decimal] = field(default_factory=dict)

    @classmethod
    def open(cls, instruments: Mapping[str, Instrument], balances: Mapping[str, object],
             currency: str | None = None) -> Portfolio:
        """A portfolio with starting balances (negative ones are refused), valued in
        ``currency`` (default: the first instrument's quote)."""
        cash: dict[str, Decimal] = {}
        for asset, amount in balances.items():
            d = to_decimal(amount, f"balances.{asset}")
            if d < 0:
                raise ValidationError(f"balances.{asset}", d, "must not be negative")
            cash[asset] = d
        p = cls(dict(instruments), cash)
        first = next(iter(p.instruments.values()), None)
        p.currency = currency or (first.quote if first is not None else "")
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
        fbc = self.fees_by_currency
        fbc[fill.fee_currency] = fbc.get(fill.fee_currency, ZERO) + fill.fee
        if fill.fee_currency == inst.quote:
            fee_value = fill.fee
        elif fill.fee_currency == inst.base:
            fee_value = fill.fee * fill.price  # valued at the fill's own price
        else:
            fee_value = ZERO  # a third asset: no quote value at the fill (fees_by_currency)
        if inst.quote == self.currency:
            self.fees += fee_value
        self.fills += 1
        # The position and lots see the fee in the quote currency (Position.fees is quote).
        booked = Fill(fill.fill_id, fill.client_order_id, fill.instrument_id, fill.side, fill.quantity,
                      fill.price, fee_value, inst.quote, fill.liquidity, fill.ts)
        self.lots[fill.instrument_id].apply(booked)
        realized = self.positions[fill.instrument_id].apply(booked)
        if fill.fee and fill.fee_currency == inst.base:
            # The base fee leaves the holding: a disposal of that quantity at the fill price.
            gone = Fill(f"{fill.fill_id}:fee", fill.client_order_id, fill.instrument_id, Side.SELL,
                        fill.fee, fill.price, ZERO, inst.quote, Liquidity.TAKER, fill.ts)
            self.lots[fill.instrument_id].apply(gone)
            realized += self.positions[fill.instrument_id].apply(gone)
        return realized

    def quantity(self, instrument_id: str) -> Decimal:
        p = self.positions.get(instrument_id)
        return p.quantity if p is not None else ZERO

    def holdings(self) -> dict[str, Decimal]:
        """Signed position per instrument."""
        return {iid: p.quantity for iid, p in self.positions.items()}

    def _rate(self, cur: str, marks: Mapping[str, Decimal], rates: Mapping[str, FeeRate]) -> FeeRate:
        """Value of one ``cur`` in :attr:`currency`, and its source."""
        if cur == self.currency:
            return FeeRate(Decimal(1), "same currency")
        if cur in rates:
            return rates[cur]
        for iid, inst in self.instruments.items():
            m = marks.get(iid)
            if m is None or not m:
                continue
            if inst.base == cur and inst.quote == self.currency:
                return FeeRate(Decimal(m), f"mark {iid}")
            if inst.base == self.currency and inst.quote == cur:
                return FeeRate(Decimal(1) / Decimal(m), f"1 / mark {iid}")
        raise ValidationError(f"cash.{cur}", cur, f"no rate to convert {cur} to {self.currency}",
                              f"mark an instrument {cur}/{self.currency} or pass rates={{'{cur}': ...}}")

    def valuation(self, marks: Mapping[str, Decimal], rates: Mapping[str, FeeRate] | None = None
                  ) -> list[tuple[str, str, Decimal, Decimal, str, Decimal]]:
        """Every amount equity adds up: (what, currency, amount, rate, rate source, value in
        :attr:`currency`). Cash in an instrument's base is its position; zero amounts are left
        out; instruments without a mark count at cost."""
        rates = rates or {}
        bases = {i.base for i in self.instruments.values()}
        rows: list[tuple[str, str, Decimal, Decimal, str, Decimal]] = []
        for cur, amount in sorted(self.cash.items()):
            if cur in bases or not amount:
                continue
            r = self._rate(cur, marks, rates)
            rows.append((f"cash {cur}", cur, amount, r.rate, r.source, amount * r.rate))
        for iid, pos in self.positions.items():
            if pos.quantity:
                quote = self.instruments[iid].quote
                value = pos.quantity * marks.get(iid, pos.avg_price)
                r = self._rate(quote, marks, rates)
                rows.append((f"position {iid}", quote, value, r.rate, r.source, value * r.rate))
        return rows

    def equity(self, marks: Mapping[str, Decimal], rates: Mapping[str, FeeRate] | None = None) -> Decimal:
        """Cash and positions at ``marks``, in :attr:`currency` (see :meth:`valuation`)."""
        return sum((row[5] for row in self.valuation(marks, rates)), ZERO)

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
                 fills: Iterable[Fill], currency: str | None = None) -> Portfolio:
    """A portfolio rebuilt from starting balances and fills (e.g. the ledger's)."""
    p = Portfolio.open(instruments, balances, currency)
    for f in fills:
        p.apply(f)
    return p
