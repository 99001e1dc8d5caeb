"""Helpers for the ops tests: small notebooks written into tmp_path."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

REPO = Path(__file__).resolve().parents[3]
NOTEBOOKS = REPO / "notebooks"


def write_notebook(path: Path, parameters: str | None, *cells: str) -> Path:
    """A notebook with an optional cell tagged ``parameters`` followed by code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    if parameters is not None:
        p = nbformat.v4.new_code_cell(parameters)
        p.metadata["tags"] = ["parameters"]
        nb.cells.append(p)
    nb.cells += [nbformat.v4.new_code_cell(c) for c in cells]
    nbformat.write(nb, path)
    return path


#: A notebook for scheduler tests: sleeps, or fails its first ``fail_times`` runs (counted in a
#: file), then records a key result.
TICK_PARAMS = 'sleep_s = 0.0\nfail_times = 0\ncounter = ""\n'
TICK_BODY = (
    "import time\nfrom pathlib import Path\nfrom lyra.ops.context import record_results\n"
    "n = 0\n"
    "if counter:\n"
    "    with open(counter, 'a') as fh:\n"
    "        fh.write('x')\n"
    "    n = len(Path(counter).read_text())\n",
    "if n and n <= fail_times:\n    raise RuntimeError(f'planned failure {n}')\ntime.sleep(sleep_s)\n",
    "record_results({'ok': True, 'attempt_seen': n})\n",
)


@pytest.fixture
def tick_notebook(tmp_path: Path) -> Path:
    return write_notebook(tmp_path / "tick.ipynb", TICK_PARAMS, *TICK_BODY)


@pytest.fixture
def make_notebook():
    """``make_notebook(path, parameters_source_or_None, *cell_sources) -> path``."""
    return write_notebook


@pytest.fixture(scope="session")
def tick_source():
    """``(write_notebook, TICK_PARAMS, TICK_BODY)`` for module-scoped fixtures."""
    return write_notebook, TICK_PARAMS, TICK_BODY
