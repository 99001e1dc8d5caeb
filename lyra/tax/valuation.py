"""AUD values of amounts at a moment: AUD itself, a fiat currency through a stored rate
(RBA), a crypto asset through stored market prices (a direct AUD pair, or a USD pair and the
AUD/USD rate). Every value carries its source; what cannot be valued is ``None``, never a
guess.

Dates are Australian: a timestamp (UTC ms) belongs to the calendar day in ``tz``
(``Australia/Sydney`` by default, where the RBA fixes its rates at 4 pm).
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import NamedTuple
from zoneinfo import ZoneInfo

from lyra.tax.rates import RateTable

#: Currencies that are money, not CGT assets in this report. Stablecoins (USDT, USDC...)
#: are crypto assets, so they are not here.
FIAT = frozenset({"AUD", "USD", "EUR", "GBP", "JPY", "CAD", "CHF", "NZD", "SGD", "HKD", "CNY"})

_HOUR_MS = 3_600_000


class Valuation(NamedTuple):
    """An AUD amount and where it came from (a tuple: made once per fill leg, cheaply)."""

    aud: Decimal
    source: str


class PriceSeries:
    """Prices of one asset in one quote currency over time (e.g. closes of stored bars),
    looked up as the last price at or before a moment, no older than ``max_age_ms``."""

    __slots__ = ("label", "max_age_ms", "prices", "quote", "ts")

    def __init__(self, label: str, quote: str, ts: Sequence[int], prices: Sequence[Decimal], *,
                 max_age_ms: int = 86_400_000) -> None:
        self.label = label
        self.quote = quote
        self.ts = list(ts)
        self.prices = list(prices)
        self.max_age_ms = max_age_ms

    def at(self, ts: int) -> tuple[Decimal, int] | None:
        i = bisect.bisect_right(self.ts, ts)
        if not i or ts - self.ts[i - 1] > self.max_age_ms:
            return None
        return self.prices[i - 1], self.ts[i - 1]


class Valuer:
    """Values amounts in AUD from stored rates and prices (see the module docstring)."""

    def __init__(self, rates: Mapping[str, RateTable] | None = None,
                 prices: Mapping[str, Sequence[PriceSeries]] | None = None, *,
                 tz: str = "Australia/Sydney") -> None:
        self.rates = dict(rates or {})
        self.prices = {k: list(v) for k, v in (prices or {}).items()}
        self.tz = ZoneInfo(tz)
        self._days: dict[int, date] = {}
        self._sources: dict[tuple[str, date], str] = {}
        # Sydney's offset (+10/+11) changes only on whole UTC hours, so days can be cached per
        # hour; a zone with half-hour offsets puts midnight inside an hour and is not cached.
        self._hourly = all((o := self.tz.utcoffset(datetime(2024, m, 1, tzinfo=UTC))) is not None
                           and o.total_seconds() % 3600 == 0 for m in (1, 7))

    def day(self, ts: int) -> date:
        """The Australian calendar day of ``ts`` (UTC ms)."""
        h = ts // _HOUR_MS
        d = self._days.get(h)
        if d is None:
            d = datetime.fromtimestamp(ts / 1000, tz=UTC).astimezone(self.tz).date()
            if self._hourly:
                self._days[h] = d
        return d

    def fiat(self, currency: str, amount: Decimal, ts: int, day: date | None = None) -> Valuation | None:
        """``amount`` of a fiat ``currency`` in AUD at ``ts`` (whose Australian ``day`` the
        caller may already know); None without a rate."""
        if currency == "AUD":
            return Valuation(amount, "AUD")
        table = self.rates.get(currency)
        if table is None:
            return None
        r = table.rate_for(day or self.day(ts))
        if r is None:
            return None
        src = self._sources.get((currency, r.day))
        if src is None:
            src = self._sources[(currency, r.day)] = f"{r.source} {currency}/AUD {r.value}"
        return Valuation(amount / r.value, src)

    def value(self, asset: str, amount: Decimal, ts: int) -> Valuation | None:
        """``amount`` of ``asset`` (fiat or crypto) in AUD at ``ts``; None if unvalued."""
        if asset in FIAT:
            return self.fiat(asset, amount, ts)
        for series in self.prices.get(asset, ()):
            hit = series.at(ts)
            if hit is None:
                continue
            price, at = hit
            inner = self.fiat(series.quote, amount * price, ts)
            if inner is None:
                continue
            when = datetime.fromtimestamp(at / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%MZ")
            src = f"{series.label} {price} @ {when}"
            return Valuation(inner.aud, src if series.quote == "AUD" else f"{src}; {inner.source}")
        return None

