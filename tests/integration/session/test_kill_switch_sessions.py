"""The kill switch across two live paper sessions (separate processes, one database): both
stop, no order is left open, the halted state survives a restart until re-armed.

Nothing here depends on how fast the machine is: the sessions replay ~20,000 hourly bars at
2.5 ms each (~50 s, far longer than either needs to start), every wait is on a condition with
a generous deadline, and the resumed session is stopped once it has shown what it must."""

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


def start(args, env):
    return subprocess.Popen([sys.executable, "-m", "lyra.cli", "session", *args, "--quiet"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_until(pred, what, procs, timeout=180.0):
    """Poll ``pred()`` until it holds (returns at once then); fail after ``timeout`` s, or as
    soon as one of ``procs`` has exited."""
    deadline = time.monotonic() + timeout
    while not pred():
        for p in procs:
            if p.poll() is not None:
                out, err = p.communicate()
                pytest.fail(f"{what}: a session exited with {p.returncode}: {out[-2000:]} {err[-2000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)  # poll interval


def decisions_after(engine, sid, seq):
    with engine.connect() as c:
        return [p for (p,) in c.execute(sa.text(
            "SELECT payload FROM events WHERE session_id = :s AND kind = 'risk.decision' AND seq > :q "
            "ORDER BY seq"), {"s": sid, "q": seq})]


@pytest.mark.parametrize("db_url", ["sqlite", "postgresql"], indirect=True)
def test_kill_all_stops_both_sessions_and_survives_restart(session_home, tmp_path):
    h = session_home
    env = h["env"]
    procs = {}
    for sid in ("alpha", "beta"):
        cfg = tmp_path / f"{sid}.toml"
        cfg.write_text(CONFIG.format(sid=sid))
        procs[sid] = start(["start", "--config", str(cfg)], env)
    reg = SessionRegistry(h["engine"])

    def trading(sid):  # running, and past its first heartbeat (1,024 bars: it has traded)
        r = reg.get(sid)
        return r is not None and r["status"] == "running" and r["events_processed"] >= 1024

    wait_until(lambda: all(trading(s) for s in procs), "both sessions running", procs.values())
    r = lyra(["kill", "--all", "--flatten", "--actor", "tester", "--reason", "drill"], env)
    assert r.returncode == 0, r.stderr
    t_kill = time.monotonic()  # recorded: the sessions see it at their next heartbeat
    for p in procs.values():
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert "stopped" in out
    assert time.monotonic() - t_kill < 30  # (about a second unloaded)
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
    with h["engine"].connect() as c:
        last_seq = c.execute(sa.text("SELECT max(seq) FROM events")).scalar()
    resumed = start(["resume", "alpha"], env)
    wait_until(lambda: len(decisions_after(h["engine"], "alpha", last_seq)) >= 5,
               "new orders after the resume", [resumed])
    assert reg.request_stop("alpha")  # it has shown it; the rest of its data would say the same
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    assert "stopped" in out
    after = decisions_after(h["engine"], "alpha", last_seq)
    assert len(after) >= 5
    assert all('"approved":false' in p and "halted" in p for p in after)
    # Only a role allowed to may re-arm.
    r = lyra(["risk", "rearm", "--actor", "bob", "--role", "viewer", "--all"], env)
    assert r.returncode != 0
    r = lyra(["risk", "rearm", "--actor", "carol", "--role", "risk_manager", "--all"], env)
    assert r.returncode == 0, r.stderr
