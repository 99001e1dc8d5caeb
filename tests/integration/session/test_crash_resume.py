"""Crash safety: SIGKILL a running paper session (a real subprocess) 20 times at random
moments, resume it each time, and compare with an uninterrupted run."""

from __future__ import annotations

import collections
import os
import random
import signal
import subprocess
import sys
import time

import pytest

from lyra.audit import read_tables, replay, state_as_rows, verify
from lyra.audit.log import EventLog
from lyra.session.factory import open_session
from lyra.session.registry import SessionRegistry
from lyra.testing.sessions import demo_config

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

CONFIG_TOML = """
session_id = "crash"
mode = "paper"
strategy = "sma_cross"
venue = "coinbase"
symbols = ["BTC/USD"]
timeframe = "1h"
end = "2018-03-01"
quantity = "0.1"
speed = 3600000.0
slippage_bps = "2"
[params]
fast = 10
slow = 30
[balances]
USD = "10000"
[instruments."BTC/USD"]
price_increment = "0.01"
size_increment = "0.00000001"
min_notional = "1"
maker_fee = "0.004"
taker_fee = "0.006"
"""


def _lyra(args, env):
    return subprocess.Popen([sys.executable, "-m", "lyra.cli", *args], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_twenty_sigkills_lose_nothing_and_duplicate_nothing(session_home, tmp_path):
    h = session_home
    env = dict(h["env"])
    cfg_path = tmp_path / "crash.toml"
    cfg_path.write_text(CONFIG_TOML)
    rng = random.Random(20261127)
    kills = 0
    proc = _lyra(["session", "start", "--config", str(cfg_path), "--quiet"], env)
    while kills < 20:
        time.sleep(rng.uniform(1.2, 3.0))  # startup is ~1 s: most kills land mid-run
        if proc.poll() is not None:
            break  # finished before we could kill it again
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()  # waits, and closes its stderr pipe
        kills += 1
        registered = SessionRegistry(h["engine"]).get("crash") is not None
        # Killed before it even registered: the operator starts it again.
        args = ["resume", "crash"] if registered else ["start", "--config", str(cfg_path)]
        proc = _lyra(["session", *args, "--quiet"], env)
    out = proc.communicate(timeout=300)[1].decode()
    assert proc.returncode == 0, out
    assert kills >= 10, f"only {kills} kills landed before the session finished"

    log = EventLog(h["engine"])
    entries = list(log.read(session_id="crash"))
    created = collections.Counter(e.data()["client_order_id"] for e in entries if e.kind == "order.created")
    submitted = collections.Counter(e.data()["client_order_id"] for e in entries if e.kind == "order.submit")
    fill_ids = [e.data()["fill"]["fill_id"] for e in entries if e.kind in ("order.fill", "order.partial_fill")]
    assert max(created.values()) == 1, "an order was created twice"
    assert max(submitted.values()) == 1, "an order was sent twice"
    assert len(fill_ids) == len(set(fill_ids)), "a fill was recorded twice"
    assert sum(1 for e in entries if e.kind == "session.finished") == 1

    # The same config run uninterrupted in this process (as a backtest) gives the same fills.
    ref_cfg = demo_config(session_id="crash-ref", end="2018-03-01", mode="backtest")
    ref = open_session(ref_cfg, engine=h["engine"], market_dir=h["home"] / "market",
                       jsonl_path=h["home"] / "audit" / "events.jsonl")
    ref_result = ref.run()
    ref_fills = [(f.ts, f.side, f.quantity, f.price, f.fee) for _, f in ref.ledger.state.fills]
    got = replay(e for e in log.read(session_id="crash"))
    got_fills = [(f.ts, f.side, f.quantity, f.price, f.fee) for _, f in got.fills]
    assert got_fills == ref_fills
    assert len(got_fills) == ref_result.fills > 50
    # Final positions: the projection tables equal a replay of the log and the reference.
    with h["engine"].connect() as c:
        live = read_tables(c, "crash")
    rows = state_as_rows(got)
    assert [p["quantity"] for p in live["positions"]] == [p["quantity"] for p in rows["positions"]]
    assert rows["positions"][0]["quantity"] == ref_result.positions["coinbase:BTC/USD"]
    assert verify(h["engine"], h["home"] / "audit" / "events.jsonl").ok
