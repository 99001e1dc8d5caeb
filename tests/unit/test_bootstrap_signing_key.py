"""`lyra init` creates the dashboards' signing key, so `lyra serve` starts without a hand step."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from lyra.auth.service import load_key_from_settings
from lyra.auth.tokens import ensure_signing_key_file


def test_the_key_file_is_owner_only_written_once_and_serve_accepts_it(tmp_path: Path) -> None:
    path = tmp_path / "home" / "secrets" / "jwt.key"
    assert ensure_signing_key_file(path) is True
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0
    key = path.read_text()
    assert ensure_signing_key_file(path) is False and path.read_text() == key  # never replaced
    # What `lyra serve` (not demo mode) loads: accepted as a strong key.
    assert load_key_from_settings(tmp_path / "home", None, demo=False) == key.encode()


@pytest.mark.subprocess
def test_lyra_init_makes_the_key_unless_the_environment_has_one(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    for name, extra in (("a", {}), ("b", {"LYRA_JWT_SECRET": "k" * 64})):
        home = tmp_path / name
        e = {**env, "LYRA_HOME": str(home), **extra}
        out = subprocess.run([sys.executable, "-m", "lyra.cli", "init", "--no-load-samples"], env=e,
                             capture_output=True, text=True, timeout=300)
        assert out.returncode == 0, out.stderr
        made = (home / "secrets" / "jwt.key").exists()
        assert made == (not extra) and ("signing key" in out.stdout) == made
