"""Exact numbers for the ledger: the one conversion into ``Decimal``, the one way back to text,
and rounding to a venue's tick or lot.

The ledger (orders, fills, positions, cash, the event log) holds plain ``Decimal`` values with
the instrument's precision; research arrays are float64. Numbers become ``Decimal`` here and
nowhere else (:func:`to_decimal`): a float goes through its shortest repr, so ``0.1`` becomes
``Decimal("0.1")`` and not its binary expansion. Where a ``Decimal`` is written into the log
or a message, :func:`plain_str` writes it so the same number always gives the same text.

>>> to_decimal(0.1), plain_str(Decimal("5E+4")), plain_str(Decimal("0.50"))
(Decimal('0.1'), '50000', '0.5')
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation

from lyra.core.errors import ValidationError

ZERO = Decimal(0)


def to_decimal(value: object, field: str = "value") -> Decimal:
    """Convert int/float/str/Decimal to a finite ``Decimal``; refuses NaN, inf, bools, junk
    with a :class:`~lyra.core.errors.ValidationError` naming ``field``."""
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
        raise ValidationError(field, value, f"cannot read a {type(value).__name__} as a number")
    if not d.is_finite():
        raise ValidationError(field, value, "not a finite number")
    return d


def plain_str(d: Decimal) -> str:
    """``d`` as plain digits: no exponent, no trailing zeros, no ``-0``.

    ``Decimal("50000.0")``, ``Decimal("5E+4")`` and ``Decimal("50000")`` all give
    ``"50000"``; ``Decimal("0.50")`` and ``Decimal("5E-1")`` give ``"0.5"``. The same number
    always gives the same text, however a venue or a calculation wrote it — which is what
    log entries, ids and messages compared across runs need. Exact at any size (unlike
    ``Decimal.normalize``, which rounds to the context's 28 digits).
    """
    if d == 0:
        return "0"
    text = format(d, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


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
