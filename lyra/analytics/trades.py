"""Round trips from the ledger's fills, in exact ``Decimal`` (conventions: ``lyra.analytics``).

A round trip opens when a position leaves zero and closes when it is exactly zero again; a
fill that flips the position closes one and opens the next, its fee split pro rata by
quantity. Average cost is the cost rule (as :class:`lyra.core.positions.Position`), so the
P&L of a closed round trip is the same under FIFO. A fee paid in the base asset reduces the
holding: it is a disposal of that quantity at the fill's price (gross P&L against the cost)
plus a fee worth quantity x fill price — so the trip closes exactly when the holding is zero.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal, localcontext
from typing import Any

import pandas as pd

from lyra.core.errors import ValidationError
from lyra.core.values import ZERO, to_decimal

_QUANTUM = Decimal("1e-18")
FILL_PRICE = "fill price"


@dataclass(frozen=True, slots=True)
class FeeRate:
    """Quote-currency value of one unit of a fee currency, and where that rate came from
    (e.g. ``"stored close BNB/USD 2024-01-01T00:00Z"``)."""

    rate: Decimal
    source: str


@dataclass(frozen=True, slots=True)
class TradeFill:
    """One fill as trade accounting needs it (money exact)."""

    key: str  #: what round trips are grouped by besides the instrument (e.g. the session)
    instrument_id: str
    base: str
    quote: str
    side: str  #: "buy" or "sell"
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    ts: int = 0
    row: int = 0  #: where the fill came from (for error messages)


@dataclass(slots=True)
class RoundTrip:
    """A round trip: P&L in the quote currency; ``pnl`` is after fees."""

    key: str
    instrument_id: str
    quote: str
    open_ts: int
    close_ts: int | None = None
    gross_pnl: Decimal = ZERO
    fees: Decimal = ZERO
    fills: int = 0
    fee_sources: set[str] = field(default_factory=set)

    @property
    def closed(self) -> bool:
        return self.close_ts is not None

    @property
    def pnl(self) -> Decimal:
        return self.gross_pnl - self.fees


class _Book:
    __slots__ = ("cost", "qty", "trip")

    def __init__(self) -> None:
        self.qty = ZERO
        self.cost = ZERO
        self.trip: RoundTrip | None = None


def _fee_value(f: TradeFill, rates: Mapping[str, FeeRate]) -> tuple[Decimal, str]:
    if f.fee == 0 or f.fee_currency == f.quote:
        return f.fee, f.quote
    if f.fee_currency == f.base:
        return f.fee * f.price, FILL_PRICE
    r = rates.get(f.fee_currency)
    if r is None:
        raise ValidationError(
            f"fills[{f.row}].fee_currency", f.fee_currency,
            f"no rate to value a {f.fee_currency} fee in {f.quote}",
            f"pass fee_rates={{'{f.fee_currency}': FeeRate(rate, source)}}",
        )
    return f.fee * r.rate, r.source


def _move(book: _Book, signed: Decimal, price: Decimal, ts: int, f: TradeFill,
          out: list[RoundTrip]) -> tuple[RoundTrip | None, RoundTrip | None, Decimal]:
    """Move the position by ``signed`` at ``price``: (trip closed, trip open after, share of
    the quantity that closed)."""
    q = book.qty
    size = abs(signed)
    if q == 0 or (q > 0) == (signed > 0):
        if book.trip is None:
            book.trip = RoundTrip(f.key, f.instrument_id, f.quote, ts)
        book.cost += size * price
        book.qty = q + signed
        return None, book.trip, ZERO
    trip = book.trip
    assert trip is not None
    closing = min(abs(q), size)
    with localcontext() as ctx:
        ctx.prec = 60  # sums of prices x quantities must never round
        removed = book.cost if closing == abs(q) else (book.cost * closing / abs(q)).quantize(_QUANTUM)
        proceeds = closing * price
        trip.gross_pnl += proceeds - removed if q > 0 else removed - proceeds
        book.cost -= removed
    new_q = q + signed
    book.qty = new_q
    if new_q == 0 or (new_q > 0) != (q > 0):
        trip.close_ts = ts
        out.append(trip)
        book.trip = None
        book.cost = ZERO
        if new_q != 0:
            book.trip = RoundTrip(f.key, f.instrument_id, f.quote, ts)
            book.cost = abs(new_q) * price
        return trip, book.trip, closing / size
    return None, trip, Decimal(1)


def round_trips(fills: Iterable[TradeFill], fee_rates: Mapping[str, FeeRate] | None = None
                ) -> list[RoundTrip]:
    """Closed round trips (in closing order) followed by the open ones, per key and
    instrument, from fills in ledger order."""
    rates = fee_rates or {}
    books: dict[tuple[str, str], _Book] = {}
    out: list[RoundTrip] = []
    for f in fills:
        if f.side not in ("buy", "sell"):
            raise ValidationError(f"fills[{f.row}].side", f.side, "must be 'buy' or 'sell'")
        fee, source = _fee_value(f, rates)
        book = books.setdefault((f.key, f.instrument_id), _Book())
        signed = f.quantity if f.side == "buy" else -f.quantity
        closed, opened, share = _move(book, signed, f.price, f.ts, f, out)
        with localcontext() as ctx:
            ctx.prec = 60
            closed_fee = (fee * share).quantize(_QUANTUM) if closed is not None else ZERO
        for t, part in ((closed, closed_fee), (opened, fee - closed_fee)):
            if t is not None:
                t.fees += part
                t.fills += 1
                if f.fee:
                    t.fee_sources.add(source)
        if f.fee and f.fee_currency == f.base:  # the fee itself leaves the holding
            _move(book, -f.fee, f.price, f.ts, f, out)
    out.extend(b.trip for b in books.values() if b.trip is not None)
    return out


def trades_summary(trips: Iterable[RoundTrip]) -> dict[str, Any]:
    """n_trades (closed + open), n_closed, win_rate, profit_factor, expectancy (after fees),
    gross_pnl and fees of the closed round trips — computed in Decimal, shown as float."""
    every = list(trips)
    closed = [t for t in every if t.closed]
    n_open = len(every) - len(closed)
    pnl = [t.pnl for t in closed]
    wins = sum((p for p in pnl if p > 0), ZERO)
    losses = -sum((p for p in pnl if p < 0), ZERO)
    if not pnl:
        pf = float("nan")
    elif losses == 0:
        pf = float("nan") if wins == 0 else float("inf")
    else:
        pf = float(wins / losses)
    return {
        "n_trades": len(closed) + n_open,
        "n_closed": len(closed),
        "win_rate": sum(1 for p in pnl if p > 0) / len(pnl) if pnl else float("nan"),
        "profit_factor": pf,
        "expectancy": float(sum(pnl, ZERO) / len(pnl)) if pnl else float("nan"),
        "gross_pnl": sum((t.gross_pnl for t in closed), ZERO),
        "fees": sum((t.fees for t in closed), ZERO),
    }


def _split_symbol(iid: str) -> tuple[str, str]:
    sym = iid.partition(":")[2] or iid
    base, _, quote = sym.partition("/")
    return base, quote.split(":")[0]


def _exact(v: object, where: str) -> Decimal:
    if isinstance(v, Decimal):
        return v
    if isinstance(v, float):  # shortest repr: exact for ledger values of <= 15 digits
        return to_decimal(repr(v), where)
    return to_decimal(v, where)


def fills_from_frame(frame: pd.DataFrame, key: str = "session_id") -> list[TradeFill]:
    """TradeFills from a fills frame (``lyra.readside.ReadModel.fills``). The exact ledger
    columns ``quantity_exact``/``price_exact``/``fee_exact`` are used when present; a frame
    without ``fee_currency`` has its fees in the quote currency."""
    def col(name: str) -> pd.Series:
        return frame[f"{name}_exact"] if f"{name}_exact" in frame else frame[name]

    n = len(frame)
    keys = frame[key] if key in frame else pd.Series([""] * n, index=frame.index)
    ts = frame["ts"] if "ts" in frame else pd.Series([0] * n, index=frame.index)
    out = []
    for row, (k, iid, side, q, px, fee, fcur, t) in enumerate(zip(
        keys, frame["instrument_id"], frame["side"], col("quantity"), col("price"),
        col("fee") if "fee" in frame else [ZERO] * n,
        frame["fee_currency"] if "fee_currency" in frame else [None] * n, ts, strict=True,
    )):
        base, quote = _split_symbol(str(iid))
        out.append(TradeFill(
            str(k), str(iid), base, quote, str(side),
            _exact(q, f"fills[{row}].quantity"), _exact(px, f"fills[{row}].price"),
            _exact(fee, f"fills[{row}].fee"), quote if fcur is None else str(fcur), int(t), row,
        ))
    return out
