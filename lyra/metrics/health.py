"""Health of every long-running process, for the admin page: each recorded metrics endpoint
(sessions, schedulers, ``lyra serve``) probed on its ``/metrics``, and every session the
registry says is running, with its heartbeat age and lease owner — a dead process shows as
``stale`` / ``not answering`` here as it does in ``lyra doctor --commission``."""

from __future__ import annotations

import socket
import time
import urllib.request
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from lyra.metrics.endpoint import read_endpoints

#: How long one probe may take (seconds): a hung process must not hang the page's worker.
PROBE_TIMEOUT_S = 2.0


def _age(ms: int | None, now_ms: int) -> str:
    if not ms:
        return ""
    s = max(0, (now_ms - ms) // 1000)
    return f"{s} s" if s < 120 else f"{s // 60} min" if s < 7200 else f"{s / 3600:.1f} h"


def _answers(address: str, port: int) -> bool:
    """Whether an endpoint on this host answers on /metrics."""
    try:
        with urllib.request.urlopen(f"http://{address}:{port}/metrics", timeout=PROBE_TIMEOUT_S) as r:
            return bool(r.status == 200)
    except OSError:
        return False


def process_health(engine: Engine, *, now_ms: int | None = None, probe: bool = True) -> list[dict[str, Any]]:
    """One row per process Lyra knows of: ``kind`` (session, scheduler, serve), ``name``,
    ``host``, ``pid``, ``status`` (a session's effective status: running, stale...),
    ``heartbeat age``, ``metrics`` (answering / NOT answering / none) and ``started``.
    ``probe=False`` skips the HTTP probes (a notebook that only wants the table)."""
    from lyra.session.lease import effective_status, read_leases
    from lyra.store.tables_session import sessions

    now = int(time.time() * 1000) if now_ms is None else now_ms
    here = socket.gethostname()

    def verdict(ep: dict[str, Any] | None) -> str:
        if ep is None:
            return "none"
        if ep["host"] != here:  # endpoints listen on loopback: only their own host can probe them
            return f"on {ep['host']}: not probed from here"
        return "answering" if not probe or _answers(ep["address"], ep["port"]) else "NOT answering"

    endpoints = {(e["kind"], e["name"]): e for e in read_endpoints(engine)}
    with engine.connect() as c:
        running = c.execute(sa.select(sessions.c.session_id, sessions.c.status, sessions.c.heartbeat_ts)
                            .where(sessions.c.status == "running")).all()
    leases = read_leases(engine)
    rows: list[dict[str, Any]] = []
    for r in running:
        lease = leases.get(r.session_id)
        ep = endpoints.pop(("session", r.session_id), None)
        rows.append({
            "kind": "session", "name": r.session_id,
            "host": lease.host if lease else (ep["host"] if ep else ""),
            "pid": lease.pid if lease else (ep["pid"] if ep else None),
            "status": effective_status(r.status, lease, int(r.heartbeat_ts or 0), now),
            "heartbeat age": _age(int(r.heartbeat_ts or 0), now),
            "metrics": verdict(ep),
            "started": _age(int(ep["started_ts"]), now) + " ago" if ep else "",
        })
    for (kind, name), ep in sorted(endpoints.items()):
        said = verdict(ep)
        rows.append({"kind": kind, "name": name, "host": ep["host"], "pid": ep["pid"],
                     "status": {"answering": "up", "NOT answering": "gone?"}.get(said, "unknown"),
                     "heartbeat age": "", "metrics": said,
                     "started": _age(int(ep["started_ts"]), now) + " ago"})
    return rows


__all__ = ["process_health"]
