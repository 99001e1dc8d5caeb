"""Two processes appending to one log at the same time keep one valid chain and one file."""

import json
import subprocess
import sys
import textwrap

import pytest

from lyra.audit import verify

pytestmark = pytest.mark.subprocess

WRITER = textwrap.dedent("""
    import sys
    from pathlib import Path
    from lyra.audit import EventLog
    from lyra.store import create_engine_for
    url, path, name = sys.argv[1], sys.argv[2], sys.argv[3]
    log = EventLog(create_engine_for(url), Path(path))
    for i in range(60):
        with log.transaction() as tx:
            tx.append("test.event", {"writer": name, "i": i}, actor=name)
""")


def test_two_writer_processes(engine, db_url, tmp_path):
    path = tmp_path / "e.jsonl"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, db_url, str(path), name])
             for name in ("a", "b")]
    for p in procs:
        assert p.wait(timeout=120) == 0
    r = verify(engine, path)
    assert r.ok, r.problems
    assert r.entries == 120
    seqs = [json.loads(line)["seq"] for line in path.read_text().splitlines()]
    assert seqs == list(range(1, 121))
    writers = [json.loads(line)["payload"]["writer"] for line in path.read_text().splitlines()]
    assert writers.count("a") == writers.count("b") == 60
