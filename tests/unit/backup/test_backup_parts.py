"""The parts of ``lyra.backup`` that need no database: manifests, retention, tool versions,
log files, the doctor line, point-in-time state."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lyra.audit.chain import GENESIS_HASH, EventRecord, entry_hash
from lyra.backup.create import select_to_keep
from lyra.backup.dbcopy import check_client_matches
from lyra.backup.manifest import (
    VERIFIED,
    Entry,
    Head,
    Manifest,
    list_backups,
    read_manifest,
    write_json_atomic,
)
from lyra.backup.materialize import read_log_file, scan_log
from lyra.backup.pitr import state_at
from lyra.backup.status import backup_check
from lyra.core.errors import ConfigError, IntegrityError, ValidationError


def _ms(text: str) -> int:
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def _manifest(created_ms: int, seq: int = 1) -> Manifest:
    from lyra.backup.manifest import new_backup_id

    return Manifest(id=new_backup_id(created_ms, seq), created_ms=created_ms, home="/h", chain_id="c",
                    backend="sqlite", schema_revision="0001", head=Head(seq, "h" * 64, 5), row_counts={"events": seq},
                    files={"db/lyra.db": [3, "ab"]}, keys=[], tools={"lyra": "0"})


def _write(folder: Path, m: Manifest, verified: dict | None = None) -> Path:
    p = folder / m.id
    p.mkdir(parents=True)
    write_json_atomic(p / "manifest.json", m.to_json())
    if verified is not None:
        (p / VERIFIED).write_text(json.dumps(verified))
    return p


def test_manifest_round_trips_and_the_registry_lists_whole_backups_oldest_first(tmp_path):
    a, b = _manifest(_ms("2026-01-02T10:00:00"), 7), _manifest(_ms("2026-01-01T10:00:00"), 3)
    _write(tmp_path, a)
    _write(tmp_path, b)
    (tmp_path / ".partial-123").mkdir()  # an unfinished backup is not listed
    assert read_manifest(tmp_path / a.id) == a
    assert [e.manifest.id for e in list_backups(tmp_path)] == [b.id, a.id]


@pytest.mark.parametrize(("change", "message"), [
    (lambda d: d.pop("head"), "manifest.json: head=None: missing from the manifest"),
    (lambda d: d.update(format=99), "format=99: written by a newer Lyra"),
    (lambda d: d["head"].update(seq="12"), "seq='12': must be int"),
    (lambda d: d["files"].update({"../etc/passwd": [1, "x"]}), "files.../etc/passwd"),
])
def test_a_bad_manifest_names_the_field(tmp_path, change, message):
    m = _manifest(1_700_000_000_000)
    p = _write(tmp_path, m)
    d = json.loads((p / "manifest.json").read_text())
    change(d)
    (p / "manifest.json").write_text(json.dumps(d))
    with pytest.raises(ValidationError, match=message.replace(".", r"\.").replace("(", r"\(")):
        read_manifest(p)


def test_retention_keeps_the_newest_of_each_recent_day_and_week():
    # Hand-worked: backups at 10:00 and 18:00 on Mon 5 .. Sun 11 Jan 2026 (ISO week 2), and one
    # on each of Fri 2 and Sat 3 Jan (week 1) and Mon 29 Dec 2025 (week 1 of 2026 too).
    days = ["2025-12-29", "2026-01-02", "2026-01-03"] + [f"2026-01-{d:02d}" for d in range(5, 12)]
    entries = []
    for d in days:
        for hour in ("10", "18") if d >= "2026-01-05" else ("12",):
            m = _manifest(_ms(f"{d}T{hour}:00:00"))
            entries.append(Entry(Path(m.id), m, None))
    keep = select_to_keep(entries, daily=3, weekly=2)
    kept = sorted(datetime.fromtimestamp(e.manifest.created_ms / 1000, UTC).strftime("%m-%d %H")
                  for e in entries if e.manifest.id in keep)
    # daily: newest of 11, 10, 9 Jan; weekly: newest of week 2 (11 Jan 18h) and of week 1 (3 Jan)
    assert kept == ["01-03 12", "01-09 18", "01-10 18", "01-11 18"]
    assert len(select_to_keep(entries, daily=0, weekly=0)) == 1  # the newest always stays
    with pytest.raises(ValidationError, match="must not be negative"):
        select_to_keep(entries, daily=-1, weekly=0)


def test_pg_dump_older_than_the_server_is_refused_with_the_fix():
    check_client_matches("pg_dump (PostgreSQL) 16.4", "15.20 (Debian 15.20-0+deb12u1)")  # newer client: fine
    check_client_matches("pg_dump (PostgreSQL) 15.20 (Debian)", "15.8")
    with pytest.raises(ConfigError, match=r"pg_dump='pg_dump \(PostgreSQL\) 15.20': is version 15 but the database "
                       r"server runs PostgreSQL 16.2: pg_dump cannot read a newer server \(install the version 16 "
                       r"client tools \(Debian: postgresql-client-16\)\)"):
        check_client_matches("pg_dump (PostgreSQL) 15.20", "16.2")


def _chain(rows: list[tuple[int, str, str, str]]) -> list[EventRecord]:
    out, prev = [], GENESIS_HASH
    for seq, (ts, kind, sid, payload) in enumerate(rows, 1):
        h = entry_hash(seq, ts, "a", kind, sid, payload, prev)
        out.append(EventRecord(seq, ts, "a", kind, sid, payload, prev, h))
        prev = h
    return out


def test_a_log_file_is_scanned_for_the_cut_and_its_chain_checked(tmp_path):
    recs = _chain([(100, "x.a", "", '{"n":1}'), (200, "x.b", "", '{"n":2}'), (300, "x.c", "", '{"s":"a,\\"b"}'),
                   (250, "x.d", "", '{"n":4}'), (400, "x.e", "", '{"n":5}')])
    path = tmp_path / "events.jsonl"
    path.write_text("".join(r.jsonl_line() for r in recs) + '{"seq":6,"ts"')  # a torn last line
    assert list(read_log_file(path)) == recs
    assert [r.seq for r in read_log_file(path, after_seq=2, until_seq=4)] == [3, 4]
    s = scan_log(path, 260, want={2})
    # the last entry stamped <= 260 is 4 (250); entry 3 (300) lies before it: not in time order
    assert (s.cut_seq, s.last_seq, s.chain_id, s.later_in_prefix) == (4, 5, recs[0].hash, 1)
    assert s.hashes == {2: recs[1].hash}
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines[:2] + lines[3:5]))  # entry 3 deleted
    with pytest.raises(IntegrityError, match="entry 4 follows entry 2 \\(a gap\\)"):
        scan_log(path, None)


def test_state_at_folds_cash_and_risk_states_by_hand():
    cfg = json.dumps({"config": {"balances": {"USD": "1000"}}})
    recs = _chain([
        (1, "session.started", "s", cfg),
        (2, "risk.state_change", "", json.dumps({"scope": "global", "from": "active", "to": "halted",
                                                 "reason": "r", "actor": "ops", "version": 1})),
        (3, "risk.rearm", "", json.dumps({"scope": "global", "from": "halted", "to": "active", "reason": "ok",
                                          "actor": "boss", "version": 2, "role": "risk_manager"})),
    ])
    st = state_at(recs)
    assert st["cash"] == {"s": {"USD": Decimal("1000")}}
    assert st["risk"] == {"global": {"state": "active", "reason": "ok", "actor": "boss", "ts": 3, "version": 2,
                                     "rearms": 1}}
    assert st["orders"] == [] and st["open_orders"] == [] and st["last_seq"] == 3


def test_doctor_line_reports_the_age_of_the_last_verified_backup(tmp_path):
    now = _ms("2026-03-01T12:00:00")
    assert backup_check(tmp_path / "none", now)[1] is True
    old = _manifest(now - 30 * 3600_000, 5)
    _write(tmp_path, old, {"ok": True, "problems": [], "verified_ms": now - 600_000})
    name, ok, detail = backup_check(tmp_path, now)
    assert (name, ok) == ("backups", True)
    assert detail.startswith(f"last verified backup {old.id} is 30.0 h old (verified 10 min ago)")
    bad = _manifest(now - 3600_000, 9)
    _write(tmp_path, bad, {"ok": False, "problems": ["file db/lyra.db: checksum mismatch"]})
    assert backup_check(tmp_path, now) == ("backups", False, f"newest backup {bad.id} FAILED verification: "
                                           "file db/lyra.db: checksum mismatch")
