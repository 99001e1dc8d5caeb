"""The trade history in the import layouts of crypto tax tools, and parsers for them.

Layouts (as the tools document their manual import templates):

- **Koinly universal CSV**: ``Date, Sent Amount, Sent Currency, Received Amount, Received
  Currency, Fee Amount, Fee Currency, Net Worth Amount, Net Worth Currency, Label,
  Description, TxHash``; a trade has both a sent and a received side; dates in UTC.
- **CoinTracking CSV import**: ``Type, Buy Amount, Buy Currency, Sell Amount, Sell Currency,
  Fee, Fee Currency, Exchange, Trade-Group, Comment, Date, Tx-ID``; ``Type`` is ``Trade``.
- **CryptoTaxCalculator advanced CSV**: ``Timestamp (UTC), Type, Base Currency, Base Amount,
  Quote Currency (Optional), Quote Amount (Optional), Fee Currency (Optional), Fee Amount
  (Optional), From (Optional), To (Optional), Blockchain (Optional), ID (Optional),
  Description (Optional), Reference Price Per Unit (Optional), Reference Price Currency
  (Optional)``; ``Type`` is ``buy`` or ``sell``; amounts exclude the fee.

Each export is lossless for a spot fill: time (to the millisecond, ``.fff`` when not whole
seconds), side, both amounts, fee and its currency, and the fill's key as the transaction id;
:func:`parse` reads any of them back into :class:`ParsedTrade` rows.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from lyra.core.errors import ValidationError
from lyra.tax.history import TradeRecord

KOINLY = ["Date", "Sent Amount", "Sent Currency", "Received Amount", "Received Currency", "Fee Amount",
          "Fee Currency", "Net Worth Amount", "Net Worth Currency", "Label", "Description", "TxHash"]
COINTRACKING = ["Type", "Buy Amount", "Buy Currency", "Sell Amount", "Sell Currency", "Fee", "Fee Currency",
                "Exchange", "Trade-Group", "Comment", "Date", "Tx-ID"]
CTC = ["Timestamp (UTC)", "Type", "Base Currency", "Base Amount", "Quote Currency (Optional)",
       "Quote Amount (Optional)", "Fee Currency (Optional)", "Fee Amount (Optional)", "From (Optional)",
       "To (Optional)", "Blockchain (Optional)", "ID (Optional)", "Description (Optional)",
       "Reference Price Per Unit (Optional)", "Reference Price Currency (Optional)"]
FORMATS = {"koinly": KOINLY, "cointracking": COINTRACKING, "ctc": CTC}


@dataclass(frozen=True, slots=True)
class ParsedTrade:
    """A spot trade read from a tax tool's layout."""

    ts: int
    side: str
    base: str
    quote: str
    base_amount: Decimal
    quote_amount: Decimal
    fee: Decimal
    fee_currency: str
    ref: str


def as_parsed(r: TradeRecord) -> ParsedTrade:
    """What an export of ``r`` must read back as."""
    return ParsedTrade(r.ts, r.side, r.base, r.quote, r.quantity, r.notional, r.fee,
                       r.fee_currency if r.fee else "", r.key)


def _time(ts: int) -> str:
    s = datetime.fromtimestamp(ts // 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
    return s if ts % 1000 == 0 else f"{s}.{ts % 1000:03d}"


def _ts(text: str, where: str) -> int:
    raw = text.strip().removesuffix(" UTC")
    try:
        dt = datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError:
        raise ValidationError(where, text, "not a time like 2024-07-01 12:00:00") from None
    return int(dt.timestamp()) * 1000 + dt.microsecond // 1000


def _num(text: str, where: str) -> Decimal:
    if not text.strip():
        return Decimal(0)
    try:
        d = Decimal(text.strip())
    except InvalidOperation:
        raise ValidationError(where, text, "not a number") from None
    if not d.is_finite() or d < 0:
        raise ValidationError(where, text, "must be a non-negative number")
    return d


def _rows(r: TradeRecord, fmt: str) -> list[str]:
    q, n = str(r.quantity), str(r.notional)
    fee, fee_ccy = (str(r.fee), r.fee_currency) if r.fee else ("", "")
    buy = r.side == "buy"
    if fmt == "koinly":
        sent, recv = ((n, r.quote), (q, r.base)) if buy else ((q, r.base), (n, r.quote))
        return [_time(r.ts) + " UTC", sent[0], sent[1], recv[0], recv[1], fee, fee_ccy,
                "", "", "", f"{r.instrument_id} {r.side} {q} @ {r.price}", r.key]
    if fmt == "cointracking":
        got, gave = ((q, r.base), (n, r.quote)) if buy else ((n, r.quote), (q, r.base))
        return ["Trade", got[0], got[1], gave[0], gave[1], fee, fee_ccy, r.venue, r.session_id,
                f"{r.instrument_id} {r.origin}", _time(r.ts), r.key]
    return [_time(r.ts), r.side, r.base, q, r.quote, n, fee_ccy, fee, r.venue, r.venue,
            "", r.key, f"{r.instrument_id} {r.origin}", "", ""]


def export(records: Iterable[TradeRecord], fmt: str) -> str:
    """The records in ``fmt`` (``koinly``, ``cointracking`` or ``ctc``) as CSV text."""
    if fmt not in FORMATS:
        raise ValidationError("format", fmt, "unknown export format", f"use one of {', '.join(FORMATS)}")
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(FORMATS[fmt])
    for r in records:
        w.writerow(_rows(r, fmt))
    return buf.getvalue()


def parse(text: str, fmt: str) -> list[ParsedTrade]:
    """Read an export in ``fmt`` back; errors name the row and the column."""
    if fmt not in FORMATS:
        raise ValidationError("format", fmt, "unknown export format", f"use one of {', '.join(FORMATS)}")
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames != FORMATS[fmt]:
        raise ValidationError(f"{fmt}: header", reader.fieldnames, "not the documented columns")
    out = []
    for i, row in enumerate(reader, start=2):
        def at(col: str, i: int = i) -> str:
            return f"{fmt}: row {i}, {col}"
        if fmt == "koinly":
            sent, sent_c = _num(row["Sent Amount"], at("Sent Amount")), row["Sent Currency"]
            recv, recv_c = _num(row["Received Amount"], at("Received Amount")), row["Received Currency"]
            # Which side is the base: the description names the instrument; the currency that
            # is the instrument's base was bought (received) or sold (sent).
            inst = row["Description"].split(" ")[0].rpartition(":")[2]
            base = inst.partition("/")[0] if "/" in inst else recv_c  # no instrument: a purchase
            side = "buy" if recv_c == base else "sell"
            b, ba, qc, qa = (recv_c, recv, sent_c, sent) if side == "buy" else (sent_c, sent, recv_c, recv)
            fee = _num(row["Fee Amount"], at("Fee Amount"))
            t = _ts(row["Date"], at("Date"))
            out.append(ParsedTrade(t, side, b, qc, ba, qa, fee, row["Fee Currency"], row["TxHash"]))
        elif fmt == "cointracking":
            if row["Type"] != "Trade":
                raise ValidationError(at("Type"), row["Type"], "only Trade rows are spot fills")
            inst = row["Comment"].split(" ")[0].rpartition(":")[2]
            base = inst.partition("/")[0] if "/" in inst else row["Buy Currency"]
            got, got_c = _num(row["Buy Amount"], at("Buy Amount")), row["Buy Currency"]
            gave, gave_c = _num(row["Sell Amount"], at("Sell Amount")), row["Sell Currency"]
            side = "buy" if got_c == base else "sell"
            b, ba, qc, qa = (got_c, got, gave_c, gave) if side == "buy" else (gave_c, gave, got_c, got)
            out.append(ParsedTrade(_ts(row["Date"], at("Date")), side, b, qc, ba, qa,
                                   _num(row["Fee"], at("Fee")), row["Fee Currency"], row["Tx-ID"]))
        else:
            side = row["Type"]
            if side not in ("buy", "sell"):
                raise ValidationError(at("Type"), side, "only buy and sell rows are spot fills")
            t = _ts(row["Timestamp (UTC)"], at("Timestamp (UTC)"))
            out.append(ParsedTrade(t, side, row["Base Currency"], row["Quote Currency (Optional)"],
                                   _num(row["Base Amount"], at("Base Amount")),
                                   _num(row["Quote Amount (Optional)"], at("Quote Amount (Optional)")),
                                   _num(row["Fee Amount (Optional)"], at("Fee Amount (Optional)")),
                                   row["Fee Currency (Optional)"], row["ID (Optional)"]))
    return out
