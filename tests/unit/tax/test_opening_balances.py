"""Opening balances: parcels held before the ledger starts, declared in a CSV, used by FIFO
(and by specific identification), with the 12-month rule counted from their own acquisition
day; every malformed row named by row and field, and no report built from it."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lyra.tax import TaxFill, TaxInputError, Valuer, build_report
from lyra.tax.opening import parse_opening, read_opening
from lyra.tax.report import schedule_rows, summary_dict

SYD = ZoneInfo("Australia/Sydney")
HEADER = "asset,quantity,acquired,cost_base_aud,lot\n"


def ts(day: str) -> int:
    return int(datetime.combine(date.fromisoformat(day), time(12), tzinfo=SYD).timestamp() * 1000)


def fill(n: int, day: str, side: str, qty: str, price: str) -> TaxFill:
    return TaxFill(f"o{n}/f{n}", ts(day), "kraken:BTC/AUD", side, D(qty), D(price), D(0), "AUD", "s1", n, f"h{n}")


def test_a_disposal_consumes_an_opening_parcel_across_the_12_month_boundary(tmp_path: Path) -> None:
    """Held before the ledger: 1 BTC bought 1 July 2023 for a cost base of $30,000 (so $30,000
    per BTC). In the ledger: 0.5 BTC bought 10 January 2024 for $30,000 ($60,000 per BTC).

    FY2025, individual, FIFO:
    - 1 July 2024, sell 0.6 BTC at $100,000: proceeds $60,000, cost 0.6 x 30,000 = $18,000,
      gain $42,000. Acquired 1 July 2023: excluding both days, 12 months are not complete
      until a disposal on 2 July 2024: no discount.
    - 2 July 2024, sell 0.6 BTC at $100,000: the opening parcel's last 0.4 (cost $12,000,
      proceeds $40,000, gain $28,000, discountable: 2 July 2024 is the first qualifying day)
      then 0.2 of the January parcel (cost $12,000, proceeds $20,000, gain $8,000, held under
      12 months).
    Total gains 42,000 + 28,000 + 8,000 = $78,000; discount 50 % of 28,000 = $14,000; net
    capital gain $64,000.
    """
    path = tmp_path / "opening.csv"
    path.write_text(HEADER + "BTC,1,2023-07-01,30000,btc-2023\n")
    fills = [fill(1, "2024-01-10", "buy", "0.5", "60000"), fill(2, "2024-07-01", "sell", "0.6", "100000"),
             fill(3, "2024-07-02", "sell", "0.6", "100000")]
    rep = build_report(fills, Valuer(), fy=2025, entity="individual", opening=read_opening(path))
    rows = schedule_rows(rep)
    assert [(r["parcels"], r["cost_base_aud"], r["gain_aud"], r["discount"]) for r in rows] == [
        ("btc-2023:0.6@2023-07-01", "18000.00", "42000.00", "no"),
        ("btc-2023:0.4@2023-07-01;o1/f1:0.2@2024-01-10", "24000.00", "36000.00", "mixed"),
    ]
    assert rows[1]["discountable_gain_aud"] == "28000.00"
    s = summary_dict(rep)
    assert (s["total_current_year_capital_gains"], s["cgt_discount_applied"], s["net_capital_gain"]) == \
        ("78000.00", "14000.00", "64000.00")
    # A company gets no discount on the same parcels; specific identification may name the
    # opening parcel (the second sale takes it whole: 0.4 of it is all that is left).
    co = summary_dict(build_report(fills, Valuer(), fy=2025, entity="company", opening=read_opening(path)))
    assert co["net_capital_gain"] == "78000.00"
    named = build_report(fills, Valuer(), fy=2025, opening=read_opening(path), lots={"o3/f3": ["o1/f1", "btc-2023"]})
    assert schedule_rows(named)[1]["parcels"] == "o1/f1:0.5@2024-01-10;btc-2023:0.1@2023-07-01"
    # Without the opening balance the same ledger sells more than it holds: a clear refusal.
    with pytest.raises(TaxInputError, match="opening balances"):
        build_report(fills, Valuer(), fy=2025)


@pytest.mark.parametrize(("text", "where", "what"), [
    ("asset,quantity,cost_base_aud\nBTC,1,100\n", "header", "missing column(s) acquired"),
    (HEADER + "BTC,1,2023-07-01,100,\nBTC,abc,2023-07-01,100,\n", "row 3, quantity", "not a decimal"),
    (HEADER + "BTC,0,2023-07-01,100,\n", "row 2, quantity", "positive"),
    (HEADER + "BTC,1,01/07/2023,100,\n", "row 2, acquired", "YYYY-MM-DD"),
    (HEADER + "BTC,1,2023-07-01,-5,\n", "row 2, cost_base_aud", "must not be negative"),
    (HEADER + "AUD,1,2023-07-01,5,\n", "row 2, asset", "money"),
    (HEADER + "BTC,1,2023-07-01,5,a\n\nETH,1,2023-07-02,5,a\n", "row 4, lot", "already used on row 2"),
])
def test_malformed_opening_rows_are_named(text: str, where: str, what: str) -> None:
    with pytest.raises(TaxInputError) as exc:
        parse_opening(text, name="opening.csv")
    msg = str(exc.value)
    assert f"opening.csv: {where}" in msg and what in msg


def test_an_opening_parcel_dated_inside_the_ledger_is_refused() -> None:
    parcels = parse_opening(HEADER + "BTC,1,2023-07-01,5,\nBTC,1,2024-02-01,5,\n")
    assert [p.lot for p in parcels] == ["opening:2", "opening:3"] and parcels[1].quantity == 1
    with pytest.raises(TaxInputError, match=r"opening: row 3, acquired.*after the ledger's first fill"):
        build_report([fill(1, "2024-01-10", "buy", "0.5", "60000")], Valuer(), fy=2024, opening=parcels)
