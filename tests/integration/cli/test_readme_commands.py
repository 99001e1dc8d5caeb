"""Every command the README's "Using it" block documents, run through the real `lyra` entry
point in one fresh LYRA_HOME, in the README's order (`lyra data download` against the local
fake Binance). Long-running processes (`lyra serve`, the `lyra schedule run` daemon, a papermill
`lyra run`) are loaded with `--help` here: that proves they are registered and import; their
behaviour has its own tests (tests/integration/auth, tests/integration/ops).

The test first reads the README, so a command added there without a run here fails it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from lyra.testing.fake_exchange import binance_fake

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]

LYRA = str(Path(sys.executable).with_name("lyra"))
REPO = Path(__file__).resolve().parents[3]
FIX = REPO / "tests" / "fixtures"
ISO_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")

SESSION_TOML = """session_id = "readme"
venue = "coinbase"
symbols = ["BTC/USD"]
timeframe = "1h"
start = "2017-08-01"
end = "2017-08-10"
balances = {USD = 10000}
[instruments."BTC/USD"]
price_increment = "0.01"
size_increment = "0.00000001"
"""

#: The README's commands (first words after `lyra`) -> covered below. "a | b ID" lines list
#: several sub-commands of one group.
COVERED = {
    "init", "doctor", "data list", "data quality", "data download", "session start",
    "session status", "session stop", "session resume", "session standby", "kill", "risk status", "risk rearm",
    "user add", "serve", "run", "runs list", "runs show", "schedule add", "schedule run",
    "audit verify", "audit repair", "audit replay", "schedule fire",
    "backup create", "backup list", "backup verify", "backup prune", "restore",
    "tax import-rates", "tax report",
}


def _readme_commands() -> set[str]:
    text = (REPO / "README.md").read_text()
    block = text.split("## Using it", 1)[1].split("```bash", 1)[1].split("```", 1)[0]
    found: set[str] = set()
    for line in block.splitlines():
        line = line.split("  #", 1)[0].strip()
        for part in line.split(";"):
            words = part.split()
            if len(words) < 2 or words[0] != "lyra" or words[1] in ("activate",):
                continue
            group = words[1]
            rest = " ".join(words[2:])
            subs = [s.split()[0] for s in rest.split("|") if s.split() and not s.split()[0].startswith(("-", "notebooks/", "--"))]
            if group in ("init", "doctor", "kill", "serve", "run", "restore"):
                found.add(group)
            else:
                found.update(f"{group} {s}" for s in subs if s.replace("-", "_").isidentifier())
    return found


def test_every_readme_command_is_covered() -> None:
    documented = _readme_commands()
    assert "data download" in documented and "audit replay" in documented  # the parser works
    assert documented == COVERED


def _run(env: dict[str, str], *args: str, stdin: str | None = None, code: int = 0
         ) -> subprocess.CompletedProcess[str]:
    r = subprocess.run([LYRA, *args], capture_output=True, text=True, env=env, timeout=300, input=stdin)
    assert r.returncode == code, f"lyra {' '.join(args)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}"
    assert "Traceback" not in r.stdout + r.stderr
    return r


@pytest.mark.timeout(1200)  # ~25 processes in one test: generous for a loaded machine
def test_readme_commands_through_the_real_entry_point(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env.update(LYRA_HOME=str(home), COLUMNS="200")
    config = tmp_path / "my_session.toml"
    config.write_text(SESSION_TOML)
    seen: set[str] = set()

    def lyra(name: str, *args: str, **kw: object) -> subprocess.CompletedProcess[str]:
        seen.add(name)
        return _run(env, *args, **kw)  # type: ignore[arg-type]

    assert "ready" in lyra("init", "init").stdout
    doctor = lyra("doctor", "doctor").stdout
    assert "home writable" in doctor and "FAIL" not in doctor
    listing = lyra("data list", "data", "list").stdout
    assert "coinbase" in listing and "BTC-USD" in listing
    quality = lyra("data quality", "data", "quality", "coinbase", "BTC/USD", "1h").stdout
    assert "stale_repeat" in quality

    with binance_fake(FIX, max_limit=100) as fake:
        # The shipped samples hold these candles already: the download resumes after them.
        r = lyra("data download", "data", "download", "--exchange", "binance", "--symbol", "BTC/USDT",
                 "--timeframe", "1m", "--since", "2018-04-28", "--api-url", fake.url)
        assert "0 rows fetched, 0 written in 1 requests (resumed after 2018-04-28 10:14 UTC)" in r.stdout
        r = lyra("data download", "data", "download", "--exchange", "binance", "--symbol", "BTC/USDT",
                 "--timeframe", "trades", "--since", "2021-01-08", "--api-url", fake.url)
    assert "binance BTC/USDT trades: 2,001 rows fetched, 2,001 written" in r.stdout
    assert "trades" in lyra("data list", "data", "list").stdout

    r = lyra("session start", "session", "start", "--config", str(config), "--quiet")
    assert "finished" in r.stdout
    assert "readme" in lyra("session status", "session", "status").stdout
    r = lyra("session stop", "session", "stop", "readme", code=2)
    assert "is finished, not running: nothing to stop" in r.stderr  # not "stop requested"
    r = lyra("session resume", "session", "resume", "readme", "--quiet")
    assert "re-verifying" in r.stdout
    # A standby waits on a running session's owner: on a finished one it refuses, writing nothing.
    r = lyra("session standby", "session", "standby", "readme", "--quiet", code=2)
    assert "is finished: a standby waits on a running session's owner" in " ".join(r.stderr.split())

    lyra("kill", "kill", "--all", "--flatten", "--local-admin", "--reason", "drill")
    status = lyra("risk status", "risk", "status").stdout
    assert "halted" in status and ISO_UTC.search(status)  # a human time, not epoch ms
    assert not re.search(r"\b1\d{12}\b", status)
    # Re-arming authenticates the person (the OS user owning LYRA_HOME here), never a typed role.
    assert "re-armed" in lyra("risk rearm", "risk", "rearm", "--all", "--local-admin",
                              "--reason", "drill over").stdout

    r = lyra("user add", "user", "add", "alice", "--role", "trader", "--password-stdin", "--local-admin",
             stdin="correct horse battery staple 42\n")
    assert "otpauth://" in r.stdout or "TOTP" in r.stdout

    assert "auth proxy" in lyra("serve", "serve", "--help").stdout
    assert "papermill" in lyra("run", "run", "--help").stdout
    lyra("runs list", "runs", "list")
    lyra("runs show", "runs", "show", "--help")
    r = lyra("schedule add", "schedule", "add", "nightly", "--cron", "0 2 * * *",
             str(REPO / "notebooks" / "daily_report.ipynb"))
    assert "nightly" in r.stdout
    assert "daemon" in lyra("schedule run", "schedule", "run", "--help").stdout
    assert "now" in lyra("schedule fire", "schedule", "fire", "--help").stdout

    r = lyra("audit verify", "audit", "verify")
    assert "chain intact, file matches" in r.stdout
    assert "nothing to repair" in lyra("audit repair", "audit", "repair").stdout
    lyra("audit replay", "audit", "replay", "--until", "2018-04-28T10:00")

    lyra("backup create", "backup", "create")
    listing = lyra("backup list", "backup", "list").stdout
    assert listing.strip()
    lyra("backup verify", "backup", "verify")
    lyra("backup prune", "backup", "prune", "--dry-run")
    target = tmp_path / "restored"
    # As of now: the backup just taken, nothing to replay after it (restore drills: tests/integration/backup).
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    lyra("restore", "restore", "--until", now, "--target", str(target))
    assert (target / "restored_from.json").exists()

    lyra("tax import-rates", "tax", "import-rates", str(REPO / "data" / "rba" / "f11.1-sample.csv"))
    r = lyra("tax report", "tax", "report", "--fy", "2018", "--entity", "individual")
    assert "disposals," in r.stdout and "missing rate" in r.stdout  # 2017 fills; the sample rates are 2023's
    assert seen == COVERED
