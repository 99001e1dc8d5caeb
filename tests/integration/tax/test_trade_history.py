"""The trade history read from a real ledger (SQLite and PostgreSQL): origin, strategy, venue,
fees in any currency, log hashes, filters; CSV / Parquet exports and the Koinly, CoinTracking
and CryptoTaxCalculator layouts read back by their parsers."""

from __future__ import annotations

import csv
import io
import json
from decimal import Decimal as D
from pathlib import Path

import openpyxl
import pytest
import sqlalchemy as sa

from lyra.audit import EventLog, Ledger
from lyra.core import Fill, Liquidity, Order, OrderEvent, OrderEventType, OrderIntent, Side
from lyra.core.errors import ValidationError
from lyra.store.tables import events
from lyra.store.tables_session import sessions
from lyra.tax import exports
from lyra.tax.history import COLUMNS, read_history, read_parquet, to_csv, to_excel, to_parquet
from lyra.testing.ledger import fixture_pen

E = OrderEventType
PEN = fixture_pen()

#: (session, client order id, tag, instrument, side, qty, price, fee, fee currency, ts)
ORDERS = [
    ("s1", "s1-00000001", "", "binance:BTC/USDT", Side.BUY, "0.5", "20000.5", "0.0005", "BTC", 1_700_000_000_000),
    ("s1", "s1-00000002", "manual:alice", "binance:ETH/BTC", Side.BUY, "2", "0.05", "0.01", "BNB",
     1_700_000_060_123),
    ("s2", "s2-00000001", "", "coinbase:BTC/USD", Side.SELL, "0.25", "21000", "31.5", "USD", 1_700_000_120_000),
    ("s2", "s2-00000002", "rebalance:r1", "coinbase:BTC/USD", Side.BUY, "0.1", "20500", "0", "USD",
     1_700_000_180_000),
]


@pytest.fixture
def ledger_engine(engine):
    ledger = Ledger(EventLog(engine))
    for sid, cid, tag, inst, side, qty, px, fee, fee_ccy, ts in ORDERS:
        order = Order(cid, OrderIntent(inst, side, D(qty), tag=tag), created_ts=ts)
        with ledger.transaction() as tx:
            tx.create_order(sid, order, pen=PEN)
            tx.order_event(sid, cid, OrderEvent(E.SUBMIT, ts), pen=PEN)
            tx.order_event(sid, cid, OrderEvent(E.ACCEPT, ts), pen=PEN)
            f = Fill(f"{cid}-f1", cid, inst, side, D(qty), D(px), D(fee), fee_ccy, Liquidity.TAKER, ts)
            tx.order_event(sid, cid, OrderEvent(E.FILL, ts, fill=f), pen=PEN)
    with engine.begin() as c:
        for sid, strat in (("s1", "sma_cross"), ("s2", "bollinger")):
            c.execute(sessions.insert().values(session_id=sid, mode="paper", config=json.dumps({"strategy": strat}),
                                               status="finished", created_ts=0, heartbeat_ts=0))
    return engine


def test_history_has_every_fill_with_its_context(ledger_engine) -> None:
    h = read_history(ledger_engine)
    assert [r.client_order_id for r in h] == [o[1] for o in ORDERS]
    assert [r.origin for r in h] == ["strategy", "operator", "strategy", "operator"]
    assert [r.strategy for r in h] == ["sma_cross", "sma_cross", "bollinger", "bollinger"]
    assert [r.venue for r in h] == ["binance", "binance", "coinbase", "coinbase"]
    # Fee value in the quote currency: base fee x price; quote fee as is; a third asset: unknown.
    assert [r.fee_quote_value for r in h] == [D("0.0005") * D("20000.5"), None, D("31.5"), D(0)]
    with ledger_engine.connect() as c:
        hashes = dict(c.execute(sa.select(events.c.seq, events.c.hash)).all())
        kinds = dict(c.execute(sa.select(events.c.seq, events.c.kind)).all())
    assert all(r.log_hash == hashes[r.seq] and kinds[r.seq].endswith("fill") for r in h)
    # Filters
    assert [r.session_id for r in read_history(ledger_engine, venue="coinbase")] == ["s2", "s2"]
    assert len(read_history(ledger_engine, instrument="binance:ETH/BTC")) == 1
    assert [r.strategy for r in read_history(ledger_engine, strategy="bollinger")] == ["bollinger"] * 2
    assert len(read_history(ledger_engine, session="s1")) == 2
    assert [r.ts for r in read_history(ledger_engine, start_ts=1_700_000_060_123, end_ts=1_700_000_180_000)] \
        == [1_700_000_060_123, 1_700_000_120_000]


def test_csv_and_parquet_exports_are_exact(ledger_engine, tmp_path: Path) -> None:
    h = read_history(ledger_engine)
    assert to_csv(h, tmp_path / "h.csv") == 4
    with (tmp_path / "h.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == COLUMNS
    assert [(D(r["quantity"]), D(r["price"]), r["log_hash"]) for r in rows] == \
        [(r.quantity, r.price, r.log_hash) for r in h]
    assert to_parquet(h, tmp_path / "h.parquet") == 4
    assert read_parquet(tmp_path / "h.parquet") == h
    assert to_excel(h, tmp_path / "h.xlsx") == 4
    wb = openpyxl.load_workbook(tmp_path / "h.xlsx", read_only=True)
    try:
        sheet = list(wb["fills"].iter_rows(values_only=True))
    finally:
        wb.close()
    assert list(sheet[0]) == COLUMNS
    assert [(r[0], D(r[11]), r[-1]) for r in sheet[1:]] == [(r.ts, r.quantity, r.log_hash) for r in h]


@pytest.mark.parametrize("fmt", ["koinly", "cointracking", "ctc"])
def test_tax_tool_layouts_round_trip(ledger_engine, fmt: str) -> None:
    h = read_history(ledger_engine)
    text = exports.export(h, fmt)
    assert next(csv.reader(io.StringIO(text))) == exports.FORMATS[fmt]
    back = exports.parse(text, fmt)
    assert back == [exports.as_parsed(r) for r in h]
    # the millisecond survives (the ETH/BTC fill is at .123 s)
    assert back[1].ts == 1_700_000_060_123 and back[1].fee_currency == "BNB"


def test_parsers_refuse_bad_rows_naming_row_and_column(ledger_engine) -> None:
    text = exports.export(read_history(ledger_engine), "ctc")
    bad = text.replace("0.5,USDT", "half,USDT", 1)
    with pytest.raises(ValidationError, match="ctc: row 2, Base Amount.*'half'"):
        exports.parse(bad, "ctc")
    with pytest.raises(ValidationError, match="header"):
        exports.parse("a,b\n1,2\n", "koinly")
    with pytest.raises(ValidationError, match="format='xls'"):
        exports.export([], "xls")
