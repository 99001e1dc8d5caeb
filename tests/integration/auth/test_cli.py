"""`lyra user ...`, `lyra apikey ...` and `lyra serve`'s key check, through the real CLI app."""

from __future__ import annotations

import json
import re

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lyra.auth.operator import os_user
from lyra.auth.totp import totp_code
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
        "--local-admin",
        input=PASSWORD + "\n",
    )
    seed = re.search(r"TOTP secret: ([A-Z2-7]{32})", out).group(1)
    assert "otpauth://totp/Lyra:olga" in out and len(re.findall(r"\w{4}-\w{4}-\w{4}-\w{4}", out)) == 10
    assert (lyra_home / "secrets" / "totp.key").stat().st_mode & 0o077 == 0
    listing = cli("user", "list", "--local-admin")
    assert "olga" in listing and "trader" in listing and seed not in listing
    cli("user", "set-role", "olga", "analyst", "--local-admin")
    cli("user", "lock", "olga", "--local-admin")
    assert "yes" in cli("user", "list", "--local-admin")
    cli("user", "unlock", "olga", "--local-admin")
    new_seed = re.search(
        r"TOTP secret: ([A-Z2-7]{32})", cli("user", "reset-mfa", "olga", "--local-admin")
    ).group(1)
    assert new_seed != seed
    # Bad input: weak password, unknown role, scope outside the role: clear errors, exit 2.
    assert "common" in cli(
        "user",
        "add",
        "pete",
        "--role",
        "viewer",
        "--password-stdin",
        "--local-admin",
        input="password123456\n",
        code=2,
    )
    assert "unknown role" in cli(
        "user",
        "add",
        "pete",
        "--role",
        "wizard",
        "--password-stdin",
        "--local-admin",
        input=PASSWORD + "\n",
        code=2,
    )
    assert "subset of its role" in cli(
        "apikey", "create", "olga", "--scope", "place_order", "--local-admin", code=2
    )
    created = cli("apikey", "create", "olga", "--scope", "run_notebook", "--name", "bot", "--local-admin")
    key = re.search(r"(lyra_[a-z0-9]{8}_[A-Za-z0-9]{32})", created).group(1)
    key_id = key.split("_")[1]
    rotated = cli("apikey", "rotate", key_id, "--grace-days", "1", "--local-admin")
    new_id = re.search(r"lyra_([a-z0-9]{8})_", rotated).group(1)
    cli("apikey", "revoke", new_id, "--local-admin")
    table = cli("apikey", "list", "--owner", "olga", "--local-admin")
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
    assert json.loads(mirror.splitlines()[1])["actor"] == f"local:{os_user()}"  # who, not a typed name


def test_serve_refuses_missing_or_weak_key(cli, lyra_home, monkeypatch):
    (lyra_home / "secrets" / "jwt.key").unlink(missing_ok=True)  # `lyra init` makes one now
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


def _add(cli, name: str, role: str) -> str:
    """A user made by the local admin; returns the TOTP seed."""
    out = cli("user", "add", name, "--role", role, "--password-stdin", "--local-admin", input=PASSWORD + "\n")
    return re.search(r"TOTP secret: ([A-Z2-7]{32})", out).group(1)


def test_a_typed_role_or_actor_cannot_escalate(cli, db_url, lyra_home, monkeypatch):
    """Every admin command authenticates the person; the role is the account's."""
    from datetime import UTC, datetime

    from lyra.audit import EventLog
    from lyra.bootstrap import open_engine
    from lyra.risk.killswitch import KillSwitch
    from lyra.risk.state import TradingStateStore

    trader_seed = _add(cli, "tess", "trader")
    _add(cli, "rita", "risk_manager")
    _settings, engine = open_engine()
    try:
        ks = KillSwitch(TradingStateStore(EventLog(engine)))
        ks.pull(session_id="s7", actor="alice", reason="fat finger")
        # No identity at all: refused, whatever is typed.
        out = cli("risk", "rearm", "--session", "s7", code=3)
        assert "say who you are" in out
        # The old flags are refused outright, even with a valid identity.
        out = cli("risk", "rearm", "--session", "s7", "--role", "risk_manager", "--actor", "rita", code=3)
        assert "--role/--actor are not accepted" in out
        # A trader who logs in properly is still a trader: re-arm is refused (and recorded).
        creds = f"{PASSWORD}\n{totp_code(trader_seed, datetime.now(UTC))}\n"
        out = cli(
            "risk",
            "rearm",
            "--session",
            "s7",
            "--as-user",
            "tess",
            "--credentials-stdin",
            input=creds,
            code=3,
        )
        assert "may not 'rearm_kill_switch'" in out
        # A wrong password is refused before any role question.
        out = cli(
            "risk",
            "rearm",
            "--session",
            "s7",
            "--as-user",
            "rita",
            "--credentials-stdin",
            input="not her password\n000000\n",
            code=3,
        )
        assert "not accepted" in out
        assert _state(engine, "account:s7") == "halted"
        # The trader cannot manage users either, nor make herself a risk manager.
        out = cli(
            "user",
            "set-role",
            "tess",
            "risk_manager",
            "--as-user",
            "tess",
            "--credentials-stdin",
            input=f"{PASSWORD}\n{totp_code(trader_seed, datetime.now(UTC))}\n",
            code=3,
        )
        assert "may not 'manage_users'" in out or "not accepted" in out  # (a reused code is refused too)
        # Her own API key: only her own keys, never someone else's, never outside her role.
        made = cli("apikey", "create", "tess", "--scope", "manage_api_keys", "--local-admin")
        tess_key = re.search(r"(lyra_[a-z0-9]{8}_[A-Za-z0-9]{32})", made).group(1)
        monkeypatch.setenv("LYRA_API_KEY", tess_key)
        assert "only your own API keys" in cli("apikey", "create", "rita", "--scope", "run_notebook", code=3)
        assert "may not 'manage_users'" in cli("user", "list", code=3)
        monkeypatch.delenv("LYRA_API_KEY")
        # A risk manager, authenticated by her own key: re-arm works and records her, not a flag.
        made = cli("apikey", "create", "rita", "--scope", "rearm_kill_switch", "--local-admin")
        monkeypatch.setenv("LYRA_API_KEY", re.search(r"(lyra_[a-z0-9]{8}_[A-Za-z0-9]{32})", made).group(1))
        out = cli("risk", "rearm", "--session", "s7", "--reason", "venue back")
        assert "re-armed account:s7 by rita (risk_manager)" in out
        monkeypatch.delenv("LYRA_API_KEY")
        assert _state(engine, "account:s7") == "active"
        rearm = [r for r in EventLog(engine).read() if r.kind == "risk.rearm"]
        assert [(r.actor, json.loads(r.payload)["role"]) for r in rearm] == [("rita", "risk_manager")]
        denied = [
            json.loads(r.payload)["detail"]["path"]
            for r in EventLog(engine).read()
            if r.kind == "auth.permission_denied"
        ]
        assert "cli:risk rearm" in denied and "cli:user list" in denied
    finally:
        engine.dispose()


def test_local_admin_only_for_the_owner_of_the_home(cli, lyra_home):
    import os

    if os.geteuid() != 0:  # only root can hand the home to another user for the check
        out = cli("user", "list", "--local-admin")
        assert "users" in out
        return
    os.chown(lyra_home, 65534, 65534)  # nobody's home now
    try:
        out = cli(
            "user",
            "add",
            "mallory",
            "--role",
            "admin",
            "--password-stdin",
            "--local-admin",
            input=PASSWORD + "\n",
            code=3,
        )
        assert "only the OS user owning" in out
    finally:
        os.chown(lyra_home, 0, 0)
    assert "mallory" not in cli("user", "list", "--local-admin")


def _state(engine, scope: str) -> str:
    from lyra.audit import EventLog
    from lyra.risk.state import TradingStateStore

    return {s.scope: s.state.value for s in TradingStateStore(EventLog(engine)).read_all()}[scope]
