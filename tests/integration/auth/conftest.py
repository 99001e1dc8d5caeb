"""Fixtures for the auth integration tests: a real AuthService on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy.engine import Engine

from lyra.audit import EventLog
from lyra.auth.repository import SecretBox
from lyra.auth.service import AuthService

SIGNING_KEY = "integration-test-signing-key-" + "Zq8xV2mN4pL7sK1wR9tY3uB6"
PASSWORD = "plum orbit cactus lantern"
#: Fast hashes in tests; the production cost (600k) is pinned in test_service and the benchmark.
TEST_ITERATIONS = 20_000


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kw: float) -> None:
        self.now += timedelta(**kw)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(datetime(2026, 3, 2, 9, 0, 5, tzinfo=UTC))


@pytest.fixture
def service(engine: Engine, tmp_path: Path, clock: FakeClock) -> AuthService:
    log = EventLog(engine, tmp_path / "audit" / "events.jsonl")
    return AuthService(
        engine,
        signing_key=SIGNING_KEY,
        event_log=log,
        secret_box=SecretBox(Fernet.generate_key()),
        clock=clock,
        iterations=TEST_ITERATIONS,
    )
