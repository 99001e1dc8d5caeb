"""Schedules of notebook runs, and the daemon that launches them (``lyra schedule run``).

A schedule fires on a cron expression (croniter: 5 fields, or 6 with the seconds field *last*,
e.g. ``"* * * * * */10"`` = every 10 s) or every N seconds (``every_s``).
Its row holds ``next_ts``, the next fire time. A daemon *claims* a due fire with one
conditional UPDATE (``SET next_ts = <following> WHERE name = :n AND next_ts = <due>``): on
SQLite and PostgreSQL alike only one transaction can match, so however many daemons share the
database, a fire starts once. A unique (schedule, fire, attempt) key on runs backs this up.

The daemon launches each run as a subprocess (``python -m lyra.ops._worker RUN_ID``: papermill
inside, its kernel a grandchild), at most ``max_concurrent`` at once; kills a run that passes
its schedule's ``timeout_s`` (the whole process tree) and marks it ``timeout``; retries a
failed or timed-out run ``retries`` times, waiting ``backoff_s * 2**(attempt-1)`` between
attempts. Missed fires (the daemon was down or busy): ``skip`` runs only the latest missed fire,
and only if it is less than ``grace_s`` late; ``catchup`` runs every missed fire, oldest first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.errors import ValidationError
from lyra.ops.runs import finish_run, get_run, now_ms, plan_run, register_run
from lyra.store.tables_ops import runs, schedules

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MISSED_POLICIES = ("skip", "catchup")


# ---------------------------------------------------------------------------- fire times
def check_cron(expr: str) -> str:
    """The expression, stripped, if croniter accepts it; ValidationError otherwise."""
    from croniter import croniter

    text = " ".join(expr.split())
    if not text or len(text.split()) not in (5, 6) or not croniter.is_valid(text):
        raise ValidationError("cron", expr, "not a valid cron expression",
                              "5 fields (minute hour day month weekday) or 6 with seconds last, "
                              "e.g. '0 6 * * *', or '* * * * * */5' for every 5 s")
    return text


def following(cron: str, every_s: float | None, after_ms: int) -> int:
    """The first fire time strictly after ``after_ms`` (ms UTC)."""
    if every_s:
        return after_ms + round(every_s * 1000)
    from croniter import croniter

    base = datetime.fromtimestamp(after_ms / 1000, tz=UTC)
    nxt: float = croniter(cron, base).get_next(float)
    return round(nxt * 1000)


def due_fires(sched: Mapping[str, Any], now: int, *, grace_ms: int, limit: int = 1) -> tuple[list[int], int]:
    """Which fires of a due schedule to launch now, and the ``next_ts`` to claim.

    ``catchup``: the oldest due fire (one per claim, up to ``limit``); ``skip``: the latest
    due fire if it is at most ``grace_ms`` late, none otherwise; next is the fire after it."""
    cron, every, cur = sched["cron"], sched["every_s"], int(sched["next_ts"])
    if cur > now:
        return [], cur
    if sched["missed"] == "catchup":
        fires = [cur]
        nxt = following(cron, every, cur)
        while nxt <= now and len(fires) < limit:
            fires.append(nxt)
            nxt = following(cron, every, nxt)
        return fires, nxt
    latest = cur
    if every:
        step = round(every * 1000)
        latest = cur + ((now - cur) // step) * step
    else:
        nxt = following(cron, every, latest)
        for _ in range(100_000):  # long outages of fast crons: bounded walk
            if nxt > now:
                break
            latest, nxt = nxt, following(cron, every, nxt)
    nxt = following(cron, every, latest)
    return ([latest] if now - latest <= grace_ms else []), nxt


# ---------------------------------------------------------------------------- schedules
def add_schedule(engine: Engine, name: str, notebook: str | Path,
                 parameters: Mapping[str, Any] | Sequence[tuple[str, str]] = (), *,
                 cron: str | None = None, every_s: float | None = None, start: int | str | None = None,
                 missed: str = "skip", timeout_s: float | None = None, retries: int = 0,
                 backoff_s: float = 30.0, paused: bool = False) -> dict[str, Any]:
    """Validate everything (name, cron, notebook and parameters, policies), then store the
    schedule. ``start`` (ms or ISO): no fire before it (an interval schedule fires first at
    ``start``; default: one interval from now)."""
    if not _NAME.match(name):
        raise ValidationError("name", name, "use 1-64 letters, digits, '.', '-' or '_'")
    if (cron is None) == (every_s is None):
        raise ValidationError("cron", cron, "give exactly one of a cron expression or --every SECONDS")
    cron_text = check_cron(cron) if cron is not None else ""
    if every_s is not None and not every_s > 0:
        raise ValidationError("every", every_s, "must be a positive number of seconds")
    if missed not in MISSED_POLICIES:
        raise ValidationError("missed", missed, "unknown policy", "skip or catchup")
    if timeout_s is not None and not timeout_s > 0:
        raise ValidationError("timeout", timeout_s, "must be a positive number of seconds")
    if retries < 0:
        raise ValidationError("retries", retries, "must be >= 0")
    if backoff_s < 0:
        raise ValidationError("backoff", backoff_s, "must be >= 0")
    plan = plan_run(notebook, parameters)
    t = now_ms()
    if isinstance(start, str):
        from lyra.core.timeutil import datetime_to_ms, parse_utc

        try:
            start = datetime_to_ms(parse_utc(start))
        except ValueError as exc:
            raise ValidationError("start", start, f"not a time: {exc}") from None
    if every_s is not None:
        next_ts = start if start is not None else t + round(every_s * 1000)
    else:
        next_ts = following(cron_text, None, (start if start is not None else t) - 1)
    row = {"name": name, "cron": cron_text, "every_s": every_s, "notebook": str(plan.notebook),
           "parameters": json.dumps(plan.parameters, sort_keys=True), "paused": paused, "missed": missed,
           "timeout_s": timeout_s, "retries": retries, "backoff_s": backoff_s, "next_ts": int(next_ts),
           "created_ts": t}
    try:
        with engine.begin() as c:
            c.execute(schedules.insert().values(**row))
    except SAIntegrityError:
        raise ValidationError("name", name, "a schedule with this name exists",
                              "remove it first or pick another name") from None
    out = get_schedule(engine, name)
    assert out is not None
    return out


def _sched_dict(r: Any) -> dict[str, Any]:
    d = dict(r._mapping)
    d["parameters"] = json.loads(d["parameters"])
    return d


def get_schedule(engine: Engine, name: str) -> dict[str, Any] | None:
    with engine.connect() as c:
        r = c.execute(sa.select(schedules).where(schedules.c.name == name)).first()
    return None if r is None else _sched_dict(r)


def list_schedules(engine: Engine) -> list[dict[str, Any]]:
    """Every schedule as a plain dict, by name."""
    with engine.connect() as c:
        return [_sched_dict(r) for r in c.execute(sa.select(schedules).order_by(schedules.c.name))]


def _must(n: int, name: str) -> None:
    if not n:
        raise ValidationError("name", name, "no such schedule", "see `lyra schedule list`")


def remove_schedule(engine: Engine, name: str) -> None:
    """Delete a schedule (its past runs stay in the registry)."""
    with engine.begin() as c:
        _must(c.execute(schedules.delete().where(schedules.c.name == name)).rowcount, name)


def set_paused(engine: Engine, name: str, paused: bool) -> None:
    """Pause or resume a schedule. Resuming moves ``next_ts`` past now (fires missed while
    paused are not caught up)."""
    with engine.begin() as c:
        r = c.execute(sa.select(schedules).where(schedules.c.name == name)).first()
        _must(0 if r is None else 1, name)
        assert r is not None
        values: dict[str, Any] = {"paused": paused}
        if not paused:
            t, nxt = now_ms(), int(r.next_ts)
            while nxt <= t:
                nxt = following(r.cron, r.every_s, nxt if r.every_s else t)
            values["next_ts"] = nxt
        c.execute(schedules.update().where(schedules.c.name == name).values(**values))


def claim_fire(engine: Engine, name: str, due_ts: int, next_ts: int) -> bool:
    """Atomically move a schedule from fire ``due_ts`` to ``next_ts``; True for the one caller
    whose conditional update matched (the fire is theirs to launch)."""
    with engine.begin() as c:
        n = c.execute(schedules.update()
                      .where(schedules.c.name == name, schedules.c.next_ts == due_ts,
                             schedules.c.paused == sa.false())
                      .values(next_ts=next_ts)).rowcount
    return n == 1


# ---------------------------------------------------------------------------- the daemon
@dataclass(slots=True)
class _Child:
    run_id: str
    proc: subprocess.Popen[bytes]
    schedule: dict[str, Any]
    fire_ts: int
    attempt: int
    deadline: float | None  # time.monotonic() limit


@dataclass(order=True, slots=True)
class _Retry:
    due_ms: int
    name: str = field(compare=False)
    fire_ts: int = field(compare=False)
    attempt: int = field(compare=False)


class Scheduler:
    """The daemon's loop. ``run()`` until stopped (SIGTERM/SIGINT or ``duration_s``); on stop
    it launches no new fires but lets running ones finish (timeouts and retries still apply)::

        Scheduler(engine, settings, max_concurrent=2).run()   # what `lyra schedule` runs
    """

    def __init__(self, engine: Engine, settings: Any, *, max_concurrent: int = 2, poll_s: float = 0.5,
                 grace_s: float = 60.0, python: str = sys.executable, kill_grace_s: float = 1.0,
                 clock: Clock = WALL_CLOCK) -> None:
        if max_concurrent < 1:
            raise ValidationError("max_concurrent", max_concurrent, "must be >= 1")
        self.engine = engine
        self.settings = settings
        self.max_concurrent = max_concurrent
        self.poll_s = poll_s
        self.grace_ms = int(grace_s * 1000)
        self.python = python
        self.kill_grace_s = kill_grace_s
        self.clock = clock  # fire times and starts are read from it (tests inject a ManualClock)
        self.owner = f"{socket.gethostname()}:{os.getpid()}"
        self.children: dict[str, _Child] = {}
        self.retries: list[_Retry] = []
        self.launched: list[str] = []
        self._stop = threading.Event()

    # ------------------------------------------------------------------ loop
    def stop(self) -> None:
        self._stop.set()

    def run(self, duration_s: float | None = None, *, install_signals: bool = True) -> None:
        if install_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self.stop())
        end = None if duration_s is None else time.monotonic() + duration_s
        # Import what a launch needs now, not at the first fire: on a busy machine importing
        # nbformat and its schema validator took seconds and made the first runs start late.
        import nbformat
        import nbformat.validator  # noqa: F401
        log.info("scheduler %s: up (max %d concurrent)", self.owner, self.max_concurrent)
        while True:
            if end is not None and time.monotonic() >= end:
                self._stop.set()
            self.tick(launch_new=not self._stop.is_set())
            if self._stop.is_set() and not self.children and not self.retries:
                break
            if self._stop.is_set():
                time.sleep(self.poll_s)  # draining: only reaping and retries are left
            else:
                self._stop.wait(self._sleep_s())
        log.info("scheduler %s: stopped", self.owner)

    def _sleep_s(self) -> float:
        # Wake for the next due fire if it comes before the next poll (on-time starts).
        with self.engine.connect() as c:
            nxt = c.execute(sa.select(sa.func.min(schedules.c.next_ts))
                            .where(schedules.c.paused == sa.false())).scalar()
        wait = self.poll_s
        if nxt is not None:
            wait = min(wait, max(0.0, (int(nxt) - self.clock.now_ms()) / 1000))
        if self.retries:
            wait = min(wait, max(0.0, (self.retries[0].due_ms - self.clock.now_ms()) / 1000))
        return max(wait, 0.01)

    def tick(self, *, launch_new: bool = True) -> list[str]:
        """One pass: reap finished/hung runs, launch due retries, claim and launch due fires.
        Returns the run ids launched."""
        self._reap()
        started: list[str] = []
        now = self.clock.now_ms()
        while self.retries and self.retries[0].due_ms <= now and self._free():
            r = self.retries.pop(0)
            sched = get_schedule(self.engine, r.name)
            if sched is None:
                continue
            rid = self._launch(sched, r.fire_ts, r.attempt)
            if rid:
                started.append(rid)
        if not launch_new:
            return started
        with self.engine.connect() as c:
            due = [_sched_dict(r) for r in c.execute(
                sa.select(schedules).where(schedules.c.paused == sa.false(), schedules.c.next_ts <= now)
                .order_by(schedules.c.next_ts))]
        for sched in due:
            while self._free():
                fires, nxt = due_fires(sched, self.clock.now_ms(), grace_ms=self.grace_ms)
                if not claim_fire(self.engine, sched["name"], int(sched["next_ts"]), nxt):
                    break  # another daemon claimed it (or it was paused/edited): not ours
                if not fires:
                    log.info("schedule %s: skipped fire(s) missed by more than the grace period",
                             sched["name"])
                for f in fires:
                    rid = self._launch(sched, f, 1)
                    if rid:
                        started.append(rid)
                sched["next_ts"] = nxt
                if nxt > self.clock.now_ms():
                    break
        return started

    def _free(self) -> bool:
        return len(self.children) < self.max_concurrent

    # ------------------------------------------------------------------ launching
    def _launch(self, sched: dict[str, Any], fire_ts: int, attempt: int) -> str | None:
        name = sched["name"]
        try:
            plan = plan_run(sched["notebook"], sched["parameters"])
        except ValidationError as exc:
            # The notebook changed or vanished since the schedule was added: a visible failed run.
            from lyra.ops.runs import RunPlan

            plan = RunPlan(Path(sched["notebook"]), dict(sched["parameters"]))
            with contextlib.suppress(SAIntegrityError):
                register_run(self.engine, plan, self.settings.runs_dir, schedule_name=name, fire_ts=fire_ts,
                             attempt=attempt, status="failed", error=str(exc))
            log.error("schedule %s: %s", name, exc)
            return None
        try:
            run_id = register_run(self.engine, plan, self.settings.runs_dir, schedule_name=name,
                                  fire_ts=fire_ts, attempt=attempt, at_ms=self.clock.now_ms())
        except SAIntegrityError:
            # Only reachable if fires were claimed twice: the unique key refused the copy.
            log.error("schedule %s: fire %d attempt %d is already registered (duplicate refused)",
                      name, fire_ts, attempt)
            return None
        out = Path(self.settings.runs_dir) / run_id
        env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
        env.update(LYRA_HOME=str(self.settings.home), LYRA_DATABASE_URL=self.settings.db_url)
        with open(out / "worker.log", "wb") as logf:
            proc = subprocess.Popen([self.python, "-m", "lyra.ops._worker", run_id], stdout=logf,
                                    stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                                    start_new_session=True)
        with self.engine.begin() as c:
            c.execute(runs.update().where(runs.c.run_id == run_id).values(pid=proc.pid, owner=self.owner))
            c.execute(schedules.update().where(schedules.c.name == name).values(last_run_id=run_id))
        timeout = sched["timeout_s"]
        self.children[run_id] = _Child(run_id, proc, sched, fire_ts, attempt,
                                       None if timeout is None else time.monotonic() + float(timeout))
        self.launched.append(run_id)
        log.info("schedule %s: started run %s (fire %d, attempt %d, pid %d)", name, run_id, fire_ts,
                 attempt, proc.pid)
        return run_id

    # ------------------------------------------------------------------ reaping
    def _reap(self) -> None:
        for run_id, ch in list(self.children.items()):
            rc = ch.proc.poll()
            if rc is None and ch.deadline is not None and time.monotonic() >= ch.deadline:
                # Mark first: the worker's own "failed" (after the kill) must not win.
                finish_run(self.engine, run_id, "timeout",
                           error=f"timeout: killed after {ch.schedule['timeout_s']} s")
                kill_tree(ch.proc.pid, self.kill_grace_s)
                ch.proc.wait()
                log.warning("schedule %s: run %s timed out and was killed", ch.schedule["name"], run_id)
                rc = ch.proc.returncode
            if rc is None:
                continue
            del self.children[run_id]
            row = get_run(self.engine, run_id)
            status = row["status"] if row else "failed"
            if status == "running":  # the worker died without recording an outcome
                finish_run(self.engine, run_id, "failed", error=f"worker exited with code {rc}")
                status = "failed"
            if status in ("failed", "timeout") and ch.attempt <= int(ch.schedule["retries"]):
                delay = float(ch.schedule["backoff_s"]) * 2 ** (ch.attempt - 1)
                self.retries.append(_Retry(self.clock.now_ms() + int(delay * 1000), ch.schedule["name"],
                                           ch.fire_ts, ch.attempt + 1))
                self.retries.sort()
                log.info("schedule %s: run %s %s; retry %d in %.1f s", ch.schedule["name"], run_id, status,
                         ch.attempt, delay)


def kill_tree(pid: int, grace_s: float = 3.0) -> None:
    """SIGTERM a process and all its descendants (papermill's kernel runs in its own
    session, so a process-group kill would miss it), then SIGKILL what is left."""
    import psutil

    try:
        parent = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return
    procs = [*parent.children(recursive=True), parent]
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace_s)
