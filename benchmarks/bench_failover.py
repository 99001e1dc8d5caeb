"""Failover time of a running session to a standby (issue 18, "Figures").

Each drill starts a paced paper session as a real `lyra session start` process and a
`lyra session standby` for it, waits until the standby watches the owner's lease, SIGKILLs the
owner and measures, from the kill,

- **failover entry**: the standby's first write (its ``session.failover`` entry's wall time);
- **running again**: the session registered as running under the standby's pid (the log
  re-read and re-verified up to where the owner died).

Reference, measured in the same run: the same drill without a standby, where a person (a
script here, at once) types ``lyra session resume`` after the kill: kill -> running again.
Prints p50/p99 of each and the ratio reference / standby.

    .venv/bin/python benchmarks/bench_failover.py                 # N=10 drills (LYRA_BENCH_FAILOVER_N)
    .venv/bin/python benchmarks/bench_failover.py --drills 20 --postgres
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from lyra.audit import EventLog
from lyra.feeds import MarketStore, import_file
from lyra.store import create_engine_for, upgrade
from lyra.testing.sessions import SessionProcesses, wait_for

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_control_plane import database  # a sibling script's helper (after sys.path)

REPO = Path(__file__).resolve().parent.parent
#: 25 bars a second over a month and a half of hourly bars: never ends within a drill
PACED = {"speed": 90_000.0, "start": "2017-07-02", "end": "2017-08-15", "fast": 2, "slow": 5,
         "extra": {"lease_s": 2.0}}


def _watching(standby: Any, sid: str) -> None:
    for line in standby.stderr:
        if f"standby for {sid}: owner is pid" in line:
            return
    raise RuntimeError(f"the standby for {sid} exited: {standby.wait()}")


def _failover_ts(engine: Any, sid: str) -> int | None:
    for r in EventLog(engine).read(session_id=sid, kinds=("session.failover",)):
        return r.ts
    return None


def drill(engine: Any, sp: SessionProcesses, sid: str, standby: bool) -> dict[str, float]:
    """One kill; seconds from the kill to the standby's first write and to running again."""
    reg = sp.reg
    owner = sp.start(sid, steps=2)[0]
    sb = None
    if standby:
        sb = sp.popen("standby", sid)
        _watching(sb, sid)
    t_kill = time.time()
    owner.kill()
    owner.communicate()
    if not standby:
        sb = sp.popen("resume", sid)
    assert sb is not None
    new = sb.pid
    running = wait_for(lambda: (r := reg.get(sid))["pid"] == new and r["status"] == "running" and time.time(),
                       120, "running again", every=0.002, procs=[sb])
    out = {"running again": running - t_kill}
    if standby:
        ts = wait_for(lambda: _failover_ts(engine, sid), 60, "the failover entry")
        out["failover entry"] = ts / 1000 - t_kill
    reg.request_stop(sid)
    sb.communicate(timeout=120)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--drills", type=int, default=int(os.environ.get("LYRA_BENCH_FAILOVER_N", "10")))
    ap.add_argument("--reference-drills", type=int, default=3)
    ap.add_argument("--postgres", action="store_true", help="run on a temporary PostgreSQL database")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lyra-bench-fo-"))
    figures: dict[str, list[float]] = {"failover entry": [], "running again": [], "reference: resume by hand": []}
    try:
        (home / "audit").mkdir()
        import_file(REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz", store=MarketStore(home / "market"))
        with database(args.postgres, home) as url:
            engine = create_engine_for(url)
            upgrade(engine)
            env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
            env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=url)
            try:
                for i in range(args.drills):
                    sp = SessionProcesses(engine, env, home, **PACED)
                    try:
                        got = drill(engine, sp, f"fo{i}", standby=True)
                    finally:
                        sp.close()
                    figures["failover entry"].append(got["failover entry"])
                    figures["running again"].append(got["running again"])
                for i in range(args.reference_drills):
                    sp = SessionProcesses(engine, env, home, **PACED)
                    try:
                        figures["reference: resume by hand"].append(drill(engine, sp, f"ref{i}", False)["running again"])
                    finally:
                        sp.close()
            finally:
                engine.dispose()
        db = "postgresql" if args.postgres else "sqlite"
        print(f"failover after SIGKILL of the owner, paced paper session, lease 2 s, {db}, "
              f"load {os.getloadavg()[0]:.1f}:")
        for what, xs in figures.items():
            s = sorted(xs)
            if not s:
                continue
            p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
            print(f"  {what:26s} n={len(s):3d}  p50 {statistics.median(s) * 1000:8.1f} ms  "
                  f"p99 {p99 * 1000:8.1f} ms")
        if figures["reference: resume by hand"] and figures["running again"]:
            ratio = statistics.median(figures["reference: resume by hand"]) / statistics.median(
                figures["running again"])
            print(f"  running again: resume by hand / standby = {ratio:.1f}x")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
