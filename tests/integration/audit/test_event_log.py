"""The event log on SQLite and PostgreSQL: appends, verify, and tampering of every kind."""

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from lyra.audit import EventLog, verify
from lyra.core import ValidationError


def fill_log(engine, path: Path, n: int = 20) -> EventLog:
    log = EventLog(engine, path)
    with log.transaction() as tx:
        for i in range(n):
            tx.append("test.event", {"i": i, "note": f"entry {i}"}, actor="tester", session_id="s1", ts=1000 + i)
    return log


def test_append_and_verify_clean(engine, tmp_path):
    path = tmp_path / "events.jsonl"
    log = fill_log(engine, path)
    assert log.head()[0] == 20
    r = verify(engine, path)
    assert r.ok, r.problems
    assert r.entries == 20
    assert r.file_entries == 20
    lines = path.read_text().splitlines()
    assert [json.loads(x)["seq"] for x in lines] == list(range(1, 21))
    assert [e.data()["i"] for e in log.read(until_ts=1004)] == [0, 1, 2, 3, 4]


def test_bad_kind_or_actor_is_refused_and_nothing_written(engine, tmp_path):
    log = fill_log(engine, tmp_path / "e.jsonl", 3)
    with pytest.raises(ValidationError, match="kind"), log.transaction() as tx:
        tx.append("ok.kind", {"a": 1})
        tx.append("", {"a": 2})
    assert log.head()[0] == 3
    assert verify(engine, tmp_path / "e.jsonl").ok


@pytest.mark.parametrize("victim", [1, 7, 20])
def test_edited_payload_in_database_is_named(engine, tmp_path, victim):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path)
    with engine.begin() as c:
        c.execute(sa.text("UPDATE events SET payload = :p WHERE seq = :s"),
                  {"p": '{"i":999,"note":"forged"}', "s": victim})
    r = verify(engine, path)
    assert not r.ok
    assert r.first_bad.seq == victim
    assert r.first_bad.where == "database"
    assert "hash" in r.first_bad.what


@pytest.mark.parametrize("victim", [1, 10, 19])
def test_deleted_row_in_database_is_named(engine, tmp_path, victim):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path)
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM events WHERE seq = :s"), {"s": victim})
    r = verify(engine, path)
    assert r.first_bad.seq == victim
    assert "missing" in r.first_bad.what


def test_deleted_tail_is_caught_by_the_head(engine, tmp_path):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path)
    with engine.begin() as c:
        c.execute(sa.text("DELETE FROM events WHERE seq = 20"))
    r = verify(engine, path)
    assert not r.ok
    assert any("tail deleted" in p.what or p.where == "file" for p in r.problems)


def test_reordered_rows_in_database_are_named(engine, tmp_path):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path)
    with engine.begin() as c:  # swap the contents of entries 5 and 6
        rows = {r.seq: r for r in c.execute(sa.text("SELECT * FROM events WHERE seq IN (5, 6)"))}
        for a, b in ((5, 6), (6, 5)):
            src = rows[b]
            c.execute(sa.text("UPDATE events SET ts=:ts, payload=:p, prev_hash=:ph, hash=:h WHERE seq=:s"),
                      {"ts": src.ts, "p": src.payload, "ph": src.prev_hash, "h": src.hash, "s": a})
    r = verify(engine, path)
    assert r.first_bad.seq == 5


def test_rehashed_forgery_still_breaks_the_next_link(engine, tmp_path):
    """An attacker who edits entry 8 and recomputes its hash still breaks entry 9's link."""
    from lyra.audit.chain import entry_hash

    path = tmp_path / "e.jsonl"
    fill_log(engine, path)
    with engine.begin() as c:
        r8 = c.execute(sa.text("SELECT * FROM events WHERE seq = 8")).one()
        forged = '{"i":8,"note":"forged"}'
        h = entry_hash(8, r8.ts, r8.actor, r8.kind, r8.session_id, forged, r8.prev_hash)
        c.execute(sa.text("UPDATE events SET payload=:p, hash=:h WHERE seq=8"), {"p": forged, "h": h})
    r = verify(engine, path)
    assert not r.ok
    assert r.problems[0].seq in (8, 9)
    assert any(p.seq == 9 and "link" in p.what for p in r.problems)


def _rewrite(path: Path, fn) -> None:
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(fn(lines)))


@pytest.mark.parametrize("victim", [1, 12, 20])
def test_file_edit_is_named(engine, tmp_path, victim):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path)

    def edit(lines):
        lines[victim - 1] = lines[victim - 1].replace('"note":"entry', '"note":"ENTRY')
        return lines

    _rewrite(path, edit)
    r = verify(engine, path)
    assert r.first_bad.seq == victim
    assert r.first_bad.where == "file"


@pytest.mark.parametrize("victim", [1, 12, 20])
def test_file_deleted_line_is_named(engine, tmp_path, victim):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path)
    _rewrite(path, lambda lines: lines[: victim - 1] + lines[victim:])
    r = verify(engine, path)
    assert r.first_bad.seq == victim
    assert r.first_bad.where == "file"


def test_file_reordered_lines_are_named(engine, tmp_path):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path)

    def swap(lines):
        lines[3], lines[4] = lines[4], lines[3]
        return lines

    _rewrite(path, swap)
    r = verify(engine, path)
    assert r.first_bad.seq == 4
    assert "reordered" in r.first_bad.what


def test_file_catches_up_after_a_crash_between_commit_and_mirror(engine, tmp_path):
    path = tmp_path / "e.jsonl"
    fill_log(engine, path, 5)
    # Simulate a crash: entries committed to the database, never mirrored.
    EventLog(engine, None).append("test.event", {"i": 5})
    EventLog(engine, None).append("test.event", {"i": 6})
    assert not verify(engine, path).ok
    # A torn half-line left by the dying process.
    with open(path, "a") as f:
        f.write('{"seq":6,"ts":1,"act')
    EventLog(engine, path)  # opening the log repairs the mirror from the database
    r = verify(engine, path)
    assert r.ok, r.problems
    assert r.file_entries == 7


@pytest.mark.parametrize("tamper", [None, "db", "file"])
def test_parallel_verify_agrees_with_serial(engine, tmp_path, monkeypatch, tamper):
    import lyra.audit.parallel as par
    from lyra.audit.verify import verify_serial

    monkeypatch.setattr(par, "MIN_PARALLEL", 10)
    path = tmp_path / "e.jsonl"
    fill_log(engine, path, 60)
    if tamper == "db":
        with engine.begin() as c:
            c.execute(sa.text("UPDATE events SET actor = 'mallory' WHERE seq = 41"))
    elif tamper == "file":
        _rewrite(path, lambda lines: lines[:30] + lines[31:])
    fast = par.verify_parallel(engine, path, workers=3)
    slow = verify_serial(engine, path)
    if tamper is None:
        assert fast is not None
        assert fast.ok
        assert fast.entries == slow.entries == 60
    else:
        assert fast is None  # any doubt goes to the serial check
        assert verify(engine, path).first_bad == slow.first_bad
        assert slow.first_bad.seq == (41 if tamper == "db" else 31)
