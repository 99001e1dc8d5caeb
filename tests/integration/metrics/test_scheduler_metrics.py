"""The scheduler daemon's own /metrics: recorded in the database like a session's (and so in
lyra serve's targets file), its lag, starts, outcomes and durations equal to what the daemon
did under a ManualClock; served while ``run()`` runs and gone when it returns."""

from __future__ import annotations

import threading
import urllib.request
from types import SimpleNamespace

import nbformat
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lyra.core.clock import ManualClock
from lyra.metrics import read_endpoints, write_targets
from lyra.metrics.scheduler import scheduler_metrics
from lyra.ops.runs import get_run
from lyra.ops.scheduler import Scheduler, add_schedule
from lyra.testing.sessions import wait_for

T0 = 1_767_225_600_000  # 2026-01-01


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as r:
        text = r.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


def notebook(path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("x = 1")
    cell.metadata["tags"] = ["parameters"]
    nb.cells = [cell, nbformat.v4.new_code_cell("y = x")]
    nbformat.write(nb, path)
    return path


def test_scheduler_metrics(engine, tmp_path):
    clock = ManualClock(T0)
    add_schedule(engine, "late", notebook(tmp_path / "nb.ipynb"), every_s=60.0, start=T0 + 1_000)
    settings = SimpleNamespace(runs_dir=tmp_path / "runs", home=tmp_path, db_url=str(engine.url), metrics=True)
    # /bin/true as the worker: it exits at once without recording an outcome (a failed run)
    sch = Scheduler(engine, settings, poll_s=30.0, clock=clock, python="/bin/true")
    ep = scheduler_metrics(sch)
    assert ep is not None and ep.port
    try:
        rows = read_endpoints(engine)
        assert [(r["target"], r["kind"], r["port"]) for r in rows] == [(f"scheduler:{sch.owner}", "scheduler",
                                                                         ep.port)]
        n = write_targets(engine, tmp_path / "targets.json")
        assert n == 1 and f"127.0.0.1:{ep.port}" in (tmp_path / "targets.json").read_text()

        first = scrape(ep.url)
        assert first[("lyra_scheduler_up", ())] == 1
        assert first[("lyra_scheduler_runs_started_total", ())] == 0
        assert ("lyra_scheduler_lag_seconds", ()) not in first  # nothing started yet

        clock.advance(3.5)  # the fire was due at T0 + 1 s: the daemon starts it 2.5 s late
        (rid,) = sch.tick()
        for ch in list(sch.children.values()):
            ch.proc.wait()
        clock.advance(7.0)
        sch.tick()  # reaps the worker: failed, 7 s after its start
        run = get_run(engine, rid)
        assert run["status"] == "failed" and run["ended_ts"] - run["started_ts"] == 7_000
        got = scrape(ep.url)
        assert got[("lyra_scheduler_lag_seconds", ())] == 2.5
        assert got[("lyra_scheduler_runs_started_total", ())] == 1
        assert got[("lyra_scheduler_runs_running", ())] == 0
        assert got[("lyra_scheduler_runs_ended_total", (("status", "failed"),))] == 1
        assert got[("lyra_scheduler_runs_ended_total", (("status", "finished"),))] == 0
        assert got[("lyra_scheduler_run_duration_seconds_count", ())] == 1
        assert got[("lyra_scheduler_run_duration_seconds_sum", ())] == 7.0
        assert got[("lyra_scheduler_run_duration_seconds_bucket", (("le", "5.0"),))] == 0
        assert got[("lyra_scheduler_run_duration_seconds_bucket", (("le", "15.0"),))] == 1
        assert got[("lyra_scheduler_tick_timestamp_seconds", ())] == (T0 + 10_500) / 1000
        assert got[("lyra_scheduler_db_errors_total", ())] == 0
    finally:
        ep.stop()
    assert read_endpoints(engine) == []


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_run_serves_metrics_until_it_returns(engine, tmp_path):
    settings = SimpleNamespace(runs_dir=tmp_path / "runs", home=tmp_path, db_url=str(engine.url), metrics=True)
    sch = Scheduler(engine, settings, poll_s=0.05, python="/bin/true", metrics=scheduler_metrics)
    t = threading.Thread(target=sch.run, kwargs={"install_signals": False})
    t.start()
    try:
        row = wait_for(lambda: next(iter(read_endpoints(engine)), None), 60, "the scheduler's endpoint")
        assert row["kind"] == "scheduler" and row["name"] == sch.owner
        got = wait_for(lambda: (s := scrape(f"http://127.0.0.1:{row['port']}/metrics"))
                       .get(("lyra_scheduler_tick_timestamp_seconds", ())) and s, 60, "a tick")
        assert got[("lyra_scheduler_up", ())] == 1
    finally:
        sch.stop()
        t.join(60)
    assert not t.is_alive()
    assert read_endpoints(engine) == []  # its record goes with it

    off = Scheduler(engine, SimpleNamespace(**{**vars(settings), "metrics": False}), poll_s=0.05,
                    python="/bin/true", metrics=scheduler_metrics)
    t = threading.Thread(target=off.run, kwargs={"install_signals": False})
    t.start()
    try:
        wait_for(lambda: off.counts.last_tick_ms, 60, "a tick without metrics")
        assert read_endpoints(engine) == []  # LYRA_METRICS=off: the loop runs, nothing served
    finally:
        off.stop()
        t.join(60)
