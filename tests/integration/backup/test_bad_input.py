"""Bad restores are refused with a clear message, and nothing is overwritten."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog
from lyra.backup import restore, verify_backup
from lyra.core.errors import ConfigError, IntegrityError, ValidationError
from lyra.store import create_engine_for
from lyra.testing.sessions import demo_config

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backup_drill")]


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        h.update(str(p.relative_to(root)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _log(drilled) -> Path:
    return drilled["settings"].audit_dir / "events.jsonl"


def test_an_existing_target_is_refused_and_kept(drilled, backups_copy, tmp_path):
    target = tmp_path / "taken"
    target.mkdir()
    (target / "notes.txt").write_text("mine")
    with pytest.raises(ValidationError, match="exists and is not empty; a restore never writes over a home"):
        restore(backups_copy, target, until_ms=drilled["records"][-1].ts, log_path=_log(drilled))
    assert [p.name for p in target.iterdir()] == ["notes.txt"] and (target / "notes.txt").read_text() == "mine"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".restore-")] == []


@pytest.mark.parametrize("drilled", ["sqlite"], indirect=True)
def test_force_is_refused_while_a_session_runs_there_and_replaces_once_stopped(drilled, backups_copy, tmp_path):
    m = drilled["manifests"][0]
    target = tmp_path / "live"
    restore(backups_copy, target, backup_id=m.id)
    eng = create_engine_for(f"sqlite:///{target / 'lyra.db'}")
    try:
        with eng.begin() as conn:  # a session owns a lease there (as lyra.session.lease writes it)
            now = int(time.time() * 1000)
            conn.execute(sa.text("INSERT INTO session_leases VALUES ('busy', 1, 1, 'h', :n, :n, :e)"),
                         {"n": now, "e": now + 600_000})
    finally:
        eng.dispose()
    before = _tree_digest(target)
    with pytest.raises(ValidationError, match="sessions still run there: busy"):
        restore(backups_copy, target, backup_id=drilled["manifests"][1].id, force=True)
    assert _tree_digest(target) == before
    eng = create_engine_for(f"sqlite:///{target / 'lyra.db'}")
    try:
        with eng.begin() as conn:  # the lease expired: the owner is gone
            conn.execute(sa.text("UPDATE session_leases SET expires_ts = 0"))
    finally:
        eng.dispose()
    res = restore(backups_copy, target, backup_id=drilled["manifests"][1].id, force=True)
    assert res.head_seq == drilled["manifests"][1].head.seq
    assert json.loads((target / "restored_from.json").read_text())["backup_id"] == drilled["manifests"][1].id


def test_a_time_before_the_first_backup_is_refused(drilled, backups_copy, tmp_path):
    m0 = drilled["manifests"][0]
    early = drilled["records"][m0.head.seq - 20]
    with pytest.raises(ValidationError, match=f"is before the first backup: the earliest, {m0.id}, already holds "
                       f"entries up to {m0.head.seq}"):
        restore(backups_copy, tmp_path / "t", until_ms=early.ts, log_path=_log(drilled))
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("drilled", ["sqlite"], indirect=True)
def test_a_backup_from_another_home_is_refused(drilled, backups_copy, tmp_path, sqlite_template):
    import shutil

    other_db = tmp_path / "other.db"
    shutil.copyfile(sqlite_template, other_db)
    other = create_engine_for(f"sqlite:///{other_db}")
    try:
        log = EventLog(other, tmp_path / "other-audit" / "events.jsonl")
        log.append("session.started", {"config": demo_config(session_id="elsewhere").model_dump(mode="json")},
                   actor="session:elsewhere", session_id="elsewhere", ts=drilled["records"][-1].ts)
        m = drilled["manifests"][2]
        with pytest.raises(ValidationError, match="from another home"):
            restore(backups_copy, tmp_path / "t", until_ms=drilled["records"][-1].ts,
                    log_path=tmp_path / "other-audit" / "events.jsonl")
        with pytest.raises(ValidationError, match=f"backup={m.id!r}: is from another home"):
            restore(backups_copy, tmp_path / "t", backup_id=m.id, current=other)
        rep = verify_backup(backups_copy / m.id, current=other)
        assert len(rep.problems) == 1 and rep.problems[0].startswith(f"backup {m.id} is from another home")
    finally:
        other.dispose()
    assert not (tmp_path / "t").exists()


def test_a_backup_of_a_newer_schema_is_refused(drilled, backups_copy, tmp_path):
    m = drilled["manifests"][1]
    d = json.loads((backups_copy / m.id / "manifest.json").read_text())
    d["schema_revision"] = "0042_from_the_future"
    (backups_copy / m.id / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(IntegrityError, match="schema '0042_from_the_future', unknown to this Lyra .* written by a "
                       "newer Lyra"):
        restore(backups_copy, tmp_path / "t", backup_id=m.id)
    rep = verify_backup(backups_copy / m.id)
    assert any("0042_from_the_future" in p for p in rep.problems)
    assert not (tmp_path / "t").exists()


def test_a_missing_key_file_is_refused(drilled, backups_copy, tmp_path):
    m = drilled["manifests"][2]
    (backups_copy / m.id / "keys" / "jwt.key").unlink()
    with pytest.raises(IntegrityError, match=f"key file keys/jwt.key listed in the manifest is missing from backup "
                       f"{m.id}"):
        restore(backups_copy, tmp_path / "t", until_ms=drilled["records"][-1].ts, log_path=_log(drilled))
    assert not (tmp_path / "t").exists()
    assert any(p.startswith("key file keys/jwt.key") for p in verify_backup(backups_copy / m.id).problems)


@pytest.mark.parametrize("drilled", ["postgresql"], indirect=True)
def test_postgresql_restore_into_a_database_with_tables_is_refused(drilled, backups_copy, tmp_path):
    before = EventLog(drilled["engine"]).head()
    with pytest.raises(ConfigError, match="database is not empty"):
        restore(backups_copy, tmp_path / "t", backup_id=drilled["manifests"][0].id, db_url=drilled["db_url"])
    assert EventLog(drilled["engine"]).head() == before
    assert not (tmp_path / "t").exists()


@pytest.mark.parametrize("drilled", ["sqlite"], indirect=True)
def test_an_edited_entry_in_the_log_to_replay_is_refused(drilled, backups_copy, tmp_path):
    m = drilled["manifests"][2]
    lines = _log(drilled).read_text().splitlines(keepends=True)
    k = m.head.seq + 3  # an entry the restore would replay
    ts = drilled["records"][k - 1].ts
    assert f',"ts":{ts},' in lines[k - 1]
    lines[k - 1] = lines[k - 1].replace(f',"ts":{ts},', f',"ts":{ts + 1},', 1)  # re-stamped a ms later
    edited = tmp_path / "edited.jsonl"
    edited.write_text("".join(lines))
    with pytest.raises(IntegrityError, match=f"entry {k} does not match its hash \\(edited\\?\\)"):
        restore(backups_copy, tmp_path / "t", until_ms=drilled["records"][-1].ts, log_path=edited)
    assert not (tmp_path / "t").exists()


def test_until_and_to_backup_together_are_refused(drilled, backups_copy, tmp_path):
    with pytest.raises(ValidationError, match="say either --until TIME or --to-backup ID"):
        restore(backups_copy, tmp_path / "t", until_ms=1, backup_id=drilled["manifests"][0].id)
