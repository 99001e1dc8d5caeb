"""Sessions own themselves (``lyra.session.lease``): one owner at a time, every commit fenced by
its epoch, a second owner refused naming the first, a dead or paused owner replaced, and stale
sessions shown as such — in process on both databases, and with real `lyra` processes."""

from __future__ import annotations

import collections
import os
import signal
import socket
import subprocess
import sys
import time
from decimal import Decimal

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog, verify
from lyra.audit.ledger import Ledger
from lyra.auth.permissions import Principal, Role
from lyra.core.enums import Side
from lyra.core.errors import ValidationError
from lyra.core.orders import OrderIntent
from lyra.readside import ReadModel
from lyra.session.commands import CommandQueue
from lyra.session.lease import LeaseHeld, LeaseLost, SessionLease, effective_status, read_lease
from lyra.session.registry import SessionRegistry
from lyra.store.tables import audit_head, events
from lyra.store.tables_risk import kill_requests, trading_state
from lyra.store.tables_session import sessions
from lyra.testing.sessions import demo_config, lyra_cli, paced_toml, session_process, wait_for

HOST = socket.gethostname()

def config_toml(sid: str) -> str:
    """One hourly bar per second: a paced paper session a person watches. lease_s is short so
    that a paused owner's lease runs out within the test."""
    return paced_toml(sid, speed=3600.0, start="2017-07-02", extra={"lease_s": 3.0})


class FakeClock:
    def __init__(self, now: int) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now


def count(engine, table) -> int:
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()


def orders_of(engine, sid: str) -> int:
    with engine.connect() as c:
        return c.execute(sa.select(sa.func.count()).select_from(events).where(
            events.c.session_id == sid, events.c.kind == "order.created")).scalar_one()


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


# ---------------------------------------------------------------------- in process: the fence
def test_a_stale_owners_commit_is_rejected_by_the_fence_and_writes_nothing(engine):
    clock = FakeClock(1_000_000)
    a = SessionLease(engine, "s1", ttl_s=5, clock=clock)
    first = a.acquire()
    assert (first.epoch, first.pid, first.host) == (1, os.getpid(), HOST)
    log = EventLog(engine)
    log.fence = a.fence
    group = Ledger(log, session_id="s1").group_commit()
    with group.transaction() as tx:  # epoch 1 writes: fine
        tx.append("session.note", {"n": 1}, actor="session:s1", session_id="s1")
    group.commit()
    with group.transaction() as tx:  # a second batch, waiting in memory...
        tx.append("session.note", {"n": 2}, actor="session:s1", session_id="s1")

    # ...while another owner (another host: no process check) tries while the lease lives: refused.
    b = SessionLease(engine, "s1", ttl_s=5, clock=clock, pid=4242, host="box2")
    with pytest.raises(LeaseHeld) as held:
        b.acquire()
    assert held.value.field == "session_id" and held.value.value == "s1"
    assert f"pid {os.getpid()} on host {HOST} (epoch 1, lease until" in str(held.value)
    assert "lyra session stop s1" in str(held.value)
    # The lease expires (epoch 1 was paused): the other owner takes over with epoch 2.
    clock.now += 5_001
    assert b.acquire().epoch == 2

    with engine.connect() as c:
        before = c.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one()
    n_events = count(engine, events)
    with pytest.raises(LeaseLost) as lost:
        group.commit()  # the stale owner's batch
    assert lost.value.field == "epoch" and lost.value.value == 1
    assert "moved to epoch 2, held by pid 4242 on host box2" in str(lost.value)
    assert "nothing was written" in str(lost.value)
    with engine.connect() as c:
        assert c.execute(sa.select(audit_head.c.seq, audit_head.c.hash)).one() == before
    assert count(engine, events) == n_events
    # Any other write through the fenced log is refused too, and renewing says it was lost.
    with pytest.raises(LeaseLost):
        log.append("session.note", {"n": 3}, actor="session:s1", session_id="s1")
    with pytest.raises(LeaseLost):
        a.renew()
    a.release()  # a lost lease is left to its new owner
    now = read_lease(engine, "s1")
    assert (now.epoch, now.pid, now.host) == (2, 4242, "box2") and now.expires_ts > clock.now
    assert count(engine, events) == n_events

    # The new owner writes under its own epoch.
    log2 = EventLog(engine)
    log2.fence = b.fence
    log2.append("session.note", {"n": 4}, actor="session:s1", session_id="s1")
    assert count(engine, events) == n_events + 1
    # Released, the next owner takes it at once.
    b.release()
    c3 = SessionLease(engine, "s1", ttl_s=5, clock=clock, pid=7, host="box3")
    assert c3.acquire().epoch == 3


def test_a_dead_owner_on_this_host_frees_its_session_at_once(engine):
    clock = FakeClock(2_000_000)
    gone = SessionLease(engine, "s2", ttl_s=60, clock=clock, pid=dead_pid())
    gone.acquire()
    lease = read_lease(engine, "s2")
    assert lease.expires_ts > clock.now and not lease.alive(clock.now, host=HOST)
    assert lease.alive(clock.now, host="elsewhere")  # seen from another host: only the expiry counts
    assert SessionLease(engine, "s2", ttl_s=60, clock=clock).acquire().epoch == 2


def test_status_is_running_only_with_a_live_lease():
    from lyra.session.lease import LeaseInfo

    now = 10_000_000
    alive = LeaseInfo("x", 1, os.getpid(), HOST, now - 1000, now - 1000, now + 5000)
    expired = LeaseInfo("x", 1, os.getpid(), HOST, now - 9000, now - 9000, now - 1)
    dead = LeaseInfo("x", 1, dead_pid(), HOST, now - 1000, now - 1000, now + 5000)
    assert effective_status("running", alive, now, now) == "running"
    assert effective_status("running", expired, now, now) == "stale"
    assert effective_status("running", dead, now, now) == "stale"
    assert effective_status("stopped", dead, now, now) == "stopped"
    # No lease row at all (registered by hand, or by an older Lyra): judged by its heartbeat.
    assert effective_status("running", None, now - 1000, now) == "running"
    assert effective_status("running", None, now - 3_600_000, now) == "stale"


def test_dashboards_never_default_to_a_stale_session_and_commands_to_it_are_refused(engine, tmp_path):
    reg = SessionRegistry(engine)
    reg.upsert("old", demo_config(session_id="old", mode="paper"), status="finished")
    reg.upsert("dead", demo_config(session_id="dead", mode="paper"), status="running", pid=dead_pid(),
               host=HOST)
    with engine.begin() as c:  # "dead" is the newest
        c.execute(sa.update(sessions).where(sessions.c.session_id == "old").values(created_ts=1))
    SessionLease(engine, "dead", pid=reg.get("dead")["pid"]).acquire()  # its owner died holding it
    rm = ReadModel(engine, tmp_path)
    assert rm.session("dead").status == "stale"
    assert [s.session_id for s in rm.sessions()] == ["dead", "old"]
    assert rm.default_session_id() == "old"
    q = CommandQueue(engine)
    n_events = count(engine, events)
    with pytest.raises(ValidationError, match="session is stale: its owner .* is gone") as e:
        q.submit_order("dead", OrderIntent("coinbase:BTC/USD", Side.BUY, Decimal("0.01")),
                       Principal("tina", Role.TRADER))
    assert e.value.field == "session_id" and "lyra session resume dead" in str(e.value)
    assert count(engine, events) == n_events  # nothing queued, nothing logged


# ---------------------------------------------------------------------- bad input on the command line
def lyra(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return lyra_cli(args, env, timeout=120)


def lyra_all(env: dict[str, str], *argss: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Several `lyra` commands run side by side (their start-ups overlap); results in order."""
    procs = [(args, subprocess.Popen([sys.executable, "-m", "lyra.cli", *args], env={**env, "COLUMNS": "250"},
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
             for args in argss]
    out = []
    for args, p in procs:
        stdout, stderr = p.communicate(timeout=120)
        out.append(subprocess.CompletedProcess(args, p.returncode, stdout, stderr))
    return out


@pytest.mark.subprocess
@pytest.mark.slow
def test_kill_and_stop_of_sessions_that_cannot_take_them_are_refused(session_home):
    h = session_home
    eng, env = h["engine"], h["env"]
    reg = SessionRegistry(eng)
    reg.upsert("done", demo_config(session_id="done", mode="paper"), status="stopped")
    reg.upsert("ghost", demo_config(session_id="ghost", mode="paper"), status="running", pid=dead_pid(),
               host=HOST)
    SessionLease(eng, "ghost", pid=reg.get("ghost")["pid"]).acquire()
    n_events = count(eng, events)

    # Four independent refusals (none may write anything), run side by side.
    kill, stop_done, stop_ghost, status = lyra_all(
        env, ["kill", "--session", "nosuch", "--local-admin", "--reason", "typo"], ["session", "stop", "done"],
        ["session", "stop", "ghost"], ["session", "status"])
    assert kill.returncode == 2, kill.stderr
    assert "--session='nosuch': no such session: nothing was halted" in " ".join(kill.stderr.split())
    assert count(eng, kill_requests) == 0 and count(eng, trading_state) == 0

    err = " ".join(stop_done.stderr.split())
    assert stop_done.returncode == 2 and "is stopped, not running: nothing to stop" in err
    err = " ".join(stop_ghost.stderr.split())
    assert stop_ghost.returncode == 2 and "is stale: its owner (pid" in err and "lyra session resume ghost" in err
    assert not reg.get("ghost")["stop_requested"]
    assert status.returncode == 0 and "stale" in status.stdout
    assert count(eng, events) == n_events  # nothing written by any of them


# ---------------------------------------------------------------------- real processes: one owner
def _start(env, cfg_path):
    return session_process(env, "start", "--config", str(cfg_path))


def _resume(env, sid):
    return session_process(env, "resume", sid)


def _nobody_mid_transaction(engine) -> bool:
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


def _pause(proc, engine) -> None:
    """SIGSTOP ``proc`` at a moment it holds no database lock (as a paused owner would be)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        os.kill(proc.pid, signal.SIGSTOP)
        if _nobody_mid_transaction(engine):
            return
        os.kill(proc.pid, signal.SIGCONT)
        time.sleep(0.05)
    pytest.fail("could not pause the owner outside a transaction")


@pytest.mark.subprocess
@pytest.mark.slow
def test_one_owner_at_a_time_across_processes(session_home, tmp_path):
    h = session_home
    eng, env = h["engine"], h["env"]
    sid = "own"
    cfg = tmp_path / f"{sid}.toml"
    cfg.write_text(config_toml(sid))
    reg = SessionRegistry(eng)
    owner = _start(env, cfg)
    procs = [owner]
    try:
        wait_for(lambda: (r := reg.get(sid)) is not None and r["status"] == "running"
                 and orders_of(eng, sid) >= 1, 120, "the session to run and trade")
        lease = read_lease(eng, sid)
        assert (lease.epoch, lease.pid, lease.host) == (1, owner.pid, HOST)

        # A second resume (and a second start) of the live session: refused, naming the owner.
        for r in lyra_all(env, ["session", "resume", sid, "--quiet"], ["session", "start", "--config", str(cfg)]):
            err = " ".join(r.stderr.split())
            assert r.returncode == 2, err
            assert f"session_id='{sid}': is running in another process: pid {owner.pid} on host {HOST}" in err
            assert "lease until" in err and f"lyra session stop {sid}" in err
        assert read_lease(eng, sid).epoch == 1 and owner.poll() is None

        # The owner is paused (not dead): after its lease expires a resume takes over (epoch 2).
        _pause(owner, eng)
        expires = read_lease(eng, sid).expires_ts
        wait_for(lambda: time.time() * 1000 > expires + 50, 30, "the paused owner's lease to expire")
        second = _resume(env, sid)
        procs.append(second)
        wait_for(lambda: (x := read_lease(eng, sid)).epoch == 2 and x.pid == second.pid, 90, "the takeover")
        at = reg.get(sid)["events_processed"]
        wait_for(lambda: reg.get(sid)["events_processed"] >= at + 1, 60, "the new owner to run")
        # The old owner wakes up: its next commit or renewal fails on the fence; it writes
        # nothing and exits with what happened.
        os.kill(owner.pid, signal.SIGCONT)
        _out, err = owner.communicate(timeout=60)
        err = " ".join(err.split())
        assert owner.returncode == 2, err
        assert f"epoch=1: session {sid} moved to epoch 2, held by pid {second.pid}" in err
        assert "this process is no longer its owner" in err
        assert second.poll() is None

        # The new owner dies (SIGKILL): status says stale at once, and a resume takes over
        # without waiting for the expiry (its process is gone on this host).
        second.kill()
        second.communicate()  # waits, and closes its pipes
        r = lyra(["session", "status", sid], env)
        assert r.returncode == 0 and "stale" in r.stdout
        third = _resume(env, sid)
        procs.append(third)
        wait_for(lambda: (x := read_lease(eng, sid)).epoch == 3 and x.pid == third.pid, 90, "the resume")
        before = orders_of(eng, sid)
        wait_for(lambda: orders_of(eng, sid) > before, 120, "the resumed session to trade")
        reg.request_stop(sid)
        _out, err = third.communicate(timeout=60)
        assert third.returncode == 0, err
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, signal.SIGCONT)
                p.kill()
                p.communicate()
    assert reg.get(sid)["status"] == "stopped"
    assert not read_lease(eng, sid).alive(int(time.time() * 1000), host=HOST)  # released
    log = list(EventLog(eng).read(session_id=sid))
    created = collections.Counter(e.data()["client_order_id"] for e in log if e.kind == "order.created")
    submitted = collections.Counter(e.data()["client_order_id"] for e in log if e.kind == "order.submit")
    fills = [e.data()["fill"]["fill_id"] for e in log if e.kind in ("order.fill", "order.partial_fill")]
    assert created and max(created.values()) == 1 and max(submitted.values()) == 1
    assert len(fills) == len(set(fills)) > 0
    assert sum(1 for e in log if e.kind == "session.started") == 1
    assert verify(eng, h["home"] / "audit" / "events.jsonl").ok
