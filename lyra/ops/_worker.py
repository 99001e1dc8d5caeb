"""``python -m lyra.ops._worker RUN_ID``: execute one registered run (the scheduler's child).

The scheduler registers the run, then starts this process in its own session; output goes to
``<run dir>/worker.log``. SIGTERM (a timeout) ends it; the scheduler has already marked the
run ``timeout`` and kills the kernel with it.
"""

from __future__ import annotations

import logging
import shutil
import signal
import sys
from pathlib import Path


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lyra.ops._worker RUN_ID", file=sys.stderr)
        return 2

    def _term(*_: object) -> None:
        raise SystemExit(143)

    signal.signal(signal.SIGTERM, _term)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        stream=sys.stdout)
    from lyra.bootstrap import open_engine
    from lyra.ops.runs import execute_registered, get_run

    settings, engine = open_engine(check_schema=False)  # the scheduler checked it
    run = get_run(engine, argv[0])
    if run is None:
        print(f"no run {argv[0]!r}", file=sys.stderr)
        return 2
    try:
        row = execute_registered(engine, argv[0], settings=settings, progress=False, log_output=True)
    finally:
        # Killed before papermill wrote its first copy: keep the source (unexecuted) notebook,
        # so every run folder holds the notebook it ran.
        target = Path(run["output_dir"]) / "notebook.ipynb"
        if not target.exists():
            shutil.copyfile(run["notebook"], target)
    return 0 if row["status"] == "finished" else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
