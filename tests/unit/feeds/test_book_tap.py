"""BookTap and the L2 capture replay, on the shipped Kraken BTC/CHF book-1000 capture
(data/orderbook/kraken_BTC-CHF_l2.csv.gz) and a real SQLite database: events pass through
untouched, snapshots are throttled per instrument, a failing batch writes nothing, and the
stored spread/depth figures equal a hand computation."""

from __future__ import annotations

import gzip
import itertools
import json
import logging
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

from lyra.core.errors import IntegrityError, ValidationError
from lyra.core.market import Bar, OrderBookSnapshot
from lyra.feeds.book_tap import (
    BookTap,
    book_figures,
    level_text,
    record_book_capture,
    record_sample_books,
    replay_l2_capture,
)
from lyra.feeds.orderbook import OrderBook, apply_kraken_v1
from lyra.store import create_engine_for, upgrade
from lyra.store.tables_market import book_snapshots

REPO = Path(__file__).resolve().parents[3]
CAPTURE = REPO / "data" / "orderbook" / "kraken_BTC-CHF_l2.csv.gz"
RAW = REPO / "tests" / "fixtures" / "orderbook" / "kraken_XBT-CHF_book1000_ws_2021-04-17.json.gz"
IID = "kraken:BTC/CHF"


@pytest.fixture(scope="module")
def snaps() -> list[OrderBookSnapshot]:
    """The book after each of the capture's 290 messages (checksums verified on the way)."""
    return list(replay_l2_capture(CAPTURE, IID, checksum_decimals=(5, 8)))


@pytest.fixture
def db(tmp_path):
    eng = create_engine_for(f"sqlite:///{tmp_path / 'lyra.db'}")
    upgrade(eng)
    yield eng
    eng.dispose()


def _rows(eng) -> pd.DataFrame:
    with eng.connect() as c:
        return pd.DataFrame(c.execute(sa.select(book_snapshots).order_by(book_snapshots.c.ts)).mappings().all())


def test_capture_replay_equals_the_raw_messages_and_verifies_every_checksum(snaps):
    assert len(snaps) == 290  # 1 snapshot + 289 updates (data/README.md)
    stats: dict[str, int] = {}
    assert sum(1 for _ in replay_l2_capture(CAPTURE, IID, checksum_decimals=(5, 8), stats=stats)) == 290
    assert stats == {"messages": 290, "checksums": 289}
    # Independent reference: the original websocket messages through apply_kraken_v1.
    book = OrderBook("ref", depth=1000)
    for m in json.loads(gzip.decompress(RAW.read_bytes())):
        apply_kraken_v1(book, m["msg"])
    last = snaps[-1]
    assert {lv.price: lv.size for lv in last.bids} == book.bids
    assert {lv.price: lv.size for lv in last.asks} == book.asks
    assert [s.ts for s in snaps] == sorted(s.ts for s in snaps)


def test_a_corrupted_capture_fails_its_checksum(tmp_path):
    frame = pd.read_csv(CAPTURE)
    # one satoshi more at the opening book's best bid: the first update's checksum must fail
    i = frame.index[frame["is_snapshot"] & (frame["side"] == "bid") & (frame["price"] == 56119.0)][0]
    frame.loc[i, "size"] += 1e-8
    bad = tmp_path / "bad_l2.csv.gz"
    frame.to_csv(bad, index=False)
    with pytest.raises(IntegrityError, match="checksum mismatch after message 2 "):
        list(replay_l2_capture(bad, IID, checksum_decimals=(5, 8), levels=1))
    assert len(list(replay_l2_capture(bad, IID, verify_checksums=False, levels=1))) == 290
    with pytest.raises(ValidationError, match="checksum_decimals"):
        list(replay_l2_capture(CAPTURE, IID))


def test_figures_equal_a_hand_computation_on_the_first_snapshot(snaps, db):
    first = snaps[0]
    # The capture's opening book (ts 1618678133150), top levels read off the CSV:
    #   bids 56119.0 x 0.14375128, 56097.8 x 0.0588785, 56097.7 x 0.017, 56081.9 x 0.01071,
    #        56059.9 x 0.02674, 56056.7 x 0.00908, 56043.6 x 0.15, 56033.8 x 0.0084,
    #        55978.5 x 0.01022, 55924.2 x 0.1709, 55924.1 x 0.00035, next 55875.3 ...
    #   asks 56218.3 x 0.15, 56218.4 x 0.0297, 56250.6 x 0.01308, 56277.6 x 0.04267101,
    #        56277.7 x 0.00928, 56313.2 x 0.1709, 56316.5 x 0.01046, next 56474.6 ...
    # mid = (56119.0 + 56218.3) / 2 = 56168.65; spread 99.3 = 17.678901 bps of the mid.
    # 10 bps: bids >= 56112.48135 -> 0.14375128; asks <= 56224.81865 -> 0.15 + 0.0297 = 0.1797
    # 50 bps: bids >= 55887.80675 -> the eleven bids above = 0.60602978;
    #         asks <= 56449.49325 -> the seven asks above = 0.42609101
    want = {"best_bid": 56119.0, "best_ask": 56218.3, "mid": 56168.65, "spread_bps": 99.3 / 56168.65 * 1e4,
            "bid_depth_10bps": 0.14375128, "ask_depth_10bps": 0.1797,
            "bid_depth_50bps": 0.60602978, "ask_depth_50bps": 0.42609101}
    assert first.ts == 1618678133150
    assert book_figures(first) == pytest.approx(want, abs=1e-9)
    assert round(want["spread_bps"], 6) == 17.678901
    with BookTap([first], db, depth=5) as tap:
        assert list(tap) == [first]
    row = _rows(db).iloc[0]
    assert row[list(want)].astype(float).to_dict() == pytest.approx(want, abs=1e-9)
    assert json.loads(row["bids"]) == [["56119", "0.14375128"], ["56097.8", "0.0588785"], ["56097.7", "0.017"],
                                       ["56081.9", "0.01071"], ["56059.9", "0.02674"]]
    assert json.loads(row["asks"])[0] == ["56218.3", "0.15"]
    assert (row["session_id"], row["instrument_id"], row["ts"]) == ("", IID, 1618678133150)
    # A capture replayed with a few levels per side keeps every level of the 50 bps band:
    # the same figures as from the whole book, for every message.
    short = list(replay_l2_capture(CAPTURE, IID, checksum_decimals=(5, 8), levels=5))
    assert max(len(s.bids) for s in short) < 40 < min(len(s.bids) for s in snaps)
    assert [book_figures(s) for s in short] == [book_figures(s) for s in snaps]


def test_events_pass_through_unchanged_and_in_order(snaps, db):
    bars = [Bar(IID, "1m", s.ts, 1.0, 2.0, 0.5, 1.5, 3.0) for s in snaps[::7]]
    stream = sorted([*snaps, *bars], key=lambda e: (e.ts, isinstance(e, Bar)))
    tap = BookTap(iter(stream), db, every_ms=1000, batch_size=4)
    out = list(tap)
    assert len(out) == len(stream) and all(a is b for a, b in zip(out, stream, strict=True))
    assert tap.stats.events == len(stream) and tap.stats.books == len(snaps)
    assert tap.stats.recorded == len(_rows(db)) == tap.stats.books - tap.stats.throttled
    # batches of 4, the last one at the end (with the final book: up to 5)
    assert tap.stats.recorded // 4 <= tap.stats.batches <= -(-tap.stats.recorded // 4)
    assert _rows(db)["ts"].iloc[-1] == snaps[-1].ts


def test_throttling_keeps_one_snapshot_per_interval_per_instrument(snaps, db):
    other = [replace(s, instrument_id="kraken:BTC/CHF-copy", ts=s.ts + 370) for s in snaps]
    stream = sorted([*snaps, *other], key=lambda e: e.ts)
    with BookTap(stream, db, every_ms=1000) as tap:
        for _ in tap:
            pass
    rows = _rows(db)
    for iid, src in ((IID, snaps), ("kraken:BTC/CHF-copy", other)):
        kept = rows.loc[rows["instrument_id"] == iid, "ts"].tolist()
        # Brute-force reference: walk the instrument's own times, keep the first one at
        # least 1000 ms after the last kept.
        ref: list[int] = []
        for s in src:
            if not ref or s.ts >= ref[-1] + 1000:
                ref.append(s.ts)
        assert src[-1].ts > ref[-1]  # ... and, at the end of the stream, the final book
        assert kept == [*ref, src[-1].ts]
        kept = kept[:-1]
        assert all(b - a >= 1000 for a, b in itertools.pairwise(kept))
        # and every second of the capture that has a snapshot has one kept
        assert len(kept) >= (src[-1].ts - src[0].ts) // 1000 // 2
    # every_ms=0 keeps each snapshot with a new time (several messages share a millisecond)
    with BookTap(snaps, db, every_ms=0, session_id="all") as tap:
        list(tap)
    assert tap.stats.recorded == len({s.ts for s in snaps}) == 266


def test_a_failing_batch_writes_nothing(snaps, db, caplog):
    # A real database failure in the middle of a batch: a trigger that refuses one row.
    poisoned = snaps[5].ts
    with db.begin() as c:
        c.execute(sa.text(f"CREATE TRIGGER refuse BEFORE INSERT ON book_snapshots WHEN NEW.ts = {poisoned} "
                          "BEGIN SELECT RAISE(ABORT, 'refused by test trigger'); END"))
    stream = snaps[:9]  # batches of 3 (every_ms=0): [0,1,2] [3,4,5] [6,7,8]
    tap = BookTap(iter(stream), db, every_ms=0, batch_size=3)
    seen = []
    with pytest.raises(sa.exc.DatabaseError, match="refused by test trigger"):
        for e in tap:
            seen.append(e)
    assert _rows(db)["ts"].tolist() == [s.ts for s in stream[:3]]  # none of batch 2, not even rows 3, 4
    assert tap.stats.lost == 3 and tap.stats.recorded == 3
    seen += list(tap)  # the stream goes on; no event was swallowed by the failed write
    assert [e.ts for e in seen] == [s.ts for s in stream]
    assert _rows(db)["ts"].tolist() == [s.ts for s in stream[:3] + stream[6:]]
    # on_error="log": the failed batch is dropped and logged, the stream never stops
    with (caplog.at_level(logging.ERROR, logger="lyra.feeds.book_tap"),
          BookTap(iter(stream), db, every_ms=0, batch_size=3, session_id="s2", on_error="log") as t2):
        assert len(list(t2)) == 9
    assert t2.stats.lost == 3 and "could not be written" in caplog.text
    with db.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM book_snapshots WHERE session_id = 's2'")).scalar() == 6


def test_record_capture_is_idempotent_and_the_sample_loader_runs_once(db):
    r = record_book_capture(db, CAPTURE, IID, checksum_decimals=(5, 8), every_ms=250)
    assert (r.messages, r.checksums_verified) == (290, 289)
    assert (r.first_ts, r.last_ts) == (1618678133150, 1618678163327)
    n = len(_rows(db))
    assert n == r.recorded == 61  # one per 250 ms, plus the final book
    record_book_capture(db, CAPTURE, IID, checksum_decimals=(5, 8), every_ms=250)
    assert len(_rows(db)) == n  # same keys: nothing added, no error
    assert record_sample_books(db, REPO / "data") == []  # already recorded as (session '', kraken:BTC/CHF)


def test_sample_loader_records_the_shipped_capture(db):
    done = record_sample_books(db, REPO / "data")
    assert [(d.instrument_id, d.checksums_verified) for d in done] == [(IID, 289)]
    assert len(_rows(db)) == done[0].recorded > 50


def test_bad_settings_are_refused(db):
    for kw in ({"every_ms": -1}, {"depth": 0}, {"batch_size": 0}, {"on_error": "ignore"}):
        with pytest.raises(ValidationError):
            BookTap([], db, **kw)


def test_level_text_is_exact_and_positional():
    assert [level_text(x) for x in (56119.0, 0.14375128, 1e-05, 0.1 + 0.2)] == [
        "56119", "0.14375128", "0.00001", "0.30000000000000004"]
