"""``lyra doctor --commission`` on both databases: a ready home passes (backups only warn
until one is taken); a database at the wrong migration level, a missing signing key and a
stopped scheduler each fail with their fix."""

from __future__ import annotations

import json
import os
import time

from typer.testing import CliRunner

from lyra.auth import generate_signing_key
from lyra.cli import app
from lyra.metrics.commission import FAIL, PASS, WARN, run_commission
from lyra.settings import load_settings
from lyra.store import downgrade
from lyra.store.tables_ops import schedules


def ready(home) -> None:
    (home / "secrets").mkdir(exist_ok=True)
    key = home / "secrets" / "jwt.key"
    key.write_text(generate_signing_key())
    os.chmod(key, 0o600)


def by_name(checks) -> dict:
    return {c.name: c for c in checks}


def test_a_ready_home_passes(session_home):
    ready(session_home["home"])
    checks = by_name(run_commission(load_settings()))
    assert {n for n, c in checks.items() if c.status != PASS} == {"backups"}
    assert checks["backups"].status == WARN and "lyra backup create" in checks["backups"].fix
    out = CliRunner().invoke(app, ["doctor", "--commission", "--json"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["ok"] is True and {c["name"] for c in data["checks"]} >= {
        "database", "market data", "signing key", "scheduler", "backups", "metrics endpoints", "audit chain",
        "feeds", "broker credentials"}


def test_missing_key_and_stopped_scheduler_fail_with_their_fix(session_home):
    engine = session_home["engine"]
    now = int(time.time() * 1000)
    with engine.begin() as c:
        c.execute(schedules.insert().values(name="nightly", notebook="n.ipynb", parameters="{}", paused=False,
                                            next_ts=now - 3_600_000, created_ts=0))
    checks = by_name(run_commission(load_settings()))
    key = checks["signing key"]
    assert key.status == FAIL and "jwt.key is missing" in key.detail and "generate_signing_key" in key.fix
    sched = checks["scheduler"]
    assert sched.status == FAIL and "nightly: 3600 s late" in sched.detail and sched.fix.endswith("`lyra schedule run`")
    out = CliRunner().invoke(app, ["doctor", "--commission"], env={"COLUMNS": "250"})
    assert out.exit_code == 1
    assert "FAIL" in out.output and "lyra schedule run" in out.output


def test_wrong_migration_level_fails_with_its_fix(session_home):
    ready(session_home["home"])
    downgrade(session_home["engine"], "0008_session_leases")
    checks = run_commission(load_settings())
    db = checks[0]
    assert db.name == "database" and db.status == FAIL
    assert "at migration 0008_session_leases" in db.detail and "lyra init" in db.fix
    assert checks[-1].status == FAIL and checks[-1].name == "the rest"
