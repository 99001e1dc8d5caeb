"""lyra serve's database-backed metrics on both databases: sessions (up, stale, lease), the
kill switch, breakers, the audit chain head, runs and schedules, and the file_sd targets file
(written atomically; an unwritable path is reported and nothing stops)."""

from __future__ import annotations

import json
import os
import socket
import time

import sqlalchemy as sa
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lyra.audit import EventLog
from lyra.metrics import DatabaseCollector, MetricsEndpoint, ServeMetrics, write_targets
from lyra.metrics.serve import targets
from lyra.risk._types import BreakerTrip, TradingState
from lyra.risk.killswitch import KillSwitch
from lyra.risk.state import TradingStateStore
from lyra.session.lease import SessionLease
from lyra.session.registry import SessionRegistry
from lyra.store.tables import audit_head
from lyra.store.tables_ops import runs, schedules
from lyra.testing.sessions import demo_config

HOST = socket.gethostname()


def samples(collector) -> dict[tuple[str, tuple], float]:
    reg = CollectorRegistry()
    reg.register(collector)
    out = {}
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def get(smp: dict, name: str, **labels: str) -> float | None:
    return smp.get((name, tuple(sorted(labels.items()))))


def test_sessions_up_stale_and_lease(engine):
    reg = SessionRegistry(engine)
    cfg = demo_config(session_id="alive")
    reg.upsert("alive", cfg, status="running", pid=os.getpid(), host=HOST)
    lease = SessionLease(engine, "alive", ttl_s=30)
    lease.acquire()
    # A session whose owner died: a lease row naming a pid that does not exist on this host.
    reg.upsert("dead", demo_config(session_id="dead"), status="running", pid=2**22 + 7, host=HOST)
    dead = SessionLease(engine, "dead", ttl_s=30, pid=2**22 + 7, host=HOST)
    dead.acquire()
    reg.upsert("done", demo_config(session_id="done"), status="finished", pid=1, host=HOST)
    try:
        smp = samples(DatabaseCollector(engine))
    finally:
        lease.release()
    assert get(smp, "lyra_db_up") == 1
    assert get(smp, "lyra_session_up", session_id="alive") == 1
    assert get(smp, "lyra_session_up", session_id="dead") == 0
    assert get(smp, "lyra_session_lease_held", session_id="alive") == 1
    assert get(smp, "lyra_session_lease_held", session_id="dead") == 0
    assert get(smp, "lyra_session_lease_epoch", session_id="alive") == 1
    assert get(smp, "lyra_session_up", session_id="done") is None  # finished: no series of its own
    assert get(smp, "lyra_sessions", status="running") == 1
    assert get(smp, "lyra_sessions", status="stale") == 1
    assert get(smp, "lyra_sessions", status="finished") == 1
    age = get(smp, "lyra_session_heartbeat_age_seconds", session_id="alive")
    assert age is not None and 0 <= age < 3600


def test_kill_switch_breakers_and_trading_state(engine):
    now = int(time.time() * 1000)
    store = TradingStateStore(EventLog(engine))
    smp = samples(DatabaseCollector(engine))
    assert get(smp, "lyra_kill_switch_engaged", scope="global") == 0
    assert get(smp, "lyra_trading_state", scope="global", state="active") == 1
    KillSwitch(store).pull(session_id="acct1", actor="ops", reason="drill")
    store.record_trip(BreakerTrip("drawdown", "acct2", "", TradingState.HALTED, "dd 12%", now, None, 0),
                      session_id="acct2")
    store.record_trip(BreakerTrip("daily_loss", "acct2", "", TradingState.HALTED, "old", now - 10_000,
                                  now - 5_000, 0), session_id="acct2")
    smp = samples(DatabaseCollector(engine))
    assert get(smp, "lyra_kill_switch_engaged", scope="account:acct1") == 1
    assert get(smp, "lyra_kill_switch_engaged", scope="global") == 0
    assert get(smp, "lyra_trading_state", scope="account:acct1", state="halted") == 1
    assert get(smp, "lyra_breaker_tripped", breaker="drawdown") == 1
    assert get(smp, "lyra_breaker_tripped", breaker="daily_loss") == 0  # its cool-down is over
    assert get(smp, "lyra_breaker_trips_total", breaker="daily_loss") == 1


def test_audit_head_runs_and_schedules(engine):
    log = EventLog(engine)
    for i in range(3):
        log.append("test.entry", {"i": i}, actor="test", ts=1_700_000_000_000 + i)
    now = 1_800_000_000_000
    with engine.begin() as c:
        c.execute(schedules.insert(), [
            {"name": "late", "notebook": "n.ipynb", "parameters": "{}", "next_ts": now - 600_000, "created_ts": 0,
             "paused": False},
            {"name": "soon", "notebook": "n.ipynb", "parameters": "{}", "next_ts": now + 60_000, "created_ts": 0,
             "paused": False},
            {"name": "paused", "notebook": "n.ipynb", "parameters": "{}", "next_ts": 0, "created_ts": 0,
             "paused": True},
        ])
        base = {"notebook": "n.ipynb", "parameters": "{}", "created_ts": 0, "output_dir": "/tmp/x"}
        c.execute(runs.insert(), [
            {**base, "run_id": "r1", "status": "finished", "started_ts": 1000, "ended_ts": 4000,
             "schedule_name": "soon", "fire_ts": 1},
            {**base, "run_id": "r2", "status": "failed", "started_ts": 5000, "ended_ts": 12_000,
             "schedule_name": "soon", "fire_ts": 2},
            {**base, "run_id": "r3", "status": "running", "started_ts": 13_000, "ended_ts": None,
             "schedule_name": None, "fire_ts": None},
        ])
    smp = samples(DatabaseCollector(engine, now_ms=lambda: now))
    assert get(smp, "lyra_audit_head_seq") == 3
    assert get(smp, "lyra_audit_head_timestamp_seconds") == 1_700_000_000.002
    assert get(smp, "lyra_audit_head_consistent") == 1
    assert get(smp, "lyra_schedule_lag_seconds", schedule="late") == 600
    assert get(smp, "lyra_schedule_lag_seconds", schedule="soon") == 0
    assert get(smp, "lyra_schedule_lag_seconds", schedule="paused") is None
    assert get(smp, "lyra_runs_total", status="finished", schedule="soon") == 1
    assert get(smp, "lyra_runs_total", status="failed", schedule="soon") == 1
    assert get(smp, "lyra_runs_running") == 1
    assert get(smp, "lyra_run_duration_seconds", schedule="soon") == 7  # the last ended run: r2
    # A head row that disagrees with the log (a truncated tail): reported inconsistent.
    with engine.begin() as c:
        c.execute(audit_head.update().values(seq=2))
    assert get(samples(DatabaseCollector(engine, now_ms=lambda: now)), "lyra_audit_head_consistent") == 0


def test_a_database_that_fails_is_reported_not_raised(tmp_path):
    from lyra.store import create_engine_for

    eng = create_engine_for(f"sqlite:///{tmp_path / 'empty.db'}")  # no tables at all
    try:
        smp = samples(DatabaseCollector(eng))
    finally:
        eng.dispose()
    assert get(smp, "lyra_db_up") == 0


def test_targets_file_lists_this_hosts_endpoints_and_survives_a_bad_path(engine, tmp_path):
    reg = CollectorRegistry()
    with MetricsEndpoint(reg, kind="session", name="s1", engine=engine) as ep:
        with engine.begin() as c:  # an endpoint recorded by another host is not ours to list
            c.execute(sa.text("INSERT INTO metrics_endpoints (target, kind, name, host, pid, address, port, "
                              "started_ts) VALUES ('session:far', 'session', 'far', 'other-host', 1, "
                              "'127.0.0.1', 9, 0)"))
        path = tmp_path / "prom" / "targets.json"
        assert write_targets(engine, path) == 1
        data = json.loads(path.read_text())
        assert data == [{"targets": [f"127.0.0.1:{ep.port}"],
                         "labels": {"lyra_kind": "session", "lyra_name": "s1", "lyra_host": HOST}}]
        assert [g["labels"]["lyra_name"] for g in targets(engine, host="other-host")] == ["far"]
        # Unwritable: a file where the folder should be. ServeMetrics says so and keeps serving.
        blocker = tmp_path / "blocked"
        blocker.write_text("not a folder")
        sm = ServeMetrics(engine, targets_file=blocker / "targets.json", verify_every_s=0).start()
        try:
            assert sm.endpoint.port > 0
            assert any(str(blocker / "targets.json") in w and "keeps running" in w for w in sm.warnings), \
                sm.warnings
            sm.refresh()
            assert len([w for w in sm.warnings if "targets file" in w]) == 1  # said once, not every refresh
            import urllib.request

            with urllib.request.urlopen(sm.endpoint.url, timeout=30) as r:
                body = r.read().decode()
            assert "lyra_db_up 1.0" in body and "lyra_build_info{" in body
        finally:
            sm.stop()
    assert not [e for e in targets(engine) if e["labels"]["lyra_name"] == "s1"]


def test_full_verification_is_exported(engine, tmp_path):
    EventLog(engine).append("test.entry", {"i": 1}, actor="test")
    sm = ServeMetrics(engine, verify_every_s=0)  # never started: run_verify is called by hand
    try:
        outcome = sm.run_verify()
        assert outcome is not None and outcome.ok
        smp = samples(sm.collector)
        assert get(smp, "lyra_audit_verify_ok") == 1
        with engine.begin() as c:  # tamper with an entry
            c.execute(sa.text("UPDATE events SET payload = :p WHERE seq = 1"), {"p": '{"i":2}'})
        assert sm.run_verify() is not None
        assert get(samples(sm.collector), "lyra_audit_verify_ok") == 0
    finally:
        sm.endpoint.stop()
