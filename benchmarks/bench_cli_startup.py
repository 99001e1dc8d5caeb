"""Start-up time of the `lyra` command: `lyra --version`, `lyra --help`, `lyra session status`.

Each figure is the median wall time of N fresh processes of the real console script, next to
the same figure for a bare `python -c pass` (the interpreter's own start, measured in the same
run) so the share that is Lyra's is visible. Target: `--version` and `--help` <= 0.3 s.

    .venv/bin/python benchmarks/bench_cli_startup.py [--runs 15]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

LYRA = str(Path(sys.executable).with_name("lyra"))
TARGET_S = 0.3


def _median_wall(cmd: list[str], env: dict[str, str], runs: int) -> tuple[float, float, float]:
    """(median wall, best wall, median CPU) seconds of ``runs`` fresh processes; each must
    exit 0. CPU (user + system of the child) barely moves with the machine's load; wall does."""
    times, cpu = [], []
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(times), min(times), statistics.median(cpu)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
        env["LYRA_HOME"] = str(Path(tmp) / "home")
        subprocess.run([LYRA, "init", "--no-load-samples"], env=env, check=True, capture_output=True)
        cases = [
            ("python -c pass (reference)", [sys.executable, "-c", "pass"]),
            ("lyra --version", [LYRA, "--version"]),
            ("lyra --help", [LYRA, "--help"]),
            ("lyra session status", [LYRA, "session", "status"]),
        ]
        print(f"{'command':<30} {'median s':>9} {'best s':>8} {'CPU s':>7} {'target':>8}")
        for name, cmd in cases:
            med, best, cpu = _median_wall(cmd, env, args.runs)
            target = f"<= {TARGET_S}" if name in ("lyra --version", "lyra --help") else ""
            verdict = "" if not target else ("  met" if med <= TARGET_S else "  MISSED (wall)")
            print(f"{name:<30} {med:>9.3f} {best:>8.3f} {cpu:>7.3f} {target:>8}{verdict}")
        print(f"(median of {args.runs} fresh processes each; load average now "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")


if __name__ == "__main__":
    main()
