"""Reading venue answers strictly: the error for what we do not understand, the number
parser, and small helpers over ccxt's raw ``info`` payload.

What each venue's raw answers *mean* (its status tables, client-id fields, order kinds) is
venue knowledge and lives in the registry, :attr:`lyra.venues.Venue.shape`. The mappers in
:mod:`lyra.execution.venue_reports` read it through :func:`venue_shape`; they never test a
venue's name. A raw value that is not in a table is not guessed at: they raise
:class:`UnknownVenueShape`, so a new venue state is added to the registry on purpose, with a
test, rather than slipping through as something else.

>>> parse_decimal("1e-05", "amount", "binance order 1")
Decimal('0.00001')
>>> venue_shape("bybit").statuses["PartiallyFilledCanceled"]
'canceled'
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from lyra.core.errors import ValidationError
from lyra.core.values import to_decimal
from lyra.venues import VENUES, VenueShape


class UnknownVenueShape(ValidationError):
    """A venue answer we do not understand: an unknown status or order kind, a missing
    required field, numbers that contradict each other. Never guessed at.

    ``venue`` names the venue, ``what`` says what is wrong (and where), ``raw`` is the payload
    as received (ccxt's structure, its ``info`` inside), to log and to add to a test.
    """

    def __init__(self, venue: str, what: str, raw: Any = None) -> None:
        super().__init__(f"{venue} response", _short(raw), what)
        self.venue = venue
        self.what = what
        self.raw = raw
        self.args = (what if what.startswith(f"{venue} ") else f"{venue}: {what}",)


def _short(raw: Any) -> str:
    text = repr(raw)
    return text if len(text) <= 200 else text[:197] + "..."


def parse_decimal(value: object, field: str, where: str) -> Decimal:
    """A venue number as an exact ``Decimal``.

    Accepts ``int``, ``Decimal``, ``str`` (exponents too: ``"1e-05"``, ``"1.5E+3"``) and
    ``float`` (through its shortest ``repr``, so ``0.1`` is ``Decimal("0.1")``). Refuses
    ``None``, ``""``, booleans, NaN, infinities, ``"1_000"`` and anything else with a
    :class:`~lyra.core.errors.ValidationError` naming ``where`` and ``field``, e.g.
    ``"binance order 123: amount"``. Positive exponents are written out (``"1.5E+3"`` gives
    ``Decimal("1500")``) so the value prints and compares as a plain number.

    The conversion itself is :func:`lyra.core.values.to_decimal`; this adds what a venue
    answer needs on top: a missing or empty field named as such, no digit separators.
    """
    name = f"{where}: {field}" if where else field
    if value is None:
        raise ValidationError(name, value, "missing")
    if isinstance(value, str):
        if not value.strip():
            raise ValidationError(name, value, "empty")
        if "_" in value:  # Decimal() accepts "1_000"; no venue writes numbers that way
            raise ValidationError(name, value, "not a number")
    d = to_decimal(value, name)
    exponent = d.as_tuple().exponent
    if isinstance(exponent, int) and exponent > 0:
        d = d.quantize(Decimal(1))
    return d


def parse_optional_decimal(value: object, field: str, where: str) -> Decimal | None:
    """Like :func:`parse_decimal`, but ``None`` and ``""`` (a field the venue left empty)
    give ``None``. Everything else is as strict."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    return parse_decimal(value, field, where)


def _symbol(instrument: str) -> str:
    head, sep, rest = instrument.partition(":")
    return rest if sep and "/" not in head else instrument


def accounting_currency(instrument: str) -> str:
    """The currency an instrument's money is counted in: the quote for spot, the settlement
    currency for derivatives. Takes an instrument id (``"okx:BTC/USDT:USDT"``) or a symbol.

    >>> accounting_currency("binance:BTC/USDT"), accounting_currency("okx:BTC/USD:BTC")
    ('USDT', 'BTC')
    """
    quote, _, settle = _symbol(instrument).partition("/")[2].partition(":")
    return settle or quote


def is_derivative(instrument: str) -> bool:
    """True for a ccxt derivative symbol (``BASE/QUOTE:SETTLE``): amounts are contracts."""
    return ":" in _symbol(instrument)


def raw_field(info: Any, key: str) -> Any:
    """``info[key]``, following dots into nested objects; ``None`` when absent."""
    value = info
    for part in key.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def first_raw(info: Any, keys: tuple[str, ...]) -> str | None:
    """The first of ``keys`` that ``info`` holds as a non-empty value, as a string."""
    for key in keys:
        value = raw_field(info, key)
        if value is not None and not isinstance(value, (dict, list)) and str(value).strip():
            return str(value).strip()
    return None


def venue_shape(venue: str) -> VenueShape:
    """The raw-payload tables of ``venue`` (its registry row's ``shape``);
    :class:`UnknownVenueShape` for a venue the registry does not know."""
    known = VENUES.get(venue)
    if known is None:
        raise UnknownVenueShape(venue, f"unknown venue (known: {', '.join(sorted(VENUES))})")
    return known.shape
