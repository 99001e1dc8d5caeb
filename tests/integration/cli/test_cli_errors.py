"""The top-level error handler of the real `lyra` entry point: every expected failure is one red
line with the fix and exit 2, no traceback unless `lyra --debug`. The failures are real: a
read-only home (an immutable folder as root, mode 0555 otherwise), a full disk (the audit
mirror on /dev/full: writes fail with ENOSPC), a port another process holds, a sub-command
whose module cannot be imported."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.subprocess

LYRA = str(Path(sys.executable).with_name("lyra"))
REPO = Path(__file__).resolve().parents[3]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(LYRA_HOME=str(home), COLUMNS="200")
    return env


def _lyra(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([LYRA, *args], capture_output=True, text=True, env=env, timeout=timeout)


def _one_error_line(r: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in r.stdout + r.stderr, r.stderr
    errors = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, r.stderr
    return errors[0]


def _set_read_only(root: Path, on: bool) -> None:
    """Make every folder under ``root`` refuse new files, for real: root ignores mode bits,
    so as root the folders are made immutable (chattr), otherwise mode 0555."""
    dirs = [root, *(d for d in root.rglob("*") if d.is_dir())]
    for d in dirs:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "+i" if on else "-i", str(d)], check=True)
        else:
            d.chmod(0o555 if on else 0o755)


@pytest.fixture(scope="module")
def initialised(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("cli-errors") / "home"
    r = _lyra(_env(home), "init", "--no-load-samples")
    assert r.returncode == 0, r.stdout + r.stderr
    return home


@pytest.fixture
def read_only_home(initialised: Path, tmp_path: Path) -> Iterator[Path]:
    home = tmp_path / "home"
    subprocess.run(["cp", "-a", str(initialised), str(home)], check=True)
    _set_read_only(home, True)
    try:
        yield home
    finally:
        _set_read_only(home, False)


def test_read_only_home_doctor_fails_and_commands_say_so_in_one_line(read_only_home: Path) -> None:
    env = _env(read_only_home)
    r = _lyra(env, "doctor")
    assert r.returncode == 1
    row = next(ln for ln in r.stdout.splitlines() if "home writable" in ln)
    assert "FAIL" in row
    assert "writable folder" in r.stdout
    assert "is the server running" not in r.stdout  # a file, not a server: says so
    r = _lyra(env, "data", "import", str(REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"))
    assert r.returncode == 2
    line = _one_error_line(r)
    assert str(read_only_home / "market") in line
    assert "set LYRA_HOME to a writable folder" in line
    assert not any((read_only_home / "market").iterdir())


def test_full_disk_is_one_line_and_the_crash_tail_is_repaired(initialised: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    subprocess.run(["cp", "-a", str(initialised), str(home)], check=True)
    env = _env(home)
    mirror = home / "audit" / "events.jsonl"
    saved = mirror.read_bytes()
    mirror.unlink()
    mirror.symlink_to("/dev/full")  # every write: ENOSPC, as on a full disk
    r = _lyra(env, "kill", "--all", "--local-admin", "--reason", "disk drill")
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_error_line(r)
    assert "No space left on device" in line and "the disk is full" in line
    # Space is back: the mirror lags the database (the kill was committed there first), which
    # verify calls an incomplete tail, and repair completes.
    mirror.unlink()
    mirror.write_bytes(saved)
    r = _lyra(env, "audit", "verify")
    assert r.returncode == 3, r.stdout + r.stderr
    assert "INCOMPLETE TAIL (not tampering)" in r.stderr
    assert _lyra(env, "audit", "repair").returncode == 0
    r = _lyra(env, "audit", "verify")
    assert r.returncode == 0 and "chain intact, file matches" in r.stdout


def _with_broken_module(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real ``main()`` with lyra.risk.cli unimportable (a broken install)."""
    code = ("import sys; sys.modules['lyra.risk.cli'] = None\n"
            "from lyra.cli import main\n"
            f"sys.argv = ['lyra', *{list(argv)!r}]\nmain()\n")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "200"})


def test_a_subcommand_that_fails_to_import_is_loud_and_debug_shows_the_traceback() -> None:
    r = _with_broken_module("kill", "--all", "--local-admin", "--reason", "r")
    assert r.returncode == 1
    line = _one_error_line(r)
    assert "`lyra kill` is unavailable: importing lyra.risk.cli failed" in line
    assert "No such command" not in r.stderr
    r = _with_broken_module("--debug", "kill", "--all")
    assert r.returncode == 1
    assert "Traceback" in r.stderr and "lyra.risk.cli" in r.stderr
    # --help still lists it without importing anything
    r = _with_broken_module("--help")
    assert r.returncode == 0 and "kill" in r.stdout


@pytest.mark.slow
def test_busy_port_for_serve_is_one_line(initialised: Path, tmp_path: Path) -> None:
    home = tmp_path / "home"
    subprocess.run(["cp", "-a", str(initialised), str(home)], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = _lyra(_env(home), "serve", "--port", str(port))
    assert r.returncode == 2, r.stdout + r.stderr
    line = _one_error_line(r)
    assert "already in use" in line and "pass another --port" in line
