"""What an order costs: the one rule that risk's affordability check and the broker's
reservation both use, so that an order risk sized to fit is never refused for funds.

A buy reserves, in the quote currency::

    unit price × quantity × (1 + taker fee)

where the unit price is the order's limit price for a limit (or stop-limit) order, and the
reference price moved up by ``market_buffer`` for a market (or stop-market) order — a market
buy does not know its fill price, so it reserves room for the price moving (and slipping)
before it fills. The reference is the stop price of a stop order, otherwise the market's
price (best ask, last trade or close). The fee is the taker rate: the order may take.

A sell reserves its base quantity; no price is involved.

The venue's minimums are part of the rule: a quantity on the lot grid, at least
``min_size``, and a notional (quantity × reference price, without the buffer) of at least
``min_notional``. :meth:`CostRule.affordable` gives the largest quantity on the lot grid
whose reservation fits a balance — computed with the very arithmetic of
:meth:`CostRule.reserve`, so "fits" means the same thing to everyone who asks.

>>> rule = CostRule(lot=Decimal("0.001"), taker_fee=Decimal("0.001"))
>>> unit = rule.unit_price(market=Decimal(100))      # a market buy at a mark of 100
>>> unit, rule.reserve(Decimal(10), unit)
(Decimal('105.00'), Decimal('1051.05000'))
>>> rule.affordable(Decimal(1000), unit)             # 9.514 × 105 × 1.001 = 999.97...
Decimal('9.514')

Money is exact ``Decimal`` throughout; nothing here rounds a price or an amount, only
quantities (down, to the lot). Where an amount is *shown* to the cent, :func:`cents` rounds
it in the safe direction — what an order needs up, what is free down — with its own
rounding, never the thread's decimal context (which other libraries change: ccxt's
``decimal_to_precision`` leaves it at ROUND_HALF_UP):

>>> cents(Decimal("105.105"), up=True), cents(Decimal("4.509"), up=False)
('105.11', '4.50')
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_DOWN, ROUND_FLOOR, Decimal, localcontext

from lyra.core.errors import ValidationError
from lyra.core.instrument import Instrument
from lyra.core.values import ZERO, plain_str, to_decimal

_ONE = Decimal(1)

#: What a market (or stop-market) buy reserves above its reference price, per unit: room for
#: the price moving between the order and its fill, slippage included (5%).
MARKET_BUY_BUFFER = Decimal("0.05")

_CENT = Decimal("0.01")


def cents(amount: Decimal, *, up: bool) -> str:
    """``amount`` to two decimals, rounded up (``up=True``: what an order needs) or down
    (what is free), so a message never understates a need nor overstates funds.

    The rounding is explicit: ``format(amount, ".2f")`` would use the thread's decimal
    context, which a library may have changed, and so answer differently test to test.
    """
    with localcontext() as ctx:
        ctx.prec = 60  # no amount is near 60 digits; quantize must never overflow
        return f"{amount.quantize(_CENT, rounding=ROUND_CEILING if up else ROUND_FLOOR):f}"


@dataclass(frozen=True, slots=True)
class CostRule:
    """The cost of an order on one instrument (see the module doc).

    - ``lot``: the venue's size increment; quantities are multiples of it.
    - ``taker_fee``: the fee a buy reserves for, as a fraction (``0.001`` = 10 bps). Where
      the venue's rate depends on volume tiers, the highest rate that can apply, so a
      quantity that fits at this rate fits at any lower one.
    - ``market_buffer``: the fraction a market buy reserves above its reference price.
    - ``min_size`` / ``min_notional``: the venue's minimum quantity and order value.
    """

    lot: Decimal
    taker_fee: Decimal
    market_buffer: Decimal = MARKET_BUY_BUFFER
    min_size: Decimal = ZERO
    min_notional: Decimal = ZERO

    def __post_init__(self) -> None:
        lot = to_decimal(self.lot, "cost_rule.lot")
        if lot <= 0:
            raise ValidationError("cost_rule.lot", lot, "must be positive")
        object.__setattr__(self, "lot", lot)
        for name in ("taker_fee", "market_buffer", "min_size", "min_notional"):
            v = to_decimal(getattr(self, name), f"cost_rule.{name}")
            if v < 0:
                raise ValidationError(f"cost_rule.{name}", v, "must not be negative")
            object.__setattr__(self, name, v)
        if self.taker_fee >= 1:
            raise ValidationError("cost_rule.taker_fee", self.taker_fee, "must be a fraction below 1",
                                  "write 10 bps as 0.001")

    @classmethod
    def of(cls, instrument: Instrument, *, taker_fee: Decimal | None = None,
           market_buffer: Decimal = MARKET_BUY_BUFFER) -> CostRule:
        """The rule of ``instrument``: its lot, minimums and taker fee (unless ``taker_fee``
        is given, e.g. a broker's highest tier rate), with ``market_buffer``."""
        return cls(instrument.size_increment, instrument.taker_fee if taker_fee is None else taker_fee,
                   market_buffer, instrument.min_size, instrument.min_notional)

    # ------------------------------------------------------------------------------ prices
    @staticmethod
    def reference(*, limit: Decimal | None = None, stop: Decimal | None = None,
                  market: Decimal | None = None) -> Decimal | None:
        """The price an order is valued at for the venue's minimum notional: its limit, else
        its stop, else the market's price (None when nothing is known)."""
        if limit is not None:
            return limit
        return stop if stop is not None else market

    def unit_price(self, *, limit: Decimal | None = None, stop: Decimal | None = None,
                   market: Decimal | None = None) -> Decimal | None:
        """What a buy reserves per unit, before the fee: ``limit`` for an order with a limit
        price; otherwise the reference (``stop``, else ``market``) × (1 + ``market_buffer``).
        None when a market buy has no reference price yet."""
        if limit is not None:
            return limit
        ref = stop if stop is not None else market
        if ref is None:
            return None
        return ref * (_ONE + self.market_buffer)

    # ---------------------------------------------------------------------------- amounts
    def reserve(self, quantity: Decimal, unit_price: Decimal, fee: Decimal | None = None) -> Decimal:
        """Quote currency a buy of ``quantity`` reserves at ``unit_price`` (from
        :meth:`unit_price`), fee included. ``fee`` overrides the rule's taker rate (a broker
        reserving at the tier that applies now)."""
        return unit_price * quantity * (_ONE + (self.taker_fee if fee is None else fee))

    def affordable(self, funds: Decimal, unit_price: Decimal, fee: Decimal | None = None) -> Decimal:
        """The largest quantity on the lot grid whose :meth:`reserve` is at most ``funds``
        (0 if not even one lot fits). The next lot up never fits."""
        if funds <= 0 or unit_price <= 0:
            return ZERO
        lot = self.lot
        rate = self.taker_fee if fee is None else fee
        units = (funds / (unit_price * (_ONE + rate)) / lot).to_integral_value(rounding=ROUND_DOWN)
        q = units * lot
        # The division is rounded to the context's precision; settle the last lot with the
        # same multiplication the reservation uses, so both sides agree to the last digit.
        while q > 0 and self.reserve(q, unit_price, rate) > funds:
            q -= lot
        while self.reserve(q + lot, unit_price, rate) <= funds:
            q += lot
        return q

    def floor(self, quantity: Decimal) -> Decimal:
        """``quantity`` rounded down to the lot grid (0 for anything not positive)."""
        if quantity <= 0:
            return ZERO
        return (quantity / self.lot).to_integral_value(rounding=ROUND_DOWN) * self.lot

    # --------------------------------------------------------------------------- minimums
    def minimum_problem(self, quantity: Decimal, price: Decimal | None) -> str:
        """Why the venue would refuse ``quantity`` at ``price`` (from :meth:`reference`):
        off the lot grid, below the minimum size or below the minimum notional; ``""`` if
        none. Without a price the notional is not checked."""
        if quantity <= 0:
            return f"quantity {plain_str(quantity)} is not positive"
        if quantity % self.lot:
            return f"quantity {plain_str(quantity)} is not a multiple of the lot size {plain_str(self.lot)}"
        if quantity < self.min_size:
            return f"quantity {plain_str(quantity)} is below the minimum size {plain_str(self.min_size)}"
        if price is not None and self.min_notional > 0 and quantity * price < self.min_notional:
            return (f"notional {plain_str(quantity * price)} is below the minimum notional "
                    f"{plain_str(self.min_notional)}")
        return ""
