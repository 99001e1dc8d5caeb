"""Recovery from dead daemons and workers, timeouts enforced by any daemon, numeric options.

Timing properties (\"failed within 2 heartbeats\", \"killed at its timeout\", \"retried after its
backoff\") are proven in-process with a ManualClock on SQLite and PostgreSQL; the real thing
(SIGKILLed daemons and workers, a surviving daemon doing the recovery) runs at the end with
real subprocesses and waits on conditions only.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import psutil
import pytest
import sqlalchemy as sa
import typer
from typer.testing import CliRunner

from lyra.core.clock import ManualClock
from lyra.core.errors import ValidationError
from lyra.ops import add_schedule, fire_now, get_run, list_runs, list_schedules
from lyra.ops.lifecycle import HOST, heartbeat
from lyra.ops.scheduler import Scheduler, claim_and_queue, get_schedule
from lyra.store import create_engine_for, upgrade
from lyra.store.tables_ops import runs

T0 = 1_800_000_000_000
HB = 1.0  # heartbeat interval of the in-process tests, seconds


def _sch(engine, tmp_path, clock, **kw) -> Scheduler:
    settings = SimpleNamespace(runs_dir=tmp_path / "runs", home=tmp_path, db_url=str(engine.url))
    # /bin/true as the worker: these tests check the daemon's decisions, not notebooks.
    return Scheduler(engine, settings, poll_s=30.0, clock=clock, python="/bin/true", heartbeat_s=HB, **kw)


def _running_elsewhere(engine, name: str, *, owner: str, pid: int | None, at: int) -> str:
    """A run of ``name`` that another daemon (``owner``) launched at ``at`` (its worker ``pid``)."""
    rid = fire_now(engine, name, owner=owner, at_ms=at, heartbeat_s=HB)
    with engine.begin() as c:
        c.execute(runs.update().where(runs.c.run_id == rid).values(status="running", started_ts=at, pid=pid,
                                                                   output_dir="/nonexistent"))
    assert heartbeat(engine, rid, at_ms=at, heartbeat_s=HB)
    return rid


def _attempts(engine, name):
    rows = sorted(list_runs(engine, schedule=name), key=lambda r: (r["fire_ts"], r["attempt"]))
    return [(r["attempt"], r["status"]) for r in rows]


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def _wait_children(sch):
    for ch in sch.children.values():
        ch.proc.wait()


def test_a_silent_worker_on_another_host_fails_after_two_heartbeats_and_is_retried(engine, tick_notebook,
                                                                                      tmp_path):
    clock = ManualClock(T0)
    add_schedule(engine, "s", tick_notebook, every_s=3600.0, start=T0 + 3_600_000, retries=1, backoff_s=5.0)
    rid = _running_elsewhere(engine, "s", owner="elsewhere:4242", pid=4242, at=T0)
    sch = _sch(engine, tmp_path, clock)
    clock.advance(1.0)
    assert heartbeat(engine, rid, at_ms=clock.now_ms(), heartbeat_s=HB)  # the worker is alive at T0+1 s
    clock.advance(1.999)
    assert sch.tick() == [] and get_run(engine, rid)["status"] == "running"  # 1 ms short of 2 intervals
    clock.advance(0.001)
    assert sch.tick() == []
    r = get_run(engine, rid)
    assert r["status"] == "failed" and r["ended_ts"] == T0 + 3000
    assert r["error"] == "worker died: no heartbeat for 2.0 s (2 intervals of 1 s)"
    (retry,) = [x for x in list_runs(engine, schedule="s") if x["attempt"] == 2]
    assert retry["status"] == "queued" and retry["started_ts"] == T0 + 3000 + 5000  # backoff 5 s
    assert retry["fire_ts"] == r["fire_ts"]
    assert sch._sleep_s() == 5.0  # wakes for the retry, not after the 30 s poll
    clock.advance(4.999)
    assert sch.tick() == []
    clock.advance(0.001)
    assert sch.tick() == [retry["run_id"]]
    again = get_run(engine, retry["run_id"])
    assert (again["status"], again["owner"], again["started_ts"]) == ("running", sch.owner, T0 + 8000)
    # The worker's late heartbeat is refused: the run it belongs to has ended (it stops itself).
    assert not heartbeat(engine, rid, at_ms=clock.now_ms(), heartbeat_s=HB)
    _wait_children(sch)


def test_on_this_host_the_process_table_decides(engine, tick_notebook, tmp_path):
    clock = ManualClock(T0)
    add_schedule(engine, "s", tick_notebook, every_s=3600.0, start=T0 + 3_600_000, retries=0)
    rid = fire_now(engine, "s", owner=f"{HOST}:{_dead_pid()}", at_ms=T0, heartbeat_s=HB)
    # A live process whose command line names the run: its worker (silent, but alive).
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", rid])
    try:
        with engine.begin() as c:
            c.execute(runs.update().where(runs.c.run_id == rid)
                      .values(status="running", started_ts=T0, pid=worker.pid, output_dir="/nonexistent"))
        sch = _sch(engine, tmp_path, clock)
        clock.advance(100.0)  # 100 heartbeats missed, but the worker is alive: not dead
        sch.tick()
        assert get_run(engine, rid)["status"] == "running"
        worker.kill()
        worker.wait()
        sch.tick()
    finally:
        worker.kill()
        worker.wait()
    r = get_run(engine, rid)
    assert r["status"] == "failed"
    assert r["error"] == f"worker died: pid {worker.pid} on {HOST} is gone and recorded no outcome"
    assert _attempts(engine, "s") == [(1, "failed")]  # retries=0: no retry


def test_a_timeout_is_enforced_from_the_recorded_start_by_any_daemon(engine, tick_notebook, tmp_path):
    clock = ManualClock(T0)
    add_schedule(engine, "s", tick_notebook, every_s=3600.0, start=T0 + 3_600_000, timeout_s=10.0, retries=1,
                 backoff_s=0.0)
    # Launched by a daemon that is gone; its worker (a real process on this host) hangs.
    rid = fire_now(engine, "s", owner=f"{HOST}:{_dead_pid()}", at_ms=T0, heartbeat_s=HB)
    worker = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", rid])
    try:
        with engine.begin() as c:
            c.execute(runs.update().where(runs.c.run_id == rid)
                      .values(status="running", started_ts=T0, pid=worker.pid, output_dir="/nonexistent"))
        sch = _sch(engine, tmp_path, clock, kill_grace_s=30.0)
        clock.advance(9.999)
        sch.tick()
        assert get_run(engine, rid)["status"] == "running" and worker.poll() is None
        clock.advance(0.001)
        launched = sch.tick()  # marks it, kills it, and (backoff 0) starts the retry at once
        assert worker.wait(timeout=60) is not None  # killed (wait returns once it is gone)
    finally:
        worker.kill()
        worker.wait()
    r = get_run(engine, rid)
    assert r["status"] == "timeout" and r["ended_ts"] == T0 + 10_000 and r["duration_s"] == 10.0
    assert r["error"] == f"timeout: killed after 10 s (by {sch.owner})"
    assert _attempts(engine, "s") == [(1, "timeout"), (2, "running")] and len(launched) == 1
    _wait_children(sch)


def test_a_timeout_on_another_host_is_recorded_and_the_worker_is_fenced(engine, tick_notebook, tmp_path):
    clock = ManualClock(T0)
    add_schedule(engine, "s", tick_notebook, every_s=3600.0, start=T0 + 3_600_000, timeout_s=5.0)
    rid = _running_elsewhere(engine, "s", owner="elsewhere:7", pid=7, at=T0)
    sch = _sch(engine, tmp_path, clock)
    for _ in range(4):  # the worker keeps beating: it is alive, only late
        clock.advance(1.0)
        assert heartbeat(engine, rid, at_ms=clock.now_ms(), heartbeat_s=HB)
        sch.tick()
    clock.advance(1.0)
    sch.tick()
    assert get_run(engine, rid)["status"] == "timeout"
    assert not heartbeat(engine, rid, at_ms=clock.now_ms(), heartbeat_s=HB)  # its next beat stops it


@pytest.mark.parametrize("policy", ["catchup", "skip"])
def test_a_fire_claimed_by_a_daemon_that_died_is_recovered_by_the_missed_policy(engine, tick_notebook, tmp_path,
                                                                                policy):
    clock = ManualClock(T0)
    add_schedule(engine, "s", tick_notebook, every_s=60.0, start=T0, missed=policy)
    sched = get_schedule(engine, "s")
    dead = f"{HOST}:{_dead_pid()}"
    # The claim and its queued run, in one transaction, by a daemon that died right after.
    (rid,) = claim_and_queue(engine, sched, T0, T0 + 60_000, [T0], owner=dead, at_ms=T0, heartbeat_s=HB)
    assert get_schedule(engine, "s")["next_ts"] == T0 + 60_000
    sch = _sch(engine, tmp_path, clock, grace_s=30.0)
    clock.advance(45.0)  # 45 s late: past the 30 s grace of the skip policy
    assert sch.tick() == ([rid] if policy == "catchup" else [])
    r = get_run(engine, rid)
    if policy == "catchup":
        assert (r["status"], r["owner"], r["fire_ts"], r["started_ts"]) == ("running", sch.owner, T0, T0 + 45_000)
    else:
        assert r["status"] == "skipped" and r["ended_ts"] == T0 + 45_000
        assert r["error"] == (f"missed: claimed by {dead}, which died before starting it; 45.0 s late, more than "
                              "the 30 s grace (skip policy)")
    assert len(list_runs(engine, schedule="s")) == 1  # recovered once, not copied
    _wait_children(sch)


def test_a_claim_within_grace_is_run_and_a_live_claimers_claim_is_left_alone(engine, tick_notebook, tmp_path):
    clock = ManualClock(T0)
    add_schedule(engine, "s", tick_notebook, every_s=60.0, start=T0, missed="skip")
    add_schedule(engine, "t", tick_notebook, every_s=60.0, start=T0, missed="skip")
    dead = f"{HOST}:{_dead_pid()}"
    (late,) = claim_and_queue(engine, get_schedule(engine, "s"), T0, T0 + 60_000, [T0], owner=dead, at_ms=T0,
                              heartbeat_s=HB)
    # A live daemon on another host claimed "t" a moment ago: not abandoned until 2 intervals pass.
    (other,) = claim_and_queue(engine, get_schedule(engine, "t"), T0, T0 + 60_000, [T0], owner="elsewhere:9",
                               at_ms=T0, heartbeat_s=HB)
    sch = _sch(engine, tmp_path, clock, grace_s=30.0)
    clock.advance(1.999)
    assert sch.tick() == [late]  # within grace: run
    assert get_run(engine, other)["status"] == "queued"
    clock.advance(0.001)
    assert sch.tick() == [other]
    _wait_children(sch)


def test_fire_now_queues_a_run_any_daemon_starts(engine, tick_notebook, tmp_path):
    clock = ManualClock(T0)
    add_schedule(engine, "s", tick_notebook, every_s=3600.0, start=T0 + 3_600_000, paused=True)
    rid = fire_now(engine, "s", at_ms=T0)
    sch = _sch(engine, tmp_path, clock)
    assert sch.tick() == [rid]
    r = get_run(engine, rid)
    assert (r["schedule_name"], r["fire_ts"], r["attempt"], r["status"]) == ("s", T0, 1, "running")
    with pytest.raises(ValidationError, match="no such schedule"):
        fire_now(engine, "nope")
    _wait_children(sch)


# ---------------------------------------------------------------------------- numeric options
def _app():
    from lyra.ops.cli import schedule_app

    app = typer.Typer()
    app.add_typer(schedule_app, name="schedule")
    return app


@pytest.mark.parametrize(("args", "option"), [
    (["--every", "nan"], "--every"),
    (["--every", "inf"], "--every"),
    (["--every", "0.5"], "--every"),
    (["--every", "60", "--backoff", "nan"], "--backoff"),
    (["--every", "60", "--backoff", "-1"], "--backoff"),
    (["--every", "60", "--timeout", "nan"], "--timeout"),
    (["--every", "60", "--timeout", "inf"], "--timeout"),
    (["--every", "60", "--timeout", "0"], "--timeout"),
    (["--every", "60", "--retries", "1000"], "--retries"),
    (["--every", "60", "--retries", "-1"], "--retries"),
])
def test_bad_numbers_for_schedule_add_are_refused_naming_the_option(session_home, tick_notebook, args, option):
    res = CliRunner().invoke(_app(), ["schedule", "add", "n", str(tick_notebook), *args])
    assert res.exit_code == 2, res.output
    assert res.output.startswith(f"error: {option}=") and res.output.count("\n") == 1, res.output
    assert "Traceback" not in res.output
    assert list_schedules(session_home["engine"]) == []


@pytest.mark.parametrize(("args", "option"), [
    (["--poll", "-1"], "--poll"),
    (["--poll", "nan"], "--poll"),
    (["--grace", "inf"], "--grace"),
    (["--heartbeat", "0"], "--heartbeat"),
    (["--max-concurrent", "0"], "--max-concurrent"),
    (["--duration", "nan"], "--duration"),
])
def test_bad_numbers_for_the_daemon_are_refused_naming_the_option(args, option):
    res = CliRunner().invoke(_app(), ["schedule", "run", *args])  # refused before opening anything
    assert res.exit_code == 2 and res.output.startswith(f"error: {option}="), res.output
    assert res.output.count("\n") == 1


def test_add_schedule_refuses_non_finite_numbers_on_both_databases(engine, tick_notebook):
    for kw, field in [({"every_s": float("nan")}, "every"), ({"every_s": float("inf")}, "every"),
                      ({"every_s": 60.0, "backoff_s": float("nan")}, "backoff"),
                      ({"every_s": 60.0, "timeout_s": float("nan")}, "timeout"),
                      ({"every_s": 60.0, "retries": 2.5}, "retries")]:
        with pytest.raises(ValidationError) as exc:
            add_schedule(engine, "n", tick_notebook, **kw)
        assert exc.value.field == field
    assert list_schedules(engine) == []
    add_schedule(engine, "n", tick_notebook, every_s=60.0)
    with pytest.raises(ValidationError, match="a schedule with this name exists"):
        add_schedule(engine, "n", tick_notebook, every_s=60.0)


def test_the_daemon_says_what_it_is_and_what_it_waits_for(engine, tick_notebook, tmp_path):
    sch = _sch(engine, tmp_path, ManualClock(T0))
    text = sch.describe()
    assert "scheduler daemon" in text and "until Ctrl-C or SIGTERM" in text and "No active schedule" in text
    add_schedule(engine, "daily", tick_notebook, cron="0 6 * * *", start=T0)
    text = sch.describe()
    assert "Waiting for 1 active schedule(s); next: daily at 2027-01-16 06:00:00 UTC" in text


# ---------------------------------------------------------------------------- real daemons
HANG_TIMEOUT = 10.0  # the hung run's timeout: its daemon is killed well before it
DEADLINE_S = 180.0  # generous: a loaded CI machine; the scenario takes ~20 s on an idle one

RECOVERY_PARAMS = 'counter = ""\nhang_attempts = 0\n'
RECOVERY_BODY = (
    "import time\nfrom pathlib import Path\nfrom lyra.ops.context import record_results\n"
    "with open(counter, 'a') as fh:\n    fh.write('x')\n"
    "n = len(Path(counter).read_text())\n",
    "if n <= hang_attempts:\n    time.sleep(600)\n",
    "record_results({'attempt_seen': n})\n",
)

CLAIM_THEN_DIE = """
import os, signal
from lyra.bootstrap import open_engine
from lyra.ops.scheduler import Scheduler
settings, engine = open_engine()
sch = Scheduler(engine, settings, poll_s=0.1, heartbeat_s=0.5)
# Dies between claiming a fire (committed, with its queued run) and starting its worker.
sch.start_queued = lambda *a, **k: os.kill(os.getpid(), signal.SIGKILL)
sch.run(install_signals=False)
"""


def _wait(cond, what: str, logs=lambda: ""):
    deadline = time.monotonic() + DEADLINE_S
    while not (v := cond()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}\n{logs()[-4000:]}"
        time.sleep(0.05)
    return v


class _Daemon:
    def __init__(self, env, cwd):
        cmd = [sys.executable, "-m", "lyra.ops.cli", "schedule", "run", "--max-concurrent", "2", "--poll", "0.2",
               "--heartbeat", "0.5"]
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                     text=True)
        self.lines: list[str] = []
        self.up = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.append(line)
            if " up (max " in line:
                self.up.set()

    @property
    def owner(self) -> str:
        return f"{HOST}:{self.proc.pid}"

    def log(self) -> str:
        return "".join(self.lines)


def _row(engine, name, attempt=1):
    for r in list_runs(engine, schedule=name):
        if r["attempt"] == attempt:
            return r
    return None


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.notebook
def test_dead_daemons_and_workers_are_recovered_by_a_surviving_daemon(tmp_path, make_notebook):
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'lyra.db'}"
    engine = create_engine_for(url)
    upgrade(engine)
    nb = make_notebook(tmp_path / "rec.ipynb", RECOVERY_PARAMS, *RECOVERY_BODY)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=url)
    daemons: list[_Daemon] = []

    def logs() -> str:
        return "\n----\n".join(d.log() for d in daemons)

    try:
        # 1. A daemon claims a fire and dies before starting it.
        now = int(time.time() * 1000)
        add_schedule(engine, "orphan", nb, {"counter": str(tmp_path / "orphan.txt")}, every_s=3600.0, start=now,
                     missed="catchup")
        claimer = subprocess.Popen([sys.executable, "-c", CLAIM_THEN_DIE], env=env, cwd=tmp_path,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        out, _ = claimer.communicate(timeout=DEADLINE_S)
        assert claimer.returncode == -signal.SIGKILL, out[-3000:]
        orphan = _row(engine, "orphan")
        assert (orphan["status"], orphan["owner"]) == ("queued", f"{HOST}:{claimer.pid}")
        assert get_schedule(engine, "orphan")["next_ts"] == now + 3_600_000  # claimed: the fire moved on

        # 2. Three daemons; the recovery below needs one survivor.
        daemons += [_Daemon(env, tmp_path) for _ in range(3)]
        for d in daemons:
            assert d.up.wait(DEADLINE_S), logs()
        assert "scheduler daemon" in daemons[0].log() and "until Ctrl-C or SIGTERM" in daemons[0].log()
        start = int(time.time() * 1000) + 500
        add_schedule(engine, "victim", nb, {"counter": str(tmp_path / "victim.txt"), "hang_attempts": 1},
                     every_s=3600.0, start=start, retries=1, backoff_s=1.0)
        add_schedule(engine, "hang", nb, {"counter": str(tmp_path / "hang.txt"), "hang_attempts": 99},
                     every_s=3600.0, start=start, timeout_s=HANG_TIMEOUT)

        # 3. Kill the daemon running "hang" as soon as it started it (its timeout is still ahead), then the
        #    daemon running "victim" and its worker, mid-run (its kernel is in the notebook).
        hang = _wait(lambda: (r := _row(engine, "hang")) and r["status"] == "running" and r["pid"] and r,
                     "hang to start", logs)
        by_owner = {d.owner: d for d in daemons}
        hang_daemon = by_owner[hang["owner"]]
        hang_daemon.proc.send_signal(signal.SIGKILL)
        victim = _wait(lambda: (r := _row(engine, "victim")) and r["status"] == "running" and r["pid"]
                       and (tmp_path / "victim.txt").exists() and r, "victim to run its notebook", logs)
        victim_daemon = by_owner[victim["owner"]]
        victim_daemon.proc.send_signal(signal.SIGKILL)
        os.kill(victim["pid"], signal.SIGKILL)
        survivors = [d for d in daemons if d not in (hang_daemon, victim_daemon)]
        assert survivors

        # 4. The survivors recover everything.
        def done():
            o, v1, v2, h = (_row(engine, "orphan"), _row(engine, "victim"), _row(engine, "victim", 2),
                            _row(engine, "hang"))
            return (o["status"] == "finished" and v1["status"] == "failed" and v2 is not None
                    and v2["status"] == "finished" and h["status"] == "timeout")

        _wait(done, "the survivors' recovery", logs)
    finally:
        for d in daemons:
            if d.proc.poll() is None:
                d.proc.terminate()
        for d in daemons:
            d.proc.wait(timeout=120)
            d.reader.join(10)
            d.proc.stdout.close()
        for p in psutil.process_iter(["cwd"]):  # no kernel of these runs may outlive the test
            if p.info["cwd"] and p.info["cwd"].startswith(str(home)):
                p.kill()
    survivor_owners = {d.owner for d in survivors}
    # The claimed-but-unstarted fire ran, once, for its own fire time, started by a live daemon.
    (orphan,) = list_runs(engine, schedule="orphan")
    assert orphan["fire_ts"] == now and orphan["owner"] in {d.owner for d in daemons}
    assert orphan["key_results"] == {"attempt_seen": 1}
    # The killed run: failed with the reason, then retried per policy (after its 1 s backoff).
    v1, v2 = _row(engine, "victim"), _row(engine, "victim", 2)
    assert v1["error"] == f"worker died: pid {victim['pid']} on {HOST} is gone and recorded no outcome"
    assert v2["started_ts"] - v1["ended_ts"] >= 1000 and v2["fire_ts"] == v1["fire_ts"]
    assert v2["key_results"] == {"attempt_seen": 2} and v2["owner"] in survivor_owners
    # The hung run: killed at its timeout (from its recorded start) by a daemon that outlived its
    # launcher (the victim's daemon may have been the one, before it was killed in turn), tree and all.
    h = _row(engine, "hang")
    assert h["duration_s"] >= HANG_TIMEOUT
    assert h["error"].startswith(f"timeout: killed after {HANG_TIMEOUT:g} s (by ")
    enforcer = h["error"].removesuffix(")").rsplit("(by ", 1)[1]
    assert enforcer != hang_daemon.owner and enforcer in {d.owner for d in daemons}
    assert not psutil.pid_exists(h["pid"]) or psutil.Process(h["pid"]).status() == psutil.STATUS_ZOMBIE
    assert _attempts(engine, "hang") == [(1, "timeout")]  # retries=0
    with engine.connect() as c:
        assert c.execute(sa.text("SELECT count(*) FROM runs WHERE status IN ('queued', 'running')")).scalar() == 0
    engine.dispose()



@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.notebook
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_schedule_fire_runs_a_schedule_now(session_home, tick_notebook, tmp_path):
    engine = session_home["engine"]
    counter = tmp_path / "fired.txt"
    add_schedule(engine, "later", tick_notebook, {"counter": str(counter), "fail_times": 1}, cron="0 6 * * *",
                 retries=1, backoff_s=30.0)
    next_ts = get_schedule(engine, "later")["next_ts"]
    res = CliRunner().invoke(_app(), ["schedule", "fire", "later"])
    # The first attempt fails by design: exit 1, the error shown, the retry queued for the daemons.
    assert res.exit_code == 1, res.output
    assert "planned failure 1" in res.output and "retry 1 queued for" in res.output
    first, retry = sorted(list_runs(engine, schedule="later"), key=lambda r: r["attempt"])
    assert (first["status"], first["error"]) == ("failed", "RuntimeError: planned failure 1")
    assert (retry["status"], retry["owner"], retry["fire_ts"]) == ("queued", "", first["fire_ts"])
    assert retry["started_ts"] == first["ended_ts"] + 30_000
    assert counter.read_text() == "x"
    assert get_schedule(engine, "later")["next_ts"] == next_ts  # its timing is untouched
    res = CliRunner().invoke(_app(), ["schedule", "fire", "nope"])
    assert res.exit_code == 2 and "no such schedule" in res.output


def test_a_lyra_run_whose_process_died_is_marked_failed(engine, tick_notebook, tmp_path):
    from lyra.ops.runs import plan_run, register_run

    live = register_run(engine, plan_run(tick_notebook), tmp_path / "runs")  # this (live) process runs it
    dead = register_run(engine, plan_run(tick_notebook), tmp_path / "runs")
    owner = f"{HOST}:{_dead_pid()}"
    with engine.begin() as c:
        c.execute(runs.update().where(runs.c.run_id == dead).values(owner=owner))
    _sch(engine, tmp_path, ManualClock(T0)).tick()
    assert get_run(engine, live)["status"] == "running"
    r = get_run(engine, dead)
    assert (r["status"], r["error"]) == ("failed", f"its process {owner} is gone and recorded no outcome")
    assert list_runs(engine, status="queued") == []  # an ad-hoc run has no retry policy


def test_the_worker_heartbeat_renews_and_stops_the_worker_once_its_run_was_ended(engine, tick_notebook, tmp_path):
    from lyra.ops._worker import Heartbeat
    from lyra.ops.lifecycle import finish_run

    add_schedule(engine, "s", tick_notebook, every_s=3600.0)
    rid = _running_elsewhere(engine, "s", owner=f"{HOST}:1", pid=None, at=T0)
    fenced = threading.Event()
    with Heartbeat(engine, rid, 0.05, on_fenced=lambda run_id: fenced.set()):
        _wait(lambda: get_run(engine, rid)["heartbeat_ts"] != T0, "a heartbeat")  # T0 is a future time
        assert get_run(engine, rid)["pid"] == os.getpid() and get_run(engine, rid)["heartbeat_s"] == 0.05
        assert not fenced.is_set()
        assert finish_run(engine, rid, "timeout", error="timeout: killed after 1 s (by another host)")
        assert fenced.wait(60)  # its next beat finds the run ended: the worker stops
    r = get_run(engine, rid)
    assert r["status"] == "timeout" and r["heartbeat_ts"] is None and r["comparison"] is None
