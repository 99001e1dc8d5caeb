"""Capital gains tax events, parcels and the per-disposal schedule (Australian rules).

Conventions (each one is a choice the ATO's published guidance makes or allows):

- **Every disposal of a crypto asset is a CGT event**, crypto-to-crypto included (stablecoins
  are crypto). Fiat currencies (:data:`~lyra.tax.valuation.FIAT`) are money here, not assets.
- **Capital proceeds** are the AUD market value of what was received; where that cannot be
  valued, of what was given. The **cost base** of an acquired asset is the AUD value of what
  was given (falling back to what was received), plus incidental costs (the fee).
- **Fees**: on a purchase or swap the fee's AUD value goes into the cost base of what was
  acquired; on a sale for fiat it is an incidental cost of the disposal (second element of
  the cost base, shown as ``costs``). A fee paid in crypto is also itself a disposal of that
  crypto (proceeds: the fee's market value). A fee in the fill's base or quote asset is valued
  at the fill's own price.
- **Parcels**: first in, first out by default; specific identification where the user names
  the parcels (lots) a disposal uses.
- **12 months**: the CGT discount applies when the asset was acquired at least 12 months
  before the CGT event, counting neither the day of acquisition nor the day of the event
  (s 115-25 ITAA 1997 as the ATO applies it): bought 1 July 2023, a sale on 1 July 2024 gets
  no discount, a sale on 2 July 2024 does. Days are Australian calendar days.
- **Personal use assets**: a gain is disregarded if the asset was acquired for $10,000 or less
  (s 118-10(3)); a capital loss on a personal use asset is always disregarded (s 108-20(1)).
  Parcels are personal use assets only if the user says so (an investor's crypto is not).
- **Trader**: holdings are trading stock; no CGT event, no discount: the FIFO profit at cost
  is ordinary income (closing stock valued at cost).
"""

from __future__ import annotations

import gc
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from functools import lru_cache
from typing import TYPE_CHECKING

from lyra.core.errors import ValidationError
from lyra.core.values import ZERO
from lyra.tax.valuation import FIAT, Valuation, Valuer

if TYPE_CHECKING:
    from lyra.tax.opening import OpeningParcel

#: Personal use asset threshold (s 118-10(3) ITAA 1997): acquired for $10,000 or less.
PERSONAL_USE_THRESHOLD = Decimal(10_000)


class TaxInputError(ValidationError):
    """Input the report cannot use (a lot tag matching nothing, a disposal larger than the
    holdings...): names the fill, field and value; nothing is written."""


@dataclass(frozen=True, slots=True)
class TaxFill:
    """One fill as the tax report sees it (read from the ledger, or built in a test)."""

    key: str  #: unique reference: ``client_order_id/fill_id``
    ts: int  #: UTC ms
    instrument_id: str  #: ``venue:BASE/QUOTE``
    side: str  #: ``buy`` or ``sell``
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    session_id: str = ""
    seq: int = 0  #: event log sequence of the fill's entry
    log_hash: str = ""  #: hash of that entry

    @property
    def base(self) -> str:
        return _pair(self.instrument_id)[0]

    @property
    def quote(self) -> str:
        return _pair(self.instrument_id)[1]


@lru_cache(maxsize=1024)
def _pair(instrument_id: str) -> tuple[str, str]:
    base, _, quote = instrument_id.rpartition(":")[2].partition("/")
    return base, quote


@dataclass(slots=True)
class Parcel:
    """Units of one asset acquired together, and what is left of them."""

    lot: str  #: the acquisition's fill key (what specific identification names)
    asset: str
    quantity: Decimal  #: left
    cost: Decimal | None  #: cost base left (AUD); None: the acquisition could not be valued
    first_element: Decimal | None  #: what the whole parcel was acquired for (AUD, no fees)
    acq_ts: int
    acq_day: date


@dataclass(slots=True)
class Piece:
    """The part of a disposal that consumed (part of) one parcel."""

    lot: str
    acq_day: date
    quantity: Decimal
    cost_base: Decimal | None
    proceeds: Decimal | None
    gain: Decimal | None
    discountable: bool
    exempt: str = ""  #: why the gain or loss is disregarded ("" if it is not)


@dataclass(slots=True)
class AcquisitionLine:
    """A parcel acquired by a fill."""

    fill: TaxFill
    asset: str
    quantity: Decimal
    day: date
    cost_base: Decimal | None
    source: str
    flags: list[str] = field(default_factory=list)


@dataclass(slots=True)
class DisposalLine:
    """One CGT event: a disposal of ``quantity`` of ``asset`` by ``fill`` (kind ``sale`` for
    fiat, ``swap`` for another crypto asset, ``fee`` for a fee paid in crypto)."""

    fill: TaxFill
    kind: str
    asset: str
    quantity: Decimal
    day: date
    proceeds: Decimal | None
    costs: Decimal  #: incidental costs of the disposal (AUD), part of the cost base
    source: str
    pieces: list[Piece] = field(default_factory=list)
    unmatched: Decimal = ZERO  #: quantity no parcel covered
    flags: list[str] = field(default_factory=list)

    @property
    def event_id(self) -> str:
        return self.fill.key if self.kind != "fee" else f"{self.fill.key}#fee"

    @property
    def cost_base(self) -> Decimal | None:
        parts = [p.cost_base for p in self.pieces if p.cost_base is not None]
        return None if len(parts) < len(self.pieces) else sum(parts, ZERO)

    @property
    def gain(self) -> Decimal | None:
        parts = [p.gain for p in self.pieces if p.gain is not None]
        return None if not parts or len(parts) < len(self.pieces) else sum(parts, ZERO)

    @property
    def discount(self) -> str:
        flags = {p.discountable for p in self.pieces}
        return "yes" if flags == {True} else "no" if flags <= {False} else "mixed"

    @property
    def valued(self) -> bool:
        return not self.flags


def held_12_months(acquired: date, disposed: date) -> bool:
    """True if an asset acquired on ``acquired`` and disposed of on ``disposed`` was acquired
    at least 12 months before the CGT event, excluding both days: the days strictly between
    them must make up 12 whole months."""
    return disposed >= discount_from(acquired)


@lru_cache(maxsize=4096)
def discount_from(acquired: date) -> date:
    """The first disposal day that qualifies for the discount for an asset acquired on
    ``acquired``: 12 months after the first day that counts (the day after acquisition)."""
    return _add_months(date.fromordinal(acquired.toordinal() + 1), 12)


def _add_months(d: date, months: int) -> date:
    y, m = divmod(d.month - 1 + months, 12)
    year, month = d.year + y, m + 1
    # 29 Feb + 12 months has no twin: the 12 months end with February, so the next day is 1 Mar.
    try:
        return d.replace(year=year, month=month)
    except ValueError:
        return date(year, month + 1, 1) if month < 12 else date(year + 1, 1, 1)


@dataclass
class Books:
    """Parcels per asset and the schedule, built by :func:`process`."""

    parcels: dict[str, deque[Parcel]] = field(default_factory=dict)
    by_lot: dict[str, Parcel] = field(default_factory=dict)
    acquisitions: list[AcquisitionLine] = field(default_factory=list)
    disposals: list[DisposalLine] = field(default_factory=list)


def process(fills: Iterable[TaxFill], valuer: Valuer, *, start: date, end: date,
            discount: bool = True, lots: Mapping[str, Sequence[str]] | None = None,
            personal_use: frozenset[str] = frozenset(), allow_unmatched: bool = False,
            opening: Sequence[OpeningParcel] = ()) -> Books:
    """Run ``fills`` (in time order) through the parcel books up to ``end`` (an Australian
    day, inclusive); acquisitions and disposals on days in [``start``, ``end``] are recorded
    in the schedule, earlier ones only move parcels. ``lots`` maps a disposal's fill key to
    the lots (acquisition fill keys, or opening parcels' lot names) it uses, in order
    (specific identification). ``opening`` parcels are held before the first fill."""
    books = Books()
    lots = dict(lots or {})
    used_lot_keys: set[str] = set()
    last = (-1, -1)
    latest_opening: OpeningParcel | None = None
    for op in sorted(opening, key=lambda o: o.acquired):
        acq_ts = int(datetime.combine(op.acquired, time(), valuer.tz).timestamp() * 1000)
        p = Parcel(op.lot, op.asset, op.quantity, op.cost_base, op.cost_base, acq_ts, op.acquired)
        books.parcels.setdefault(op.asset, deque()).append(p)
        books.by_lot[op.lot] = p
        latest_opening = op
    # The books grow to millions of small acyclic objects; the cyclic collector's passes over
    # them cost as much as the work itself (measured: half the time at 400k fills).
    gc_was_on = gc.isenabled()
    gc.disable()
    try:
        for f in fills:
            if (f.ts, f.seq) < last:
                raise TaxInputError(f"fill {f.key}: ts", f.ts, "fills are not in time order")
            last = (f.ts, f.seq)
            day = valuer.day(f.ts)
            if latest_opening is not None:
                if day < latest_opening.acquired:
                    raise TaxInputError(f"opening: row {latest_opening.row}, acquired",
                                        latest_opening.acquired,
                                        f"is after the ledger's first fill ({f.key} on {day})",
                                        "opening balances are holdings from before the ledger starts")
                latest_opening = None
            if day > end:
                break
            chosen = lots.get(f.key) if lots else None
            _apply(books, f, day, valuer, record=day >= start, discount=discount,
                   lots=chosen, personal_use=personal_use, allow_unmatched=allow_unmatched)
            if chosen is not None:
                used_lot_keys.add(f.key)
    finally:
        if gc_was_on:
            gc.enable()
    for k in lots:
        if k not in used_lot_keys:
            raise TaxInputError("lots", k, "names a disposal that matches no fill up to the year's end")
    return books


def _apply(books: Books, f: TaxFill, day: date, valuer: Valuer, *, record: bool, discount: bool,
           lots: Sequence[str] | None, personal_use: frozenset[str], allow_unmatched: bool) -> None:
    base, quote = _pair(f.instrument_id)
    notional = f.quantity * f.price
    buy = f.side == "buy"
    recv, recv_amt, give, give_amt = (base, f.quantity, quote, notional) if buy else \
        (quote, notional, base, f.quantity)
    if quote in FIAT:
        v_recv = v_give = valuer.fiat(quote, notional, f.ts, day)
    else:
        r, g = valuer.value(recv, recv_amt, f.ts), valuer.value(give, give_amt, f.ts)
        v_recv, v_give = r or g, g or r
    fee_val: Valuation | None = None
    if f.fee:
        ref = v_give if buy else v_recv  # the trade's value, in terms of its notional
        if f.fee_currency == quote and quote in FIAT:
            fee_val = valuer.fiat(quote, f.fee, f.ts, day)
        elif f.fee_currency == quote and ref is not None:
            fee_val = Valuation(ref.aud * f.fee / notional, ref.source)
        elif f.fee_currency == base and ref is not None:
            fee_val = Valuation(ref.aud * f.fee / f.quantity, ref.source)
        else:
            fee_val = valuer.value(f.fee_currency, f.fee, f.ts)
    fee_aud = fee_val.aud if fee_val is not None else (ZERO if not f.fee else None)
    if recv not in FIAT:
        cost = None if v_give is None or fee_aud is None else v_give.aud + fee_aud
        flags = [] if v_give is not None else ["missing rate"]
        if fee_aud is None:
            flags.append("fee not valued")
        p = Parcel(f.key, recv, recv_amt, cost, v_give.aud if v_give else None, f.ts, day)
        books.parcels.setdefault(recv, deque()).append(p)
        books.by_lot[f.key] = p
        if record:
            books.acquisitions.append(AcquisitionLine(f, recv, recv_amt, day, cost,
                                                      v_give.source if v_give else "", flags))
    if give not in FIAT:
        costs = ZERO if recv not in FIAT else (fee_aud or ZERO)
        _dispose(books, f, day, "swap" if recv not in FIAT else "sale", give, give_amt,
                 None if v_recv is None else v_recv.aud, costs, v_recv.source if v_recv else "",
                 record=record, discount=discount, lots=lots, personal_use=personal_use,
                 allow_unmatched=allow_unmatched, fee_missing=fee_aud is None and recv in FIAT)
    if f.fee and f.fee_currency not in FIAT:
        _dispose(books, f, day, "fee", f.fee_currency, f.fee, fee_val.aud if fee_val else None, ZERO,
                 fee_val.source if fee_val else "", record=record, discount=discount, lots=None,
                 personal_use=personal_use, allow_unmatched=allow_unmatched, fee_missing=False)


def _take(books: Books, asset: str, lots: Sequence[str] | None, f: TaxFill) -> Iterable[Parcel]:
    if lots is None:
        q = books.parcels.get(asset, deque())
        while q:
            p = q[0]
            if p.quantity:
                yield p  # the caller takes what it needs from it
                if p.quantity:
                    return  # partly used: the disposal is covered
            q.popleft()
        return
    for lot in lots:
        named = books.by_lot.get(lot)
        if named is None or named.asset != asset or named.acq_ts > f.ts:
            raise TaxInputError(f"lots[{f.key}]", lot, f"matches no parcel of {asset} held at the disposal")
        if not named.quantity:
            raise TaxInputError(f"lots[{f.key}]", lot, "that parcel is already used up")
        yield named


def _dispose(books: Books, f: TaxFill, day: date, kind: str, asset: str, qty: Decimal,
             proceeds: Decimal | None, costs: Decimal, source: str, *, record: bool, discount: bool,
             lots: Sequence[str] | None, personal_use: frozenset[str], allow_unmatched: bool,
             fee_missing: bool) -> None:
    line = DisposalLine(f, kind, asset, qty, day, proceeds, costs, source)
    if proceeds is None:
        line.flags.append("missing rate")
    if fee_missing:
        line.flags.append("fee not valued")
    left = qty
    done_p = done_c = ZERO  # proceeds and costs given to earlier pieces: the last takes the rest
    for p in _take(books, asset, lots if kind != "fee" else None, f):
        take = min(p.quantity, left)
        if take == p.quantity:
            cost, p.cost = p.cost, (None if p.cost is None else ZERO)
            p.quantity = ZERO
        else:
            cost = None if p.cost is None else p.cost * take / p.quantity
            if p.cost is not None and cost is not None:
                p.cost -= cost
            p.quantity -= take
        left -= take
        if left:
            share_c = costs * take / qty
            share_p = None if proceeds is None else proceeds * take / qty
            done_c += share_c
            done_p += share_p or ZERO
        else:
            share_c = costs - done_c
            share_p = None if proceeds is None else proceeds - done_p
        cb = None if cost is None else cost + share_c
        gain = None if cb is None or share_p is None else share_p - cb
        if cost is None and "missing rate" not in line.flags:
            line.flags.append("missing rate")
        exempt = ""
        if personal_use and p.lot in personal_use and gain is not None:
            if gain < 0:
                exempt = "personal use asset: loss disregarded (s 108-20(1))"
            elif p.first_element is not None and p.first_element <= PERSONAL_USE_THRESHOLD:
                exempt = "personal use asset acquired for $10,000 or less (s 118-10(3))"
        line.pieces.append(Piece(p.lot, p.acq_day, take, cb, share_p, gain,
                                 discount and gain is not None and gain > 0 and not exempt
                                 and day >= discount_from(p.acq_day), exempt))
        if not left:
            break
    if left:
        if not allow_unmatched or lots is not None:
            what = "the lots named for it hold" if lots is not None else "holdings of"
            raise TaxInputError(f"fill {f.key} ({f.instrument_id} {f.side} at {day})", str(qty),
                                f"disposes of more {asset} than {what} {asset} ({qty - left})",
                                "record the acquisitions (opening balances) or pass allow_unmatched")
        line.unmatched = left
        line.flags.append(f"unmatched {left}")
    if record:
        books.disposals.append(line)

