"""A home with history: a paced paper session runs while three backups are taken (per database).

Built once per module and backend; tests that change anything copy the backups folder first.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from lyra.audit import EventLog
from lyra.backup import create_backup
from lyra.core.clock import ManualClock
from lyra.risk.state import TradingStateStore
from lyra.session.factory import open_session
from lyra.settings import load_settings
from lyra.store import create_engine_for
from lyra.testing.sessions import demo_config

#: Backups are taken once the log reaches these heads (the session writes ~700 entries).
BACKUP_AT = (120, 300, 480)
KEY = "k" * 64


def _wait(cond: Any, what: str, deadline_s: float = 120.0) -> None:
    end = time.monotonic() + deadline_s
    while not cond():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def build_home(root: Path, db_url: str, market_template: Path) -> dict[str, Any]:
    """A home with market data, a signing key and the migrated database ``db_url``."""
    home = root / "home"
    shutil.copytree(market_template, home / "market")
    (home / "audit").mkdir(parents=True)
    (home / "runs" / "r1").mkdir(parents=True)
    (home / "runs" / "r1" / "params.json").write_text('{"fast": 10}')
    (home / "secrets").mkdir(mode=0o700)
    fd = os.open(home / "secrets" / "jwt.key", os.O_WRONLY | os.O_CREAT, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(KEY)
    settings = load_settings(env={"LYRA_HOME": str(home), "LYRA_DATABASE_URL": db_url})
    return {"home": home, "settings": settings, "engine": create_engine_for(db_url), "db_url": db_url}


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def drilled(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
            market_template: Path) -> Iterator[dict[str, Any]]:
    """A paced paper session (SMA 3/8, 2017-07..2017-08-10) with backups at three heads."""
    root = tmp_path_factory.mktemp(f"drill-{request.param}")
    if request.param == "sqlite":
        db = root / "home-db" / "lyra.db"
        db.parent.mkdir()
        shutil.copyfile(request.getfixturevalue("sqlite_template"), db)
        url = f"sqlite:///{db}"
        dbs = None
    else:
        dbs = request.getfixturevalue("pg_databases")
        url = dbs.create(migrated=True)
    h = build_home(root, url, market_template)
    settings, engine = h["settings"], h["engine"]
    # ~960 hourly bars paced at 3.6 ms each; fast crossovers: ~700 entries
    cfg = demo_config(session_id="drill", end="2017-08-10", params={"fast": 3, "slow": 8}, speed=1e6)
    session = open_session(cfg, engine=engine, market_dir=settings.market_dir,
                           jsonl_path=settings.audit_dir / "events.jsonl")
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = session.run()
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            out["error"] = exc

    log = EventLog(engine)
    thread = threading.Thread(target=run, name="drill-session")
    thread.start()
    manifests = []
    try:
        risk_seqs: list[int] = []
        for i, n in enumerate(BACKUP_AT):  # backups while the session trades
            at = max([n, *(s + 10 for s in risk_seqs)])  # past the last risk change: it is replayed
            _wait(lambda at=at: log.head()[0] >= at or not thread.is_alive(), f"log head {at}")
            manifests.append(create_backup(settings, engine))
            if i < 2:  # a risk state changes after the backup, stamped in the log's (data) time
                head_ts = next(iter(log.read(after_seq=log.head()[0] - 1))).ts
                store = TradingStateStore(EventLog(engine, settings.audit_dir / "events.jsonl"),
                                          clock=ManualClock(head_ts))
                store.set_state("account:desk-b", ("halted", "reducing")[i], actor="ops", reason=f"drill {i}")
                risk_seqs.append(log.head()[0])
    finally:
        thread.join(300)
    assert "error" not in out, out.get("error")
    h.update(backups=settings.home / "backups", manifests=manifests, result=out["result"],
             records=list(log.read()), risk_seqs=risk_seqs, backend=request.param, root=root, pg=dbs)
    yield h
    engine.dispose()
    if dbs is not None:
        dbs.drop(url)


@pytest.fixture
def backups_copy(drilled: dict[str, Any], tmp_path: Path) -> Path:
    """A private copy of the drill's backups folder (to corrupt)."""
    dst = tmp_path / "backups"
    shutil.copytree(drilled["backups"], dst)
    for p in dst.glob("*/verified.json"):
        p.unlink()
    return dst


@pytest.fixture
def restore_db(drilled: dict[str, Any], tmp_path: Path) -> Iterator[Any]:
    """Makes database URLs to restore into (PostgreSQL: new empty databases, dropped after)."""
    made: list[str] = []

    def new(name: str) -> str | None:
        if drilled["backend"] == "sqlite":
            return None
        url = drilled["pg"].create(migrated=False)
        made.append(url)
        return str(url)

    yield new
    for url in made:
        drilled["pg"].drop(url)
