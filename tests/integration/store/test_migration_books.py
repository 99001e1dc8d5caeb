"""Migration 0006_books on SQLite and PostgreSQL: up from 0005_ops, the table and its index,
the tap's idempotent insert, the read side's queries (including the bucketed downsampling done
in SQL), and down again leaving the rest of the schema alone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from lyra.feeds.book_tap import BookTap, record_book_capture
from lyra.readside import ReadModel
from lyra.store import create_engine_for, current_revision, downgrade, upgrade

CAPTURE = Path(__file__).resolve().parents[3] / "data" / "orderbook" / "kraken_BTC-CHF_l2.csv.gz"
IID = "kraken:BTC/CHF"


def test_0006_up_and_down_from_0005(db_url):
    eng = create_engine_for(db_url)
    try:
        upgrade(eng, "0005_ops")
        assert "book_snapshots" not in sa.inspect(eng).get_table_names()
        upgrade(eng, "0006_books")
        assert current_revision(eng) == "0006_books"
        insp = sa.inspect(eng)
        cols = {c["name"] for c in insp.get_columns("book_snapshots")}
        assert {"session_id", "instrument_id", "ts", "bids", "asks", "best_bid", "best_ask", "mid", "spread_bps",
                "bid_depth_10bps", "ask_depth_10bps", "bid_depth_50bps", "ask_depth_50bps"} <= cols
        assert insp.get_pk_constraint("book_snapshots")["constrained_columns"] == ["session_id", "instrument_id", "ts"]
        assert [ix["column_names"] for ix in insp.get_indexes("book_snapshots")] == [["instrument_id", "ts"]]
        r = record_book_capture(eng, CAPTURE, IID, checksum_decimals=(5, 8), every_ms=0)
        again = record_book_capture(eng, CAPTURE, IID, checksum_decimals=(5, 8), every_ms=0)
        assert again.recorded == r.recorded == 266  # ON CONFLICT DO NOTHING on both databases
        with eng.connect() as c:
            assert c.execute(sa.text("SELECT count(*) FROM book_snapshots")).scalar() == 266
        downgrade(eng, "0005_ops")
        tables = set(sa.inspect(eng).get_table_names())
        assert "book_snapshots" not in tables and {"events", "runs", "sessions"} <= tables
        assert current_revision(eng) == "0005_ops"
    finally:
        eng.dispose()


def test_read_side_on_both_databases(engine):
    record_book_capture(engine, CAPTURE, IID, checksum_decimals=(5, 8), every_ms=0)
    rm = ReadModel(engine)
    assert rm.book_instruments() == [IID]
    with engine.connect() as c:
        raw = pd.DataFrame(c.execute(sa.text(
            "SELECT ts, mid, spread_bps, bid_depth_50bps FROM book_snapshots ORDER BY ts")).all(),
            columns=["ts", "mid", "spread_bps", "bid_depth_50bps"])
    latest = rm.book(IID)
    assert latest is not None and latest.ts == raw["ts"].max()
    mid_ts = int(raw["ts"].iloc[100])
    at = rm.book(IID, at_ts=mid_ts + 1)  # at or before: the row at mid_ts
    assert at is not None and at.ts == mid_ts
    assert rm.book(IID, at_ts=int(raw["ts"].min()) - 1) is None
    assert rm.book("nope:X/Y") is None
    full = rm.spread_depth(IID)
    assert full["ts"].tolist() == raw["ts"].tolist() and full["snapshots"].eq(1).all()
    # Downsampled in SQL into 10 equal time buckets: compare with pandas on the raw rows.
    lo, hi = int(raw["ts"].min()), int(raw["ts"].max())
    width = -(-(hi - lo + 1) // 10)
    ref = raw.groupby((raw["ts"] - lo) // width).agg(
        ts=("ts", "min"), spread=("spread_bps", "mean"), widest=("spread_bps", "max"),
        depth=("bid_depth_50bps", "mean"), n=("ts", "size"))
    small = rm.spread_depth(IID, max_points=10)
    assert len(small) <= 10 and small["snapshots"].sum() == len(raw)
    assert small["ts"].tolist() == ref["ts"].tolist()
    np.testing.assert_allclose(small["spread_bps"], ref["spread"], rtol=1e-12)
    np.testing.assert_allclose(small["spread_bps_max"], ref["widest"], rtol=1e-12)
    np.testing.assert_allclose(small["bid_depth_50bps"], ref["depth"], rtol=1e-12)
    window = rm.spread_depth(IID, start=int(raw["ts"].iloc[10]), end=int(raw["ts"].iloc[20]))
    assert window["ts"].tolist() == raw["ts"].iloc[10:21].tolist()
    assert rm.spread_depth("nope:X/Y").empty
    with pytest.raises(ValueError, match="max_points"):
        rm.spread_depth(IID, max_points=1)


def test_a_session_tap_and_the_shared_capture_live_side_by_side(engine):
    from lyra.feeds.book_tap import replay_l2_capture

    snaps = list(replay_l2_capture(CAPTURE, IID, checksum_decimals=(5, 8), levels=25))
    with BookTap(snaps[:50], engine, session_id="s1", every_ms=0) as tap:
        list(tap)
    record_book_capture(engine, CAPTURE, IID, checksum_decimals=(5, 8))
    rm = ReadModel(engine)
    s1 = rm.book(IID, session_id="s1")
    assert s1 is not None and s1.ts == snaps[49].ts
    assert rm.book(IID).ts == snaps[-1].ts  # any session: the newest
    assert set(rm.spread_depth(IID, session_id="s1")["ts"]) == {s.ts for s in snaps[:50]}
