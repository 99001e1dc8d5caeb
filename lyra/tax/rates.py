"""AUD/USD rates from the Reserve Bank of Australia (RBA) and AUD valuation of amounts.

The RBA publishes table F11.1 ("Exchange rates", daily, ``https://www.rba.gov.au/statistics/
tables/csv/f11.1-data.csv``) with a preamble of header rows, then one row per business day::

    F11.1  EXCHANGE RATES ,,,
    Title,A$1=USD,Trade-weighted Index May 1970 = 100,...
    Description,AUD/USD Exchange Rate; see notes for further detail.,...
    Frequency,Daily,...
    Type,Indicative,...
    Units,USD,Index,...
    (two blank rows)
    Source,WM/Reuters,RBA,...
    Publication date,18-Dec-2024,...
    Series ID,FXRUSD,FXRTWI,...
    03-Jan-2023,0.6828,61.40,...

``FXRUSD`` is US dollars per one Australian dollar (the WM/Reuters 4 pm Sydney fix since 2008),
so an amount in USD is ``usd / rate`` in AUD. The ATO accepts the RBA's rates for translating
foreign currency amounts.

Days without a published rate (weekends, holidays): the rate last published *before* the day
is used, if it is at most ``max_gap_days`` old (default 4 days: a long weekend); the line
shows the rate's own date. Older than that, the amount is not valued: the line is flagged
``missing rate``, never filled in by a guess.
"""

from __future__ import annotations

import bisect
import csv
import gzip
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lyra.core.errors import ValidationError

#: The column of AUD/USD in F11.1 (USD per AUD).
RBA_USD_SERIES = "FXRUSD"
RBA_SOURCE = "RBA F11.1 FXRUSD"


class RateFileError(ValidationError):
    """A rate file that cannot be read: names the file, the row and the field."""


@dataclass(frozen=True, slots=True)
class Rate:
    """One published rate: ``value`` units of ``quote`` per 1 AUD on ``day``."""

    day: date
    value: Decimal
    source: str


class RateTable:
    """Daily AUD rates of one currency (``USD``: US dollars per 1 AUD), looked up by date."""

    def __init__(self, currency: str, rates: list[Rate], *, max_gap_days: int = 4) -> None:
        if max_gap_days < 0:
            raise ValidationError("max_gap_days", max_gap_days, "must not be negative")
        self.currency = currency
        self.max_gap_days = max_gap_days
        self.rates = sorted(rates, key=lambda r: r.day)
        self._days = [r.day for r in self.rates]
        self._cache: dict[date, Rate | None] = {}

    def __len__(self) -> int:
        return len(self.rates)

    @property
    def first_day(self) -> date | None:
        return self._days[0] if self._days else None

    @property
    def last_day(self) -> date | None:
        return self._days[-1] if self._days else None

    def rate_for(self, day: date) -> Rate | None:
        """The rate published on ``day``, else the last one before it within
        ``max_gap_days``; ``None`` when there is none (the caller flags it)."""
        try:
            return self._cache[day]
        except KeyError:
            pass
        i = bisect.bisect_right(self._days, day)
        found: Rate | None = None
        if i:
            r = self.rates[i - 1]
            if (day - r.day).days <= self.max_gap_days:
                found = r
        self._cache[day] = found
        return found


_MONTHS = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}


def _parse_rba_day(text: str) -> date | None:
    """``03-Jan-2023`` -> date; None if ``text`` is not in that shape."""
    parts = text.strip().split("-")
    if len(parts) != 3 or parts[1] not in _MONTHS or not parts[0].isdigit() or not parts[2].isdigit():
        return None
    try:
        return date(int(parts[2]), _MONTHS[parts[1]], int(parts[0]))
    except ValueError:
        return None


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise RateFileError("rates", str(path), f"cannot read: {exc.strerror}") from None
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise RateFileError("rates", str(path), f"not a gzip file: {exc}") from None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RateFileError("rates", str(path), f"not UTF-8 text (byte {exc.start})") from None


def parse_rba_f11(text: str, *, name: str = "rates", series: str = RBA_USD_SERIES,
                  max_gap_days: int = 4) -> RateTable:
    """Read an RBA F11.1 CSV (text) into a :class:`RateTable` of ``series``.

    Every problem is a :class:`RateFileError` naming ``name``, the 1-based row and the field:
    no ``Series ID`` row, no ``series`` column, a date that is not ``dd-Mon-yyyy``, a rate that
    is not a positive number, dates out of order or repeated. Empty cells (the RBA leaves a
    cell empty on a day without a fix) are skipped, not read as zero.
    """
    rows = list(csv.reader(io.StringIO(text)))
    header_at = next((i for i, r in enumerate(rows) if r and r[0].strip() == "Series ID"), None)
    if header_at is None:
        raise RateFileError(f"{name}: row 'Series ID'", None, "missing: not an RBA statistical table")
    ids = [c.strip() for c in rows[header_at]]
    if series not in ids:
        raise RateFileError(f"{name}: row {header_at + 1}, Series ID", series, "column not found",
                            f"columns are {', '.join(c for c in ids[1:] if c)}")
    col = ids.index(series)
    currency = "USD"
    units = next((r for r in rows[:header_at] if r and r[0].strip() == "Units"), None)
    if units is not None and len(units) > col and units[col].strip():
        currency = units[col].strip()
    rates: list[Rate] = []
    last: date | None = None
    for i in range(header_at + 1, len(rows)):
        r = rows[i]
        if not r or not any(c.strip() for c in r):
            continue
        day = _parse_rba_day(r[0])
        if day is None:
            raise RateFileError(f"{name}: row {i + 1}, date", r[0], "not a date like 03-Jan-2023")
        if last is not None and day <= last:
            raise RateFileError(f"{name}: row {i + 1}, date", r[0],
                                "out of order or repeated (rows must be in date order)")
        last = day
        cell = r[col].strip() if len(r) > col else ""
        if not cell:
            continue  # no fix published that day
        try:
            value = Decimal(cell)
        except InvalidOperation:
            raise RateFileError(f"{name}: row {i + 1}, {series}", cell, "not a number") from None
        if not value.is_finite() or value <= 0:
            raise RateFileError(f"{name}: row {i + 1}, {series}", cell, "must be a positive number")
        rates.append(Rate(day, value, f"{RBA_SOURCE} {day.isoformat()}"))
    if not rates:
        raise RateFileError(f"{name}: column {series}", None, "holds no rates")
    return RateTable(currency, rates, max_gap_days=max_gap_days)


def load_rba_f11(path: Path | str, *, series: str = RBA_USD_SERIES, max_gap_days: int = 4) -> RateTable:
    """Read an RBA F11.1 CSV file (``.csv`` or ``.csv.gz``); see :func:`parse_rba_f11`."""
    p = Path(path)
    return parse_rba_f11(_read_text(p), name=str(p), series=series, max_gap_days=max_gap_days)


def write_rates_csv(table: RateTable, path: Path) -> None:
    """Store ``table`` as a plain ``date,usd_per_aud,source`` CSV, atomically (the store
    copy that ``lyra tax report`` reads by default)."""
    tmp = path.with_name(path.name + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["date", f"{table.currency.lower()}_per_aud", "source"])
        for r in table.rates:
            w.writerow([r.day.isoformat(), str(r.value), r.source])
    tmp.replace(path)


def read_rates_csv(path: Path, *, max_gap_days: int = 4) -> RateTable:
    """Read a store copy written by :func:`write_rates_csv`."""
    rows = list(csv.reader(io.StringIO(_read_text(path))))
    if not rows or len(rows[0]) != 3 or not rows[0][1].endswith("_per_aud"):
        raise RateFileError(f"{path}: row 1", rows[0] if rows else None, "not a stored rate file")
    currency = rows[0][1].split("_")[0].upper()
    out: list[Rate] = []
    for i, r in enumerate(rows[1:], start=2):
        try:
            out.append(Rate(date.fromisoformat(r[0]), Decimal(r[1]), r[2]))
        except (ValueError, IndexError, InvalidOperation):
            raise RateFileError(f"{path}: row {i}", r, "not date,rate,source") from None
    return RateTable(currency, out, max_gap_days=max_gap_days)


def stored_rates_path(home: Path) -> Path:
    """Where ``lyra tax import-rates`` keeps the AUD/USD rates under LYRA_HOME."""
    return home / "tax" / "audusd_rba.csv"


def fy_bounds(fy: int) -> tuple[date, date]:
    """Australian financial year ``fy`` as (first day, last day): ``fy_bounds(2025)`` is
    1 July 2024 .. 30 June 2025 (the year is named by the calendar year it ends in)."""
    if not 1900 < fy < 3000:
        raise ValidationError("fy", fy, "not a financial year", "e.g. 2025 for 1 Jul 2024 - 30 Jun 2025")
    return date(fy - 1, 7, 1), date(fy, 6, 30)

