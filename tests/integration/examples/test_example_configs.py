"""The shipped example session configs (examples/*.toml) run on the shipped data, as a user
would start them; the README and examples/README.md name every one of them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lyra.audit.verify import verify
from lyra.facade import load_bars
from lyra.feeds.importer import import_file
from lyra.feeds.store import MarketStore
from lyra.session.cli import run_session
from lyra.session.config import load_session_config

REPO = Path(__file__).resolve().parents[3]
EXAMPLES = sorted((REPO / "examples").glob("*.toml"))


def _stored_events(cfg, market_dir: Path) -> int:
    """Bars the session must replay: every stored bar of its symbols in [start, end)."""
    return sum(len(load_bars(cfg.venue, s, cfg.timeframe, cfg.start, cfg.end, source="store",
                             market_dir=market_dir)) for s in cfg.symbols)


def test_every_example_is_documented():
    assert len(EXAMPLES) >= 3
    index = (REPO / "examples" / "README.md").read_text()
    for path in EXAMPLES:
        assert f"`{path.name}`" in index, path.name
    assert "examples/" in (REPO / "README.md").read_text()


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs_to_the_end_of_its_data(path: Path, session_home):
    market = session_home["home"] / "market"
    for f in sorted((REPO / "data" / "ohlcv").glob("bitstamp_*_1d.csv.gz")):
        import_file(f, store=MarketStore(market))
    # Unpaced here (a paced example would take an hour of wall time): same market, same orders.
    cfg = load_session_config(path, speed=None)
    result = run_session(cfg, quiet=True)
    assert not result.stopped
    assert result.events == _stored_events(cfg, market) > 0
    assert result.orders > 0 and result.fills > 0, (result.orders, result.fills, result.denied)
    assert set(result.positions) == {f"{cfg.venue}:{s}" for s in cfg.symbols}
    report = verify(session_home["engine"], session_home["home"] / "audit" / "events.jsonl")
    assert report.ok, report.first_bad


@pytest.mark.subprocess
def test_paced_example_starts_through_the_real_entry_point(session_home):
    """`lyra session start --config examples/...` as the README says (unpaced and shortened
    with --set, so it ends in seconds)."""
    path = REPO / "examples" / "paced_btc_usd_watch.toml"
    proc = subprocess.run(
        [sys.executable, "-m", "lyra.cli", "session", "start", "--config", str(path), "--quiet",
         "--set", "speed=null", "--set", 'end="2019-07-01T00:00:00Z"'],
        env=session_home["env"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "session paced-btc" in proc.stdout and "finished" in proc.stdout
    cfg = load_session_config(path, speed=None, end="2019-07-01T00:00:00Z")
    events = _stored_events(cfg, session_home["home"] / "market")
    assert f"{events:,}" in proc.stdout
