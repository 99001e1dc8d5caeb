"""The restore drill: backups taken while a paper session trades, then restores to three moments.

Each restored home must equal an independent replay of the original log at that moment
(orders, fills, positions, open orders, cash to the cent, risk states), pass ``audit verify``,
and hold the backup's files; on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import stat
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from lyra.audit import EventLog, replay, state_as_rows, verify
from lyra.backup import restore, state_at, verify_backup
from lyra.backup.manifest import list_backups, read_manifest
from lyra.backup.pitr import table_state
from lyra.backup.status import backup_check
from lyra.store import create_engine_for

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("backup_drill")]


def _mode(p: Path) -> int:
    return stat.S_IMODE(p.stat().st_mode)


def test_backups_taken_while_trading_hold_the_head_checksums_and_owner_only_keys(drilled):
    ms = drilled["manifests"]
    heads = [m.head.seq for m in ms]
    assert heads == sorted(set(heads)) and heads[0] >= 120, heads  # three distinct points
    assert drilled["records"][-1].seq > heads[-1]  # trading went on after the last backup
    by_seq = {r.seq: r for r in drilled["records"]}
    for m in ms:
        folder = drilled["backups"] / m.id
        assert (m.head.hash, m.head.ts) == (by_seq[m.head.seq].hash, by_seq[m.head.seq].ts)
        assert read_manifest(folder).head == m.head
        assert m.row_counts["events"] == m.head.seq
        mirror = (folder / "audit" / "events.jsonl").read_text().splitlines()
        assert len(mirror) == m.head.seq and json.loads(mirror[-1])["hash"] == m.head.hash
        assert _mode(folder / "keys") == 0o700 and _mode(folder / "keys" / "jwt.key") == 0o600
        assert "keys/jwt.key" in m.keys and "runs/r1/params.json" in m.files
        assert any(k.startswith("market/") and k.endswith(".parquet") for k in m.files)
        assert m.timings["longest_lock_ms"] >= 0 and m.tools["lyra"]
        assert m.chain_id == drilled["records"][0].hash
        if drilled["backend"] == "sqlite":
            assert m.tools["sqlite"] and m.timings["db_steps"] >= 1
        else:
            assert m.tools["pg_dump"].startswith("pg_dump") and m.tools["postgresql_server"]


def test_every_backup_verifies_and_doctor_reports_its_age(drilled, tmp_path):
    for m in drilled["manifests"]:
        rep = verify_backup(drilled["backups"] / m.id, current=drilled["engine"], scratch=tmp_path)
        assert rep.ok, rep.problems
        assert rep.entries == m.head.seq
    assert all(e.verified_ok for e in list_backups(drilled["backups"]))
    _, passed, detail = backup_check(drilled["backups"], now_ms=drilled["manifests"][-1].created_ms + 7_200_000)
    assert passed and f"last verified backup {drilled['manifests'][-1].id} is 2.0 h old" in detail
    assert list(tmp_path.iterdir()) == []  # the scratch copies are gone


def _restore_times(drilled: dict[str, Any]) -> list[int]:
    """Three moments, each after a different backup: past the risk change that followed the
    first two (so it is replayed from the log), and 40 entries past the third."""
    recs, heads = drilled["records"], [m.head.seq for m in drilled["manifests"]]
    seqs = [drilled["risk_seqs"][0] + 5, drilled["risk_seqs"][1] + 5, heads[2] + 40]
    assert heads[0] < seqs[0] < heads[1] < seqs[1] < heads[2] < seqs[2] < len(recs)
    return [recs[s - 1].ts for s in seqs]


def test_restore_to_three_times_equals_an_independent_replay_of_the_original(drilled, tmp_path, restore_db):
    original = EventLog(drilled["engine"])
    log = drilled["settings"].audit_dir / "events.jsonl"
    for i, t in enumerate(_restore_times(drilled)):
        target = tmp_path / f"restored-{i}"
        res = restore(drilled["backups"], target, until_ms=t, log_path=log, db_url=restore_db(f"r{i}"),
                      current=drilled["engine"])
        assert res.backup_id == drilled["manifests"][i].id  # the latest backup before the time
        assert res.replayed > 5 and res.head_seq == res.backup_head + res.replayed
        eng = create_engine_for(res.db_url)
        try:
            rep = verify(eng, target / "audit" / "events.jsonl")  # `lyra audit verify` there
            assert rep.ok and rep.entries == res.head_seq, rep.problems
            restored = state_at(EventLog(eng).read())
            expected = state_at(original.read(until_ts=t))  # the original log, as of t
            assert restored == expected
            assert restored["orders"] and restored["fills"] and restored["cash"]["drill"]
            assert restored["risk"]["account:desk-b"]["state"] == ("halted", "reducing", "reducing")[i]
            # `lyra audit replay --until t` on the original shows the same orders and positions
            assert state_as_rows(replay(original.read(until_ts=t))) == state_as_rows(replay(EventLog(eng).read()))
            with eng.connect() as conn:  # the restored projection tables, not only its log
                tables = table_state(conn)
            for k in ("orders", "fills", "positions", "risk"):
                assert tables[k] == expected[k], k
            # the restored log is exactly the original's prefix
            assert [r.hash for r in EventLog(eng).read()] == [r.hash for r in drilled["records"][: res.head_seq]]
        finally:
            eng.dispose()
        prov = json.loads((target / "restored_from.json").read_text())
        assert prov["backup_id"] == res.backup_id and prov["head"]["seq"] == res.head_seq
        assert prov["log"] == str(log) and prov["replayed_entries"] == res.replayed
        assert (target / "secrets" / "jwt.key").read_text() == "k" * 64
        assert _mode(target / "secrets" / "jwt.key") == 0o600 and _mode(target / "secrets") == 0o700
        assert (target / "runs" / "r1" / "params.json").read_text() == '{"fast": 10}'


def test_restore_to_the_end_gives_the_sessions_own_cash_to_the_cent(drilled, tmp_path, restore_db):
    """Independent reference: the balances the running session itself reported."""
    last = drilled["records"][-1]
    res = restore(drilled["backups"], tmp_path / "end", until_ms=last.ts,
                  log_path=drilled["settings"].audit_dir / "events.jsonl", db_url=restore_db("end"))
    assert res.head_seq == last.seq
    eng = create_engine_for(res.db_url)
    try:
        cash = state_at(EventLog(eng).read())["cash"]["drill"]
    finally:
        eng.dispose()
    session_balances = drilled["result"].balances
    assert {k: v.quantize(Decimal("0.01")) for k, v in cash.items()} == \
        {k: v.quantize(Decimal("0.01")) for k, v in session_balances.items()}
    assert cash == session_balances  # exactly, not only to the cent


def test_restore_to_backup_restores_it_as_it_is(drilled, tmp_path, restore_db):
    m = drilled["manifests"][1]
    res = restore(drilled["backups"], tmp_path / "as-is", backup_id=m.id, db_url=restore_db("as-is"))
    assert (res.backup_id, res.replayed, res.head_seq, res.head_hash) == (m.id, 0, m.head.seq, m.head.hash)
    eng = create_engine_for(res.db_url)
    try:
        with eng.connect() as conn:
            tables = table_state(conn)
        expected = state_at(r for r in drilled["records"] if r.seq <= m.head.seq)
        for k in ("orders", "fills", "positions"):
            assert tables[k] == expected[k], k
    finally:
        eng.dispose()
