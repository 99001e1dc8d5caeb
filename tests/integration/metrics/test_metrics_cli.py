"""``lyra metrics serve|targets`` and ``lyra serve``'s metrics options, through the real CLI."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request

import pytest
from typer.testing import CliRunner

from lyra.cli import app
from lyra.metrics import read_endpoints


def test_serve_has_the_metrics_options():
    out = CliRunner().invoke(app, ["serve", "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    assert "--metrics-port" in out.output and "--metrics-targets" in out.output
    assert "--behind-tls-proxy" in out.output  # the auth proxy's own options are all still there


def test_a_refused_serve_leaves_no_endpoint_and_no_stale_target(session_home, tmp_path):
    engine = session_home["engine"]
    targets = tmp_path / "targets.json"
    out = CliRunner().invoke(app, ["serve", "--port", "0", "--tls-cert", str(tmp_path / "none.pem"), "--tls-key",
                                   str(tmp_path / "none.key"), "--metrics-targets", str(targets)],
                             env={"COLUMNS": "200"})
    assert out.exit_code == 2, out.output
    assert read_endpoints(engine) == []
    assert json.loads(targets.read_text()) == []


def test_targets_to_an_unwritable_path_is_a_clear_error(session_home, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = CliRunner().invoke(app, ["metrics", "targets", "--write", str(blocker / "t.json")], env={"COLUMNS": "200"})
    assert out.exit_code == 2
    assert f"cannot write {blocker / 't.json'}" in out.output


@pytest.mark.subprocess
def test_metrics_serve_answers_and_writes_the_targets(session_home, tmp_path):
    targets = tmp_path / "t.json"
    proc = subprocess.Popen([sys.executable, "-m", "lyra.cli", "metrics", "serve", "--targets", str(targets),
                             "--refresh", "0.5", "--verify-every", "0"], env={**session_home["env"], "COLUMNS": "200"},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = ""
        deadline = time.monotonic() + 90
        while "lyra metrics: http://" not in line:
            assert time.monotonic() < deadline and proc.poll() is None, line
            line = proc.stdout.readline()  # type: ignore[union-attr]
        url = line.split()[2]
        with urllib.request.urlopen(url, timeout=30) as r:
            body = r.read().decode()
        assert "lyra_db_up 1.0" in body and 'lyra_sessions{status="running"}' in body
        listed = json.loads(targets.read_text())
        assert [g["targets"][0] for g in listed] == [url.removeprefix("http://").removesuffix("/metrics")]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        proc.stdout.close()  # type: ignore[union-attr]
    assert proc.returncode == 0
    assert json.loads(targets.read_text()) == []  # a clean stop takes itself out of the file
    assert read_endpoints(session_home["engine"]) == []
