"""A ``lyra`` command closes every database connection it opened, however it ends.

Commands leave through ``typer.Exit`` on every refusal; a connection left open then is only
closed when the garbage collector gets to it (with a ResourceWarning), or never in a
long-lived process that runs commands (a notebook, the test suite). Checked on PostgreSQL,
where the server lists each open connection; the collector is off while we look, so a leak
cannot hide behind a collection.
"""

from __future__ import annotations

import gc
import time

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url
from typer.testing import CliRunner

from lyra.cli import app

COMMANDS = [
    # (arguments, exit code): successes and refusals that happen after the database is open
    (["audit", "verify"], 0),
    (["session", "status"], 0),
    (["session", "status", "no-such-session"], 2),
    (["risk", "status"], 0),
    (["risk", "rearm", "--actor", "tom", "--role", "trader", "--all"], 3),
    (["kill", "--all", "--local-admin", "--reason", "drill"], 0),
    (["user", "list", "--local-admin"], 0),
    (["user", "set-role", "ghost", "viewer", "--local-admin"], 2),  # no such user
    (["runs", "list"], 0),
    (["schedule", "list"], 0),
    (["serve", "--port", "0"], 2),  # refused: no signing key (the test removes the one init made)
]


def _open_connections(admin: Engine, db_url: str) -> int:
    with admin.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM pg_stat_activity WHERE datname = :d"),
                         {"d": make_url(db_url).database}).scalar_one()


def _wait_closed(admin: Engine, db_url: str, deadline_s: float = 20.0) -> int:
    """Open connections once none are left, or at the deadline (a server process may take a
    moment to go after its client hung up; a leaked connection never goes)."""
    end = time.monotonic() + deadline_s
    while (n := _open_connections(admin, db_url)) and time.monotonic() < end:
        time.sleep(0.05)
    return n


@pytest.fixture
def no_gc():
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("args", "code"), COMMANDS, ids=["-".join(a[:2]) + f"-exit{c}" for a, c in COMMANDS])
def test_command_leaves_no_connection_open(args, code, db_url, lyra_home, pg_admin, monkeypatch, no_gc):
    monkeypatch.setenv("LYRA_DATABASE_URL", db_url)
    monkeypatch.setenv("COLUMNS", "200")
    runner = CliRunner()
    init = runner.invoke(app, ["init", "--no-load-samples"])
    assert init.exit_code == 0, init.output
    assert _wait_closed(pg_admin, db_url) == 0, "`lyra init` left a connection open"
    if args[0] == "serve":
        (lyra_home / "secrets" / "jwt.key").unlink()
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    assert _wait_closed(pg_admin, db_url) == 0, f"`lyra {' '.join(args)}` left a connection open"
