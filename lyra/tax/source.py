"""What the tax report reads: fills from the ledger's projection with the hash of each fill's
event log entry, and AUD-valuing prices from the market store."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.feeds.store import MarketStore
from lyra.store.tables import events, fills
from lyra.tax.cgt import TaxFill
from lyra.tax.valuation import FIAT, PriceSeries


def read_fills(engine: Engine, *, sessions: Iterable[str] | None = None,
               until_ts: int | None = None, batch: int = 50_000) -> Iterator[TaxFill]:
    """Every fill in time order (then log order), with its log entry's sequence and hash."""
    c = fills.c
    # Decimal columns are read as text and converted here: SQLAlchemy's per-value type
    # processing cost more than the rest of the report at a million fills.
    text = [sa.type_coerce(col, sa.String) for col in (c.quantity, c.price, c.fee)]
    q = (sa.select(c.fill_id, c.client_order_id, c.session_id, c.instrument_id, c.side, *text,
                   c.fee_currency, c.ts, c.seq, events.c.hash)
         .select_from(fills.outerjoin(events, events.c.seq == c.seq))
         .order_by(c.ts, c.seq))
    wanted = list(sessions) if sessions is not None else None
    if wanted is not None:
        q = q.where(c.session_id.in_(wanted))
    if until_ts is not None:
        q = q.where(c.ts <= until_ts)
    with engine.connect() as conn:
        result = conn.execution_options(yield_per=batch).execute(q)
        for fid, cid, sid, iid, side, qty, px, fee, fee_ccy, ts, seq, h in result:
            yield TaxFill(f"{cid}/{fid}", ts, iid, side, Decimal(qty), Decimal(px), Decimal(fee), fee_ccy,
                          sid, seq, h or "")


def market_prices(store: MarketStore, assets: Iterable[str], *,
                  timeframes: tuple[str, ...] = ("1d", "1h")) -> dict[str, list[PriceSeries]]:
    """Price series to value ``assets`` in AUD: stored bars of ``ASSET/AUD`` first, then
    ``ASSET/USD`` (converted with the AUD/USD rate). A bar's close is the price from its close
    time on (open time + timeframe), so no price is used before it existed."""
    from lyra.core.timeutil import timeframe_to_ms

    wanted = {a for a in assets if a not in FIAT}
    out: dict[str, list[PriceSeries]] = {}
    keys = store.datasets()
    for quote in ("AUD", "USD"):
        for key in sorted(keys, key=lambda k: (k.exchange, k.symbol, timeframes.index(k.timeframe)
                                               if k.timeframe in timeframes else 99)):
            # the store spells BTC/USD as BTC-USD (a path-safe name)
            base, _, q = key.symbol.replace("-", "/").partition("/")
            if q != quote or base not in wanted or key.timeframe not in timeframes:
                continue
            bars = store.read_bars_arrays(key.exchange, key.symbol, key.timeframe)
            step = timeframe_to_ms(key.timeframe)
            closes = [Decimal(repr(float(c))) for c in bars.close]
            out.setdefault(base, []).append(PriceSeries(
                f"{key.exchange}:{base}/{q} {key.timeframe} close", quote,
                [int(t) + step for t in bars.ts], closes))
    return out
