"""Every ``>>>`` example in lyra's docstrings runs and shows what it says it shows.

Examples are documentation a notebook user copies, so a wrong one is a bug. Each module with
examples is one test (a failure names the module and prints doctest's report). Examples that
cannot run here — a live venue, a Jupyter kernel, numba compiling vectorbt — are plain ``::``
code blocks, not skipped doctests: ``test_no_example_is_skipped`` refuses ``+SKIP``.
"""

from __future__ import annotations

import doctest
import importlib
import os
import tempfile
from pathlib import Path

import pytest

LYRA = Path(__file__).resolve().parents[2] / "lyra"
FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
#: Examples that must run at least (196 when this was written): a drop means examples were
#: lost (turned into text, or their module no longer found), not that they pass.
MIN_EXAMPLES = 180


def _modules_with_examples() -> list[str]:
    names = []
    for path in sorted(LYRA.rglob("*.py")):
        if ">>>" not in path.read_text(encoding="utf-8"):
            continue
        parts = path.relative_to(LYRA.parent).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


MODULES = _modules_with_examples()


def _doctests(module_name: str) -> list[doctest.DocTest]:
    module = importlib.import_module(module_name)
    return [t for t in doctest.DocTestFinder().find(module) if t.examples]


@pytest.fixture
def quiet_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Examples' ``tempfile.mkdtemp()`` folders land in tmp_path; no LYRA_* setting, run id
    or papermill variable of this machine leaks into them (the sample data path stays)."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    for key in list(os.environ):
        if key.startswith(("LYRA_", "LYRARUN_")) and key != "LYRA_SAMPLE_DATA":
            monkeypatch.delenv(key)


@pytest.mark.usefixtures("quiet_env")
@pytest.mark.parametrize("module_name", MODULES)
def test_examples_run(module_name: str) -> None:
    tests = _doctests(module_name)
    assert tests, f"{module_name} has '>>>' in its source but doctest finds no example in it"
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    report: list[str] = []
    for test in tests:
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
    assert runner.tries > 0


def test_enough_examples_are_found() -> None:
    total = sum(len(t.examples) for name in MODULES for t in _doctests(name))
    assert total >= MIN_EXAMPLES, f"only {total} doctest examples in lyra/ (expected >= {MIN_EXAMPLES})"


def test_no_example_is_skipped() -> None:
    skipped = [f"{t.name} line {(t.lineno or 0) + e.lineno + 1}" for name in MODULES for t in _doctests(name)
               for e in t.examples if e.options.get(doctest.SKIP)]
    assert not skipped, f"make these runnable, or a plain '::' code block: {skipped}"
