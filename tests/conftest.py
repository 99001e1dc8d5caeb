"""Shared fixtures: a fresh database on SQLite and on the PostgreSQL server, per test."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine, make_url

from lyra.feeds import MarketStore, import_file
from lyra.store import create_engine_for, upgrade

PG_ADMIN_URL = os.environ.get("LYRA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
REPO = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _pg_available() -> bool:
    try:
        eng = sa.create_engine(PG_ADMIN_URL)
        with eng.connect() as c:
            c.execute(sa.text("SELECT 1"))
        eng.dispose()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_admin() -> Iterator[Engine]:
    if not _pg_available():
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN_URL}: start it (scripts/test.sh does)")
    eng = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    yield eng
    eng.dispose()


def _new_pg_database(admin: Engine) -> str:
    name = f"lyra_test_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    return make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


def _drop_pg_database(admin: Engine, url: str) -> None:
    name = make_url(url).database
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database URL, once on SQLite (a file in tmp_path) and once on PostgreSQL."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lyra.db'}"
        return
    admin = request.getfixturevalue("pg_admin")
    url = _new_pg_database(admin)
    try:
        yield url
    finally:
        _drop_pg_database(admin, url)


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    """A migrated database engine (SQLite and PostgreSQL)."""
    eng = create_engine_for(db_url)
    upgrade(eng)
    yield eng
    eng.dispose()


@pytest.fixture
def lyra_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LYRA_HOME in a temp folder, with every other LYRA_* setting cleared."""
    for k in list(os.environ):
        if k.startswith("LYRA_") and k not in ("LYRA_TEST_PG_URL", "LYRA_SAMPLE_DATA"):
            monkeypatch.delenv(k)
    home = tmp_path / "home"
    monkeypatch.setenv("LYRA_HOME", str(home))
    return home


# Sessions: a LYRA_HOME with the shipped Coinbase BTC/USD hourly data imported ------------


@pytest.fixture(scope="session")
def market_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The market store with the shipped Coinbase 1h file, imported once per test run."""
    root = tmp_path_factory.mktemp("market-template")
    import_file(REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz", store=MarketStore(root))
    return root


@pytest.fixture
def session_home(tmp_path: Path, market_template: Path, db_url: str, monkeypatch: pytest.MonkeyPatch
                 ) -> Iterator[dict[str, object]]:
    """LYRA_HOME (market data in place), the migrated database, the environment to run `lyra`."""
    home = tmp_path / "home"
    shutil.copytree(market_template, home / "market")
    (home / "audit").mkdir(parents=True)
    engine = create_engine_for(db_url)
    upgrade(engine)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_") or k == "LYRA_TEST_PG_URL"}
    env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=db_url)
    for k, v in env.items():
        if k.startswith("LYRA_"):
            monkeypatch.setenv(k, v)
    yield {"home": home, "engine": engine, "env": env, "db_url": db_url}
    engine.dispose()
