"""`lyra init | doctor | audit` as a user runs them: a real subprocess, real files, real DB."""

import json
import os
import subprocess
import sys

import pytest
import sqlalchemy as sa

LYRA = [sys.executable, "-m", "lyra.cli"]

pytestmark = pytest.mark.subprocess


def run(args, env, check=False):
    p = subprocess.run([*LYRA, *args], capture_output=True, text=True, env=env, timeout=300)
    if check and p.returncode != 0:
        raise AssertionError(f"lyra {' '.join(args)} failed:\n{p.stdout}\n{p.stderr}")
    return p


@pytest.fixture
def env(lyra_home, db_url):
    e = dict(os.environ)
    e["LYRA_HOME"] = str(lyra_home)
    e["LYRA_DATABASE_URL"] = db_url
    e["COLUMNS"] = "200"
    return e


def test_init_doctor_verify_replay(env, lyra_home, db_url):
    r = run(["init", "--no-load-samples"], env, check=True)
    assert "ready" in r.stdout
    assert (lyra_home / "audit" / "events.jsonl").exists()
    run(["init", "--no-load-samples"], env, check=True)  # idempotent
    # Without market data, doctor says so and fails.
    r = run(["doctor"], env)
    assert r.returncode == 1
    assert "market data" in r.stdout
    assert "run `lyra init`" in r.stdout
    # Write a few order events through the ledger, then verify and replay from the CLI.
    code = (
        "from decimal import Decimal; from pathlib import Path; from lyra.audit import *; from lyra.core import *;"
        "from lyra.store import create_engine_for;"
        f"e=create_engine_for({db_url!r}); led=Ledger(EventLog(e, Path({str(lyra_home / 'audit' / 'events.jsonl')!r})));"
        "o=Order('s1-00000001', OrderIntent('binance:BTC/USDT', Side.BUY, Decimal('2')), 1524900000000);"
        "from lyra.testing.ledger import fixture_pen; pen=fixture_pen();"
        "tx_=led.transaction(); tx=tx_.__enter__(); tx.create_order('s1', o, pen=pen);"
        "tx.order_event('s1', o.client_order_id, OrderEvent(OrderEventType.SUBMIT, 1524900000001), pen=pen);"
        "f=Fill('f1','s1-00000001','binance:BTC/USDT',Side.BUY,Decimal('2'),Decimal('9300.5'),Decimal('0.01'),'USDT',Liquidity.TAKER,1524900060000);"
        "tx.order_event('s1', o.client_order_id, OrderEvent(OrderEventType.FILL, 1524900060000, fill=f), pen=pen); tx_.__exit__(None,None,None)"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
    r = run(["audit", "verify"], env, check=True)
    assert "3 entries" in r.stdout
    r = run(["audit", "replay", "--json"], env, check=True)
    rows = json.loads(r.stdout)
    assert rows["positions"][0]["quantity"] == "2"
    assert rows["positions"][0]["avg_price"] == "9300.5"
    # As of a moment before the fill: the order is submitted, no position yet.
    r = run(["audit", "replay", "--json", "--until", "2018-04-28T07:20:30Z"], env, check=True)
    rows = json.loads(r.stdout)
    assert rows["positions"] == []
    assert rows["orders"][0]["status"] == "submitted"
    # Tamper with the database: verify exits 1 and names the entry.
    eng = sa.create_engine(db_url)
    with eng.begin() as c:
        c.execute(sa.text("UPDATE events SET payload = replace(payload, '9300.5', '9000.5') WHERE seq = 3"))
    eng.dispose()
    r = run(["audit", "verify"], env)
    assert r.returncode == 1
    assert "database entry 3" in r.stderr


@pytest.mark.parametrize(
    ("var", "value", "expect"),
    [
        ("LYRA_COLOUR", "blue", "unknown setting"),
        ("LYRA_DATABASE_URL", "not a url", "database_url"),
        ("LYRA_DATABASE_URL", "mysql://x@y/z", "unsupported database"),
        ("LYRA_LOG_LEVEL", "LOUD", "log_level"),
    ],
)
def test_bad_settings_fail_clearly(lyra_home, var, value, expect):
    env = dict(os.environ, LYRA_HOME=str(lyra_home), **{var: value})
    r = run(["init", "--no-load-samples"], env)
    assert r.returncode == 2
    assert expect in r.stderr
    assert not (lyra_home / "lyra.db").exists()


def test_unwritable_home_fails_clearly(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    env = dict(os.environ, LYRA_HOME=str(ro / "home"))
    try:
        r = run(["init", "--no-load-samples"], env)
    finally:
        ro.chmod(0o700)
    if os.geteuid() == 0:
        # root can write anywhere; use a path under a file instead, which nobody can create
        (tmp_path / "afile").write_text("x")
        env = dict(os.environ, LYRA_HOME=str(tmp_path / "afile" / "home"))
        r = run(["init", "--no-load-samples"], env)
    assert r.returncode == 2
    assert "home=" in r.stderr
    assert "LYRA_HOME" in r.stderr


def test_database_at_wrong_migration_level_is_refused(env, db_url):
    run(["init", "--no-load-samples"], env, check=True)
    from lyra.store import create_engine_for, downgrade, head_revision

    eng = create_engine_for(db_url)
    downgrade(eng, "base")
    eng.dispose()
    r = run(["audit", "verify"], env)
    assert r.returncode == 2
    assert "run `lyra init`" in r.stderr
    r = run(["doctor"], env)
    assert r.returncode == 1
    assert f"need {head_revision()}" in r.stdout
