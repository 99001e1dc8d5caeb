"""The life of a run row: queued, running (with a heartbeat), then an outcome and, for a
scheduled run that failed, its retry queued in the same transaction.

States (``runs.status``)::

    queued   -> running -> finished | failed | timeout
    queued   -> skipped            (a fire recovered too late under the ``skip`` policy)

A *queued* row is a fire (or a retry) that some daemon must start: ``started_ts`` is the
earliest time it may start; ``owner`` is the daemon that claimed it ('' = any daemon).
Moving a row between states is always one conditional UPDATE on its current state, so when
several daemons (and the worker itself) race to record an outcome, exactly one wins; the
winner queues the retry in the same transaction, so a retry is never lost (the deciding
process may die right after) and never doubled.

Liveness is kept without a schema change in the row's ``comparison`` column, which is unused
until a run has *ended* (a rerun's verdict is written there afterwards): while a run is
queued or running it holds ``{"heartbeat_ts": ms, "heartbeat_s": interval}``, renewed by the
worker every ``heartbeat_s``. Readers get ``heartbeat_ts``/``heartbeat_s`` from
:func:`lyra.ops.runs.get_run` and ``comparison`` stays None for them.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from lyra.core.clock import WALL_CLOCK
from lyra.store.tables_ops import runs, schedules

STATUSES = ("queued", "running", "finished", "failed", "timeout", "skipped")
ENDED = ("finished", "failed", "timeout", "skipped")
HOST = socket.gethostname()


def now_ms() -> int:
    return WALL_CLOCK.now_ms()


def process_owner(pid: int | None = None) -> str:
    """``host:pid`` of this process (or of ``pid`` on this host): who owns a claim or a run."""
    return f"{HOST}:{os.getpid() if pid is None else pid}"


def split_owner(owner: str) -> tuple[str, int | None]:
    """``("host", pid)`` of an owner string (pid None if it has none)."""
    host, _, pid = owner.rpartition(":")
    return (host, int(pid)) if pid.isdigit() else (owner, None)


def new_run_id(at_ms: int | None = None) -> str:
    """``20261201T120000-a1b2c3``: sortable by start, unique enough (24 random bits + time)."""
    t = datetime.fromtimestamp((now_ms() if at_ms is None else at_ms) / 1000, tz=UTC)
    return t.strftime("%Y%m%dT%H%M%S") + "-" + secrets.token_hex(3)


def liveness(at_ms: int, heartbeat_s: float) -> str:
    """The ``comparison`` text of a live (queued or running) row."""
    return json.dumps({"heartbeat_ts": int(at_ms), "heartbeat_s": float(heartbeat_s)}, sort_keys=True)


def read_liveness(status: str, text: str | None) -> dict[str, Any] | None:
    """``{"heartbeat_ts", "heartbeat_s"}`` of a live row, None otherwise."""
    if status not in ("queued", "running") or not text:
        return None
    try:
        d = json.loads(text)
    except json.JSONDecodeError:
        return None
    return d if isinstance(d, dict) and "heartbeat_ts" in d else None


def heartbeat(engine: Engine, run_id: str, *, at_ms: int, heartbeat_s: float, pid: int | None = None) -> bool:
    """Renew a running run's heartbeat (and record its worker's pid). False if the run is no
    longer running: another process recorded an outcome (a timeout, a dead-worker verdict),
    and the worker must stop."""
    values: dict[str, Any] = {"comparison": liveness(at_ms, heartbeat_s)}
    if pid is not None:
        values["pid"] = pid
    with engine.begin() as c:
        n = c.execute(runs.update().where(runs.c.run_id == run_id, runs.c.status == "running")
                      .values(**values)).rowcount
    return bool(n)


def queue_run(c: Connection, *, schedule: dict[str, Any], fire_ts: int, attempt: int, not_before: int,
              owner: str, at_ms: int, heartbeat_s: float) -> str:
    """Insert a queued row for (schedule, fire, attempt) on connection ``c`` (the caller's
    transaction); the unique key refuses a second copy. Its folder is made at launch."""
    run_id = new_run_id(at_ms)
    params = schedule["parameters"]
    c.execute(runs.insert().values(
        run_id=run_id, notebook=schedule["notebook"],
        parameters=params if isinstance(params, str) else json.dumps(params, sort_keys=True, default=str),
        status="queued", created_ts=at_ms, started_ts=not_before, output_dir="",
        schedule_name=schedule["name"], fire_ts=fire_ts, attempt=attempt, owner=owner,
        comparison=liveness(at_ms, heartbeat_s)))
    return run_id


def _queue_retry(c: Connection, run: Any, status: str, at_ms: int) -> str | None:
    """Queue the next attempt of a failed or timed-out scheduled run, if its schedule allows."""
    if status not in ("failed", "timeout") or run.schedule_name is None:
        return None
    s = c.execute(sa.select(schedules).where(schedules.c.name == run.schedule_name)).first()
    if s is None or int(run.attempt) > int(s.retries):
        return None
    taken = c.execute(sa.select(runs.c.run_id).where(
        runs.c.schedule_name == run.schedule_name, runs.c.fire_ts == run.fire_ts,
        runs.c.attempt == int(run.attempt) + 1)).first()
    if taken is not None:
        return None
    backoff = float(s.backoff_s)
    if not math.isfinite(backoff) or backoff < 0:  # a row stored before backoffs were validated
        backoff = 0.0
    delay_ms = round(min(backoff * 2 ** (int(run.attempt) - 1), 366 * 86400.0) * 1000)
    sched = {"name": s.name, "notebook": run.notebook, "parameters": run.parameters}
    return queue_run(c, schedule=sched, fire_ts=int(run.fire_ts), attempt=int(run.attempt) + 1,
                     not_before=at_ms + delay_ms, owner="", at_ms=at_ms, heartbeat_s=0.0)


def finish_run(engine: Engine, run_id: str, status: str, *, from_status: str = "running",
               at_ms: int | None = None, retry: bool = True, **values: Any) -> bool:
    """Record a run's outcome if it is still ``from_status`` (no-op, False, if another process
    recorded one first: e.g. a daemon marked it ``timeout``). A scheduled run that failed or
    timed out gets its next attempt queued in the same transaction (its schedule's retries and
    backoff: ``backoff_s * 2**(attempt-1)`` after this outcome) unless ``retry`` is False."""
    assert status in ENDED
    t = now_ms() if at_ms is None else at_ms
    values.setdefault("ended_ts", t)
    with engine.begin() as c:
        n = c.execute(runs.update().where(runs.c.run_id == run_id, runs.c.status == from_status)
                      .values(status=status, comparison="", **values)).rowcount
        if n:
            row = c.execute(sa.select(runs).where(runs.c.run_id == run_id)).first()
            assert row is not None
            if retry:
                _queue_retry(c, row, status, t)
    return bool(n)


def kill_tree(pid: int, grace_s: float = 3.0) -> None:
    """SIGTERM a process and all its descendants (papermill's kernel runs in its own
    session, so a process-group kill would miss it), then SIGKILL what is left."""
    import psutil

    try:
        parent = psutil.Process(pid)
        procs = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.terminate()
    _, alive = psutil.wait_procs(procs, timeout=grace_s)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()
    psutil.wait_procs(alive, timeout=grace_s)
