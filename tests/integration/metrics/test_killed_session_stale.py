"""A session killed with SIGKILL is reported stale by lyra serve's database collector at the
first collection after its process is gone: well within two heartbeat intervals, since the
lease names a pid that no longer exists on this host (no waiting for the lease to expire)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from lyra.metrics import DatabaseCollector
from lyra.metrics.serve import targets

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

CONFIG = """
session_id = "victim"
mode = "paper"
strategy = "sma_cross"
venue = "coinbase"
symbols = ["BTC/USD"]
timeframe = "1h"
start = "2017-07-02"
quantity = "0.01"
speed = 3600.0
lease_s = 60.0
[params]
fast = 2
slow = 5
[balances]
USD = "100000"
[instruments."BTC/USD"]
price_increment = "0.01"
size_increment = "0.00000001"
maker_fee = "0.004"
taker_fee = "0.006"
"""


def up(engine) -> float | None:
    reg = CollectorRegistry()
    reg.register(DatabaseCollector(engine))
    for fam in text_string_to_metric_families(generate_latest(reg).decode()):
        for s in fam.samples:
            if s.name == "lyra_session_up" and s.labels.get("session_id") == "victim":
                return s.value
    return None


def test_a_killed_session_is_stale_at_the_next_collection(session_home, tmp_path):
    engine = session_home["engine"]
    cfg = tmp_path / "victim.toml"
    cfg.write_text(CONFIG)
    log = tmp_path / "victim.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "lyra.cli", "session", "start", "--config", str(cfg),
                                 "--quiet"], env=session_home["env"], stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while up(engine) != 1.0:
            assert proc.poll() is None, log.read_text()[-2000:]
            assert time.monotonic() < deadline, "the session never showed up as running"
            time.sleep(0.2)
        # Its /metrics endpoint is recorded, so the targets file lists it.
        assert [t["labels"]["lyra_name"] for t in targets(engine) if t["labels"]["lyra_kind"] == "session"] \
            == ["victim"]
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(60)
        # The lease lasts 60 s, yet the very next collection says stale (heartbeats are 0.25 s apart).
        assert up(engine) == 0.0
        # The killed process could not remove its endpoint: Prometheus keeps the target and sees it down.
        assert [t["labels"]["lyra_name"] for t in targets(engine)] == ["victim"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(60)
