"""Overhead of `lyra run` over plain papermill on the same notebook.

Both execute notebooks/paper_session.ipynb (a short replay of the shipped Coinbase data) in a
temporary LYRA_HOME. Measured two ways, alternating to share the machine's noise:

* in-process: ``papermill.execute_notebook`` vs ``lyra.ops.run_notebook`` (validation, registry
  rows, run folder, data fingerprint, package list, git commit);
* command line: ``python -m papermill ... --no-progress-bar`` vs ``python -m lyra.ops.cli run ...``
  (quiet by default; adds imports, the database check and the provenance above).

Target: <= 1 s of overhead. Run: ``.venv/bin/python benchmarks/bench_runs.py [REPEATS]``.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NB = REPO / "notebooks" / "paper_session.ipynb"
END = "2017-07-15"


def main(repeats: int = 3) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bench-runs-"))
    os.environ["LYRA_HOME"] = str(tmp / "home")
    os.environ.pop("LYRA_DATABASE_URL", None)
    import papermill as pm

    from lyra.bootstrap import initialise
    from lyra.ops import run_notebook

    initialise(load_samples=True)
    out = tmp / "plain"
    out.mkdir()

    def plain(i: int) -> None:
        pm.execute_notebook(str(NB), str(out / f"{i}.ipynb"), parameters={"end": END, "session_id": f"plain{i}"},
                            kernel_name="python3", progress_bar=False, cwd=str(out))

    def lyra(i: int) -> None:
        r = run_notebook(NB, {"end": END}, progress=False)
        assert r["status"] == "finished", r["error"]

    plain(-1)  # warm caches (kernel spec, imports, store files)
    lyra(-1)
    t_plain, t_lyra = [], []
    for i in range(repeats):
        t = time.perf_counter()
        plain(i)
        t_plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        lyra(i)
        t_lyra.append(time.perf_counter() - t)
    mp, ml = statistics.median(t_plain), statistics.median(t_lyra)
    print(f"in-process, median of {repeats}: papermill {mp:.2f} s, lyra run {ml:.2f} s, "
          f"overhead {ml - mp:+.2f} s")

    env = dict(os.environ)
    c_plain, c_lyra = [], []
    for i in range(max(2, repeats - 1)):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "papermill", str(NB), str(out / f"cli{i}.ipynb"), "-k", "python3",
                        "--no-progress-bar", "--cwd", str(out), "-p", "end", END, "-p", "session_id", f"cli{i}"],
                       check=True, capture_output=True, env=env)
        c_plain.append(time.perf_counter() - t)
        t = time.perf_counter()
        subprocess.run([sys.executable, "-m", "lyra.ops.cli", "run", str(NB), "-p", "end", END],  # quiet: default
                       check=True, capture_output=True, env=env)
        c_lyra.append(time.perf_counter() - t)
    cp, cl = statistics.median(c_plain), statistics.median(c_lyra)
    print(f"command line, median of {len(c_plain)}: papermill {cp:.2f} s, lyra run {cl:.2f} s, "
          f"overhead {cl - cp:+.2f} s")
    print(f"target <= 1 s: {'met' if max(ml - mp, cl - cp) <= 1.0 else 'NOT met'}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
