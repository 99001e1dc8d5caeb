"""The commands as a person runs them: ``lyra backup create|list|verify|prune``, ``lyra restore``,
``lyra doctor``'s backup line (real subprocesses, SQLite)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog
from lyra.core.clock import ManualClock
from lyra.core.timeutil import ms_to_datetime
from lyra.risk.state import TradingStateStore
from lyra.store import create_engine_for

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def _lyra(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "lyra.cli", *args], env=env, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_backup_list_verify_restore_and_doctor_from_the_command_line(session_home, tmp_path):
    h = session_home
    home: Path = h["home"]
    log = EventLog(h["engine"], home / "audit" / "events.jsonl")
    clock = ManualClock(1_700_000_000_000)
    store = TradingStateStore(log, clock=clock)
    store.set_state("global", "reducing", actor="ops", reason="before the backup")
    out = _lyra(h["env"], "backup", "create", "--quiet")
    assert out.returncode == 0, out.stderr
    assert "backup " in out.stdout and "head entry 1" in out.stdout
    clock.advance(60)
    store.set_state("global", "halted", actor="ops", reason="after the backup")  # at 1_700_000_060_000
    clock.advance(60)
    store.set_state("global", "active", actor="ops", reason="later still")

    ok = _lyra(h["env"], "backup", "verify")
    assert ok.returncode == 0 and "restores whole: 1 entries" in ok.stdout, ok.stderr

    until = ms_to_datetime(1_700_000_090_000).isoformat()  # after the halt, before "active"
    target = tmp_path / "restored"
    res = _lyra(h["env"], "restore", "--until", until, "--target", str(target))
    assert res.returncode == 0, res.stderr
    assert "+ 1 replayed entries: head entry 2" in " ".join(res.stdout.split())
    eng = create_engine_for(f"sqlite:///{target / 'lyra.db'}")
    try:
        with eng.connect() as conn:
            row = conn.execute(sa.text("SELECT state, reason FROM trading_state WHERE scope = 'global'")).one()
    finally:
        eng.dispose()
    assert tuple(row) == ("halted", "after the backup")  # the replayed entry, not the backup's state

    listed = json.loads(_lyra(h["env"], "backup", "list", "--json").stdout)
    assert [(b["head"], b["verified"]["ok"]) for b in listed] == [(1, True)]
    doctor = _lyra(h["env"], "doctor")
    assert "backups" in doctor.stdout and "last verified backup" in " ".join(doctor.stdout.split())
    assert "would delete 0 backups" in _lyra(h["env"], "backup", "prune", "--dry-run").stdout
