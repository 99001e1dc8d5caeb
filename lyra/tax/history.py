"""The trade history: every fill with its order, strategy, session, origin (an operator's
order or the strategy's), venue, fee (currency and value in the quote currency) and the
sequence and hash of its event log entry; filters; CSV and Parquet exports.

Amounts stay exact: Decimal in memory, plain decimal text in CSV and Parquet (a Parquet
decimal column would need one scale for every instrument)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, fields
from decimal import Decimal
from operator import attrgetter
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.audit.codec import ORDER_CREATED
from lyra.store.tables import events
from lyra.store.tables import fills as fills_table
from lyra.store.tables_session import sessions as sessions_table

#: Order tag prefixes of orders a person placed (a ticket, a rebalance); the session gateway's
#: OPERATOR_TAGS, repeated here because the read side must not import the session package.
OPERATOR_TAGS = ("manual:", "rebalance:")


@dataclass(frozen=True, slots=True)
class TradeRecord:
    """One fill in the trade history."""

    ts: int  #: UTC ms
    fill_id: str
    client_order_id: str
    session_id: str
    strategy: str
    origin: str  #: ``strategy`` or ``operator``
    venue: str
    instrument_id: str
    base: str
    quote: str
    side: str
    quantity: Decimal
    price: Decimal
    fee: Decimal
    fee_currency: str
    fee_quote_value: Decimal | None  #: the fee in the quote currency (None: a third asset)
    liquidity: str
    seq: int
    log_hash: str

    @property
    def key(self) -> str:
        return f"{self.client_order_id}/{self.fill_id}"

    @property
    def notional(self) -> Decimal:
        return self.quantity * self.price


COLUMNS = [f.name for f in fields(TradeRecord)]
_INTS = frozenset({"ts", "seq"})
_DECIMALS = frozenset({"quantity", "price", "fee", "fee_quote_value"})


def fee_in_quote(fee: Decimal, fee_currency: str, base: str, quote: str, price: Decimal) -> Decimal | None:
    """The fee in the quote currency, when it was charged in the base or quote currency."""
    if fee_currency == quote or not fee:
        return fee
    if fee_currency == base:
        return fee * price
    return None


def read_history(engine: Engine, *, start_ts: int | None = None, end_ts: int | None = None,
                 venue: str | None = None, instrument: str | None = None, strategy: str | None = None,
                 session: str | None = None) -> list[TradeRecord]:
    """Fills in [start_ts, end_ts) in time then log order, filtered; each with its log hash."""
    q = (sa.select(fills_table, events.c.hash)
         .select_from(fills_table.outerjoin(events, events.c.seq == fills_table.c.seq))
         .order_by(fills_table.c.ts, fills_table.c.seq))
    c = fills_table.c
    if start_ts is not None:
        q = q.where(c.ts >= start_ts)
    if end_ts is not None:
        q = q.where(c.ts < end_ts)
    if instrument is not None:
        q = q.where(c.instrument_id == instrument)
    if venue is not None:
        q = q.where(c.instrument_id.like(f"{venue}:%"))
    if session is not None:
        q = q.where(c.session_id == session)
    with engine.connect() as conn:
        rows = conn.execute(q).all()
        strategies = {r.session_id: _strategy_of(r.config) for r in conn.execute(
            sa.select(sessions_table.c.session_id, sessions_table.c.config))}
        wanted = {r.client_order_id for r in rows}
        tags: dict[str, str] = {}
        for (payload,) in conn.execute(sa.select(events.c.payload).where(events.c.kind == ORDER_CREATED)):
            p = json.loads(payload)
            if p.get("client_order_id") in wanted:
                tags[p["client_order_id"]] = p.get("tag") or ""
    out = []
    for r in rows:
        strat = strategies.get(r.session_id, "")
        if strategy is not None and strat != strategy:
            continue
        v, _, sym = r.instrument_id.rpartition(":")
        base, _, quote = sym.partition("/")
        origin = "operator" if tags.get(r.client_order_id, "").startswith(OPERATOR_TAGS) else "strategy"
        out.append(TradeRecord(int(r.ts), r.fill_id, r.client_order_id, r.session_id, strat, origin, v,
                               r.instrument_id, base, quote, r.side, r.quantity, r.price, r.fee,
                               r.fee_currency, fee_in_quote(r.fee, r.fee_currency, base, quote, r.price),
                               r.liquidity, int(r.seq), r.hash or ""))
    return out


def _strategy_of(config: str) -> str:
    try:
        return str(json.loads(config).get("strategy", ""))
    except (ValueError, AttributeError):
        return ""


def _text(v: object) -> str:
    return "" if v is None else str(v)


def to_csv(records: Iterable[TradeRecord], path: Path) -> int:
    """Write the history as CSV (every field, decimals as text); returns the row count."""
    n = 0
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(COLUMNS)
        for r in records:
            w.writerow([_text(getattr(r, c)) for c in COLUMNS])
            n += 1
    tmp.replace(path)
    return n


def to_parquet(records: Sequence[TradeRecord], path: Path) -> int:
    """Write the history as Parquet: int64 time and seq, text for everything else (exact)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrays = {}
    for c in COLUMNS:
        values = list(map(attrgetter(c), records))
        if c in _INTS:
            arrays[c] = pa.array(values, type=pa.int64())
        elif c in _DECIMALS:
            arrays[c] = pa.array([None if v is None else str(v) for v in values], type=pa.string())
        else:
            arrays[c] = pa.array(values, type=pa.string())
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(pa.table(arrays), tmp)
    tmp.replace(path)
    return len(records)


def read_parquet(path: Path) -> list[TradeRecord]:
    """Read back a history written by :func:`to_parquet`."""
    import pyarrow.parquet as pq

    table = pq.read_table(path).to_pydict()
    n = len(table["ts"])
    dec = _DECIMALS
    out = []
    for i in range(n):
        kw = {c: table[c][i] for c in COLUMNS}
        for c in dec:
            kw[c] = None if kw[c] is None else Decimal(kw[c])
        out.append(TradeRecord(**kw))
    return out


def to_excel(records: Iterable[TradeRecord], path: Path) -> int:
    """Write the history as an Excel workbook (one sheet ``fills``); amounts are text so Excel
    keeps every digit (its numbers are binary floats)."""
    from openpyxl import Workbook

    wb = Workbook(write_only=True)
    ws = wb.create_sheet("fills")
    ws.append(COLUMNS)
    n = 0
    for r in records:
        ws.append([getattr(r, c) if c in _INTS else _text(getattr(r, c)) for c in COLUMNS])
        n += 1
    tmp = path.with_name(path.name + ".tmp")
    wb.save(tmp)
    tmp.replace(path)
    return n


def as_dicts(records: Iterable[TradeRecord]) -> list[dict[str, object]]:
    """Plain dicts (for a DataFrame or JSON)."""
    return [asdict(r) for r in records]
