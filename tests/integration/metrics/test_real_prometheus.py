"""Debian's Prometheus, started on loopback with the shipped config (deploy/prometheus), finds
two paper sessions and lyra serve's exporter through the targets file, scrapes them, and:

- reads ``lyra_orders_submitted_total`` back through its HTTP API equal to the session's
  submitted orders in the database (the session stopped, its /metrics kept up for a last scrape);
- raises ``LyraSessionStale`` for the other session, killed with SIGKILL.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import yaml

from lyra.metrics import ServeMetrics
from lyra.session.registry import SessionRegistry
from lyra.store.tables import events

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy" / "prometheus"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"

# Ten hourly bars a second, from mid-2017 on: runs for many minutes unless stopped.
CONFIG = """
session_id = "{sid}"
mode = "paper"
strategy = "sma_cross"
venue = "coinbase"
symbols = ["BTC/USD"]
timeframe = "1h"
start = "2017-07-02"
quantity = "0.01"
speed = 36000.0
[params]
fast = 2
slow = 5
[balances]
USD = "100000"
[instruments."BTC/USD"]
price_increment = "0.01"
size_increment = "0.00000001"
min_notional = "1"
maker_fee = "0.004"
taker_fee = "0.006"
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(pred: Any, what: str, timeout: float = 90.0, logs: list[Path] = ()) -> Any:  # type: ignore[assignment]
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = pred()
        if last:
            return last
        time.sleep(0.2)
    tails = "".join(f"\n--- {p.name}:\n{p.read_text(errors='replace')[-1500:]}" for p in logs if p.exists())
    raise AssertionError(f"timed out waiting for {what} (last: {last!r}){tails}")


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}" if params else f"{base}{path}"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = json.loads(r.read())
    assert body["status"] == "success", body
    return body["data"]


def instant(base: str, query: str) -> float | None:
    res = api(base, "/api/v1/query", query=query)["result"]
    return float(res[0]["value"][1]) if res else None


def start_prometheus(tmp: Path, targets: Path) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Prometheus with the shipped config: only the targets file, the intervals and the rule
    file's folder changed for the test. A clear error (with its log) if it does not come up."""
    if not Path(PROMETHEUS).is_file():
        raise AssertionError(f"{PROMETHEUS} is missing: run scripts/setup.sh (Debian's prometheus package)")
    cfg = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    cfg["global"].update(scrape_interval="1s", evaluation_interval="1s")
    cfg["rule_files"] = [str(DEPLOY / f) for f in cfg["rule_files"]]
    sd = cfg["scrape_configs"][0]["file_sd_configs"][0]
    sd["files"] = [str(targets)]
    sd["refresh_interval"] = "1s"
    (tmp / "prometheus.yml").write_text(yaml.safe_dump(cfg))
    port = free_port()
    logf = tmp / "prometheus.log"
    with open(logf, "wb") as out:
        proc = subprocess.Popen([PROMETHEUS, f"--config.file={tmp / 'prometheus.yml'}",
                                 f"--storage.tsdb.path={tmp / 'data'}", f"--web.listen-address=127.0.0.1:{port}"],
                                stdout=out, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"prometheus exited ({proc.returncode}): {logf.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(f"{base}/-/ready", timeout=5) as r:
                return r.status == 200
        except OSError:
            return False

    wait_for(ready, f"prometheus on {base} (log: {logf})")
    return proc, base, logf


def submitted_in_db(engine: Any, sid: str) -> int:
    with engine.connect() as c:
        return int(c.execute(sa.select(sa.func.count()).select_from(events)
                             .where(events.c.session_id == sid, events.c.kind == "order.submit")).scalar_one())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_prometheus_scrapes_sessions_and_fires_the_stale_alert(session_home, tmp_path):
    engine = session_home["engine"]
    env = {**session_home["env"], "LYRA_METRICS_LINGER_S": "120", "COLUMNS": "200"}
    targets = tmp_path / "targets.json"
    procs: list[subprocess.Popen[bytes]] = []
    sm = ServeMetrics(engine, targets_file=targets, refresh_s=0.5, verify_every_s=0).start()
    prom = None
    try:
        for sid in ("keep", "doomed"):
            (tmp_path / f"{sid}.toml").write_text(CONFIG.format(sid=sid))
            with open(tmp_path / f"{sid}.log", "wb") as out:
                procs.append(subprocess.Popen([sys.executable, "-m", "lyra.cli", "session", "start", "--config",
                                               str(tmp_path / f"{sid}.toml"), "--quiet"], env=env,
                                              stdout=out, stderr=subprocess.STDOUT))
        prom, base, _log = start_prometheus(tmp_path, targets)
        _keep, doomed = procs

        # Scraped while running: orders counted, both sessions and lyra serve's exporter up.
        def scraped() -> bool:
            return all((instant(base, f'lyra_orders_submitted_total{{session_id="{s}"}}') or 0) > 0
                       for s in ("keep", "doomed"))

        wait_for(scraped, "both sessions scraped with orders", logs=[tmp_path / "keep.log", tmp_path / "doomed.log"])
        ups = api(base, "/api/v1/query", query='up{job="lyra"}')["result"]
        assert {(r["metric"]["lyra_kind"], r["metric"]["lyra_name"]) for r in ups if r["value"][1] == "1"} >= {
            ("session", "keep"), ("session", "doomed"), ("serve", socket.gethostname())}

        # Stop one: its final counts stay served (linger) and equal the database's.
        SessionRegistry(engine).request_stop("keep")
        reg = SessionRegistry(engine)
        wait_for(lambda: (reg.get("keep") or {}).get("status") == "stopped", "keep stopped")
        expected = submitted_in_db(engine, "keep")
        assert expected > 0
        got = wait_for(lambda: instant(base, 'lyra_orders_submitted_total{session_id="keep"}') == expected
                       and expected, f"Prometheus to read {expected} submitted orders of keep")
        assert got == expected
        assert instant(base, 'lyra_orders_submitted_total{session_id="keep"}') == submitted_in_db(engine, "keep")

        # Kill the other: lyra serve's collector sees it stale, the alert goes pending, then firing.
        os.kill(doomed.pid, signal.SIGKILL)
        doomed.wait(60)
        assert instant(base, 'lyra_session_up{session_id="doomed"}') is not None

        def stale_alert() -> str:
            for a in api(base, "/api/v1/alerts")["alerts"]:
                if a["labels"].get("alertname") == "LyraSessionStale" and a["labels"].get("session_id") == "doomed":
                    return str(a["state"])
            return ""

        assert wait_for(stale_alert, "LyraSessionStale for doomed") in ("pending", "firing")
        assert wait_for(lambda: stale_alert() == "firing", "LyraSessionStale firing after its 15 s")
        # The session that was stopped cleanly is not reported stale.
        assert not any(a["labels"].get("session_id") == "keep" and a["labels"]["alertname"] == "LyraSessionStale"
                       for a in api(base, "/api/v1/alerts")["alerts"])
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
            p.wait(60)
        if prom is not None:
            prom.terminate()
            try:
                prom.wait(30)
            except subprocess.TimeoutExpired:
                prom.kill()
                prom.wait(30)
        sm.stop()
