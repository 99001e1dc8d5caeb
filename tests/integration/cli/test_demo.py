"""The README's main job: `lyra init` then `lyra demo` on the embedded default (SQLite, shipped
data): a paper session, the audit check, and the dashboards behind login."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_demo_runs_the_session_checks_the_log_and_serves_login(lyra_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env["LYRA_HOME"] = str(lyra_home)
    env["COLUMNS"] = "200"
    subprocess.run([sys.executable, "-m", "lyra.cli", "init"], env=env, check=True, capture_output=True,
                   timeout=300)
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "lyra.cli", "demo", "--serve-seconds", "8", "--port",
                          str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    status = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and p.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/login", timeout=2) as r:
                status = r.status
                page = r.read().decode()
            break
        except OSError:
            time.sleep(0.5)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0, out
    assert status == 200
    assert "password" in page.lower()
    assert "772" in out  # orders of the pinned demo session
    assert "event log intact" in out
    creds = json.loads((lyra_home / "secrets" / "demo-user.json").read_text())
    assert (lyra_home / "secrets" / "demo-user.json").stat().st_mode & 0o077 == 0
    assert creds["username"] in out
    assert creds["password"] not in (lyra_home / "audit" / "events.jsonl").read_text()
