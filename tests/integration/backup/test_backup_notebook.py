"""The shipped backup schedule: `notebooks/backup.ipynb`, run by `lyra run` (what a `lyra
schedule add backup --cron ...` fires), takes a backup, proves it by restoring it, and applies
the retention policy; its run records the verdict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from lyra.backup import list_backups

LYRA = str(Path(sys.executable).with_name("lyra"))
NOTEBOOK = Path(__file__).resolve().parents[3] / "notebooks" / "backup.ipynb"


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.notebook
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_backup_notebook_backs_up_verifies_and_prunes(session_home: dict[str, Any]) -> None:
    from lyra.ops import list_runs

    home, engine, env = Path(session_home["home"]), session_home["engine"], session_home["env"]
    for _ in range(2):  # two nightly runs on one day: the policy keeps one of the day
        r = subprocess.run([LYRA, "run", str(NOTEBOOK), "-p", "keep_daily", "1", "-p", "keep_weekly", "0"],
                           env=env, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    runs = list_runs(engine, notebook="backup.ipynb")
    assert [run["status"] for run in runs] == ["finished", "finished"]
    assert all(run["key_results"]["verified"] is True for run in runs)
    left = list_backups(home / "backups")
    assert len(left) == 1 and left[0].manifest.head.seq == runs[0]["key_results"]["head"]  # the newest kept
    assert left[0].verified_ok  # the run's verification is on record beside the backup


def test_the_backup_notebook_is_committed_clean_with_one_parameters_cell() -> None:
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert [c.metadata.get("tags") for c in code].count(["parameters"]) == 1
