"""The kill switch across two live paper sessions (separate processes, one database): both
stop, no order is left open, the halted state survives a restart until re-armed."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from lyra.session.registry import SessionRegistry

CONFIG = """
session_id = "{sid}"
mode = "paper"
strategy = "sma_cross"
venue = "coinbase"
symbols = ["BTC/USD"]
timeframe = "1h"
end = "2018-01-15"
quantity = "0.01"
speed = 1440000.0
latency_ms = 10800000
[params]
fast = 2
slow = 5
[balances]
USD = "100000"
[instruments."BTC/USD"]
price_increment = "0.01"
size_increment = "0.00000001"
min_notional = "1"
maker_fee = "0.004"
taker_fee = "0.006"
"""


def lyra(args, env, **kw):
    return subprocess.run([sys.executable, "-m", "lyra.cli", *args], env=env, capture_output=True,
                          text=True, timeout=300, **kw)


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_kill_all_stops_both_sessions_and_survives_restart(session_home, tmp_path):
    h = session_home
    env = h["env"]
    procs = {}
    for sid in ("alpha", "beta"):
        cfg = tmp_path / f"{sid}.toml"
        cfg.write_text(CONFIG.format(sid=sid))
        procs[sid] = subprocess.Popen([sys.executable, "-m", "lyra.cli", "session", "start", "--config",
                                       str(cfg), "--quiet"], env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True)
    reg = SessionRegistry(h["engine"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # both running and trading
        rows = [reg.get(s) for s in procs]
        if all(r is not None and r["status"] == "running" and r["events_processed"] > 2000 for r in rows):
            break
        time.sleep(0.2)
    else:
        pytest.fail(f"sessions did not start: {[reg.get(s) for s in procs]}")
    t_kill = time.monotonic()
    r = lyra(["kill", "--all", "--flatten", "--actor", "tester", "--reason", "drill"], env)
    assert r.returncode == 0, r.stderr
    for p in procs.values():
        out, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
        assert "stopped" in out
    assert time.monotonic() - t_kill < 30
    with h["engine"].connect() as c:
        open_orders = c.execute(sa.text(
            "SELECT count(*) FROM orders WHERE status IN ('submitted','accepted','partially_filled',"
            "'pending_cancel','unknown')")).scalar()
        kinds = {sid: [k for (k,) in c.execute(sa.text(
            "SELECT kind FROM events WHERE session_id = :s ORDER BY seq"), {"s": sid})] for sid in procs}
        positions = dict(c.execute(sa.text("SELECT session_id, quantity FROM positions")).all())
    assert open_orders == 0
    for sid in procs:
        assert "session.kill" in kinds[sid]
        assert "risk.kill_ack" in kinds[sid]
        assert kinds[sid][-1] == "session.stopped"
        assert float(positions.get(sid, 0)) == 0.0  # flattened
    # Halted survives a restart: a resumed session re-verifies, then every new order is denied.
    r = lyra(["session", "resume", "alpha", "--quiet"], env)
    assert r.returncode == 0, r.stderr
    with h["engine"].connect() as c:
        after = [row for row in c.execute(sa.text(
            "SELECT payload FROM events WHERE session_id = 'alpha' AND kind = 'risk.decision' "
            "ORDER BY seq DESC LIMIT 5"))]
    assert after
    assert all('"approved":false' in p for (p,) in after)
    assert all("halted" in p for (p,) in after)
    # Only a role allowed to may re-arm.
    r = lyra(["risk", "rearm", "--actor", "bob", "--role", "viewer", "--all"], env)
    assert r.returncode != 0
    r = lyra(["risk", "rearm", "--actor", "carol", "--role", "risk_manager", "--all"], env)
    assert r.returncode == 0, r.stderr
