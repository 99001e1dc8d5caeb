"""Balances from ccxt's balance structure, strictly (see :func:`balances_from_ccxt`).

ccxt fills in whichever of free/used/total a venue leaves out; Lyra keeps free and locked
(ccxt's ``used``) and checks the three agree. A margin loan (ccxt's ``debt``) cannot be shown
by a :class:`~lyra.execution.broker.Balance`, so it is refused unless asked for.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from lyra.core.values import ZERO
from lyra.execution.broker import Balance
from lyra.execution.venue_shapes import UnknownVenueShape, parse_optional_decimal

#: keys of a ccxt balance structure that are not assets
_BALANCE_AGGREGATES = frozenset({"info", "timestamp", "datetime", "free", "used", "total", "debt"})


def _balance_rows(ccxt_balance: Any, venue: str) -> list[tuple[str, Mapping[str, Any]]]:
    if not isinstance(ccxt_balance, Mapping):
        raise UnknownVenueShape(venue, "balance: expected a ccxt balance structure (a dict)", ccxt_balance)
    rows = []
    for asset, row in ccxt_balance.items():
        if asset in _BALANCE_AGGREGATES:
            continue
        if not isinstance(row, Mapping):
            raise UnknownVenueShape(venue, f"balance {asset}: expected free/used/total, got {row!r}",
                                    ccxt_balance)
        rows.append((str(asset), row))
    return rows


def debts_from_ccxt(ccxt_balance: Mapping[str, Any], venue: str) -> dict[str, Decimal]:
    """What the account owes per asset (ccxt's ``debt``: margin loans and their interest);
    assets without debt are left out."""
    out: dict[str, Decimal] = {}
    for asset, row in _balance_rows(ccxt_balance, venue):
        try:
            debt = parse_optional_decimal(row.get("debt"), "debt", f"{venue} balance {asset}")
        except ValueError as exc:
            raise UnknownVenueShape(venue, str(exc), ccxt_balance) from None
        if debt:
            out[asset] = debt
    return out


def balances_from_ccxt(
    ccxt_balance: Mapping[str, Any], venue: str, *, ignore_debt: bool = False
) -> dict[str, Balance]:
    """Balances per asset from a ccxt balance structure: ``free`` stays free, ``used`` becomes
    ``locked``.

    Each asset needs two of free/used/total; when all three are there, free + used must equal
    total (exactly for strings and Decimals; within float rounding when ccxt handed floats).
    Negative free or used is refused. An asset with debt (a margin loan) raises unless
    ``ignore_debt``: a :class:`Balance` cannot show what is owed (:func:`debts_from_ccxt` can).
    Raises :class:`UnknownVenueShape` otherwise."""
    out: dict[str, Balance] = {}
    debts = {} if ignore_debt else debts_from_ccxt(ccxt_balance, venue)
    if debts:
        raise UnknownVenueShape(
            venue, f"balance: debt {', '.join(f'{a} {d}' for a, d in debts.items())} "
                   "(a Balance cannot show a loan; use debts_from_ccxt, or ignore_debt=True)",
            ccxt_balance)
    for asset, row in _balance_rows(ccxt_balance, venue):
        where = f"{venue} balance {asset}"
        try:
            free = parse_optional_decimal(row.get("free"), "free", where)
            used = parse_optional_decimal(row.get("used"), "used", where)
            total = parse_optional_decimal(row.get("total"), "total", where)
        except ValueError as exc:
            raise UnknownVenueShape(venue, str(exc), ccxt_balance) from None
        if free is None and used is not None and total is not None:
            free = total - used
        elif used is None and free is not None and total is not None:
            used = total - free
        if free is None or used is None:
            raise UnknownVenueShape(
                venue, f"{where}: free={row.get('free')!r} used={row.get('used')!r} "
                       f"total={row.get('total')!r}: need two of the three", ccxt_balance)
        if free < 0 or used < 0:
            raise UnknownVenueShape(venue, f"{where}: negative free {free} or used {used}", ccxt_balance)
        if total is not None and free + used != total:
            floats = [v for k in ("free", "used", "total") if isinstance(v := row.get(k), float)]
            slack = Decimal(4 * max(math.ulp(abs(v)) for v in floats)) if floats else ZERO
            if abs(free + used - total) > slack:
                raise UnknownVenueShape(venue, f"{where}: free {free} + used {used} != total {total}",
                                        ccxt_balance)
        out[asset] = Balance(asset, free, used)
    return out
