"""The house's import rules hold, and they bite.

The rules are import-linter contracts in pyproject.toml (``[tool.importlinter]``): the layer
order, core alone at the bottom, risk never importing execution, nothing in lyra importing
``apps``/``notebooks``, the read side never importing a writer. The first test checks the real
tree in-process; the second copies ``lyra/`` to a temporary directory, adds forbidden imports
(a plain one, and lazy ones inside functions) and runs ``lint-imports`` on the copy, which
must fail naming each broken contract.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
PYPROJECT = REPO / "pyproject.toml"

#: contract id -> name, pinned: dropping or renaming a rule is a choice made here too
CONTRACTS = {
    "layers": "Lyra's packages are layered: each imports only from layers below it",
    "core-alone": "lyra.core imports nothing else of lyra",
    "domain-without-adapters": "The domain (lyra.core) and the venue registry import no adapter",
    "risk-not-execution": "Risk never imports execution (risk stands in front of it)",
    "no-apps": "Nothing in lyra imports apps/ or notebooks/ (apps sit on top of lyra, never under)",
    "readside-never-writes": "The read side never writes",
}


def _config() -> dict[str, Any]:
    with PYPROJECT.open("rb") as f:
        cfg: dict[str, Any] = tomllib.load(f)["tool"]["importlinter"]
    return cfg


def test_the_contracts_hold_on_the_tree(capsys: pytest.CaptureFixture[str]) -> None:
    from importlinter import configuration
    from importlinter.application.use_cases import lint_imports

    configuration.configure()  # what the `lint-imports` command does first
    ok = lint_imports(config_filename=str(PYPROJECT), cache_dir=None, no_logo=True)
    out = capsys.readouterr().out
    assert ok, f"broken import contracts:\n{out}"
    assert f"Contracts: {len(CONTRACTS)} kept, 0 broken." in out, out


def test_contract_ids_and_graph_options_are_pinned() -> None:
    cfg = _config()
    assert {c["id"]: c["name"] for c in cfg["contracts"]} == CONTRACTS
    assert cfg["root_package"] == "lyra"
    assert cfg["include_external_packages"] is True  # needed to forbid `apps` and adapters
    assert cfg["exclude_type_checking_imports"] is False


def test_the_read_side_contract_lists_every_read_module() -> None:
    """Every lyra/readside module but the write door (actions) is a source of the
    "never writes" contract, so a new read module is covered from its first line."""
    (contract,) = [c for c in _config()["contracts"] if c["id"] == "readside-never-writes"]
    on_disk = {f"lyra.readside.{p.stem}" for p in (REPO / "lyra" / "readside").glob("*.py")}
    assert set(contract["source_modules"]) == on_disk - {"lyra.readside.__init__", "lyra.readside.actions"}
    assert "lyra.readside.actions" in contract["forbidden_modules"]


# --------------------------------------------------------------------------- the rules bite
_INJECTED = {
    # a plain module-level import
    "risk/checks.py": "\nimport lyra.execution  # injected: risk -> execution\n",
    # lazy imports inside functions: grimp sees them too
    "core/values.py": (
        "\n\ndef _injected_core() -> object:\n"
        "    from lyra.store import engine  # injected: core -> store, lazily\n"
        "    return engine\n"
    ),
    "session/runtime.py": (
        "\n\ndef _injected_session() -> object:\n"
        "    import apps.trading  # injected: session -> apps, lazily\n"
        "    return apps.trading\n"
    ),
    "readside/analytics.py": (
        "\n\ndef _injected_readside() -> object:\n"
        "    from lyra.audit.log import EventLog  # injected: the read side -> a writer\n"
        "    return EventLog\n"
    ),
}


def _lint_copy(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    copy = tmp_path / "lyra"
    shutil.copytree(REPO / "lyra", copy, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    for rel, text in _INJECTED.items():
        with (copy / rel).open("a", encoding="utf-8") as f:
            f.write(text)
    # the copy comes first on the path; the working directory is the copy's parent, not the
    # repository, so the real lyra cannot be picked up instead
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "COLUMNS": "250", "NO_COLOR": "1"}
    lint = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(lint), "--no-cache", "--no-logo", str(PYPROJECT)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )


@pytest.mark.subprocess
def test_forbidden_imports_in_a_copy_break_the_contracts(tmp_path: Path) -> None:
    result = _lint_copy(tmp_path)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    # every rule is broken (core -> store also reaches sqlalchemy, an adapter)
    assert f"Contracts: 0 kept, {len(CONTRACTS)} broken." in out, out
    for name in CONTRACTS.values():
        assert f"{name} BROKEN" in out, (name, out)
    # each breach is reported at the injected line, lazy ones included
    assert "lyra.risk.checks -> lyra.execution" in out
    assert "lyra.core.values -> lyra.store.engine" in out
    assert "lyra.session.runtime -> apps" in out
    assert "lyra.readside.analytics -> lyra.audit.log" in out
    assert "lyra.store.engine -> sqlalchemy" in out
