"""Value types of the smart order router: a venue's book as the router sees it, and a plan.

See :mod:`lyra.execution.routing` for how a plan is made.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lyra.core.enums import OrderType, Side, TimeInForce
from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.market import OrderBookSnapshot
from lyra.core.orders import OrderIntent
from lyra.core.values import ZERO, to_decimal

Level = tuple[Decimal, Decimal]


def places(d: Decimal) -> int:
    """Digits after the decimal point of ``d`` as written (``Decimal('6203.0')`` -> 1)."""
    exp = d.as_tuple().exponent
    return -exp if isinstance(exp, int) and exp < 0 else 0


def from_scaled(n: int, scale: int) -> Decimal:
    """``n / 10**scale`` as an exact ``Decimal`` (the constructor never rounds)."""
    return Decimal(f"{n}E-{scale}")


def to_scaled(d: Decimal, scale: int) -> int:
    """``d × 10**scale`` as an int; ``scale`` must cover ``d``'s decimals."""
    sign, digits, exp = d.as_tuple()
    n = int("".join(map(str, digits))) if digits else 0
    shift = scale + int(exp)
    n = n * int(10**shift) if shift >= 0 else n // int(10**-shift)
    return -n if sign else n


def _levels(raw: object, venue: str, name: str) -> tuple[Level, ...]:
    where = f"quote[{venue}].{name}"
    if raw is None or isinstance(raw, str | bytes):
        raise ValidationError(where, raw, "expected a sequence of (price, size) pairs")
    out: list[Level] = []
    try:
        items = list(raw)  # type: ignore[call-overload]
    except TypeError:
        raise ValidationError(where, raw, "expected a sequence of (price, size) pairs") from None
    for i, lv in enumerate(items):
        try:
            p_raw, s_raw = lv
        except (TypeError, ValueError):
            raise ValidationError(f"{where}[{i}]", lv, "expected a (price, size) pair") from None
        p = to_decimal(p_raw, f"{where}[{i}].price")
        s = to_decimal(s_raw, f"{where}[{i}].size")
        if p <= 0:
            raise ValidationError(f"{where}[{i}].price", p, "must be positive")
        if s <= 0:
            raise ValidationError(f"{where}[{i}].size", s, "must be positive",
                                  "drop deleted (size 0) levels before routing")
        out.append((p, s))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class IntQuote:
    """A quote as integers: each value times ``10**scale`` of its kind (price, size, fee)."""

    pscale: int
    sscale: int
    fscale: int
    fee: int
    step: int
    min_size: int
    min_notional: int
    mn_scale: int
    bid_px: tuple[int, ...]
    bid_sz: tuple[int, ...]
    ask_px: tuple[int, ...]
    ask_sz: tuple[int, ...]


@dataclass(frozen=True)
class VenueQuote:
    """One venue's visible book for one instrument, with its taker fee and order rules.

    ``bids`` and ``asks`` are ``(price, size)`` pairs best first (bids falling, asks rising);
    they are validated and stored as ``Decimal``. ``taker_fee`` is a rate (``0.0004`` = 4 bp)
    charged on the notional. ``size_step``/``min_size``/``min_notional``/``price_step`` are
    the venue's lot, minimum quantity, minimum ``quantity × limit price`` and tick.
    ``instrument_id`` (default: ``venue``) goes into the children's ``OrderIntent``.
    """

    venue: str
    bids: Sequence[Level]
    asks: Sequence[Level]
    taker_fee: Decimal
    size_step: Decimal
    min_size: Decimal
    min_notional: Decimal
    price_step: Decimal
    ts: int
    instrument_id: str = ""
    # The integer image of the quote at its own scales, built once for every plan.
    _int: IntQuote = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        v = self.venue
        if not isinstance(v, str) or not v.strip():
            raise ValidationError("quote.venue", v, "must be a non-empty string")
        if isinstance(self.ts, bool) or not isinstance(self.ts, int):
            raise ValidationError(f"quote[{v}].ts", self.ts, "must be an int (ms UTC)")
        fee = to_decimal(self.taker_fee, f"quote[{v}].taker_fee")
        if not ZERO <= fee < 1:
            raise ValidationError(f"quote[{v}].taker_fee", fee, "must be a rate in [0, 1)", "4 bp is 0.0004")
        nums: dict[str, Decimal] = {"taker_fee": fee}
        for name in ("size_step", "price_step"):
            d = to_decimal(getattr(self, name), f"quote[{v}].{name}")
            if d <= 0:
                raise ValidationError(f"quote[{v}].{name}", d, "must be positive")
            nums[name] = d
        for name in ("min_size", "min_notional"):
            d = to_decimal(getattr(self, name), f"quote[{v}].{name}")
            if d < 0:
                raise ValidationError(f"quote[{v}].{name}", d, "must not be negative")
            nums[name] = d
        for name, d in nums.items():
            object.__setattr__(self, name, d)
        bids = _levels(self.bids, v, "bids")
        asks = _levels(self.asks, v, "asks")
        tick = nums["price_step"]
        for name, side, falling in (("bids", bids, True), ("asks", asks, False)):
            for i, (p, _) in enumerate(side):
                if p % tick:
                    raise ValidationError(f"quote[{v}].{name}[{i}].price", p,
                                          f"not a multiple of the price step {tick}")
                if i and (p >= side[i - 1][0] if falling else p <= side[i - 1][0]):
                    order = "falling" if falling else "rising"
                    raise ValidationError(f"quote[{v}].{name}[{i}].price", p,
                                          f"{name} must be best first with strictly {order} prices",
                                          f"previous level is {side[i - 1][0]}")
        if bids and asks and bids[0][0] >= asks[0][0]:
            raise ValidationError(f"quote[{v}].bids[0].price", bids[0][0],
                                  f"crossed or locked book: best bid >= best ask {asks[0][0]}")
        object.__setattr__(self, "bids", bids)
        object.__setattr__(self, "asks", asks)
        object.__setattr__(self, "instrument_id", self.instrument_id or v)
        levels = bids + asks
        pscale = max([places(tick), *(places(p) for p, _ in levels)])
        sscale = max([places(nums["size_step"]), places(nums["min_size"]), *(places(s) for _, s in levels)])
        fscale = places(fee)
        mn = nums["min_notional"]
        object.__setattr__(self, "_int", IntQuote(
            pscale, sscale, fscale, to_scaled(fee, fscale), to_scaled(nums["size_step"], sscale),
            to_scaled(nums["min_size"], sscale), to_scaled(mn, places(mn)), places(mn),
            tuple(to_scaled(p, pscale) for p, _ in bids), tuple(to_scaled(s, sscale) for _, s in bids),
            tuple(to_scaled(p, pscale) for p, _ in asks), tuple(to_scaled(s, sscale) for _, s in asks),
        ))

    # -- builders -------------------------------------------------------------------------
    @classmethod
    def from_instrument(cls, instrument: Instrument, bids: Sequence[Sequence[object]],
                        asks: Sequence[Sequence[object]], ts: int, *,
                        taker_fee: object | None = None, venue: str | None = None) -> VenueQuote:
        """A quote with the instrument's tick, lot, minimums and (unless given) taker fee."""
        return cls(venue or instrument.venue, bids, asks,  # type: ignore[arg-type]
                   to_decimal(instrument.taker_fee if taker_fee is None else taker_fee, "taker_fee"),
                   instrument.size_increment, instrument.min_size, instrument.min_notional,
                   instrument.price_increment, ts, instrument.id)

    @classmethod
    def from_snapshot(cls, snapshot: OrderBookSnapshot, instrument: Instrument, *,
                      taker_fee: object | None = None, venue: str | None = None) -> VenueQuote:
        """A quote from an :class:`OrderBookSnapshot` (float levels become exact decimals)."""
        return cls.from_instrument(instrument, [(lv.price, lv.size) for lv in snapshot.bids],
                                   [(lv.price, lv.size) for lv in snapshot.asks], snapshot.ts,
                                   taker_fee=taker_fee, venue=venue)

    @classmethod
    def from_ccxt_order_book(cls, order_book: Mapping[str, Any], instrument: Instrument, *,
                             taker_fee: object | None = None, venue: str | None = None) -> VenueQuote:
        """A quote from ccxt's ``fetch_order_book`` result (``[price, size, ...]`` rows)."""
        ts = order_book.get("timestamp") or 0
        return cls.from_instrument(instrument, [row[:2] for row in order_book.get("bids") or []],
                                   [row[:2] for row in order_book.get("asks") or []], int(ts),
                                   taker_fee=taker_fee, venue=venue)

    def side_levels(self, side: Side) -> tuple[Level, ...]:
        """The levels an order of ``side`` takes: asks for a buy, bids for a sell."""
        return tuple(self.asks if side is Side.BUY else self.bids)


@dataclass(frozen=True, slots=True)
class RouteChild:
    """One venue's share of a routed order: an IOC limit order at ``limit_price``.

    ``limit_price`` is the worst level the plan takes on that venue, so the child can never
    fill worse than planned; ``levels`` are the ``(price, quantity)`` it expects to take.
    ``expected_net`` is ``gross + fee`` for a buy (what it costs) and ``gross - fee`` for a
    sell (what it brings in).
    """

    venue: str
    instrument_id: str
    side: Side
    quantity: Decimal
    limit_price: Decimal
    expected_avg_price: Decimal
    expected_gross: Decimal
    expected_fee: Decimal
    expected_net: Decimal
    levels: tuple[Level, ...]

    def intent(self, tag: str = "") -> OrderIntent:
        """The child as an ``OrderIntent``: LIMIT, IOC, at the worst planned price."""
        return OrderIntent(self.instrument_id, self.side, self.quantity, OrderType.LIMIT,
                           self.limit_price, None, TimeInForce.IOC, tag=tag)

    def to_record(self) -> dict[str, Any]:
        return {"venue": self.venue, "instrument_id": self.instrument_id, "quantity": str(self.quantity),
                "limit_price": str(self.limit_price), "avg_price": str(self.expected_avg_price),
                "gross": str(self.expected_gross), "fee": str(self.expected_fee),
                "net": str(self.expected_net), "levels": [[str(p), str(s)] for p, s in self.levels]}


@dataclass(frozen=True, slots=True)
class SingleVenueCost:
    """What one venue alone would do for the plan's routed quantity (``net`` None: it can't)."""

    venue: str
    net: Decimal | None
    reason: str = ""

    def to_record(self) -> dict[str, Any]:
        return {"venue": self.venue, "net": None if self.net is None else str(self.net),
                "reason": self.reason}


def _avg(total: Decimal, qty: Decimal) -> Decimal | None:
    return total / qty if qty else None


def _s(d: Decimal | None) -> str | None:
    return None if d is None else str(d)


@dataclass(frozen=True, slots=True)
class RoutePlan:
    """How to split one parent order across venues, with what each child should cost.

    ``expected_net`` is the total paid including fees (buy) or received after fees (sell);
    ``expected_gross`` the same before fees. ``unroutable`` is what the books (within the
    limit, steps and minimums) cannot take. ``exact`` is True when the split is provably the
    optimum of the router's model (see :mod:`lyra.execution.routing_solver`); it is False only
    when the steps are so different that the remainder search was cut short.
    ``subsets_searched``/``combos_searched`` say how much search the minimums and steps needed.
    """

    side: Side
    quantity: Decimal
    limit_price: Decimal | None
    children: tuple[RouteChild, ...]
    routed: Decimal
    unroutable: Decimal
    expected_gross: Decimal
    expected_fees: Decimal
    expected_net: Decimal
    single_venue: tuple[SingleVenueCost, ...]
    exact: bool
    subsets_searched: int
    combos_searched: int
    quotes: tuple[VenueQuote, ...] = field(repr=False)

    @property
    def expected_avg_price(self) -> Decimal | None:
        """Average price per unit net of fees (None when nothing is routed)."""
        return _avg(self.expected_net, self.routed)

    @property
    def expected_avg_price_gross(self) -> Decimal | None:
        """Average price per unit before fees."""
        return _avg(self.expected_gross, self.routed)

    @property
    def single_venue_best(self) -> SingleVenueCost | None:
        """The best single venue for the same routed quantity (None if no venue can do it alone)."""
        ok = [c for c in self.single_venue if c.net is not None]
        if not ok:
            return None
        if self.side is Side.BUY:
            return min(ok, key=lambda c: c.net or ZERO)
        return max(ok, key=lambda c: c.net or ZERO)

    @property
    def improvement(self) -> Decimal | None:
        """How much better the split is than the best single venue (>= 0 whenever ``exact``)."""
        best = self.single_venue_best
        if best is None or best.net is None:
            return None
        return best.net - self.expected_net if self.side is Side.BUY else self.expected_net - best.net

    def child(self, venue: str) -> RouteChild | None:
        return next((c for c in self.children if c.venue == venue), None)

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe account of the decision for the audit log: books seen, split, prices."""
        best = self.single_venue_best
        return {
            "side": self.side.value,
            "quantity": str(self.quantity),
            "limit_price": _s(self.limit_price),
            "routed": str(self.routed),
            "unroutable": str(self.unroutable),
            "children": [c.to_record() for c in self.children],
            "expected_gross": str(self.expected_gross),
            "expected_fees": str(self.expected_fees),
            "expected_net": str(self.expected_net),
            "expected_avg_price": _s(self.expected_avg_price),
            "expected_avg_price_gross": _s(self.expected_avg_price_gross),
            "single_venue": [c.to_record() for c in self.single_venue],
            "single_venue_best": None if best is None else best.to_record(),
            "improvement": _s(self.improvement),
            "exact": self.exact,
            "subsets_searched": self.subsets_searched,
            "combos_searched": self.combos_searched,
            "books": [self._book_record(q) for q in self.quotes],
        }

    def _book_record(self, q: VenueQuote) -> dict[str, Any]:
        levels = q.side_levels(self.side)
        lim = self.limit_price
        if lim is None:
            within = levels
        elif self.side is Side.BUY:
            within = tuple(lv for lv in levels if lv[0] <= lim)
        else:
            within = tuple(lv for lv in levels if lv[0] >= lim)
        child = self.child(q.venue)
        used = child.levels if child else levels[:1]
        return {
            "venue": q.venue, "instrument_id": q.instrument_id, "ts": q.ts,
            "taker_fee": str(q.taker_fee), "size_step": str(q.size_step), "min_size": str(q.min_size),
            "min_notional": str(q.min_notional), "price_step": str(q.price_step),
            "best_bid": _s(q.bids[0][0]) if q.bids else None,
            "best_ask": _s(q.asks[0][0]) if q.asks else None,
            "levels_used": [[str(p), str(s)] for p, s in used],
            "depth": {"levels": len(levels), "size": str(sum((s for _, s in levels), ZERO)),
                      "notional": str(sum((p * s for p, s in levels), ZERO)),
                      "levels_within_limit": len(within),
                      "size_within_limit": str(sum((s for _, s in within), ZERO)),
                      "worst_price": _s(levels[-1][0]) if levels else None},
        }
