"""The ATO capital gains report for one Australian financial year: the per-disposal schedule,
the acquisitions, and the figures the tax return asks for.

Net capital gain follows the ATO's method statement (Guide to capital gains tax, "Working
out your net capital gain or loss"): (1) current-year capital losses reduce the year's capital
gains, (2) then net capital losses carried forward from earlier years, oldest first, (3) then
the CGT discount applies to what is left of the discountable gains. Losses are applied to
gains that cannot be discounted first, which the guide allows and which gives the best result.

Financial year ``fy`` = 1 July (fy - 1) to 30 June fy, Australian calendar days
(``--fy 2025`` is 1 July 2024 to 30 June 2025).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from fractions import Fraction
from typing import Any

from lyra.core.errors import ValidationError
from lyra.core.values import ZERO
from lyra.tax.cgt import AcquisitionLine, DisposalLine, TaxFill, TaxInputError, process
from lyra.tax.opening import OpeningParcel
from lyra.tax.rates import fy_bounds
from lyra.tax.valuation import Valuer

#: CGT discount by entity (s 115-100 ITAA 1997): the share of a discount capital gain removed.
ENTITY_DISCOUNT: dict[str, Fraction] = {
    "individual": Fraction(1, 2),
    "trust": Fraction(1, 2),
    "super": Fraction(1, 3),  # a complying superannuation fund: 33 1/3 %
    "company": Fraction(0),
}
_ALIASES = {"complying_super_fund": "super", "smsf": "super", "superannuation": "super"}
CENT = Decimal("0.01")


def entity_kind(entity: str) -> str:
    """The canonical entity name; a :class:`~lyra.core.errors.ValidationError` if unknown."""
    e = _ALIASES.get(entity.strip().lower(), entity.strip().lower())
    if e not in ENTITY_DISCOUNT:
        raise ValidationError("entity", entity, "unknown entity type",
                              f"use one of {', '.join([*ENTITY_DISCOUNT, *_ALIASES])}")
    return e


def parse_carried_losses(items: Iterable[str]) -> list[tuple[int, Decimal]]:
    """``["2022:1500", "2023:200.50"]`` -> [(2022, 1500), (2023, 200.50)], oldest first."""
    out: list[tuple[int, Decimal]] = []
    for raw in items:
        fy_text, sep, amount = raw.partition(":")
        try:
            if not sep:
                raise ValueError
            fy, amt = int(fy_text), Decimal(amount)
        except (ValueError, ArithmeticError):
            raise ValidationError("losses_carried", raw, "not FY:AMOUNT", "e.g. 2023:1500.00") from None
        if not amt.is_finite() or amt < 0:
            raise ValidationError("losses_carried", raw, "the amount must be a non-negative number")
        out.append((fy, amt))
    return sorted(out, key=lambda t: t[0])


@dataclass
class Summary:
    """The figures of the tax return's capital gains question."""

    total_current_year_capital_gains: Decimal  #: 18H: all gains before losses and discount
    current_year_capital_losses: Decimal
    losses_applied_current_year: Decimal
    losses_applied_prior_years: Decimal
    discount_applied: Decimal
    net_capital_gain: Decimal  #: 18A
    net_capital_loss_carried_forward: Decimal  #: 18V
    carried_forward_by_year: list[tuple[int, Decimal]]  #: what is left of each earlier year's loss
    trading_profit: Decimal  #: trader only: FIFO profit at cost, ordinary income
    disposals: int
    flagged: int  #: disposals left out of the totals (missing rate, unmatched)


@dataclass
class TaxReport:
    fy: int
    entity: str
    trader: bool
    method: str
    start: date
    end: date
    disposals: list[DisposalLine]
    acquisitions: list[AcquisitionLine]
    summary: Summary
    conventions: dict[str, str] = field(default_factory=dict)

    @property
    def flagged(self) -> list[DisposalLine]:
        return [d for d in self.disposals if d.flags]


def build_report(fills: Iterable[TaxFill], valuer: Valuer, *, fy: int, entity: str = "individual",
                 trader: bool = False, losses_carried: Sequence[tuple[int, Decimal]] = (),
                 lots: Mapping[str, Sequence[str]] | None = None,
                 personal_use: Iterable[str] = (), allow_unmatched: bool = False,
                 opening: Sequence[OpeningParcel] = ()) -> TaxReport:
    """The report for financial year ``fy`` (see the module docstring for the rules);
    ``opening``: parcels held before the ledger starts (:mod:`lyra.tax.opening`)."""
    kind = entity_kind(entity)
    start, end = fy_bounds(fy)
    for year, _ in losses_carried:
        if year >= fy:
            raise ValidationError("losses_carried", year, f"must be from a year before {fy}")
    share = ENTITY_DISCOUNT[kind]
    books = process(fills, valuer, start=start, end=end, discount=bool(share) and not trader,
                    lots=lots, personal_use=frozenset(personal_use), allow_unmatched=allow_unmatched,
                    opening=opening)
    if not books.disposals and not books.acquisitions:
        raise TaxInputError("fy", fy, f"no fills between {start} and {end} (Australian days)")
    summary = summarise(books.disposals, share=share, trader=trader, losses_carried=losses_carried)
    return TaxReport(fy, kind, trader, "specific identification + FIFO" if lots else "FIFO", start, end,
                     books.disposals, books.acquisitions, summary, conventions=_conventions(valuer))


def summarise(disposals: Sequence[DisposalLine], *, share: Fraction, trader: bool = False,
              losses_carried: Sequence[tuple[int, Decimal]] = ()) -> Summary:
    """Net capital gain / loss from the disposals (flagged ones left out)."""
    nd = d = losses = ZERO
    flagged = 0
    for line in disposals:
        if line.flags:
            flagged += 1
            continue
        for p in line.pieces:
            if p.exempt or p.gain is None:
                continue
            if p.gain < 0:
                losses -= p.gain
            elif p.discountable:
                d += p.gain
            else:
                nd += p.gain
    years = [y for y, _ in losses_carried]
    left = [a for _, a in losses_carried]
    if trader:
        return Summary(ZERO, ZERO, ZERO, ZERO, ZERO, ZERO, sum(left, ZERO),
                       list(zip(years, left, strict=True)), nd + d - losses, len(disposals), flagged)
    total = nd + d
    # (1) current-year losses, non-discountable gains first
    used_now = min(losses, total)
    nd, d = _reduce(nd, d, used_now)
    # (2) carried-forward losses, oldest first
    used_prior = ZERO
    for i, amount in enumerate(left):
        take = min(amount, nd + d)
        nd, d = _reduce(nd, d, take)
        left[i] = amount - take
        used_prior += take
    # (3) the discount on what is left of the discountable gains
    disc = d * Decimal(share.numerator) / Decimal(share.denominator) if share else ZERO
    net_gain = nd + d - disc
    left_prior = list(zip(years, left, strict=True))
    carried = (losses - used_now) + sum(left, ZERO)
    return Summary(total, losses, used_now, used_prior, disc, net_gain, carried, left_prior, ZERO,
                   len(disposals), flagged)


def _reduce(nd: Decimal, d: Decimal, loss: Decimal) -> tuple[Decimal, Decimal]:
    a = min(nd, loss)
    return nd - a, d - (loss - a)


def _conventions(valuer: Valuer) -> dict[str, str]:
    return {
        "financial_year": "1 July to 30 June; --fy N is the year ending 30 June N",
        "days": f"calendar days in {valuer.tz.key}",
        "parcels": "FIFO unless lots are named (specific identification)",
        "twelve_months": "acquired at least 12 months before the CGT event, excluding the day of "
                         "acquisition and the day of the event",
        "loss_order": "current-year losses, then carried-forward losses oldest first, "
                      "non-discountable gains first; then the discount",
        "fees": "in the cost base of what was acquired, or a cost of the disposal; a fee in crypto "
                "is also a disposal",
        "rates": "RBA F11.1 (USD per AUD); a day without a rate uses the last earlier one within "
                 "a few days, otherwise the line is flagged, never guessed",
    }


# ------------------------------------------------------------------------------- output
SCHEDULE_COLUMNS = ["event_id", "kind", "asset", "quantity", "acquired", "disposed", "parcels",
                    "cost_base_aud", "costs_aud", "proceeds_aud", "gain_aud", "discount",
                    "discountable_gain_aud", "exempt", "valuation_source", "session_id", "log_seq",
                    "log_hash", "flags"]


def _s(v: Decimal | None) -> str:
    return "" if v is None else str(v.quantize(CENT))


def schedule_rows(report: TaxReport) -> list[dict[str, str]]:
    """One row per disposal (CGT event), amounts in AUD rounded to cents for display."""
    rows = []
    for line in report.disposals:
        acq = sorted({p.acq_day for p in line.pieces})
        dg = sum((p.gain for p in line.pieces if p.discountable and p.gain is not None), ZERO)
        rows.append({
            "event_id": line.event_id, "kind": line.kind, "asset": line.asset,
            "quantity": str(line.quantity),
            "acquired": ";".join(d.isoformat() for d in acq), "disposed": line.day.isoformat(),
            "parcels": ";".join(f"{p.lot}:{p.quantity}@{p.acq_day.isoformat()}" for p in line.pieces),
            "cost_base_aud": _s(line.cost_base), "costs_aud": _s(line.costs),
            "proceeds_aud": _s(line.proceeds), "gain_aud": _s(line.gain), "discount": line.discount,
            "discountable_gain_aud": _s(dg),
            "exempt": ";".join(sorted({p.exempt for p in line.pieces if p.exempt})),
            "valuation_source": line.source, "session_id": line.fill.session_id,
            "log_seq": str(line.fill.seq), "log_hash": line.fill.log_hash, "flags": ";".join(line.flags),
        })
    return rows


def summary_dict(report: TaxReport) -> dict[str, Any]:
    s = report.summary
    return {
        "fy": report.fy, "period": [report.start.isoformat(), report.end.isoformat()],
        "entity": report.entity, "trader": report.trader, "method": report.method,
        "total_current_year_capital_gains": str(s.total_current_year_capital_gains.quantize(CENT)),
        "current_year_capital_losses": str(s.current_year_capital_losses.quantize(CENT)),
        "losses_applied_current_year": str(s.losses_applied_current_year.quantize(CENT)),
        "losses_applied_prior_years": str(s.losses_applied_prior_years.quantize(CENT)),
        "cgt_discount_applied": str(s.discount_applied.quantize(CENT)),
        "net_capital_gain": str(s.net_capital_gain.quantize(CENT)),
        "net_capital_loss_carried_forward": str(s.net_capital_loss_carried_forward.quantize(CENT)),
        "carried_forward_by_year": {str(y): str(a.quantize(CENT)) for y, a in s.carried_forward_by_year},
        "trading_profit": str(s.trading_profit.quantize(CENT)),
        "disposals": s.disposals, "acquisitions": len(report.acquisitions), "flagged": s.flagged,
        "conventions": report.conventions,
    }


def to_csv(report: TaxReport) -> str:
    """The schedule as CSV, then a blank line and the summary as ``field,value`` rows."""
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=SCHEDULE_COLUMNS, lineterminator="\n")
    w.writeheader()
    w.writerows(schedule_rows(report))
    buf.write("\n")
    sw = csv.writer(buf, lineterminator="\n")
    for k, v in summary_dict(report).items():
        if k != "conventions":
            sw.writerow([k, json.dumps(v) if isinstance(v, dict | list) else v])
    return buf.getvalue()


def to_json(report: TaxReport) -> str:
    """Summary, schedule and acquisitions as one JSON document."""
    acq = [{"fill": a.fill.key, "asset": a.asset, "quantity": str(a.quantity), "acquired": a.day.isoformat(),
            "cost_base_aud": _s(a.cost_base), "valuation_source": a.source, "log_seq": a.fill.seq,
            "log_hash": a.fill.log_hash, "flags": a.flags} for a in report.acquisitions]
    return json.dumps({"summary": summary_dict(report), "disposals": schedule_rows(report),
                       "acquisitions": acq}, indent=1)
