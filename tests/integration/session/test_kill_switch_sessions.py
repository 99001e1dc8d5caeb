"""The kill switch across two live paper sessions (separate processes, one database): both
stop, no order is left open, the halted state survives a restart until re-armed.

Nothing here depends on how fast the machine is: the sessions replay ~20,000 hourly bars at
3.6 ms each (~70 s, far longer than either needs to start), every wait is on a condition with
a generous deadline, and the resumed session is stopped once it has shown what it must."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from lyra.session.registry import SessionRegistry
from lyra.testing.sessions import lyra_cli, paced_toml, session_process, wait_for


def config_toml(sid: str) -> str:
    """Paced paper sessions whose orders reach the paper venue 10 minutes of data after they
    are sent (``latency_ms``): filled at the next hourly bar."""
    return paced_toml(sid, speed=1_000_000.0, extra={"latency_ms": 600_000})


def lyra(args, env):
    return lyra_cli(args, env)


def start(args, env):
    return session_process(env, *args)


def wait_until(pred, what, procs, timeout=180.0):
    """``pred()`` until it holds; fails after ``timeout`` s, or once one of ``procs`` exited."""
    return wait_for(pred, timeout, what, every=0.1, procs=procs)


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
        cfg.write_text(config_toml(sid))
        procs[sid] = start(["start", "--config", str(cfg)], env)
    reg = SessionRegistry(h["engine"])

    def trading(sid):  # running, and past its first heartbeat (1,024 bars: it has traded)
        r = reg.get(sid)
        return r is not None and r["status"] == "running" and r["events_processed"] >= 1024

    wait_until(lambda: all(trading(s) for s in procs), "both sessions running", procs.values())
    r = lyra(["kill", "--all", "--flatten", "--local-admin", "--reason", "drill"], env)
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
    r = lyra(["risk", "rearm", "--all"], env)  # nobody authenticated: refused
    assert r.returncode == 3 and "say who you are" in " ".join(r.stderr.split()), r.stderr
    r = lyra(["risk", "rearm", "--all", "--local-admin"], env)  # the OS owner of LYRA_HOME (admin)
    assert r.returncode == 0, r.stderr
