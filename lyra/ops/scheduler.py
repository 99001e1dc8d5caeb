"""Schedules of notebook runs, and the daemon that launches them (``lyra schedule run``).

A schedule fires on a cron expression (croniter: 5 fields, or 6 with the seconds field *last*,
e.g. ``"* * * * * */10"`` = every 10 s) or every N seconds (``every_s``).
Its row holds ``next_ts``, the next fire time. A daemon *claims* a due fire with one
conditional UPDATE (``SET next_ts = <following> WHERE name = :n AND next_ts = <due>``): on
SQLite and PostgreSQL alike only one transaction can match, so however many daemons share the
database, a fire starts once. The same transaction inserts the fire's run as ``queued`` (owned
by the claiming daemon), so a daemon that dies between claim and launch loses nothing: any
other daemon recovers the fire by the missed-run policy. A unique (schedule, fire, attempt) key
on runs backs this up.

The daemon launches each run as a subprocess (``python -m lyra.ops._worker RUN_ID``: papermill
inside, its kernel a grandchild), at most ``max_concurrent`` at once. The worker renews the
run's heartbeat every ``heartbeat_s``. Every daemon watches every live run
(:mod:`lyra.ops.recovery`): a worker that died (its pid gone on this host, or no heartbeat for
two intervals) is marked failed with the reason; a run past its schedule's ``timeout_s``
(counted from its recorded start) is marked ``timeout`` and killed (the whole process tree).
A failed or timed-out run is retried ``retries`` times, ``backoff_s * 2**(attempt-1)`` after
the failure: the retry is queued in the transaction that records the failure, so it survives
the death of whoever recorded it. Missed fires (the daemon was down or busy): ``skip`` runs
only the latest missed fire, and only if it is less than ``grace_s`` late; ``catchup`` runs
every missed fire, oldest first.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError as SAIntegrityError

from lyra.core.clock import WALL_CLOCK, Clock
from lyra.core.errors import ValidationError
from lyra.ops.lifecycle import finish_run, kill_tree, liveness, now_ms, process_owner, queue_run
from lyra.ops.recovery import sweep
from lyra.ops.runs import get_run, plan_run
from lyra.store.tables_ops import runs, schedules

__all__ = ["LIMITS", "MISSED_POLICIES", "Scheduler", "add_schedule", "check_cron", "check_number",
           "claim_and_queue", "claim_fire", "due_fires", "fire_now", "following", "get_schedule", "kill_tree",
           "list_schedules", "remove_schedule", "set_paused"]

log = logging.getLogger(__name__)

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
MISSED_POLICIES = ("skip", "catchup")


#: (low, high, low is exclusive) of every numeric setting: finite, and sane.
LIMITS: dict[str, tuple[float, float, bool]] = {
    "every": (1.0, 366 * 86400.0, False),       # seconds between fires
    "timeout": (0.0, 30 * 86400.0, True),       # seconds a run may take
    "retries": (0, 100, False),
    "backoff": (0.0, 86400.0, False),           # seconds before the first retry (doubles)
    "poll": (0.01, 3600.0, False),              # daemon: seconds between checks
    "grace": (0.0, 366 * 86400.0, False),       # skip policy: how late a missed fire may still run
    "heartbeat": (0.05, 3600.0, False),         # daemon: seconds between a worker's heartbeats
    "max-concurrent": (1, 64, False),
    "duration": (0.0, 10 * 366 * 86400.0, True),
}


def check_number(field: str, value: Any, low: float, high: float, low_open: bool = False, *,
                 integer: bool = False) -> float:
    """``value`` as a float if it is a finite number in range; ValidationError naming
    ``field`` otherwise (NaN and infinities included)."""
    kind = "a whole number" if integer else "a finite number"
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValidationError(field, value, f"must be {kind}") from None
    if isinstance(value, bool) or not math.isfinite(v) or (integer and v != int(v)):
        raise ValidationError(field, value, f"must be {kind}")
    if (v <= low if low_open else v < low) or v > high:
        lo = f"> {low:g}" if low_open else f">= {low:g}"
        raise ValidationError(field, value, f"out of range: must be {lo} and <= {high:g}")
    return v


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
    if every_s is not None:
        every_s = check_number("every", every_s, *LIMITS["every"])
    if missed not in MISSED_POLICIES:
        raise ValidationError("missed", missed, "unknown policy", "skip or catchup")
    if timeout_s is not None:
        timeout_s = check_number("timeout", timeout_s, *LIMITS["timeout"])
    retries = int(check_number("retries", retries, *LIMITS["retries"], integer=True))
    backoff_s = check_number("backoff", backoff_s, *LIMITS["backoff"])
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
        if get_schedule(engine, name) is None:
            raise  # not the name (every value was checked above): a real fault, not bad input
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


def claim_and_queue(engine: Engine, sched: Mapping[str, Any], due_ts: int, next_ts: int, fires: Sequence[int],
                    *, owner: str, at_ms: int, heartbeat_s: float) -> list[str] | None:
    """Claim fire ``due_ts`` (as :func:`claim_fire`) and queue a run for each of ``fires``,
    owned by ``owner``, in ONE transaction: a daemon that dies right after leaves queued rows
    that any other daemon recovers (per the missed-run policy), never a fire claimed and lost.
    None if another daemon claimed it first."""
    with engine.begin() as c:
        n = c.execute(schedules.update()
                      .where(schedules.c.name == sched["name"], schedules.c.next_ts == due_ts,
                             schedules.c.paused == sa.false())
                      .values(next_ts=next_ts)).rowcount
        if n != 1:
            return None
        return [queue_run(c, schedule=dict(sched), fire_ts=f, attempt=1, not_before=f, owner=owner,
                          at_ms=at_ms, heartbeat_s=heartbeat_s) for f in fires]


def fire_now(engine: Engine, name: str, *, owner: str = "", at_ms: int | None = None,
             heartbeat_s: float = 0.0) -> str:
    """Queue a run of schedule ``name`` for now, outside its timing (``lyra schedule fire``);
    ``owner`` '' lets any daemon start it. Paused schedules fire too (it was asked for)."""
    sched = get_schedule(engine, name)
    _must(0 if sched is None else 1, name)
    assert sched is not None
    plan_run(sched["notebook"], sched["parameters"])  # a notebook that changed since: refuse now
    t = now_ms() if at_ms is None else at_ms
    with engine.begin() as c:
        return queue_run(c, schedule=sched, fire_ts=t, attempt=1, not_before=t, owner=owner, at_ms=t,
                         heartbeat_s=heartbeat_s)


# ---------------------------------------------------------------------------- the daemon
@dataclass
class SchedulerCounts:
    """What the daemon did, for its ``/metrics`` (:mod:`lyra.metrics.scheduler` reads these)."""

    last_tick_ms: int = 0  #: clock time of the last tick (after reaping and watching the runs)
    last_lag_ms: int | None = None  #: start - due fire time of the last first attempt started
    started: int = 0
    ended: dict[str, int] = field(default_factory=dict)  #: by final status, runs this daemon launched
    durations_s: list[float] = field(default_factory=list)  #: drained by each scrape
    db_errors: int = 0


@dataclass(slots=True)
class _Child:
    run_id: str
    proc: subprocess.Popen[bytes]
    name: str


class Scheduler:
    """The daemon's loop. ``run()`` until stopped (SIGTERM/SIGINT or ``duration_s``); on stop
    it launches nothing new but lets its running children finish (timeouts still apply;
    queued retries stay in the database for any daemon)::

        Scheduler(engine, settings, max_concurrent=2).run()   # what `lyra schedule run` runs

    Every daemon on a database also watches the runs it did not launch: it marks a run whose
    worker died as failed (its retry is queued per the schedule's policy), kills a run past its
    timeout (counted from the run's recorded start), and recovers fires whose claiming daemon
    died before starting them. All time decisions read ``clock`` (tests pass a ManualClock).
    """

    def __init__(self, engine: Engine, settings: Any, *, max_concurrent: int = 2, poll_s: float = 0.5,
                 grace_s: float = 60.0, python: str = sys.executable, kill_grace_s: float = 1.0,
                 heartbeat_s: float = 10.0, clock: Clock = WALL_CLOCK,
                 metrics: Callable[[Scheduler], Any] | None = None) -> None:
        self.max_concurrent = int(check_number("max-concurrent", max_concurrent, *LIMITS["max-concurrent"],
                                               integer=True))
        self.poll_s = check_number("poll", poll_s, *LIMITS["poll"])
        self.grace_ms = int(check_number("grace", grace_s, *LIMITS["grace"]) * 1000)
        self.heartbeat_s = check_number("heartbeat", heartbeat_s, *LIMITS["heartbeat"])
        self.engine = engine
        self.settings = settings
        self.python = python
        self.kill_grace_s = kill_grace_s
        self.clock = clock
        self.owner = process_owner()
        self.children: dict[str, _Child] = {}
        self.launched: list[str] = []
        self._stop = threading.Event()
        self.counts = SchedulerCounts()
        #: serve /metrics on loopback while running (``settings.metrics``, like sessions):
        #: ``metrics(self)`` starts an endpoint with a ``stop()``. Attached by the entry point
        #: (`lyra schedule run` passes lyra.metrics.scheduler.scheduler_metrics): metrics observe
        #: the scheduler from outside, ops never imports them.
        self.metrics = metrics
        self.serve_metrics = metrics is not None and bool(getattr(settings, "metrics", True))

    @property
    def stopping(self) -> bool:
        """True once asked to stop (it may still be draining its children)."""
        return self._stop.is_set()

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
        endpoint = None
        if self.serve_metrics and self.metrics is not None:  # never a reason not to schedule:
            endpoint = self.metrics(self)  # scheduler_metrics does not raise
        log.info("scheduler %s: up (max %d concurrent, heartbeat %g s)%s", self.owner, self.max_concurrent,
                 self.heartbeat_s, f"; metrics on {endpoint.url}" if endpoint and endpoint.port else "")
        try:
            while True:
                if end is not None and time.monotonic() >= end:
                    self._stop.set()
                try:
                    self.tick(launch_new=not self._stop.is_set())
                except sa.exc.OperationalError as exc:  # the database went away for a moment: try again
                    self.counts.db_errors += 1
                    log.error("scheduler %s: database error, retrying in %g s: %s", self.owner, self.poll_s,
                              exc)
                    time.sleep(self.poll_s)
                    continue
                if self._stop.is_set() and not self.children:
                    break
                if self._stop.is_set():
                    time.sleep(min(self.poll_s, 0.2))  # draining: only reaping and timeouts are left
                else:
                    self._stop.wait(self._sleep_s())
        finally:
            if endpoint is not None:
                endpoint.stop()
        log.info("scheduler %s: stopped", self.owner)

    def describe(self) -> str:
        """What this daemon waits for, in one paragraph (``lyra schedule run`` prints it)."""
        active = [s for s in list_schedules(self.engine) if not s["paused"]]
        with self.engine.connect() as c:
            queued = c.execute(sa.select(sa.func.count()).select_from(runs)
                               .where(runs.c.status == "queued")).scalar() or 0
        now = self.clock.now_ms()
        text = (f"lyra scheduler daemon {self.owner}: runs in the foreground until Ctrl-C or SIGTERM, "
                f"launching due notebook runs (at most {self.max_concurrent} at once; checks every "
                f"{self.poll_s:g} s; worker heartbeat every {self.heartbeat_s:g} s). ")
        if active:
            nxt = min(active, key=lambda s: s["next_ts"])
            when = datetime.fromtimestamp(nxt["next_ts"] / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")
            wait = max(0.0, (nxt["next_ts"] - now) / 1000)
            text += (f"Waiting for {len(active)} active schedule(s); next: {nxt['name']} at {when} UTC "
                     f"(in {wait:.0f} s).")
        else:
            text += "No active schedule yet: add one with `lyra schedule add` (this daemon picks it up)."
        if queued:
            text += f" {queued} queued run(s) (retries, manual fires) to start when due."
        return text

    def _sleep_s(self) -> float:
        # Wake for the next due fire or queued run if it comes before the next poll (on-time starts).
        with self.engine.connect() as c:
            nxt = c.execute(sa.select(sa.func.min(schedules.c.next_ts))
                            .where(schedules.c.paused == sa.false())).scalar()
            queued = c.execute(sa.select(sa.func.min(runs.c.started_ts))
                               .where(runs.c.status == "queued", runs.c.owner.in_(("", self.owner)))).scalar()
        wait = self.poll_s
        if not self._free():
            return wait  # nothing can start before a child ends: no need to wake early
        now = self.clock.now_ms()
        for t in (nxt, queued):
            if t is not None:
                wait = min(wait, max(0.0, (int(t) - now) / 1000))
        return max(wait, 0.01)

    def tick(self, *, launch_new: bool = True) -> list[str]:
        """One pass: reap this daemon's children; watch every live run (timeouts, dead workers,
        abandoned claims); then launch due queued runs (retries, manual and recovered fires) and
        claim and launch due fires. Returns the run ids launched."""
        self._reap()
        sweep(self)
        self.counts.last_tick_ms = self.clock.now_ms()  # the loop is alive (its /metrics say so)
        if not launch_new:
            return []
        started = self._launch_queued()
        now = self.clock.now_ms()
        with self.engine.connect() as c:
            due = [_sched_dict(r) for r in c.execute(
                sa.select(schedules).where(schedules.c.paused == sa.false(), schedules.c.next_ts <= now)
                .order_by(schedules.c.next_ts))]
        for sched in due:
            while self._free():
                now = self.clock.now_ms()
                fires, nxt = due_fires(sched, now, grace_ms=self.grace_ms)
                ids = claim_and_queue(self.engine, sched, int(sched["next_ts"]), nxt, fires, owner=self.owner,
                                      at_ms=now, heartbeat_s=self.heartbeat_s)
                if ids is None:
                    break  # another daemon claimed it (or it was paused/edited): not ours
                if not fires:
                    log.info("schedule %s: skipped fire(s) missed by more than the grace period",
                             sched["name"])
                for rid in ids:
                    if self.start_queued(rid, expected_owner=self.owner):
                        started.append(rid)
                sched["next_ts"] = nxt
                if nxt > self.clock.now_ms():
                    break
        return started

    def _free(self) -> bool:
        return len(self.children) < self.max_concurrent

    # ------------------------------------------------------------------ launching
    def _launch_queued(self) -> list[str]:
        started: list[str] = []
        if not self._free():
            return started
        with self.engine.connect() as c:
            due = c.execute(sa.select(runs.c.run_id, runs.c.owner)
                            .where(runs.c.status == "queued", runs.c.owner.in_(("", self.owner)),
                                   runs.c.started_ts <= self.clock.now_ms())
                            .order_by(runs.c.started_ts, runs.c.run_id)).all()
        for rid, owner in due:
            if not self._free():
                break
            if self.start_queued(rid, expected_owner=owner):
                started.append(rid)
        return started

    def start_queued(self, run_id: str, *, expected_owner: str) -> bool:
        """Take queued run ``run_id`` (one conditional update: if another daemon took it
        first, nothing happens) and start its worker. True if this daemon started it."""
        row = get_run(self.engine, run_id)
        if row is None or row["status"] != "queued":
            return False
        name, now = row["schedule_name"], self.clock.now_ms()
        try:
            plan = plan_run(row["notebook"], row["parameters"])
        except ValidationError as exc:
            # The notebook changed or vanished since the schedule was added: a visible failed run
            # (no retry: it would fail the same way).
            if finish_run(self.engine, run_id, "failed", from_status="queued", at_ms=now, retry=False,
                          error=str(exc), started_ts=now):
                log.error("schedule %s: %s", name, exc)
            return False
        out = Path(self.settings.runs_dir) / run_id
        with self.engine.begin() as c:
            n = c.execute(runs.update().where(runs.c.run_id == run_id, runs.c.status == "queued",
                                              runs.c.owner == expected_owner)
                          .values(status="running", owner=self.owner, started_ts=now, output_dir=str(out),
                                  pid=None, comparison=liveness(now, self.heartbeat_s))).rowcount
        if n != 1:
            return False  # another daemon took it
        out.mkdir(parents=True, exist_ok=True)
        # The source notebook now (papermill overwrites it with the executed copy): a run killed
        # before papermill's first save still holds the notebook it was to run.
        with contextlib.suppress(OSError):
            shutil.copyfile(plan.notebook, out / "notebook.ipynb")
        (out / "parameters.json").write_text(json.dumps(plan.parameters, indent=1, sort_keys=True,
                                                        default=str))
        env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
        env.update(LYRA_HOME=str(self.settings.home), LYRA_DATABASE_URL=self.settings.db_url)
        try:
            with open(out / "worker.log", "ab") as logf:
                # Its own session: a daemon's death (or Ctrl-C) does not take the run with it.
                proc = subprocess.Popen([self.python, "-m", "lyra.ops._worker", run_id, "--heartbeat",
                                         f"{self.heartbeat_s:g}"], stdout=logf, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, env=env, start_new_session=True)
        except OSError as exc:
            finish_run(self.engine, run_id, "failed", at_ms=self.clock.now_ms(),
                       error=f"could not start the worker: {exc}")
            log.error("schedule %s: run %s: could not start the worker: %s", name, run_id, exc)
            return False
        with self.engine.begin() as c:
            c.execute(runs.update().where(runs.c.run_id == run_id, runs.c.pid.is_(None)).values(pid=proc.pid))
            c.execute(schedules.update().where(schedules.c.name == name).values(last_run_id=run_id))
        self.children[run_id] = _Child(run_id, proc, name or "")
        self.launched.append(run_id)
        self.counts.started += 1
        if row["fire_ts"] is not None and row["attempt"] == 1:  # a retry is late on purpose
            self.counts.last_lag_ms = max(0, now - int(row["fire_ts"]))
        log.info("schedule %s: started run %s (fire %d, attempt %d, pid %d)", name, run_id, row["fire_ts"],
                 row["attempt"], proc.pid)
        return True

    # ------------------------------------------------------------------ reaping
    def _reap(self) -> None:
        for run_id, ch in list(self.children.items()):
            rc = ch.proc.poll()
            if rc is None:
                continue
            del self.children[run_id]
            if finish_run(self.engine, run_id, "failed", at_ms=self.clock.now_ms(),
                          error=f"worker exited with code {rc} without recording an outcome"):
                log.warning("schedule %s: run %s: worker exited with code %d without an outcome", ch.name,
                            run_id, rc)
            row = get_run(self.engine, run_id)
            log.info("schedule %s: run %s %s", ch.name, run_id, row["status"] if row else "gone")
            if row is not None:
                k = self.counts
                k.ended[row["status"]] = k.ended.get(row["status"], 0) + 1
                if row["ended_ts"] is not None and len(k.durations_s) < 100_000:
                    k.durations_s.append(max(0.0, (row["ended_ts"] - row["started_ts"]) / 1000))

    def kill_child(self, run_id: str) -> bool:
        """Kill this daemon's child running ``run_id`` (its whole tree); False if not ours."""
        ch = self.children.get(run_id)
        if ch is None:
            return False
        kill_tree(ch.proc.pid, self.kill_grace_s)
        ch.proc.wait()
        return True
