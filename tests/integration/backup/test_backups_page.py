"""The audit page shows the home's backups and their last verification (what `lyra backup list`
says), including a backup whose verification failed, named with its first problem."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from lyra.audit import EventLog
from lyra.backup import create_backup, list_backups, verify_backup
from lyra.core.clock import ManualClock
from lyra.risk import TradingStateStore

from .conftest import build_home

# Panel's Tabulator calls reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = [pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:panel.widgets.tables"),
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")]


def test_the_audit_page_lists_backups_and_their_verification(sqlite_template: Path, market_template: Path,
                                                             tmp_path: Path) -> None:
    db = tmp_path / "lyra.db"
    shutil.copyfile(sqlite_template, db)  # a migrated database
    h: dict[str, Any] = build_home(tmp_path, f"sqlite:///{db}", market_template)
    from lyra.dashboards import audit_log

    log = EventLog(h["engine"], h["home"] / "audit" / "events.jsonl")
    store = TradingStateStore(log, clock=ManualClock(1_700_000_000_000))
    try:
        store.set_state("global", "reducing", actor="ops", reason="first")
        first = create_backup(h["settings"], h["engine"], now_ms=1_700_000_000_000)
        store.set_state("global", "active", actor="ops", reason="second")
        second = create_backup(h["settings"], h["engine"], now_ms=1_700_000_060_000)
        folder = h["home"] / "backups"
        assert verify_backup(folder / first.id, current=h["engine"]).ok
        # A changed byte in the second backup's copy of the mirror: its verification fails.
        mirror = next(p for p in (folder / second.id).rglob("events.jsonl"))
        data = bytearray(mirror.read_bytes())
        data[10] ^= 1
        mirror.write_bytes(bytes(data))
        assert not verify_backup(folder / second.id, current=h["engine"]).ok

        view = audit_log.AuditLogView(h["engine"], None, home=h["home"], live=False)
        rows = view._backups.value.to_dict("records")
        assert [r["backup"] for r in rows] == [second.id, first.id]  # newest first
        assert [r["backup"] for r in reversed(rows)] == [e.manifest.id for e in list_backups(folder)]
        assert rows[1]["verification"].startswith("ok (") and rows[1]["log head"] == first.head.seq
        assert rows[0]["verification"].startswith("FAILED: ") and "events.jsonl" in rows[0]["verification"]
        assert rows[1]["taken (UTC)"] == "2023-11-14 22:13:20" and rows[0]["log head"] == second.head.seq
        # A notebook's view without a home has no backups card, and no error.
        assert audit_log.AuditLogView(h["engine"], None, live=False).backups_dir is None
    finally:
        h["engine"].dispose()
