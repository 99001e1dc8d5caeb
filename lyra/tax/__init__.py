"""Tax reports from the ledger: the Australian (ATO) capital gains report with its parcels,
AUD valuation from RBA rates and stored prices, and the trade history with its exports.

``build_report(fills, valuer, fy=2025, entity="individual")`` gives the per-disposal schedule
and the figures of the tax return (``opening=read_opening(path)`` adds holdings from before
the ledger); ``lyra tax report --fy 2025`` prints it."""

from lyra.tax.cgt import TaxFill, TaxInputError, held_12_months
from lyra.tax.opening import OpeningParcel, parse_opening, read_opening
from lyra.tax.rates import RateFileError, RateTable, fy_bounds, load_rba_f11, parse_rba_f11
from lyra.tax.report import TaxReport, build_report, to_csv, to_json
from lyra.tax.valuation import PriceSeries, Valuer

__all__ = [
    "OpeningParcel",
    "PriceSeries",
    "RateFileError",
    "RateTable",
    "TaxFill",
    "TaxInputError",
    "TaxReport",
    "Valuer",
    "build_report",
    "fy_bounds",
    "held_12_months",
    "load_rba_f11",
    "parse_opening",
    "parse_rba_f11",
    "read_opening",
    "to_csv",
    "to_json",
]
