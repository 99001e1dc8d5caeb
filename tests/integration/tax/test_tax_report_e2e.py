"""A paper session on the shipped Coinbase BTC/USD data across 30 June 2018, then `lyra tax
report` for FY2018 and FY2019: every fill is in exactly one acquisition or disposal line, and
the totals reconcile to the ledger (checked with the portfolio's own FIFO lot book).

The AUD/USD rates are a test fixture in the RBA F11.1 layout (one rate, 0.7500, on every
weekday): the shipped RBA sample covers 2023, not the sample data's 2018. One rate makes the
AUD totals an exact function of the USD ledger, so they can be checked independently.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal as D
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lyra.cli import app
from lyra.core.enums import Liquidity, Side
from lyra.core.orders import Fill
from lyra.portfolio.lots import LotBook
from lyra.session.factory import open_session
from lyra.store.tables import events, fills
from lyra.tax import exports
from lyra.testing.sessions import demo_config

RATE = D("0.7500")
pytestmark = pytest.mark.slow


def _rate_file(path: Path, start: date, end: date) -> Path:
    rows = ["F11.1  EXCHANGE RATES ,,", "Title,A$1=USD,Trade-weighted Index May 1970 = 100",
            "Units,USD,Index", ",,", "Series ID,FXRUSD,FXRTWI"]
    d = start
    while d <= end:
        if d.weekday() < 5:
            rows.append(f"{d.strftime('%d-%b-%Y')},{RATE},60.0")
        d += timedelta(days=1)
    path.write_text("\n".join(rows) + "\n")
    return path


def _cli(*args: str):
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_session_then_tax_report_reconciles_to_the_ledger(session_home, tmp_path: Path) -> None:
    h = session_home
    s = open_session(demo_config(session_id="tax1", start="2018-05-01", end="2018-08-15"),
                     engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    result = s.run()
    assert result.fills > 4
    rates = _rate_file(tmp_path / "f11.1-data.csv", date(2018, 4, 1), date(2018, 9, 30))
    res = _cli("tax", "import-rates", str(rates))
    assert res.exit_code == 0, res.output
    out = {}
    for fy in (2018, 2019):
        res = _cli("tax", "report", "--fy", str(fy), "--entity", "individual", "--format", "json",
                   "--output", str(tmp_path / f"fy{fy}.json"))
        assert res.exit_code == 0, res.output
        out[fy] = json.loads((tmp_path / f"fy{fy}.json").read_text())

    # The same fills as a Koinly import file, read back by the parser.
    res = _cli("tax", "history", "--format", "koinly", "--session", "tax1", "--output", str(tmp_path / "k.csv"))
    assert res.exit_code == 0, res.output
    koinly = exports.parse((tmp_path / "k.csv").read_text(), "koinly")
    with h["engine"].connect() as c:
        ledger = c.execute(sa.select(fills, events.c.hash).select_from(
            fills.join(events, events.c.seq == fills.c.seq)).order_by(fills.c.ts, fills.c.seq)).all()
    assert len(ledger) == result.fills
    assert [(k.ref, k.side, k.base_amount, k.fee) for k in koinly] == \
        [(f"{r.client_order_id}/{r.fill_id}", r.side, r.quantity, r.fee) for r in ledger]
    keys = {f"{r.client_order_id}/{r.fill_id}": r for r in ledger}
    acq = [a for fy in out for a in out[fy]["acquisitions"]]
    dis = [d for fy in out for d in out[fy]["disposals"]]
    # Every fill in exactly one line: buys acquire BTC, sells dispose of it (USD is money).
    assert sorted([a["fill"] for a in acq] + [d["event_id"] for d in dis]) == sorted(keys)
    assert {a["fill"] for a in acq} == {k for k, r in keys.items() if r.side == "buy"}
    # Each line carries its fill's log entry: sequence and hash.
    for line in dis:
        r = keys[line["event_id"]]
        assert (int(line["log_seq"]), line["log_hash"]) == (r.seq, r.hash)
        assert D(line["quantity"]) == r.quantity and "FXRUSD" in line["valuation_source"]
        assert D(line["proceeds_aud"]) == (r.quantity * r.price / RATE).quantize(D("0.01"))
    # FY split: the session crossed 30 June 2018 (Sydney), so both years hold lines.
    assert out[2018]["disposals"] and out[2019]["disposals"]
    assert all(d["disposed"] <= "2018-06-30" for d in out[2018]["disposals"])
    # Totals: gains (AUD) = FIFO realised PnL in USD, after fees, at the one rate.
    book = LotBook()
    fee_of = {}
    for r in ledger:
        f = Fill(r.fill_id, r.client_order_id, r.instrument_id, Side(r.side), r.quantity, r.price, r.fee,
                 r.fee_currency, Liquidity(r.liquidity), r.ts)
        book.apply(f)
        fee_of[r.fill_id] = (r.fee, r.quantity)
    buy_fees_closed = sum((fee_of[c.open_fill_id][0] * c.quantity / fee_of[c.open_fill_id][1]
                           for c in book.closed), D(0))
    sell_fees = sum((r.fee for r in ledger if r.side == "sell"), D(0))
    expect_aud = (book.realized_pnl - buy_fees_closed - sell_fees) / RATE
    got = sum((D(d["gain_aud"]) for d in dis), D(0))
    assert abs(got - expect_aud) <= D("0.01") * len(dis)  # each line is rounded to the cent
    for fy in out:
        s = out[fy]["summary"]
        gains = sum((D(d["gain_aud"]) for d in out[fy]["disposals"] if D(d["gain_aud"]) > 0), D(0))
        losses = -sum((D(d["gain_aud"]) for d in out[fy]["disposals"] if D(d["gain_aud"]) < 0), D(0))
        assert abs(D(s["total_current_year_capital_gains"]) - gains) <= D("0.01") * len(out[fy]["disposals"])
        assert abs(D(s["current_year_capital_losses"]) - losses) <= D("0.01") * len(out[fy]["disposals"])
        assert s["flagged"] == 0 and s["disposals"] == len(out[fy]["disposals"])
        # Nothing was held 12 months: no discount; net = gains - losses, or a loss carried on.
        net = max(gains - losses, D(0))
        assert abs(D(s["net_capital_gain"]) - net) <= D("0.01") * len(out[fy]["disposals"])


def test_bad_input_on_the_command_line_writes_nothing(session_home, tmp_path: Path) -> None:
    h = session_home
    s = open_session(demo_config(session_id="tax2", start="2018-05-01", end="2018-06-01"),
                     engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    s.run()
    dest = tmp_path / "out.csv"
    rates = _rate_file(tmp_path / "r.csv", date(2018, 4, 1), date(2018, 9, 30))
    res = _cli("tax", "report", "--fy", "2018", "--output", str(dest))
    assert res.exit_code == 2 and "no AUD/USD rates stored" in res.output
    bad = tmp_path / "bad.csv"
    bad.write_text(rates.read_text().replace("0.7500,60.0\n", "0.75x,60.0\n", 1))
    res = _cli("tax", "import-rates", str(bad))
    assert res.exit_code == 2 and "row 6, FXRUSD" in " ".join(res.output.split())
    assert not (h["home"] / "tax" / "audusd_rba.csv").exists()
    cases = [
        (["--entity", "partnership"], "entity='partnership'"),
        (["--rates", str(bad)], "row 6, FXRUSD"),
        (["--rates", str(rates), "--fy", "2016"], "fy=2016"),
        (["--rates", str(rates), "--losses-carried", "2017"], "losses_carried='2017'"),
        (["--rates", str(rates), "--format", "xml"], "format='xml'"),
    ]
    for extra, needle in cases:
        args = ["tax", "report", "--fy", "2018", "--output", str(dest), *extra]
        if "--fy" in extra:
            args = ["tax", "report", "--output", str(dest), *extra]
        res = _cli(*args)
        assert res.exit_code == 2, (extra, res.output)
        assert needle in " ".join(res.output.split()), (extra, res.output)
        assert not dest.exists()
    lots = tmp_path / "lots.json"
    lots.write_text(json.dumps({"no-such-disposal/1": ["x/1"]}))
    res = _cli("tax", "report", "--fy", "2018", "--rates", str(rates), "--lots", str(lots), "--output", str(dest))
    assert res.exit_code == 2 and "no-such-disposal/1" in res.output and not dest.exists()
    res = _cli("tax", "report", "--fy", "2018", "--rates", str(rates), "--output", str(dest))
    assert res.exit_code == 0, res.output
    assert dest.read_text().startswith("event_id,kind,asset,quantity")
    # Opening balances: a malformed file is named by row and field, nothing written; a good
    # one is used first by FIFO (held since 2016: the discount applies to its part).
    dest.unlink()
    opening = tmp_path / "opening.csv"
    opening.write_text("asset,quantity,acquired,cost_base_aud\nBTC,0.05,2016-03-01,50\nBTC,-1,2016-03-02,50\n")
    res = _cli("tax", "report", "--fy", "2018", "--rates", str(rates), "--opening", str(opening),
               "--output", str(dest))
    assert res.exit_code == 2 and "opening.csv: row 3, quantity" in " ".join(res.output.split())
    assert not dest.exists()
    opening.write_text("asset,quantity,acquired,cost_base_aud,lot\nBTC,0.05,2016-03-01,50,carried\n")
    res = _cli("tax", "report", "--fy", "2018", "--rates", str(rates), "--opening", str(opening),
               "--format", "json", "--output", str(dest))
    assert res.exit_code == 0, res.output
    first = json.loads(dest.read_text())["disposals"][0]
    assert first["parcels"].startswith("carried:0.05@2016-03-01") and first["discount"] in ("yes", "mixed")
