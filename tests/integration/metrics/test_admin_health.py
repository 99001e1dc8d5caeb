"""The admin page's control centre: the commissioning checklist (as `lyra doctor --commission`)
and every process Lyra knows of — a live session answering on /metrics, a session whose owner
died (stale, its endpoint not answering), a scheduler daemon that is gone — computed in a
worker thread when "Run checks" is pressed."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import time

import pytest
from prometheus_client import CollectorRegistry

from lyra.auth import generate_signing_key
from lyra.metrics.commission import run_commission
from lyra.metrics.endpoint import MetricsEndpoint
from lyra.session.lease import SessionLease
from lyra.session.registry import SessionRegistry
from lyra.settings import load_settings
from lyra.store.tables_metrics import metrics_endpoints
from lyra.store.tables_session import session_leases
from lyra.testing.sessions import demo_config

# Panel's Tabulator and Bokeh's ColumnDataSource call reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = [pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:panel.widgets.tables"),
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")]


@pytest.fixture
def health_view():
    from lyra.dashboards import health

    return health


def _dead_pid() -> int:
    p = subprocess.Popen(["true"])
    p.wait()
    return p.pid


def test_the_control_centre_shows_the_checklist_and_every_process(session_home, health_view):
    home, engine = session_home["home"], session_home["engine"]
    (home / "secrets").mkdir(exist_ok=True)
    (home / "secrets" / "jwt.key").write_text(generate_signing_key())
    os.chmod(home / "secrets" / "jwt.key", 0o600)
    now = int(time.time() * 1000)
    reg = SessionRegistry(engine)
    for sid in ("alive", "dead"):
        reg.upsert(sid, demo_config(session_id=sid), status="running", pid=os.getpid())
    lease = SessionLease(engine, "alive", ttl_s=60)
    lease.acquire()
    with engine.begin() as c:  # "dead": its owner's process is gone, its lease not yet expired
        c.execute(session_leases.insert().values(session_id="dead", epoch=1, owner_pid=_dead_pid(),
                                                 owner_host=socket.gethostname(), acquired_ts=now,
                                                 renewed_ts=now, expires_ts=now + 60_000))
    live = MetricsEndpoint(CollectorRegistry(), kind="session", name="alive", engine=engine).start()
    with socket.socket() as s:  # a port nobody listens on any more
        s.bind(("127.0.0.1", 0))
        gone_port = s.getsockname()[1]
    with engine.begin() as c:
        for kind, name, host in (("session", "dead", socket.gethostname()),
                                 ("scheduler", "old-host", socket.gethostname()), ("serve", "far", "far")):
            c.execute(metrics_endpoints.insert().values(target=f"{kind}:{name}", kind=kind, name=name,
                                                        host=host, pid=1, address="127.0.0.1", port=gone_port,
                                                        started_ts=now - 600_000))
    try:
        panel = health_view.HealthPanel(load_settings(), engine)
        asyncio.run(panel.run())
        checks = panel.checks.value.set_index("check")
        # The same checklist as `lyra doctor --commission`, row for row.
        doctor = run_commission(load_settings())
        assert list(checks.index) == [c.name for c in doctor]
        assert list(checks["status"]) == [c.status for c in doctor]
        assert checks.loc["metrics endpoints", "status"] == "warn"  # two endpoints do not answer
        procs = panel.processes.value.set_index("name")
        assert procs.loc["alive", ["kind", "status", "metrics"]].tolist() == ["session", "running", "answering"]
        assert procs.loc["dead", ["status", "metrics"]].tolist() == ["stale", "NOT answering"]
        assert procs.loc["old-host", ["kind", "status", "metrics", "started"]].tolist() == [
            "scheduler", "gone?", "NOT answering", "10 min ago"]
        assert procs.loc["far", ["status", "metrics"]].tolist() == ["unknown", "on far: not probed from here"]
        assert "1 fail" not in panel.status.object and "4 processes" in panel.status.object
        assert not panel.button.disabled
    finally:
        live.stop()
        lease.release()
