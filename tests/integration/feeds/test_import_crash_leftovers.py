"""A `lyra data import` SIGKILLed in the middle of writing a part file leaves a `.tmp-*.parquet`
(and nothing in the manifest); the next import into that dataset removes it and stores the
data whole. Real subprocesses, the real `lyra` entry point."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from lyra.feeds.importer import read_uniform_file
from lyra.feeds.store import MarketStore

pytestmark = pytest.mark.subprocess

LYRA = str(Path(sys.executable).with_name("lyra"))
FILE = Path(__file__).resolve().parents[3] / "data" / "ohlcv" / "binance_BTC-USDT_4h_2018-04.csv.gz"

# The real CLI, with the Parquet writer stopped half-way through its temp file.
IMPORTER = r"""
import sys, time
import pyarrow.parquet as pq

def half_write(table, where, **kw):
    where.write(b"PAR1" + b"\0" * 4096)  # the first bytes of a part, never finished
    where.flush()
    print("IN-PART-WRITE", flush=True)
    time.sleep(600)

pq.write_table = half_write
from lyra.cli import main
sys.argv = ["lyra", "data", "import", sys.argv[1]]
main()
"""


def test_leftover_temp_part_of_a_killed_import_is_removed_by_the_next(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(LYRA_HOME=str(tmp_path / "home"), COLUMNS="200")
    dataset = tmp_path / "home" / "market" / "binance" / "BTC-USDT" / "4h"
    proc = subprocess.Popen([sys.executable, "-c", IMPORTER, str(FILE)], stdout=subprocess.PIPE,
                            text=True, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "IN-PART-WRITE"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    leftovers = list(dataset.glob(".tmp-*.parquet"))
    assert len(leftovers) == 1  # what the kill left
    assert MarketStore(tmp_path / "home" / "market").last_timestamp("binance", "BTC/USDT", "4h") is None

    r = subprocess.run([LYRA, "data", "import", str(FILE)], capture_output=True, text=True, env=env,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not list(dataset.glob(".tmp-*"))
    assert sorted(p.name.split("-")[0] for p in dataset.glob("*.parquet")) == ["part"]
    expected = read_uniform_file(FILE)
    stored = MarketStore(tmp_path / "home" / "market").read_bars_arrays("binance", "BTC/USDT", "4h")
    assert stored.ts.tolist() == expected["ts"].tolist()
    assert stored.close.tolist() == expected["close"].tolist()
