"""`lyra`'s sub-command groups load on demand: `lyra --help` lists them all without importing
them, and `lyra <group> ...` imports that group's module only (a `lyra` process used to spend
~1.5-3 s importing every group before doing anything)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from lyra.cli import app

GROUP_MODULES = {
    "data": "lyra.feeds.cli", "session": "lyra.session.cli", "run": "lyra.ops.cli", "runs": "lyra.ops.cli",
    "schedule": "lyra.ops.cli", "user": "lyra.auth.cli", "apikey": "lyra.auth.cli", "serve": "lyra.auth.serve",
    "risk": "lyra.risk.cli", "kill": "lyra.risk.cli",
}
ORDER = ["init", "doctor", "demo", "version", "run", "serve", "kill", "audit", "data", "session", "runs",
         "schedule", "user", "apikey", "risk"]


def _loaded_after(*args: str) -> tuple[str, list[str]]:
    """Run ``lyra <args>`` in a fresh interpreter; its output and the lyra.*.cli modules loaded."""
    code = (
        "import json, sys\nfrom typer.testing import CliRunner\nfrom lyra.cli import app\n"
        f"r = CliRunner().invoke(app, {list(args)!r})\nassert r.exit_code == 0, r.output\n"
        "mods = sorted(m for m in sys.modules if m.endswith(('.cli', '.serve')) and m.startswith('lyra.'))\n"
        "print(json.dumps([r.output, mods]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    output, mods = json.loads(out.stdout)
    return output, mods


@pytest.mark.subprocess
def test_help_lists_every_group_in_order_and_imports_none() -> None:
    output, mods = _loaded_after("--help")
    listed = [line.split()[1] for line in output.splitlines()
              if line.startswith("│ ") and len(line.split()) > 2 and line.split()[1] in ORDER]
    assert listed == ORDER
    assert "Sessions: start, status, stop, resume, standby." in " ".join(output.replace("│", " ").split())
    assert mods == ["lyra.cli"]


@pytest.mark.subprocess
def test_a_group_imports_its_own_module_only() -> None:
    output, mods = _loaded_after("session", "--help")
    assert "start" in output and "resume" in output
    assert mods == ["lyra.cli", "lyra.session.cli"]


@pytest.mark.parametrize("name", sorted(GROUP_MODULES))
def test_each_lazy_entry_resolves_to_its_command(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    r = CliRunner().invoke(app, [name, "--help"])
    assert r.exit_code == 0, r.output
    assert f"Usage: lyra {name}" in r.output or f"{name} [OPTIONS]" in r.output
    assert GROUP_MODULES[name] in sys.modules


def test_unknown_command_is_refused() -> None:
    r = CliRunner().invoke(app, ["sesion"])
    assert r.exit_code == 2
    assert "No such command 'sesion'" in r.output
