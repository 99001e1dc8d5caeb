"""The demo's paced multi-asset session: started in its own process through the `lyra` CLI,
moving while the dashboards serve, stopped cleanly, and resumed where it stopped next time."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from rich.console import Console

from lyra.audit.verify import verify
from lyra.demo import LIVE_DEMO_SESSION, live_demo_session_id, start_live_demo, stop_live_demo
from lyra.feeds.importer import import_file
from lyra.feeds.store import MarketStore
from lyra.session.lease import session_statuses
from lyra.session.registry import SessionRegistry

REPO = Path(__file__).resolve().parents[3]
pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def _row(engine, sid):
    return SessionRegistry(engine).get(sid)


def _wait_events(engine, sid, more_than: int, deadline_s: float = 180.0) -> int:
    """Wait (on the condition, generously) until the session has processed more events."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        row = _row(engine, sid)
        if row is not None and int(row["events_processed"]) > more_than:
            return int(row["events_processed"])
        time.sleep(0.2)
    raise AssertionError(f"{sid} processed no more than {more_than} events in {deadline_s} s")


def test_paced_demo_session_moves_stops_cleanly_and_resumes(session_home):
    engine, home = session_home["engine"], session_home["home"]
    for f in sorted((REPO / "data" / "ohlcv").glob("bitstamp_*_1d.csv.gz")):
        import_file(f, store=MarketStore(home / "market"))
    console = Console(record=True, width=200)
    assert live_demo_session_id(engine) == ("demo-live-1", False)

    proc = start_live_demo(console, env=session_home["env"])
    try:
        first = _wait_events(engine, "demo-live-1", 2)
    finally:
        stop_live_demo(proc)
    assert proc.returncode == 0
    row = _row(engine, "demo-live-1")
    assert session_statuses(engine, [row])["demo-live-1"] == "stopped"
    assert int(row["events_processed"]) >= first
    cfg = __import__("json").loads(row["config"])
    assert cfg["symbols"] == LIVE_DEMO_SESSION["symbols"] and cfg["speed"] == LIVE_DEMO_SESSION["speed"]

    # The next demo resumes the stopped session where it stopped, rather than starting over.
    assert live_demo_session_id(engine) == ("demo-live-1", True)
    before = int(row["events_processed"])
    proc = start_live_demo(console, env=session_home["env"])
    try:
        _wait_events(engine, "demo-live-1", before)
    finally:
        stop_live_demo(proc)
    assert proc.returncode == 0
    assert "resumed" in console.export_text()
    report = verify(engine, home / "audit" / "events.jsonl")
    assert report.ok, report.first_bad
