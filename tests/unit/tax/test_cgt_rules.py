"""The ATO capital gains rules on hand-worked cases.

Each case is worked by hand in its docstring from the ATO's published rules (Guide to capital
gains tax; "Crypto asset investments"; ss 115-25, 115-100, 118-10, 108-20 ITAA 1997); the
numbers are chosen so the arithmetic can be checked on paper. Instruments quoted in AUD keep
the valuation out of the way except where valuation is the point.
"""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal as D
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lyra.core.errors import ValidationError
from lyra.tax import PriceSeries, TaxFill, TaxInputError, Valuer, build_report, held_12_months, load_rba_f11
from lyra.tax.report import summary_dict

SYD = ZoneInfo("Australia/Sydney")
REPO = Path(__file__).resolve().parents[3]
RBA_SAMPLE = REPO / "data" / "rba" / "f11.1-sample.csv"


def ts(day: str, hour: int = 12) -> int:
    """UTC ms of ``hour``:00 Sydney time on ``day``."""
    dt = datetime.combine(date.fromisoformat(day), time(hour), tzinfo=SYD)
    return int(dt.timestamp() * 1000)


_n = iter(range(1, 10**6))


def fill(day: str, inst: str, side: str, qty: str, price: str, fee: str = "0", fee_ccy: str = "AUD",
         *, hour: int = 12, key: str | None = None) -> TaxFill:
    n = next(_n)
    quote = inst.split("/")[1]
    return TaxFill(key or f"o{n}/f{n}", ts(day, hour), f"x:{inst}", side, D(qty), D(price), D(fee),
                   fee_ccy if fee != "0" else quote, "s1", n, f"hash{n}")


def report(fills: list[TaxFill], fy: int = 2025, valuer: Valuer | None = None, **kw):
    return build_report(sorted(fills, key=lambda f: (f.ts, f.seq)), valuer or Valuer(), fy=fy, **kw)


# ------------------------------------------------------------------ the 12-month rule
@pytest.mark.parametrize(("acquired", "disposed", "discount"), [
    # ATO: exclude the day of acquisition and the day of the CGT event. Bought 1 July 2023:
    # the days between must make 12 months, so 2 July 2024 is the first day that qualifies.
    ("2023-07-01", "2024-07-01", False),
    ("2023-07-01", "2024-07-02", True),
    ("2023-07-01", "2024-06-30", False),
    # 29 February: the 12 months from 1 March 2024 end on 28 February 2025.
    ("2024-02-29", "2025-02-28", False),
    ("2024-02-29", "2025-03-01", True),
    # 31 December: counting starts 1 January; 12 months end 31 December; 1 January qualifies.
    ("2022-12-31", "2023-12-31", False),
    ("2022-12-31", "2024-01-01", True),
])
def test_twelve_months_exclude_both_days(acquired: str, disposed: str, discount: bool) -> None:
    assert held_12_months(date.fromisoformat(acquired), date.fromisoformat(disposed)) is discount


def test_boundary_through_the_report_both_sides() -> None:
    """Bought 1 BTC 1 Jul 2023 for $10,000; two lots, each sold for $20,000 -> $10,000 gain each.
    Sold 1 Jul 2024: no discount, net $10,000. Sold 2 Jul 2024: 50% discount, net $5,000."""
    for sell_day, net, flag in (("2024-07-01", "10000.00", "no"), ("2024-07-02", "5000.00", "yes")):
        r = report([fill("2023-07-01", "BTC/AUD", "buy", "1", "10000"),
                    fill(sell_day, "BTC/AUD", "sell", "1", "20000")])
        assert r.disposals[0].discount == flag
        assert summary_dict(r)["net_capital_gain"] == net
        assert summary_dict(r)["total_current_year_capital_gains"] == "10000.00"


def test_australian_day_decides_the_financial_year() -> None:
    """30 Jun 2024 15:00 UTC is 1 Jul 2024 01:00 in Sydney (AEST, +10): FY2025, not FY2024."""
    sale = TaxFill("o2/f2", int(datetime(2024, 6, 30, 15, tzinfo=ZoneInfo("UTC")).timestamp() * 1000),
                   "x:BTC/AUD", "sell", D(1), D(2000), D(0), "AUD", "s1", 2, "h2")
    buy = fill("2024-01-02", "BTC/AUD", "buy", "1", "1000")
    r = report([buy, sale], fy=2025)
    assert [d.day for d in r.disposals] == [date(2024, 7, 1)]
    with pytest.raises(TaxInputError, match="no fills"):  # the sale alone: nothing in FY2024
        report([sale], fy=2024)


# ------------------------------------------------------------------ parcels
def test_multi_parcel_fifo_disposal_with_fees() -> None:
    """Buys: 1 BTC @ 10,000 + $10 fee (10 Jan 2022), 1 BTC @ 20,000 + $20 (1 Sep 2023),
    1 BTC @ 30,000 (10 Jan 2024). Sell 2.5 BTC @ 40,000 with a $100 fee on 1 Aug 2024.
    FIFO pieces: 1 (cost 10,010, >12 months), 1 (20,020, <12 months), 0.5 (15,000).
    Proceeds 40,000 / 40,000 / 20,000; the sale fee is a disposal cost: 40 / 40 / 20.
    Gains 29,950 (discountable), 19,940 and 4,980: total 54,870; individual:
    24,920 + 29,950 x 50% = 39,895."""
    r = report([
        fill("2022-01-10", "BTC/AUD", "buy", "1", "10000", "10", "AUD"),
        fill("2023-09-01", "BTC/AUD", "buy", "1", "20000", "20", "AUD"),
        fill("2024-01-10", "BTC/AUD", "buy", "1", "30000"),
        fill("2024-08-01", "BTC/AUD", "sell", "2.5", "40000", "100", "AUD"),
    ])
    (line,) = r.disposals
    assert [(p.quantity, p.cost_base, p.proceeds, p.gain, p.discountable) for p in line.pieces] == [
        (D(1), D(10050), D(40000), D(29950), True),
        (D(1), D(20060), D(40000), D(19940), False),
        (D("0.5"), D(15020), D(20000), D(4980), False),
    ]
    assert line.discount == "mixed" and line.gain == D(54870) and line.costs == D(100)
    s = summary_dict(r)
    assert (s["total_current_year_capital_gains"], s["net_capital_gain"]) == ("54870.00", "39895.00")
    assert line.fill.log_hash and line.source == "AUD"


def test_specific_identification_by_lot() -> None:
    """Same three buys as FIFO; the sale of 1 BTC names the 30,000 lot: gain 10,000, no discount
    (FIFO would have taken the 10,000 lot: gain 30,000, discounted)."""
    buys = [fill("2022-01-10", "BTC/AUD", "buy", "1", "10000", key="a/1"),
            fill("2023-09-01", "BTC/AUD", "buy", "1", "20000", key="b/1"),
            fill("2024-01-10", "BTC/AUD", "buy", "1", "30000", key="c/1")]
    sale = fill("2024-08-01", "BTC/AUD", "sell", "1", "40000", key="s/1")
    r = report([*buys, sale], lots={"s/1": ["c/1"]})
    assert [(p.lot, p.gain, p.discountable) for p in r.disposals[0].pieces] == [("c/1", D(10000), False)]
    assert r.method.startswith("specific")
    with pytest.raises(TaxInputError, match="nope/1.*matches no parcel"):
        report([*buys, sale], lots={"s/1": ["nope/1"]})
    with pytest.raises(TaxInputError, match="ghost/1.*matches no fill"):
        report([*buys, sale], lots={"ghost/1": ["a/1"]})
    with pytest.raises(TaxInputError, match="lots named"):
        report([*buys, fill("2024-08-02", "BTC/AUD", "sell", "2", "1", key="s/2")], lots={"s/2": ["a/1"]})


# ------------------------------------------------------------------ crypto to crypto
def _prices(**series: tuple[str, str]) -> dict[str, list[PriceSeries]]:
    """asset -> one AUD price from ``day`` on."""
    return {a: [PriceSeries(f"test:{a}/AUD", "AUD", [ts(day, 0)], [D(p)], max_age_ms=10**12)]
            for a, (day, p) in series.items()}


def test_crypto_to_crypto_swap_is_a_cgt_event() -> None:
    """1 BTC bought for $30,000 (1 Aug 2024). 1 Sep 2024: 10 ETH bought on ETH/BTC at 0.05,
    giving 0.5 BTC, when BTC is $40,000 and ETH $2,000. The BTC disposal: proceeds = market
    value of the ETH received, 20,000; cost base 15,000; gain 5,000 (no discount). The ETH
    parcel's cost base = market value of the BTC given, 0.5 x 40,000 = 20,000. 10 ETH sold for
    $2,500 each on 1 Oct 2024: gain 5,000. Total 10,000."""
    v = Valuer(prices=_prices(BTC=("2024-08-15", "40000"), ETH=("2024-08-15", "2000")))
    r = report([fill("2024-08-01", "BTC/AUD", "buy", "1", "30000"),
                fill("2024-09-01", "ETH/BTC", "buy", "10", "0.05"),
                fill("2024-10-01", "ETH/AUD", "sell", "10", "2500")], valuer=v)
    swap, sale = r.disposals
    assert (swap.kind, swap.asset, swap.quantity, swap.proceeds, swap.cost_base, swap.gain) == \
        ("swap", "BTC", D("0.5"), D(20000), D(15000), D(5000))
    assert "test:ETH/AUD" in swap.source
    eth = next(a for a in r.acquisitions if a.asset == "ETH")
    assert eth.cost_base == D(20000) and "test:BTC/AUD" in eth.source
    assert sale.gain == D(5000)
    assert summary_dict(r)["net_capital_gain"] == "10000.00"


def test_swap_valued_by_what_was_given_when_the_received_asset_has_no_price() -> None:
    """No ETH price: the proceeds fall back to the value of the BTC given, 0.5 x 40,000."""
    v = Valuer(prices=_prices(BTC=("2024-08-15", "40000")))
    r = report([fill("2024-08-01", "BTC/AUD", "buy", "1", "30000"),
                fill("2024-09-01", "ETH/BTC", "buy", "10", "0.05")], valuer=v)
    assert r.disposals[0].proceeds == D(20000) and "test:BTC/AUD" in r.disposals[0].source


# ------------------------------------------------------------------ fees in crypto
def test_a_fee_paid_in_crypto_is_itself_a_disposal() -> None:
    """10 BNB bought for $300 each (5 Jul 2024). 1 Aug 2024: 1 BTC bought for $50,000 with a
    0.1 BNB fee when BNB is $400: the fee is a disposal of 0.1 BNB, proceeds 40, cost base 30,
    gain 10; its $40 is an incidental cost in the BTC's cost base: 50,040. BTC sold for
    $60,000 (1 Sep 2024): gain 9,960. Total 9,970."""
    v = Valuer(prices=_prices(BNB=("2024-07-20", "400")))
    r = report([fill("2024-07-05", "BNB/AUD", "buy", "10", "300"),
                fill("2024-08-01", "BTC/AUD", "buy", "1", "50000", "0.1", "BNB"),
                fill("2024-09-01", "BTC/AUD", "sell", "1", "60000")], valuer=v)
    fee, sale = r.disposals
    assert (fee.kind, fee.asset, fee.quantity, fee.proceeds, fee.cost_base, fee.gain) == \
        ("fee", "BNB", D("0.1"), D(40), D(30), D(10))
    assert fee.event_id.endswith("#fee")
    assert [a.cost_base for a in r.acquisitions if a.asset == "BTC"] == [D(50040)]
    assert sale.gain == D(9960)
    assert summary_dict(r)["total_current_year_capital_gains"] == "9970.00"


def test_a_fee_in_the_base_asset_is_valued_at_the_fill_price() -> None:
    """1 BTC bought at $50,000 with a 0.001 BTC fee (worth $50 at the fill's price): the parcel's
    cost base is 50,050 and the fee disposes of 0.001 BTC from it (FIFO): proceeds 50, cost
    base 50.05, a loss of 0.05. 0.999 BTC is left; selling it for $60,000 each: proceeds
    59,940, cost base 50,050 - 50.05 = 49,999.95, gain 9,940.05."""
    r = report([fill("2024-08-01", "BTC/AUD", "buy", "1", "50000", "0.001", "BTC"),
                fill("2024-09-01", "BTC/AUD", "sell", "0.999", "60000")])
    fee, sale = r.disposals
    assert (fee.proceeds, fee.cost_base, fee.gain) == (D(50), D("50.05"), D("-0.05"))
    assert (sale.proceeds, sale.cost_base, sale.gain) == (D(59940), D("49999.95"), D("9940.05"))


# ------------------------------------------------------------------ losses, then the discount
def _mixed_year(loss_price: str) -> list[TaxFill]:
    """A discountable gain of 10,000 (BTC held 2.5 years), a non-discountable gain of 3,000
    (ETH held 2 months) and a current-year loss of 5,000 - 1,000 x ``loss_price`` (LTC)."""
    return [fill("2022-01-01", "BTC/AUD", "buy", "1", "10000"),
            fill("2024-07-10", "ETH/AUD", "buy", "3", "1000"),
            fill("2024-07-10", "LTC/AUD", "buy", "1000", "5"),
            fill("2024-08-01", "BTC/AUD", "sell", "1", "20000"),
            fill("2024-09-01", "ETH/AUD", "sell", "3", "2000"),
            fill("2024-09-02", "LTC/AUD", "sell", "1000", loss_price)]


def test_losses_before_the_discount_with_a_carried_forward_loss() -> None:
    """ATO method statement: gains 13,000 (10,000 discountable, 3,000 not); current-year loss
    2,000 reduces the non-discountable gain first: 1,000 left. Carried-forward losses, oldest
    first: FY2022's 1,500 takes the last 1,000 of that gain and 500 of the discountable one
    (9,500 left); FY2023's 2,000 leaves 7,500. Discount 50%: 3,750. Net capital gain 3,750;
    nothing carried forward."""
    r = report(_mixed_year("3"), losses_carried=[(2023, D(2000)), (2022, D(1500))])
    s = summary_dict(r)
    assert s["total_current_year_capital_gains"] == "13000.00"
    assert s["current_year_capital_losses"] == "2000.00"
    assert s["losses_applied_prior_years"] == "3500.00"
    assert s["cgt_discount_applied"] == "3750.00"
    assert s["net_capital_gain"] == "3750.00"
    assert s["net_capital_loss_carried_forward"] == "0.00"


def test_a_net_capital_loss_is_carried_forward_with_the_unused_earlier_losses() -> None:
    """LTC bought for 16,000 and sold for 1,000: a loss of 15,000. Gains 13,000 - 15,000 = a
    net capital loss of 2,000 this year; the earlier 1,500 is unused: 3,500 carried forward."""
    fills = _mixed_year("1")
    fills[2] = fill("2024-07-10", "LTC/AUD", "buy", "1000", "16")
    r = report(fills, losses_carried=[(2022, D(1500))])
    s = summary_dict(r)
    assert s["current_year_capital_losses"] == "15000.00"
    assert s["net_capital_gain"] == "0.00"
    assert s["net_capital_loss_carried_forward"] == "3500.00"
    assert s["carried_forward_by_year"] == {"2022": "1500.00"}


@pytest.mark.parametrize(("entity", "net", "discount"), [
    ("individual", "21000.00", "15000.00"),  # 6,000 + 30,000 x 1/2
    ("trust", "21000.00", "15000.00"),
    ("super", "26000.00", "10000.00"),  # 6,000 + 30,000 x 2/3 (33 1/3 % discount)
    ("company", "36000.00", "0.00"),  # no discount
])
def test_discount_by_entity(entity: str, net: str, discount: str) -> None:
    """A discountable gain of 30,000 and a non-discountable one of 6,000."""
    r = report([fill("2020-01-01", "BTC/AUD", "buy", "1", "10000"),
                fill("2024-07-10", "ETH/AUD", "buy", "1", "1000"),
                fill("2024-08-01", "BTC/AUD", "sell", "1", "40000"),
                fill("2024-08-02", "ETH/AUD", "sell", "1", "7000")], entity=entity)
    s = summary_dict(r)
    assert (s["net_capital_gain"], s["cgt_discount_applied"]) == (net, discount)


def test_a_trader_has_trading_stock_not_capital_gains() -> None:
    """A trader's disposals are not CGT events: no capital gain, no discount; the FIFO profit
    at cost (30,000 + 6,000) is ordinary income; an earlier capital loss stays carried."""
    r = report([fill("2020-01-01", "BTC/AUD", "buy", "1", "10000"),
                fill("2024-07-10", "ETH/AUD", "buy", "1", "1000"),
                fill("2024-08-01", "BTC/AUD", "sell", "1", "40000"),
                fill("2024-08-02", "ETH/AUD", "sell", "1", "7000")], trader=True,
               losses_carried=[(2020, D(500))])
    s = summary_dict(r)
    assert (s["net_capital_gain"], s["total_current_year_capital_gains"], s["trading_profit"]) == \
        ("0.00", "0.00", "36000.00")
    assert s["net_capital_loss_carried_forward"] == "500.00"
    assert all(d.discount == "no" for d in r.disposals)


def test_personal_use_asset_threshold() -> None:
    """s 118-10(3): a gain on a personal use asset acquired for $10,000 or less is disregarded;
    acquired for more, it counts. s 108-20(1): a loss on one is always disregarded."""
    fills = [fill("2024-07-01", "BTC/AUD", "buy", "1", "10000", key="pu/1"),
             fill("2024-07-01", "ETH/AUD", "buy", "1", "10000.01", key="pu/2"),
             fill("2024-07-01", "SOL/AUD", "buy", "1", "500", key="pu/3"),
             fill("2024-08-01", "BTC/AUD", "sell", "1", "12000"),
             fill("2024-08-01", "ETH/AUD", "sell", "1", "12000.01"),
             fill("2024-08-01", "SOL/AUD", "sell", "1", "100")]
    r = report(fills, personal_use=["pu/1", "pu/2", "pu/3"])
    by_asset = {d.asset: d.pieces[0].exempt for d in r.disposals}
    assert "10,000 or less" in by_asset["BTC"] and by_asset["ETH"] == "" and "loss" in by_asset["SOL"]
    s = summary_dict(r)
    assert (s["total_current_year_capital_gains"], s["current_year_capital_losses"]) == ("2000.00", "0.00")


# ------------------------------------------------------------------ AUD valuation (RBA)
def test_usd_trades_valued_with_the_rba_rate_and_a_missing_rate_is_flagged() -> None:
    """Real RBA rates (data/rba): bought 1 BTC for US$20,000 on Tue 10 Jan 2023 (0.6904 USD per
    AUD) and sold 0.5 for US$12,500 on Wed 15 Mar 2023 (0.6692). Saturday 7 Jan uses Friday's
    rate (0.6769). A sale on 20 Apr 2023 is past the sample (last rate 31 Mar): flagged,
    left out of the totals, never guessed."""
    rates = load_rba_f11(RBA_SAMPLE)
    v = Valuer({"USD": rates})
    r = report([fill("2023-01-07", "ETH/USD", "buy", "1", "1000"),
                fill("2023-01-10", "BTC/USD", "buy", "1", "20000"),
                fill("2023-03-15", "BTC/USD", "sell", "0.5", "25000"),
                fill("2023-04-20", "BTC/USD", "sell", "0.5", "30000")], fy=2023, valuer=v)
    eth = r.acquisitions[0]
    assert eth.cost_base == D(1000) / D("0.6769") and "2023-01-06" in eth.source
    valued, missing = r.disposals
    expect = D(12500) / D("0.6692") - D(20000) / D("0.6904") / 2
    assert valued.gain is not None and abs(valued.gain - expect) < D("1e-20")
    assert "FXRUSD 2023-03-15" in valued.source and "0.6692" in valued.source
    assert missing.flags == ["missing rate"] and missing.proceeds is None and missing.gain is None
    s = summary_dict(r)
    assert s["flagged"] == 1 and s["total_current_year_capital_gains"] == str(expect.quantize(D("0.01")))


# ------------------------------------------------------------------ bad input
def test_bad_input_names_what_and_where() -> None:
    buy = fill("2024-08-01", "BTC/AUD", "buy", "1", "100")
    with pytest.raises(ValidationError, match="entity='partnership'.*unknown entity"):
        report([buy], entity="partnership")
    with pytest.raises(TaxInputError, match="fy=2023.*no fills between 2022-07-01 and 2023-06-30"):
        report([buy], fy=2023)
    big = fill("2024-08-02", "BTC/AUD", "sell", "1.5", "100", key="big/1")
    with pytest.raises(TaxInputError, match=r"fill big/1 .*disposes of more BTC than holdings of BTC \(1"):
        report([buy, big])
    r = report([buy, big], allow_unmatched=True)
    assert r.disposals[0].flags == ["unmatched 0.5"] and summary_dict(r)["flagged"] == 1
    with pytest.raises(ValidationError, match="losses_carried"):
        report([buy], losses_carried=[(2025, D(1))])
