"""Round trips after fees in exact Decimal: hand-worked cases, partial fills, fee currencies."""

from __future__ import annotations

import math
from decimal import Decimal as D

import pandas as pd
import pytest

import lyra.analytics as an
from lyra.core.errors import ValidationError
from lyra.readside import kpis


def tf(side: str, qty: str, price: str, fee: str = "0", cur: str = "USD", ts: int = 0,
       iid: str = "x:BTC/USD") -> an.TradeFill:
    return an.TradeFill("s", iid, iid.split(":")[1].split("/")[0], iid.split("/")[1], side, D(qty),
                        D(price), D(fee), cur, ts)


def test_hand_worked_round_trips_with_a_flip() -> None:
    trips = an.round_trips([
        tf("buy", "1", "100", "0.1", ts=1),
        tf("buy", "1", "120", "0.1", ts=2),   # avg 110
        tf("sell", "3", "130", "0.3", ts=3),  # closes 2: +40; opens a 1 short @130; fee 0.2 | 0.1
        tf("buy", "1", "125", "0.1", ts=4),   # closes the short: +5
    ])
    assert [(t.open_ts, t.close_ts) for t in trips] == [(1, 3), (3, 4)]
    assert [t.gross_pnl for t in trips] == [D(40), D(5)]
    assert [t.fees for t in trips] == [D("0.4"), D("0.2")]
    assert [t.pnl for t in trips] == [D("39.6"), D("4.8")]
    s = an.trades_summary(trips)
    assert (s["n_trades"], s["win_rate"], s["profit_factor"]) == (2, 1.0, math.inf)


def test_partial_fills_count_exactly_where_floats_leave_a_remainder() -> None:
    # 0.1 + 0.2 bought in parts, 0.3 sold: in float 0.1 + 0.2 - 0.3 = 5.6e-17, not flat.
    assert 0.1 + 0.2 - 0.3 != 0.0
    fills = [tf("buy", "0.1", "100", ts=1), tf("buy", "0.2", "100", ts=2), tf("sell", "0.3", "110", ts=3)] * 3
    trips = an.round_trips(fills)
    assert len(trips) == 3 and all(t.closed for t in trips)
    assert all(t.pnl == D("3.0") for t in trips)
    # The same through the read side's frame (float columns + the ledger's exact ones).
    f = pd.DataFrame({"session_id": "s", "instrument_id": "x:BTC/USD",
                      "side": [x.side for x in fills], "ts": [x.ts for x in fills],
                      "quantity_exact": [x.quantity for x in fills], "price_exact": [x.price for x in fills],
                      "fee_exact": [x.fee for x in fills], "fee_currency": "USD"})
    for c in ("quantity", "price", "fee"):
        f[c] = f[f"{c}_exact"].astype(float)
    ts = [0, 3_600_000, 7_200_000]
    curve = pd.DataFrame({"ts": ts, "time": pd.to_datetime(ts, unit="ms"), "equity": [100.0, 101.0, 103.0]})
    assert kpis(curve, f).trades == 3


def test_a_fee_in_the_base_leaves_the_holding() -> None:
    # Buy 1 BTC @100 paying 0.001 BTC: hold 0.999; sell 0.999 @110 paying 0.1 USD.
    # Paid 100, got 109.89 - 0.1 = 109.79: +9.79. Gross 0.999 x 10 = 9.99; fees 0.1 + 0.1.
    trips = an.round_trips([tf("buy", "1", "100", "0.001", "BTC", 1), tf("sell", "0.999", "110", "0.1", "USD", 2)])
    (t,) = trips
    assert t.closed and t.pnl == D("9.79") and t.gross_pnl == D("9.99") and t.fees == D("0.2")
    assert t.fee_sources == {"USD", an.trades.FILL_PRICE}


def test_a_fee_in_a_third_asset_needs_a_rate_with_its_source() -> None:
    fills = [tf("buy", "1", "100", "0.01", "BNB", 1), tf("sell", "1", "110", "0.01", "BNB", 2)]
    with pytest.raises(ValidationError, match=r"fills\[0\]\.fee_currency.*BNB"):
        an.round_trips(fills)
    rate = an.FeeRate(D("300"), "stored close BNB/USD 1970-01-01")
    (t,) = an.round_trips(fills, {"BNB": rate})
    assert t.fees == D("6.00") and t.pnl == D("4.00")
    assert t.fee_sources == {"stored close BNB/USD 1970-01-01"}
