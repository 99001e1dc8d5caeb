"""Crash, then verify: a writer SIGKILLed between its database commit and the end of its mirror
write leaves an incomplete tail, which `lyra audit verify` reports as such (exit 3, not
tampering) and `lyra audit repair` completes from the database. Tampering is still tampering,
and repair refuses to touch it. Real subprocesses, the real `lyra` entry point, SQLite and
PostgreSQL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine

pytestmark = pytest.mark.subprocess

LYRA = str(Path(sys.executable).with_name("lyra"))

# The writer commits 5 entries normally, then a transaction of 3 whose mirror write is cut:
# "behind" writes none of its lines, "torn" writes them up to the middle of the second one.
WRITER = r"""
import sys, time
from pathlib import Path
from lyra.audit.log import EventLog
from lyra.store.engine import create_engine_for

url, path, mode = sys.argv[1:4]
log = EventLog(create_engine_for(url), Path(path))
for i in range(5):
    log.append("test.note", {"i": i, "note": "committed and mirrored"})

def cut_mirror(self, records):
    lines = [r.jsonl_line() for r in records]
    text = "" if mode == "behind" else lines[0] + lines[1][: len(lines[1]) // 2]
    with open(self.jsonl_path, "a", encoding="utf-8") as f:
        f.write(text)
        f.flush()
    print("IN-MIRROR-WRITE", flush=True)
    time.sleep(600)  # the parent SIGKILLs us here: the database has committed, the file not

EventLog._mirror = cut_mirror
with log.transaction() as tx:
    for i in range(3):
        tx.append("test.note", {"i": 100 + i, "note": "committed, mirror cut"})
"""


def _env(home: Path, db_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=db_url, COLUMNS="200")
    return env


def _lyra(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LYRA, *args], capture_output=True, text=True, env=env, timeout=120)


def _crash_writer(db_url: str, mirror: Path, mode: str, env: dict[str, str]) -> None:
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(mirror), mode],
                            stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # blocks until the writer is inside its mirror write
        assert line.strip() == "IN-MIRROR-WRITE", line
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


@pytest.mark.parametrize(("mode", "behind", "torn"), [("behind", 3, False), ("torn", 2, True)])
def test_sigkill_mid_commit_is_an_incomplete_tail_and_repair_completes_it(
        engine: Engine, db_url: str, tmp_path: Path, mode: str, behind: int, torn: bool) -> None:
    home = tmp_path / "home"
    mirror = home / "audit" / "events.jsonl"
    mirror.parent.mkdir(parents=True)
    env = _env(home, db_url)
    _crash_writer(db_url, mirror, mode, env)
    text = mirror.read_text()
    assert text.endswith("\n") is not torn  # the kill left what the mode says

    r = _lyra(env, "audit", "verify")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "INCOMPLETE TAIL (not tampering)" in r.stderr
    assert f"behind the database by {behind} entries (from entry {9 - behind})" in r.stderr
    assert ("last line is torn" in r.stderr) is torn
    assert "run `lyra audit repair`" in r.stderr
    assert "TAMPERED" not in r.stderr

    r = _lyra(env, "audit", "repair")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"appended {behind} entries" in r.stdout
    assert ("cut a torn last line" in r.stdout) is torn
    lines = mirror.read_text().splitlines()
    assert len(lines) == 8
    assert all(line.startswith(f'{{"seq":{i},') for i, line in enumerate(lines, start=1))

    r = _lyra(env, "audit", "verify")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "ok: 8 entries, chain intact, file matches" in r.stdout
    r = _lyra(env, "audit", "repair")
    assert r.returncode == 0 and "nothing to repair" in r.stdout


def test_tampering_beside_a_crash_tail_is_tampering_and_repair_refuses(
        engine: Engine, db_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    mirror = home / "audit" / "events.jsonl"
    mirror.parent.mkdir(parents=True)
    env = _env(home, db_url)
    _crash_writer(db_url, mirror, "torn", env)
    lines = mirror.read_text().split("\n")
    lines[2] = lines[2].replace("committed and mirrored", "COMMITTED AND MIRRORED")
    mirror.write_text("\n".join(lines))
    before = mirror.read_bytes()

    r = _lyra(env, "audit", "verify")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "TAMPERED or BROKEN: first bad file entry 3" in r.stderr
    r = _lyra(env, "audit", "repair")
    assert r.returncode == 1, r.stdout + r.stderr
    assert "refusing to repair: file entry 3" in r.stderr
    assert mirror.read_bytes() == before  # repair never rewrote a tampered mirror
