"""``python -m lyra.ops._worker RUN_ID [--heartbeat S]``: execute one run a scheduler took.

The daemon marks the run ``running`` and starts this process in its own session (so the
daemon's death does not take the run with it); output goes to ``<run dir>/worker.log``.
While papermill runs, a thread renews the run's heartbeat every S seconds. If the run is no
longer ``running`` when it renews (a daemon recorded a timeout or a dead-worker verdict), the
worker kills its kernel and exits: that is how a timeout reaches a worker on another host.
SIGTERM (a timeout on this host) ends it too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger("lyra.ops.worker")


class Heartbeat:
    """Renews ``run_id``'s heartbeat every ``interval_s`` while entered; fences the worker
    (kills its children, exits) if the run was ended by someone else."""

    def __init__(self, engine: Any, run_id: str, interval_s: float, on_fenced: Any = None) -> None:
        self.engine, self.run_id, self.interval_s = engine, run_id, interval_s
        self.on_fenced = on_fenced or _fence
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="heartbeat", daemon=True)

    def beat(self) -> bool:
        from lyra.core.clock import WALL_CLOCK
        from lyra.ops.lifecycle import heartbeat

        return heartbeat(self.engine, self.run_id, at_ms=WALL_CLOCK.now_ms(), heartbeat_s=self.interval_s,
                         pid=os.getpid())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                alive = self.beat()
            except Exception as exc:  # a busy or briefly unreachable database: try again next time
                log.warning("heartbeat of run %s failed: %s", self.run_id, exc)
                continue
            if not alive and not self._stop.is_set():
                self.on_fenced(self.run_id)
                return

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _fence(run_id: str) -> None:
    from lyra.ops.lifecycle import kill_tree

    log.warning("run %s was ended by another process (timeout or dead-worker verdict): stopping", run_id)
    import psutil

    for child in psutil.Process().children():
        kill_tree(child.pid, 1.0)
    os._exit(1)


def main(argv: list[str]) -> int:
    args = list(argv)
    interval = 10.0
    if "--heartbeat" in args:
        i = args.index("--heartbeat")
        interval = float(args[i + 1])
        del args[i:i + 2]
    if len(args) != 1:
        print("usage: python -m lyra.ops._worker RUN_ID [--heartbeat SECONDS]", file=sys.stderr)
        return 2
    run_id = args[0]

    def _term(*_: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _term)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    from lyra.bootstrap import open_engine
    from lyra.ops.runs import execute_registered, get_run

    settings, engine = open_engine(check_schema=False)  # the scheduler checked it
    run = get_run(engine, run_id)
    if run is None:
        print(f"no run {run_id!r}", file=sys.stderr)
        return 2
    hb = Heartbeat(engine, run_id, interval)
    if not hb.beat():  # records this pid; False: the run was ended or handed back meanwhile
        print(f"run {run_id} is {run['status']}, not running: nothing to do", file=sys.stderr)
        return 1
    try:
        row = execute_registered(engine, run_id, settings=settings, progress=False, log_output=True,
                                 during=hb)
    finally:
        # Killed before papermill wrote its first copy: keep the source (unexecuted) notebook,
        # so every run folder holds the notebook it ran.
        target = Path(run["output_dir"]) / "notebook.ipynb"
        if not target.exists():
            with contextlib.suppress(OSError):
                shutil.copyfile(run["notebook"], target)
    return 0 if row["status"] == "finished" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
