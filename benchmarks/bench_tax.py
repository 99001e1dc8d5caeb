"""Tax report and trade-history export at 1,000,000 fills.

1. The ATO capital gains report (parcels FIFO, AUD valuation of every fill through an RBA
   rate table, per-disposal schedule and summary) for 1,000,000 BTC/USD fills in one
   financial year (FY2025), from fills in memory. Target: <= 10 s. Reference in the same run:
   the portfolio's plain FIFO lot book (lyra.portfolio.lots.LotBook) over the same fills,
   no valuation, no schedule.
2. The trade history of 1,000,000 fills written to Parquet (exact decimals as text). Target:
   <= 5 s. Reference in the same run: the same records written as CSV.

The fills are generated (alternate buys and sells of 0.01 BTC every 30 s from 1 July 2024,
prices on a deterministic walk); the AUD/USD table has a rate on every weekday.

Run: .venv/bin/python benchmarks/bench_tax.py [--fills 1000000]
"""

from __future__ import annotations

import argparse
import gc
import os
import tempfile
import time
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from lyra.core import Fill, Liquidity, Side
from lyra.portfolio.lots import LotBook
from lyra.tax import TaxFill, Valuer, build_report
from lyra.tax.history import TradeRecord, to_csv, to_parquet
from lyra.tax.rates import Rate, RateTable

START_MS = 1_719_756_000_000  # 2024-06-30T14:00Z = 1 July 2024 00:00 in Sydney


def make_fills(n: int) -> list[TaxFill]:
    out = []
    q = Decimal("0.01")
    for i in range(n):
        price = Decimal(60_000 + (i * 37) % 5_000) + Decimal(i % 100) / 100
        side = "buy" if i % 2 == 0 else "sell"
        fee = (q * price * Decimal("0.001")).quantize(Decimal("0.01"))
        out.append(TaxFill(f"o{i}/f{i}", START_MS + i * 30_000, "coinbase:BTC/USD", side, q, price, fee, "USD",
                           "bench", i + 1, f"{i:064x}"))
    return out


def rate_table() -> RateTable:
    rates = []
    d = date(2024, 6, 1)
    while d <= date(2025, 7, 31):
        if d.weekday() < 5:
            rates.append(Rate(d, Decimal("0.65") + Decimal(d.toordinal() % 50) / 10_000, f"bench {d}"))
        d += timedelta(days=1)
    return RateTable("USD", rates)


CPU: dict[str, float] = {}


def timed(fn, name: str = ""):  # type: ignore[no-untyped-def]
    """Wall seconds and the result; the process CPU seconds go to CPU[name] (on a shared
    machine the wall time includes waiting for a core; both are printed)."""
    gc.collect()
    c0, t0 = time.process_time(), time.perf_counter()
    out = fn()
    CPU[name] = time.process_time() - c0
    return time.perf_counter() - t0, out


def bench_report(n: int) -> list[TaxFill]:
    fills = make_fills(n)
    table = rate_table()

    def fifo() -> Decimal:
        book = LotBook()
        for f in fills:
            book.apply(Fill(f.key, f.key, f.instrument_id, Side(f.side), f.quantity, f.price, f.fee,
                            f.fee_currency, Liquidity.TAKER, f.ts))
        return book.realized_pnl

    t_ref, _ = timed(fifo, "ref")
    t_tax, report = timed(lambda: build_report(fills, Valuer({"USD": table}), fy=2025, entity="individual"),
                          "tax")
    s = report.summary
    print(f"tax report: {n:,} fills -> {len(report.disposals):,} disposals, "
          f"{len(report.acquisitions):,} acquisitions in {t_tax:.2f} s "
          f"wall ({CPU['tax']:.2f} s CPU; {n / t_tax:,.0f} fills/s; target <= 10 s: "
          f"{'met' if t_tax <= 10 else 'MISSED'} on wall time)")
    print(f"  reference, plain FIFO lot book over the same fills: {t_ref:.2f} s wall ({CPU['ref']:.2f} s CPU); "
          f"tax report / reference = {t_tax / t_ref:.2f}x wall, {CPU['tax'] / CPU['ref']:.2f}x CPU")
    print(f"  net capital gain {s.net_capital_gain:.2f} AUD, losses {s.current_year_capital_losses:.2f}, "
          f"flagged {s.flagged}")
    return fills


def bench_history(fills: list[TaxFill]) -> None:
    records = [TradeRecord(f.ts, f"f{i}", f"o{i}", "bench", "sma_cross", "strategy", "coinbase", f.instrument_id,
                           "BTC", "USD", f.side, f.quantity, f.price, f.fee, "USD", f.fee, "taker", f.seq,
                           f.log_hash) for i, f in enumerate(fills)]
    rows_n = len(records)
    with tempfile.TemporaryDirectory() as d:
        t_pq, rows = timed(lambda: to_parquet(records, Path(d) / "h.parquet"), "pq")
        size = (Path(d) / "h.parquet").stat().st_size
        t_csv, _ = timed(lambda: to_csv(records, Path(d) / "h.csv"), "csv")
    assert rows == rows_n
    print(f"trade history -> Parquet: {rows:,} fills in {t_pq:.2f} s wall ({CPU['pq']:.2f} s CPU; "
          f"{size / 1e6:.1f} MB; target <= 5 s: {'met' if t_pq <= 5 else 'MISSED'} on wall time)")
    print(f"  reference, the same records -> CSV: {t_csv:.2f} s wall ({CPU['csv']:.2f} s CPU); "
          f"Parquet / CSV = {t_pq / t_csv:.2f}x")


def bench_read(fills: list[TaxFill]) -> None:
    """Reading the fills (with their log hashes) from a SQLite ledger, for context: the report
    above starts from fills in memory."""
    import sqlalchemy as sa

    from lyra.store.tables import events
    from lyra.store.tables import fills as fills_table
    from lyra.tax.source import read_fills

    with tempfile.TemporaryDirectory() as d:
        engine = sa.create_engine(f"sqlite:///{d}/bench.db")
        try:
            fills_table.metadata.create_all(engine, tables=[fills_table, events])
            with engine.begin() as c:
                c.exec_driver_sql(
                    "INSERT INTO fills (fill_id, client_order_id, session_id, instrument_id, side, quantity, "
                    "price, fee, fee_currency, liquidity, ts, seq) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    [(f"f{i}", f"o{i}", f.session_id, f.instrument_id, f.side, str(f.quantity), str(f.price),
                      str(f.fee), f.fee_currency, "taker", f.ts, f.seq) for i, f in enumerate(fills)])
                c.exec_driver_sql(
                    "INSERT INTO events (seq, ts, actor, kind, session_id, payload, prev_hash, hash) "
                    "VALUES (?,?,?,?,?,?,?,?)",
                    [(f.seq, f.ts, "bench", "order.fill", f.session_id, "{}", "", f.log_hash) for f in fills])
            t_read, back = timed(lambda: list(read_fills(engine)), "read")
        finally:
            engine.dispose()
    assert len(back) == len(fills)
    print(f"  for context, reading the {len(back):,} fills with their log hashes from SQLite: {t_read:.2f} s wall "
          f"({CPU['read']:.2f} s CPU)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fills", type=int, default=1_000_000)
    # Wall time on a shared machine includes waiting for a core: the load average says how much.
    print("load average (1, 5, 15 min) at start: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))
    fills = bench_report(ap.parse_args().fills)
    bench_read(fills)
    bench_history(fills)
    print("load average (1, 5, 15 min) at end: {:.2f} {:.2f} {:.2f}".format(*os.getloadavg()))


if __name__ == "__main__":
    main()
