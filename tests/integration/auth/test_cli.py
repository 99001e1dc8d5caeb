"""`lyra user ...`, `lyra apikey ...` and `lyra serve`'s key check, through the real CLI app."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lyra.cli import app

PASSWORD = "quartz meadow violin harbor"


@pytest.fixture
def cli(lyra_home, db_url, monkeypatch):
    monkeypatch.setenv("LYRA_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()

    def run(*args: str, input: str | None = None, code: int = 0):
        result = runner.invoke(app, list(args), input=input)
        assert result.exit_code == code, result.output
        return result.output

    run("init", "--no-load-samples")
    return run


def kinds(db_url: str) -> list[str]:
    eng = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    with eng.connect() as c:
        out = [r[0] for r in c.execute(sa.text("SELECT kind FROM events ORDER BY seq"))]
    eng.dispose()
    return out


def test_user_and_apikey_lifecycle(cli, db_url, lyra_home):
    out = cli(
        "user",
        "add",
        "olga",
        "--role",
        "trader",
        "--password-stdin",
        "--actor",
        "root",
        input=PASSWORD + "\n",
    )
    seed = re.search(r"TOTP secret: ([A-Z2-7]{32})", out).group(1)
    assert "otpauth://totp/Lyra:olga" in out and len(re.findall(r"\w{4}-\w{4}-\w{4}-\w{4}", out)) == 10
    assert (lyra_home / "secrets" / "totp.key").stat().st_mode & 0o077 == 0
    listing = cli("user", "list")
    assert "olga" in listing and "trader" in listing and seed not in listing
    cli("user", "set-role", "olga", "analyst", "--actor", "root")
    cli("user", "lock", "olga", "--actor", "root")
    assert "yes" in cli("user", "list")
    cli("user", "unlock", "olga", "--actor", "root")
    new_seed = re.search(r"TOTP secret: ([A-Z2-7]{32})", cli("user", "reset-mfa", "olga")).group(1)
    assert new_seed != seed
    # Bad input: weak password, unknown role, scope outside the role: clear errors, exit 2.
    assert "common" in cli(
        "user", "add", "pete", "--role", "viewer", "--password-stdin", input="password123456\n", code=2
    )
    assert "unknown role" in cli(
        "user", "add", "pete", "--role", "wizard", "--password-stdin", input=PASSWORD + "\n", code=2
    )
    assert "subset of its role" in cli("apikey", "create", "olga", "--scope", "place_order", code=2)
    created = cli("apikey", "create", "olga", "--scope", "run_notebook", "--name", "bot")
    key = re.search(r"(lyra_[a-z0-9]{8}_[A-Za-z0-9]{32})", created).group(1)
    key_id = key.split("_")[1]
    rotated = cli("apikey", "rotate", key_id, "--grace-days", "1")
    new_id = re.search(r"lyra_([a-z0-9]{8})_", rotated).group(1)
    cli("apikey", "revoke", new_id)
    table = cli("apikey", "list", "--owner", "olga")
    assert key_id in table and new_id in table and "revoked" in table and key not in table
    assert kinds(db_url) == [
        "auth.user_created",
        "auth.role_changed",
        "auth.lockout",
        "auth.account_unlocked",
        "auth.mfa_reset",
        "auth.apikey_created",
        "auth.apikey_rotated",
        "auth.apikey_revoked",
    ]
    mirror = (lyra_home / "audit" / "events.jsonl").read_text()
    for secret in (PASSWORD, seed, new_seed, key):
        assert secret not in mirror
    assert json.loads(mirror.splitlines()[1])["actor"] == "root"


def test_serve_refuses_missing_or_weak_key(cli, lyra_home, monkeypatch):
    out = cli("serve", "--port", "0", code=2)
    assert "no signing key" in out
    monkeypatch.setenv("LYRA_JWT_SECRET", "changeme")
    assert "too weak" in cli("serve", "--port", "0", code=2)
    (lyra_home / "secrets").mkdir(exist_ok=True)
    monkeypatch.delenv("LYRA_JWT_SECRET")
    keyfile = lyra_home / "secrets" / "jwt.key"
    keyfile.write_text("x" * 64)
    keyfile.chmod(0o600)
    assert "too weak" in cli("serve", "--port", "0", code=2)
    keyfile.chmod(0o644)
    assert "readable by group or others" in cli("serve", "--port", "0", code=2)
