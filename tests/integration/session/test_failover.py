"""Failover of a running session to a standby (``lyra session standby``), with real processes:
the owner of a paced paper session is SIGKILLed (or SIGSTOPped, then continued) while a standby
waits on its lease; the standby takes over under a new epoch, records ``session.failover`` and
resumes from the log; the final log has no order twice and equals an uninterrupted run; a
paused owner that wakes up writes nothing and exits. Takeover times are recorded, not asserted
(benchmarks/bench_failover.py measures them)."""

from __future__ import annotations

import collections
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog, canonical_json, parse_event, replay, verify
from lyra.session.config import load_session_config
from lyra.session.factory import open_session
from lyra.session.lease import SessionLease, read_lease
from lyra.session.recorder import is_operational
from lyra.session.registry import SessionRegistry
from lyra.store.tables import events
from lyra.testing.sessions import SessionProcesses, demo_config, paced_toml, wait_for

# Several `lyra` processes per test: ~2 min on a 2-core machine at load 10 (the 300 s default
# is too tight there); every wait inside has its own deadline.
pytestmark = [pytest.mark.subprocess, pytest.mark.slow, pytest.mark.timeout(900)]

HOST = socket.gethostname()
#: 25 hourly bars a second (a paced paper session a person could watch), a 2 s lease so that a
#: paused owner is replaced within the test. The data runs for a month; each drill stops the
#: session once the standby has traded on past the takeover (a standby process takes several
#: seconds to start on a loaded machine: a run short enough to finish would end before it).
DRILL = {"speed": 90_000.0, "start": "2017-07-02", "end": "2017-08-15", "fast": 2, "slow": 5,
         "extra": {"lease_s": 2.0}}


def _orders(engine: Any, sid: str) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.session_id == sid, events.c.kind == "order.created")).scalar_one())


def _failovers(engine: Any, sid: str) -> list[dict[str, Any]]:
    out = []
    for r in EventLog(engine).read(session_id=sid, kinds=("session.failover",)):
        # the catalogue's type reads it strictly and writes it back byte for byte
        assert canonical_json(parse_event(r.kind, r.payload).to_payload()) == r.payload
        out.append({**r.data(), "ts": r.ts})
    return out


def _stream(engine: Any, sid: str) -> list[tuple[str, int, str]]:
    """The session's own deterministic entries, its id replaced (to compare runs)."""
    return [(r.kind, r.ts, r.payload.replace(sid, "SID")) for r in EventLog(engine).read(session_id=sid)
            if not is_operational(r.kind) and r.kind not in ("session.started", "session.finished")]


def _reference(h: dict[str, Any], cfg_path: Path, sid: str, events_n: int
               ) -> tuple[list[tuple[str, int, str]], Any]:
    """The same config run uninterrupted over the same ``events_n`` events, in this process, as
    a backtest (same data, same broker model): its stream and its result."""
    ref_id = f"ref{sid}"
    cfg = load_session_config(cfg_path, session_id=ref_id, mode="backtest")
    s = open_session(cfg, engine=h["engine"], market_dir=h["home"] / "market",
                     jsonl_path=h["home"] / "audit" / "events.jsonl")
    result = s.run(max_events=events_n)
    assert result.events == events_n
    return _stream(h["engine"], ref_id), result


def _check_final_log(h: dict[str, Any], sid: str, cfg_path: Path) -> None:
    """No order created, sent or filled twice; the log is the uninterrupted run's, entry for
    entry, up to where the standby was stopped; the chain verifies."""
    eng = h["engine"]
    row = SessionRegistry(eng).get(sid)
    assert row["status"] == "stopped"
    ref, ref_result = _reference(h, cfg_path, sid, int(row["events_processed"]))
    log = list(EventLog(eng).read(session_id=sid))
    created = collections.Counter(e.data()["client_order_id"] for e in log if e.kind == "order.created")
    submitted = collections.Counter(e.data()["client_order_id"] for e in log if e.kind == "order.submit")
    fills = [e.data()["fill"]["fill_id"] for e in log if e.kind in ("order.fill", "order.partial_fill")]
    assert created and max(created.values()) == 1, "a client order id was created twice"
    assert max(submitted.values()) == 1, "an order was sent twice"
    assert len(fills) == len(set(fills)) > 0, "a fill was recorded twice"
    assert sum(1 for e in log if e.kind == "session.started") == 1
    assert [e.kind for e in log if e.kind in ("session.finished", "session.stopped")] == ["session.stopped"]
    # Entry for entry (orders, risk decisions, fills, equity snapshots): the uninterrupted run,
    # which adds only its closing equity snapshot (a stop adds none).
    got_stream = _stream(eng, sid)
    assert got_stream == ref[:len(got_stream)]
    assert [k for k, _, _ in ref[len(got_stream):]] in ([], ["session.equity"])
    got = replay(e for e in EventLog(eng).read(session_id=sid))
    ref_fills = [(f.ts, f.side, f.quantity, f.price, f.fee) for _, f in
                 replay(e for e in EventLog(eng).read(session_id=f"ref{sid}")).fills]
    assert [(f.ts, f.side, f.quantity, f.price, f.fee) for _, f in got.fills] == ref_fills
    assert len(ref_fills) == ref_result.fills > 0
    pos = {iid: p.quantity for (s, iid), p in got.positions.items() if s == sid}
    assert pos == {k: v for k, v in ref_result.positions.items() if k in pos} and pos
    assert verify(eng, h["home"] / "audit" / "events.jsonl").ok


def _stop_after_takeover(h: dict[str, Any], sid: str, standby: Any, at: int) -> str:
    """Once the standby has run 10 events past ``at`` (where the old owner was), ask it to
    stop; its stdout."""
    reg = SessionRegistry(h["engine"])
    wait_for(lambda: (r := reg.get(sid))["pid"] == standby.pid and r["events_processed"] >= at + 10, 120,
             "the standby to trade on", procs=[standby])
    reg.request_stop(sid)
    out, err = standby.communicate(timeout=120)
    assert standby.returncode == 0, err
    assert "re-verified from log" in out and "stopped" in out
    return str(out)


def _watching(standby: Any, sid: str) -> None:
    """Until ``standby`` says it watches the live owner of ``sid`` (its stderr; EOF if it exits)."""
    seen = []
    for line in standby.stderr:
        if f"standby for {sid}: owner is pid" in line and "waiting" in line:
            return
        seen.append(line)
    raise AssertionError(f"the standby for {sid} exited ({standby.wait()}) instead of waiting: {''.join(seen)}")


def _kill_drill(h: dict[str, Any], sp: SessionProcesses, sid: str, delay_s: float) -> float:
    """Start ``sid`` and a standby for it; SIGKILL the owner ``delay_s`` after the standby
    watches and the owner has traded; the standby takes over; stop it a little later and
    check the log. Returns the takeover time (kill -> the standby's failover entry)."""
    eng = h["engine"]
    owner = sp.start(sid, steps=0)[0]  # registered as running: its standby starts meanwhile
    standby = sp.popen("standby", sid)
    wait_for(lambda: _orders(eng, sid) >= 1, 60, f"{sid} to trade", procs=[owner])
    _watching(standby, sid)
    time.sleep(delay_s)  # the random moment of the drill (not a wait for anything)
    assert owner.poll() is None, "the owner ended before the drill could kill it"
    killed_ms = time.time() * 1000
    owner.kill()
    owner.communicate()
    at = int(SessionRegistry(eng).get(sid)["events_processed"])
    wait_for(lambda: _failovers(eng, sid), 90, "the standby to take over", procs=[standby])
    (fo,) = _failovers(eng, sid)
    assert (fo["old_pid"], fo["old_host"], fo["old_epoch"]) == (owner.pid, HOST, 1)
    assert (fo["new_pid"], fo["new_host"], fo["new_epoch"]) == (standby.pid, HOST, 2)
    # On this host the dead owner's process is seen gone at once (no wait for its lease),
    # unless the standby only looked after the lease had run out anyway.
    assert fo["reason"] in ("owner process gone", "lease expired")
    _stop_after_takeover(h, sid, standby, at)
    _check_final_log(h, sid, sp.dir / f"{sid}.toml")
    return (fo["ts"] - killed_ms) / 1000


def test_a_sigkilled_owner_is_replaced_by_its_standby_and_nothing_happens_twice(
        session_home: dict[str, Any], tmp_path: Path, record_property: Any) -> None:
    h = session_home
    sp = SessionProcesses(h["engine"], h["env"], tmp_path, **DRILL)
    try:
        took = _kill_drill(h, sp, "fokill", 0.3)
    finally:
        sp.close()
    record_property("takeover_s", round(took, 3))
    print(f"takeover after SIGKILL: {took:.3f} s")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_kills_at_random_moments_with_a_standby_waiting(session_home: dict[str, Any], tmp_path: Path,
                                                        record_property: Any) -> None:
    h = session_home
    rng = random.Random(18)
    times = []
    for i in range(3):
        sp = SessionProcesses(h["engine"], h["env"], tmp_path, **DRILL)
        try:
            times.append(_kill_drill(h, sp, f"forand{i}", rng.uniform(0.0, 1.5)))
        finally:
            sp.close()
    record_property("takeover_s", [round(t, 3) for t in times])
    print("takeover after SIGKILL:", ", ".join(f"{t:.3f} s" for t in times))


def _nobody_mid_transaction(engine: Any) -> bool:
    """True if no other connection is inside a write transaction right now."""
    if engine.dialect.name == "sqlite":
        import sqlite3

        raw = sqlite3.connect(engine.url.database, timeout=0.2, isolation_level=None)
        try:
            raw.execute("BEGIN IMMEDIATE")
            raw.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            raw.close()
    with engine.connect() as c:
        busy = c.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state IN ('active', 'idle in transaction')")).scalar_one()
    return busy == 0


def _pause(pid: int, engine: Any) -> None:
    """SIGSTOP ``pid`` at a moment it holds no database lock (as a paused owner would be)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        os.kill(pid, signal.SIGSTOP)
        if _nobody_mid_transaction(engine):
            return
        os.kill(pid, signal.SIGCONT)
        time.sleep(0.02)
    pytest.fail("could not pause the owner outside a transaction")


def test_a_paused_owner_is_replaced_after_its_lease_and_exits_without_writing_when_it_wakes(
        session_home: dict[str, Any], tmp_path: Path, record_property: Any) -> None:
    h = session_home
    eng = h["engine"]
    sid = "fostop"
    # Slower pacing (10 bars/s), so that the standby is still running when the owner wakes.
    sp = SessionProcesses(eng, h["env"], tmp_path, **DRILL)
    try:
        owner = sp.start(sid, steps=0)[0]
        standby = sp.popen("standby", sid)
        wait_for(lambda: _orders(eng, sid) >= 1, 60, "the owner to trade", procs=[owner])
        _watching(standby, sid)
        _pause(owner.pid, eng)
        paused_ms = time.time() * 1000
        expires = read_lease(eng, sid).expires_ts
        wait_for(lambda: _failovers(eng, sid), 90, "the standby to take over", procs=[standby])
        (fo,) = _failovers(eng, sid)
        assert (fo["old_pid"], fo["old_epoch"], fo["new_pid"], fo["new_epoch"]) == (owner.pid, 1, standby.pid, 2)
        assert fo["reason"] == "lease expired" and fo["ts"] >= expires  # not before the lease ran out
        record_property("takeover_after_expiry_s", round((fo["ts"] - expires) / 1000, 3))
        print(f"paused at {paused_ms:.0f}, lease expired at {expires}, taken over {fo['ts'] - expires} ms later")
        reg = SessionRegistry(eng)
        at = int(reg.get(sid)["events_processed"])
        wait_for(lambda: (r := reg.get(sid))["pid"] == standby.pid and r["events_processed"] > at, 60,
                 "the standby to run", procs=[standby])

        # The old owner wakes: it is fenced (writes nothing) and exits by itself, saying why.
        os.kill(owner.pid, signal.SIGCONT)
        _out, err = owner.communicate(timeout=60)
        err = " ".join(err.split())
        assert owner.returncode in (2, 3), err
        assert f"session {sid}: taken over by pid {standby.pid} on host {HOST} (epoch 2); this process " \
               "(epoch 1) is fenced, writes nothing more and stops" in err
        assert reg.get(sid)["pid"] == standby.pid  # it did not even touch the registry
        _stop_after_takeover(h, sid, standby, at)
    finally:
        sp.close()
    # Whatever the old owner had in memory when it was paused never reached the log: the
    # final log is exactly the uninterrupted run's.
    _check_final_log(h, sid, tmp_path / f"{sid}.toml")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_standby_refuses_a_session_that_does_not_exist_or_has_ended(session_home: dict[str, Any],
                                                                      tmp_path: Path) -> None:
    h = session_home
    eng, env = h["engine"], h["env"]
    reg = SessionRegistry(eng)
    reg.upsert("done", demo_config(session_id="done", mode="paper"), status="finished")
    reg.upsert("halted", demo_config(session_id="halted", mode="paper"), status="stopped")
    with eng.connect() as c:
        n_events = c.execute(sa.select(sa.func.count()).select_from(events)).scalar_one()
    cases = {"nosuch": "session_id='nosuch': no such session: nothing to stand by for",
             "done": "session_id='done': is finished: a standby waits on a running session's owner",
             "halted": "session_id='halted': is stopped: a standby waits on a running session's owner"}
    # Five refusals, run side by side (their start-ups overlap).
    argss = [["session", "standby", sid, "--quiet"] for sid in cases] + [
        ["session", "standby", "done", "--poll", "0"], ["session", "standby", "done", "--ttl", "0.5"]]
    procs = [subprocess.Popen([sys.executable, "-m", "lyra.cli", *a], env={**env, "COLUMNS": "250"},
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for a in argss]
    errs = []
    for p in procs:
        _out, err = p.communicate(timeout=120)
        assert p.returncode == 2, err
        errs.append(" ".join(err.split()))
    for err, said in zip(errs, cases.values(), strict=False):
        assert said in err and "Traceback" not in err, err
    assert "`lyra session resume halted` runs it again" in errs[2]
    assert "--poll=0.0: must be a positive number of seconds" in errs[3]
    assert "--ttl=0.5: a lease lasts 1 to 3600 seconds" in errs[4]
    with eng.connect() as c:  # nothing written by any refusal: no event, no lease
        assert c.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == n_events
    assert all(read_lease(eng, s) is None for s in cases)
    assert reg.get("halted")["status"] == "stopped" and reg.get("done")["status"] == "finished"

    # A session that ends cleanly while a standby waits: the standby stands down, takes nothing.
    cfg = tmp_path / "brief.toml"
    cfg.write_text(paced_toml("brief", speed=1e9, start="2017-07-02", end="2017-07-03"))
    reg.upsert("brief", load_session_config(cfg), status="running")
    lease = SessionLease(eng, "brief", ttl_s=60)
    lease.acquire()  # an owner (this process) holds it
    sp = SessionProcesses(eng, env, tmp_path)
    try:
        standby = sp.popen("standby", "brief")
        _watching(standby, "brief")
        reg.update("brief", status="stopped")  # the owner's clean ending: status, then the lease
        lease.release()
        _out, err = standby.communicate(timeout=120)
    finally:
        sp.close()
    err = " ".join(err.split())
    assert standby.returncode == 0, err
    assert "standby for brief: the session ended (stopped); nothing to take over" in err
    assert _failovers(eng, "brief") == [] and read_lease(eng, "brief").epoch == 1
