"""A LYRA_HOME with the shipped Coinbase BTC/USD hourly data imported, on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from lyra.demo import DEMO_SESSION
from lyra.feeds import MarketStore, import_file
from lyra.session.config import SessionConfig, load_session_config
from lyra.store import create_engine_for, upgrade

REPO = Path(__file__).resolve().parents[3]
_MARKET_CACHE: dict[str, Path] = {}


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


def demo_config(**changes: object) -> SessionConfig:
    """The demo session's config (Coinbase BTC/USD 1h, SMA 10/30), with changes."""
    data = dict(DEMO_SESSION)
    data.update(changes)
    return load_session_config(data)
