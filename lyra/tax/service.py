"""The tax report and the trade history straight from a ledger: what ``lyra tax report``,
``lyra tax history`` and the audit dashboard's downloads all call, so a download is
byte-for-byte the file the command line writes::

    text = report_text(engine, home, fy=2025, entity="individual")
    data = history_bytes(read_history(engine, venue="coinbase"), "parquet")
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from pathlib import Path

from sqlalchemy.engine import Engine

from lyra.core.errors import ValidationError
from lyra.tax.history import TradeRecord
from lyra.tax.rates import RateTable, load_rba_f11, read_rates_csv, stored_rates_path
from lyra.tax.report import TaxReport, build_report, entity_kind, to_csv, to_json

#: Trade-history file formats: (file extension, description).
HISTORY_FORMATS: dict[str, tuple[str, str]] = {
    "csv": ("csv", "CSV, every field"),
    "parquet": ("parquet", "Parquet, exact decimals as text"),
    "xlsx": ("xlsx", "Excel workbook"),
    "koinly": ("csv", "Koinly universal CSV"),
    "cointracking": ("csv", "CoinTracking CSV import"),
    "ctc": ("csv", "CryptoTaxCalculator advanced CSV"),
}


def load_rates(home: Path, rates: Path | None = None) -> RateTable:
    """The AUD/USD table: ``rates`` (an RBA F11.1 file) or the one stored in ``home`` by
    ``lyra tax import-rates``; a ValidationError naming what to do when there is none."""
    if rates is not None:
        return load_rba_f11(rates)
    stored = stored_rates_path(home)
    if not stored.exists():
        raise ValidationError("rates", str(stored), "no AUD/USD rates stored",
                              "run `lyra tax import-rates f11.1-data.csv` or pass --rates")
    return read_rates_csv(stored)


def report_from_ledger(engine: Engine, home: Path, *, fy: int, entity: str = "individual",
                       losses_carried: Sequence[tuple[int, Decimal]] = (),
                       sessions: Iterable[str] | None = None,
                       lots: Mapping[str, Sequence[str]] | None = None,
                       personal_use: Iterable[str] = (), trader: bool = False,
                       rates: Path | None = None, allow_unmatched: bool = False,
                       opening: Path | None = None) -> TaxReport:
    """The ATO report of financial year ``fy`` from every fill in the ledger (or only those of
    ``sessions``), valued with the stored AUD/USD rates and the market store under ``home``.
    ``opening`` is a CSV of parcels held before the ledger starts (see
    :mod:`lyra.tax.opening`)."""
    from lyra.feeds.store import MarketStore
    from lyra.tax.opening import read_opening
    from lyra.tax.source import market_prices, read_fills
    from lyra.tax.valuation import Valuer

    entity_kind(entity)  # refuse a bad entity before reading anything
    parcels = read_opening(opening) if opening is not None else []
    table = load_rates(home, rates)
    fills = list(read_fills(engine, sessions=sessions))
    assets = ({f.base for f in fills} | {f.quote for f in fills} | {f.fee_currency for f in fills}
              | {p.asset for p in parcels})
    market = home / "market"
    prices = market_prices(MarketStore(market), assets) if market.exists() else {}
    valuer = Valuer({"USD": table}, prices)
    return build_report(fills, valuer, fy=fy, entity=entity, trader=trader, losses_carried=losses_carried,
                        lots=lots, personal_use=personal_use, allow_unmatched=allow_unmatched,
                        opening=parcels)


def report_text(engine: Engine, home: Path, *, fmt: str = "csv", **kw: object) -> str:
    """:func:`report_from_ledger` as ``csv`` (schedule, blank line, summary) or ``json``."""
    if fmt not in ("csv", "json"):
        raise ValidationError("format", fmt, "unknown format", "use csv or json")
    report = report_from_ledger(engine, home, **kw)  # type: ignore[arg-type]
    return to_csv(report) if fmt == "csv" else to_json(report)


def write_history(records: Sequence[TradeRecord], fmt: str, path: Path) -> int:
    """Write ``records`` to ``path`` in ``fmt`` (:data:`HISTORY_FORMATS`), all or nothing;
    returns the number of fills written."""
    from lyra.tax import exports
    from lyra.tax.history import to_csv as h_csv
    from lyra.tax.history import to_excel, to_parquet

    if fmt not in HISTORY_FORMATS:
        raise ValidationError("format", fmt, "unknown format", "use one of " + ", ".join(HISTORY_FORMATS))
    if fmt == "csv":
        return h_csv(records, path)
    if fmt == "parquet":
        return to_parquet(records, path)
    if fmt == "xlsx":
        return to_excel(records, path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(exports.export(records, fmt))
    tmp.replace(path)
    return len(records)


def history_bytes(records: Sequence[TradeRecord], fmt: str) -> bytes:
    """The file :func:`write_history` would write, as bytes (for a download)."""
    with tempfile.TemporaryDirectory(prefix="lyra-history-") as d:
        path = Path(d) / f"history.{HISTORY_FORMATS.get(fmt, ('bin', ''))[0]}"
        write_history(records, fmt, path)
        return path.read_bytes()
