"""Opening balances: parcels acquired before the ledger starts (bought elsewhere, carried
in), declared in a CSV so the report's FIFO can use them::

    asset,quantity,acquired,cost_base_aud,lot
    BTC,0.5,2022-03-14,21000.00,ledger-2022-btc
    ETH,4,2023-01-02,6100.50,

- ``asset``: the crypto asset (not a fiat currency: money has no parcels).
- ``quantity``: units still held, a positive decimal.
- ``acquired``: the Australian calendar day of acquisition, ``YYYY-MM-DD`` (the 12-month
  discount rule counts from it).
- ``cost_base_aud``: the parcel's whole cost base in AUD (what was paid plus incidental
  costs), a non-negative decimal.
- ``lot`` (optional): the name specific identification and the schedule use; by default
  ``opening:ROW`` (the file's line number, the header being line 1).

Parcels are used before any fill of the same asset, oldest acquisition first. Every problem
is reported with its row and field, and the report is not built.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from pathlib import Path

from lyra.tax.cgt import TaxInputError
from lyra.tax.valuation import FIAT

REQUIRED = ("asset", "quantity", "acquired", "cost_base_aud")


@dataclass(frozen=True, slots=True)
class OpeningParcel:
    """A parcel held when the ledger starts."""

    lot: str
    asset: str
    quantity: Decimal
    acquired: date
    cost_base: Decimal
    row: int  #: the CSV row it came from (1 = header)


def _decimal(text: str, where: str, *, positive: bool) -> Decimal:
    try:
        v = Decimal(text.strip().replace(",", ""))
    except (InvalidOperation, ValueError):
        raise TaxInputError(where, text, "not a decimal number") from None
    if not v.is_finite() or v < 0 or (positive and v == 0):
        raise TaxInputError(where, text, "must be a positive number" if positive else "must not be negative")
    return v


def parse_opening(text: str, *, name: str = "opening") -> list[OpeningParcel]:
    """Parcels from the CSV ``text`` (see the module docstring); a TaxInputError naming the
    file, row and field of the first problem."""
    reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
    header = [h.strip() for h in reader.fieldnames or []]
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise TaxInputError(f"{name}: header", ",".join(header) or "(empty file)",
                            f"missing column(s) {', '.join(missing)}", f"columns: {','.join(REQUIRED)},lot")
    out: list[OpeningParcel] = []
    lots: dict[str, int] = {}
    for raw in reader:
        i = reader.line_num  # the file's line (blank lines count: what an editor shows)
        row = {(k or "").strip(): (v or "").strip() for k, v in raw.items() if isinstance(v, str)}
        if not any(row.values()):
            continue  # a blank line
        at = f"{name}: row {i}"
        asset = row.get("asset", "").upper()
        if not asset or not asset.replace(".", "").replace("-", "").isalnum():
            raise TaxInputError(f"{at}, asset", row.get("asset", ""), "not an asset symbol")
        if asset in FIAT:
            raise TaxInputError(f"{at}, asset", asset, "is money, not a CGT asset: leave it out")
        qty = _decimal(row.get("quantity", ""), f"{at}, quantity", positive=True)
        try:
            acquired = date.fromisoformat(row.get("acquired", ""))
        except ValueError:
            raise TaxInputError(f"{at}, acquired", row.get("acquired", ""), "not a date",
                                "use YYYY-MM-DD") from None
        cost = _decimal(row.get("cost_base_aud", ""), f"{at}, cost_base_aud", positive=False)
        lot = row.get("lot") or f"opening:{i}"
        if lot in lots:
            raise TaxInputError(f"{at}, lot", lot, f"already used on row {lots[lot]}")
        lots[lot] = i
        out.append(OpeningParcel(lot, asset, qty, acquired, cost, i))
    # FIFO takes the oldest parcel first; rows with the same day keep the file's order.
    return sorted(out, key=lambda p: p.acquired)


def read_opening(path: Path) -> list[OpeningParcel]:
    """:func:`parse_opening` of a file."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TaxInputError("opening", str(path), f"cannot be read: {exc}") from None
    return parse_opening(text, name=path.name)
