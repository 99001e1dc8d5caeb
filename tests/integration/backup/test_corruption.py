"""``backup verify`` catches a damaged or dishonest backup and names what is wrong."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lyra.audit import EventLog
from lyra.backup import create_backup, restore, verify_backup
from lyra.backup.manifest import read_manifest
from lyra.core.errors import IntegrityError
from lyra.risk.state import TradingStateStore
from lyra.settings import load_settings
from lyra.store import create_engine_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backup_drill")]


def _db_file(folder: Path) -> str:
    return "db/lyra.db" if (folder / "db" / "lyra.db").exists() else "db/lyra.dump"


def test_a_truncated_database_file_is_named(drilled, backups_copy):
    folder = backups_copy / drilled["manifests"][0].id
    rel = _db_file(folder)
    data = (folder / rel).read_bytes()
    (folder / rel).write_bytes(data[: len(data) // 2])
    rep = verify_backup(folder, current=drilled["engine"])
    assert not rep.ok
    assert any(p.startswith(f"file {rel}: {len(data) // 2} bytes") and "truncated" in p for p in rep.problems), \
        rep.problems
    assert json.loads((folder / "verified.json").read_text())["ok"] is False  # recorded


def test_a_changed_byte_is_named_with_its_file(drilled, backups_copy):
    folder = backups_copy / drilled["manifests"][1].id
    m = read_manifest(folder)
    parquet = sorted(k for k in m.files if k.endswith(".parquet"))[0]
    for rel in (parquet, "audit/events.jsonl", _db_file(folder)):
        p = folder / rel
        data = bytearray(p.read_bytes())
        data[len(data) // 2] ^= 0x01  # one bit, same size
        p.write_bytes(bytes(data))
    rep = verify_backup(folder, current=drilled["engine"])
    named = {p.split(":")[0] for p in rep.problems if "checksum mismatch" in p}
    assert named == {f"file {parquet}", "file audit/events.jsonl", f"file {_db_file(folder)}"}, rep.problems


@pytest.mark.parametrize("drilled", ["sqlite"], indirect=True)
def test_a_manifest_lying_about_its_head_is_caught(drilled, backups_copy):
    folder = backups_copy / drilled["manifests"][1].id
    d = json.loads((folder / "manifest.json").read_text())
    real = d["head"]["seq"]
    earlier = drilled["records"][real - 2]  # claims to end one entry earlier (a plausible lie)
    d["head"] = {"seq": earlier.seq, "hash": earlier.hash, "ts": earlier.ts}
    (folder / "manifest.json").write_text(json.dumps(d))
    rep = verify_backup(folder, current=drilled["engine"])
    assert any(p.startswith(f"the manifest says head (entry {real - 1}, {earlier.hash[:12]}")
               and f"restored database's head is (entry {real}," in p for p in rep.problems), rep.problems


@pytest.mark.parametrize("drilled", ["sqlite"], indirect=True)
def test_a_backup_whose_chain_forks_from_the_current_log_is_caught(drilled, backups_copy, tmp_path, restore_db):
    """Another history from the same start: restore backup 0 elsewhere, write there, back it up."""
    m0 = drilled["manifests"][0]
    res = restore(backups_copy, tmp_path / "fork", backup_id=m0.id, db_url=restore_db("fork"))
    settings = load_settings(env={"LYRA_HOME": str(res.target), "LYRA_DATABASE_URL": res.db_url})
    eng = create_engine_for(res.db_url)
    try:
        TradingStateStore(EventLog(eng, settings.audit_dir / "events.jsonl")).set_state(
            "global", "halted", actor="intruder", reason="a different history")
        forked = create_backup(settings, eng, tmp_path / "fork-backups")
    finally:
        eng.dispose()
    assert forked.head.seq == m0.head.seq + 1 and forked.chain_id == m0.chain_id
    rep = verify_backup(tmp_path / "fork-backups" / forked.id, current=drilled["engine"])
    assert rep.problems == [f"backup {forked.id} forks from the current log at entry {m0.head.seq + 1}: "
                            f"entries from {m0.head.seq + 1} on differ (current head {drilled['records'][-1].seq})"]
    # restoring the original's log onto the forked backup is refused too, and leaves nothing
    with pytest.raises(IntegrityError, match=f"forks from backup {forked.id}: its entry {forked.head.seq} is not"):
        restore(tmp_path / "fork-backups", tmp_path / "t", until_ms=drilled["records"][m0.head.seq + 5].ts,
                log_path=drilled["settings"].audit_dir / "events.jsonl")
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("drilled", ["sqlite"], indirect=True)
def test_a_current_log_rolled_back_behind_the_backup_is_caught(drilled, backups_copy, tmp_path, restore_db):
    m0, m2 = drilled["manifests"][0], drilled["manifests"][2]
    res = restore(backups_copy, tmp_path / "old", backup_id=m0.id, db_url=restore_db("old"))
    eng = create_engine_for(res.db_url)
    try:
        rep = verify_backup(backups_copy / m2.id, current=eng)  # "current" = the older history
    finally:
        eng.dispose()
    assert rep.problems == [f"the current log ends at entry {m0.head.seq} but backup {m2.id} holds entries "
                            f"up to {m2.head.seq}: the current log was rolled back (or the backup is from a fork)"]
