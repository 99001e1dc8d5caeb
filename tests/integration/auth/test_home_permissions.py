"""Files in a default ``LYRA_HOME`` are owner-only, even under a permissive umask (022): the
folders 0700, the SQLite database (and its WAL files), the event-log mirror and the secrets
0600. A real ``lyra init`` in a subprocess, then the auth service writing its first events."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lyra.auth.service import AuthService
from lyra.settings import load_settings

from .conftest import PASSWORD, TEST_ITERATIONS

pytestmark = [pytest.mark.subprocess]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_fresh_home_is_owner_only(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env["LYRA_HOME"] = str(home)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import os, sys; os.umask(0o022); from lyra.cli import app; "
            "sys.argv = ['lyra', 'init', '--no-load-samples']; app()",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    old = os.umask(0o022)  # the service below creates the TOTP key and the mirror's first lines
    try:
        settings = load_settings(env={}, home=str(home))
        service = AuthService.from_settings(settings, iterations=TEST_ITERATIONS)
        try:
            service.add_user("perm", PASSWORD, "viewer", actor="test")
        finally:
            service.engine.dispose()
    finally:
        os.umask(old)
    db = Path(settings.db_url.removeprefix("sqlite:///"))
    mirror = settings.audit_dir / "events.jsonl"
    files = [db, mirror, home / "secrets" / "jwt.key", home / "secrets" / "totp.key"]
    files += [p for p in (Path(f"{db}-wal"), Path(f"{db}-shm")) if p.exists()]
    folders = [home, settings.audit_dir, home / "secrets"]
    assert mirror.read_text().count("auth.user_created") == 1  # the files are the ones in use
    assert {str(p): oct(mode(p)) for p in files} == {str(p): "0o600" for p in files}
    assert {str(p): oct(mode(p)) for p in folders} == {str(p): "0o700" for p in folders}
