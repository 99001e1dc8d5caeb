"""What every scheduler daemon checks on every tick, for every live run — its own or not.

* **Timeouts**: a running run of a schedule with ``timeout_s`` is marked ``timeout`` once
  ``started_ts + timeout_s`` has passed (the recorded start, not the launching daemon's
  memory, so a dead daemon's runs still time out) and killed: this daemon's child directly,
  another daemon's worker on this host by pid; a worker on another host finds its run ended at
  its next heartbeat and stops itself.
* **Dead workers**: a running run whose worker is gone — its pid no longer a worker of that
  run (same host), or no heartbeat for two of its intervals (any host) — is marked failed with
  the reason; its retry is queued in the same transaction (:func:`lyra.ops.lifecycle.finish_run`).
  A run that never got a worker (its daemon died between taking it and starting it) goes back
  to ``queued``.
* **Abandoned claims**: a fire claimed (queued) by a daemon that died before starting it —
  its pid gone (same host) or its claim older than two heartbeat intervals — is recovered by
  the schedule's missed-run policy: ``catchup`` runs it however late; ``skip`` runs it if it is
  at most ``grace_s`` late and marks it ``skipped`` (with the reason) otherwise.

Each verdict is one conditional UPDATE on the row's current state, so daemons racing on the
same run record one verdict and queue one retry.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from lyra.ops.lifecycle import HOST, finish_run, kill_tree, read_liveness, split_owner
from lyra.store.tables_ops import runs, schedules

log = logging.getLogger(__name__)


def worker_alive(pid: int, run_id: str) -> bool:
    """Whether process ``pid`` on this host is alive and is the worker of ``run_id`` (not a
    zombie, not an unrelated process that reused the pid)."""
    import psutil

    try:
        p = psutil.Process(pid)
        return bool(p.status() != psutil.STATUS_ZOMBIE and run_id in p.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` on this host exists (and is not a zombie)."""
    import psutil

    try:
        return bool(psutil.Process(pid).status() != psutil.STATUS_ZOMBIE)
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True


def _stale(r: Any, now: int, default_s: float) -> tuple[bool, float, float]:
    """(stale, seconds since the last heartbeat, the interval) of a live row."""
    live = read_liveness(r.status, r.comparison) or {"heartbeat_ts": r.created_ts, "heartbeat_s": 0}
    interval = float(live["heartbeat_s"]) or default_s
    age = (now - int(live["heartbeat_ts"])) / 1000
    return age >= 2 * interval, age, interval


def dead_worker(r: Any, now: int, default_s: float) -> str | None:
    """Why the worker of running row ``r`` is dead, or None if it may be alive. On this host
    the process table is the truth (a heartbeat late under load is not death); elsewhere, two
    missed heartbeats. A row with no worker pid yet is dead only if its daemon is."""
    host, daemon_pid = split_owner(r.owner)
    if host == HOST:
        if r.pid is not None:
            if worker_alive(int(r.pid), r.run_id):
                return None
            return f"worker died: pid {r.pid} on {host} is gone and recorded no outcome"
        if daemon_pid is not None and process_alive(daemon_pid):
            return None  # its daemon is starting the worker
        return f"never started: its daemon {r.owner} died before starting a worker"
    stale, age, interval = _stale(r, now, default_s)
    if not stale:
        return None
    return f"worker died: no heartbeat for {age:.1f} s (2 intervals of {interval:g} s)"


def claim_abandoned(r: Any, now: int, default_s: float) -> bool:
    """Whether queued row ``r``, claimed by another daemon, was abandoned by it: the daemon's
    pid is gone (this host), or (another host) its claim is two heartbeat intervals old (a
    live daemon starts what it claims at once)."""
    host, pid = split_owner(r.owner)
    if host == HOST and pid is not None:
        return not process_alive(pid)
    return _stale(r, now, default_s)[0]


def sweep(sch: Any) -> None:
    """One pass over every queued and running run (see the module doc). ``sch`` is the
    :class:`lyra.ops.scheduler.Scheduler` doing it (its clock, children, settings)."""
    now = sch.clock.now_ms()
    with sch.engine.connect() as c:
        live = c.execute(sa.select(runs).where(runs.c.status.in_(("queued", "running")))).all()
        names = {r.schedule_name for r in live if r.schedule_name}
        scheds = {s.name: s for s in c.execute(sa.select(schedules).where(schedules.c.name.in_(names)))} \
            if names else {}
    for r in live:
        if r.schedule_name is None:
            _check_adhoc(sch, r, now)
            continue
        s = scheds.get(r.schedule_name)
        if r.status == "running":
            _check_running(sch, r, s, now)
        elif r.owner not in ("", sch.owner) and claim_abandoned(r, now, sch.heartbeat_s):
            _recover_claim(sch, r, s, now)


def _check_adhoc(sch: Any, r: Any, now: int) -> None:
    """A `lyra run` (no schedule) runs in its own process: if that is gone on this host, the
    run will never record an outcome. (On another host there is no heartbeat to tell.)"""
    host, pid = split_owner(r.owner)
    if r.status == "running" and host == HOST and pid is not None and not process_alive(pid) \
            and finish_run(sch.engine, r.run_id, "failed", at_ms=now, retry=False,
                           error=f"its process {r.owner} is gone and recorded no outcome"):
        log.warning("run %s: its process %s is gone: marked failed", r.run_id, r.owner)


def _check_running(sch: Any, r: Any, s: Any, now: int) -> None:
    timeout = None if s is None or s.timeout_s is None else float(s.timeout_s)
    if timeout is not None and now >= int(r.started_ts) + round(timeout * 1000):
        if finish_run(sch.engine, r.run_id, "timeout", at_ms=now,
                      error=f"timeout: killed after {float(s.timeout_s):g} s (by {sch.owner})"):
            killed = sch.kill_child(r.run_id)
            host, _ = split_owner(r.owner)
            if not killed and host == HOST and r.pid is not None and worker_alive(int(r.pid), r.run_id):
                kill_tree(int(r.pid), sch.kill_grace_s)
                killed = True
            log.warning("schedule %s: run %s timed out%s", r.schedule_name, r.run_id,
                        " and was killed" if killed else " (its worker stops at its next heartbeat)")
        return
    if r.run_id in sch.children:
        return  # this daemon's own child: reaped when it exits
    why = dead_worker(r, now, sch.heartbeat_s)
    if why is None:
        return
    if r.pid is None:
        # Taken but never started (its daemon died in between): back to queued, still owned by
        # that daemon, so the missed-run policy decides (below, on this or the next pass).
        with sch.engine.begin() as c:
            c.execute(runs.update().where(runs.c.run_id == r.run_id, runs.c.status == "running",
                                          runs.c.pid.is_(None), runs.c.comparison == r.comparison)
                      .values(status="queued"))
        log.warning("schedule %s: run %s never started (its daemon %s died): requeued", r.schedule_name,
                    r.run_id, r.owner)
        return
    if finish_run(sch.engine, r.run_id, "failed", at_ms=now, error=why):
        log.warning("schedule %s: run %s (launched by %s): %s; marked failed", r.schedule_name, r.run_id,
                    r.owner, why)


def _recover_claim(sch: Any, r: Any, s: Any, now: int) -> None:
    late_s = (now - int(r.fire_ts if r.fire_ts is not None else r.started_ts)) / 1000
    who = f"claimed by {r.owner}, which died before starting it"
    if s is None:
        finish_run(sch.engine, r.run_id, "skipped", from_status="queued", at_ms=now, retry=False,
                   error=f"missed: {who}; its schedule was removed since")
        return
    if s.missed == "catchup" or int(r.attempt) > 1 or late_s * 1000 <= sch.grace_ms:
        with sch.engine.begin() as c:  # hand it to any daemon (this one, on its next launch pass)
            n = c.execute(runs.update().where(runs.c.run_id == r.run_id, runs.c.status == "queued",
                                              runs.c.owner == r.owner)
                          .values(owner="")).rowcount
        if n:
            log.warning("schedule %s: fire %s %s: recovered (%s policy, %.1f s late)", r.schedule_name,
                        r.fire_ts, who, s.missed, late_s)
        return
    if finish_run(sch.engine, r.run_id, "skipped", from_status="queued", at_ms=now, retry=False,
                  error=f"missed: {who}; {late_s:.1f} s late, more than the {sch.grace_ms / 1000:g} s grace "
                  "(skip policy)"):
        log.warning("schedule %s: fire %s %s: skipped (%.1f s late)", r.schedule_name, r.fire_ts, who, late_s)
