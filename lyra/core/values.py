"""Exact value types for the ledger: ``Price``, ``Quantity`` and ``Money`` on ``Decimal``.

Floats from market data become ``Decimal`` here and nowhere else (``to_decimal``): the float's
shortest repr is used, so ``0.1`` becomes ``Decimal("0.1")`` and not its binary expansion.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Self

from lyra.core.errors import ValidationError

ZERO = Decimal(0)


def to_decimal(value: object, field: str = "value") -> Decimal:
    """Convert int/float/str/Decimal to a finite ``Decimal``; refuses NaN, inf, bools, junk."""
    if isinstance(value, bool):
        raise ValidationError(field, value, "a boolean is not a number")
    if isinstance(value, Decimal):
        d = value
    elif isinstance(value, int):
        d = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise ValidationError(field, value, "not a finite number")
        d = Decimal(repr(value))
    elif isinstance(value, str):
        try:
            d = Decimal(value.strip())
        except InvalidOperation:
            raise ValidationError(field, value, "not a number") from None
    else:
        raise ValidationError(field, value, f"cannot convert {type(value).__name__} to a number")
    if not d.is_finite():
        raise ValidationError(field, value, "not a finite number")
    return d


def quantize_step(value: Decimal, step: Decimal, rounding: str = ROUND_HALF_EVEN) -> Decimal:
    """Round ``value`` to a multiple of ``step`` (a tick or lot size)."""
    if step <= 0:
        return value
    units = (value / step).to_integral_value(rounding=rounding)
    exponent = step.as_tuple().exponent
    return (units * step).quantize(step) if isinstance(exponent, int) and exponent < 0 else units * step


def is_on_step(value: Decimal, step: Decimal) -> bool:
    """True if ``value`` is an exact multiple of ``step``."""
    return step <= 0 or (value % step) == 0


@dataclass(frozen=True, slots=True, order=True)
class Quantity:
    """A non-negative amount of an asset (order size, fill size, position size magnitude)."""

    value: Decimal

    def __post_init__(self) -> None:
        v = to_decimal(self.value, "quantity")
        if v < 0:
            raise ValidationError("quantity", self.value, "must not be negative")
        object.__setattr__(self, "value", v)

    @classmethod
    def of(cls, value: object) -> Self:
        return cls(to_decimal(value, "quantity"))

    def round_down(self, step: Decimal) -> Quantity:
        """Round down to the venue's lot size (never buy more than asked)."""
        return Quantity(quantize_step(self.value, step, ROUND_DOWN))

    def __add__(self, other: Quantity) -> Quantity:
        return Quantity(self.value + other.value)

    def __sub__(self, other: Quantity) -> Quantity:
        return Quantity(self.value - other.value)  # raises if the result is negative

    def __bool__(self) -> bool:
        return self.value != 0

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True, order=True)
class Price:
    """A strictly positive price in the quote currency."""

    value: Decimal

    def __post_init__(self) -> None:
        v = to_decimal(self.value, "price")
        if v <= 0:
            raise ValidationError("price", self.value, "must be positive")
        object.__setattr__(self, "value", v)

    @classmethod
    def of(cls, value: object) -> Self:
        return cls(to_decimal(value, "price"))

    def round_to_tick(self, tick: Decimal) -> Price:
        return Price(quantize_step(self.value, tick))

    def __str__(self) -> str:
        return str(self.value)


@dataclass(frozen=True, slots=True)
class Money:
    """An amount in a currency. May be negative (PnL, cash flows)."""

    amount: Decimal
    currency: str

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", to_decimal(self.amount, "amount"))
        if not self.currency or not self.currency.isalnum():
            raise ValidationError("currency", self.currency, "must be an alphanumeric code")

    def _same(self, other: Money) -> None:
        if other.currency != self.currency:
            raise ValidationError(
                "currency", other.currency, f"cannot combine with {self.currency}", "convert first"
            )

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount + other.amount, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.amount - other.amount, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.amount, self.currency)

    def __mul__(self, k: Decimal | int) -> Money:
        return Money(self.amount * k, self.currency)

    def __lt__(self, other: Money) -> bool:
        self._same(other)
        return self.amount < other.amount

    def __le__(self, other: Money) -> bool:
        self._same(other)
        return self.amount <= other.amount

    def round(self, places: int = 2) -> Money:
        return Money(self.amount.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN), self.currency)

    def __str__(self) -> str:
        return f"{self.amount} {self.currency}"
