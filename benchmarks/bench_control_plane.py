"""Control-plane reaction time in a paced paper session (issue 21, "Figures").

A real `lyra session` process replays the shipped Coinbase BTC/USD hourly bars at one bar per
second (a session a person watches). From this process, as the dashboards and `lyra` commands
do, the script measures how long the session takes to

- answer an order ticket (queued -> executed through risk -> row marked done),
- stop after a stop request (request committed -> ``session.stopped`` recorded, status stopped),
- stop after the kill switch is pulled (pull -> cancels, ack, stopped),

and how long another process waits for the database's write lock while the session runs
(an event-log append: the lock the session commits under). Prints p50/p99 of each.

    .venv/bin/python benchmarks/bench_control_plane.py [--tickets 20] [--stops 3] [--kills 3]
    .venv/bin/python benchmarks/bench_control_plane.py --postgres   # a temporary PostgreSQL db
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path

import sqlalchemy as sa

from lyra.audit import EventLog
from lyra.auth.permissions import Principal, Role
from lyra.core.enums import OrderType, Side
from lyra.core.orders import OrderIntent
from lyra.feeds import MarketStore, import_file
from lyra.risk.killswitch import KillSwitch
from lyra.risk.state import TradingStateStore
from lyra.session.commands import CommandQueue
from lyra.store import create_engine_for, upgrade
from lyra.testing.sessions import SessionProcesses, wait_for

REPO = Path(__file__).resolve().parent.parent
@contextmanager
def database(postgres: bool, home: Path) -> Iterator[str]:
    """A fresh database URL: SQLite in ``home``, or a temporary PostgreSQL database."""
    if not postgres:
        yield f"sqlite:///{home / 'lyra.db'}"
        return
    admin_url = os.environ.get("LYRA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    name = f"lyra_bench_{uuid.uuid4().hex[:12]}"
    with admin.connect() as c:
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


class Bench:
    """A migrated database, and paced sessions (one bar a second) as `lyra session` processes."""

    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self.engine = create_engine_for(url)
        upgrade(self.engine)
        env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
        env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=url)
        self.sessions = SessionProcesses(self.engine, env, home, speed=3600.0, start="2017-07-02", output=False)
        self.reg = self.sessions.reg
        self.jsonl = home / "audit" / "events.jsonl"

    def start(self, sid: str, resume: bool = False) -> subprocess.Popen[str]:
        """Start (or resume) ``sid``; returns once it has stepped two paced bars."""
        return self.sessions.resume(sid, steps=2) if resume else self.sessions.start(sid, steps=2)[0]

    def stopped(self, sid: str, t0: float) -> float:
        return self.sessions.wait_stopped(sid, t0)

    def close(self) -> None:
        self.sessions.close()
        self.engine.dispose()


def run(b: Bench, tickets: int, stops: int, kills: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"ticket": [], "stop": [], "kill": [], "write lock": []}
    q = CommandQueue(b.engine, b.jsonl)
    trader = Principal("bench", Role.TRADER)
    b.start("cp")
    probe = EventLog(b.engine, b.jsonl)
    for i in range(40):
        t0 = time.monotonic()
        probe.append("probe.write", {"i": i}, actor="bench")
        out["write lock"].append(time.monotonic() - t0)
        time.sleep(0.02)
    for i in range(tickets):
        t0 = time.monotonic()
        cmd = q.submit_order("cp", OrderIntent("coinbase:BTC/USD", Side.BUY, Decimal("0.01"), OrderType.LIMIT,
                                               Decimal(1000 + i)), trader, "bench")
        wait_for(lambda c=cmd: q.get(c.id).finished, 30, "a ticket's answer", every=0.005)  # type: ignore[union-attr]
        out["ticket"].append(time.monotonic() - t0)
    for i in range(stops):
        if i:
            b.start("cp", resume=True)
        t0 = time.monotonic()
        b.reg.request_stop("cp")
        out["stop"].append(b.stopped("cp", t0))
    ks = KillSwitch(TradingStateStore(EventLog(b.engine, b.jsonl)))
    for i in range(kills):
        sid = f"kill{i}"
        b.start(sid)
        t0 = time.monotonic()
        ks.pull(session_id=sid, actor="bench", reason="bench")
        out["kill"].append(b.stopped(sid, t0))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tickets", type=int, default=20)
    ap.add_argument("--stops", type=int, default=3)
    ap.add_argument("--kills", type=int, default=3)
    ap.add_argument("--postgres", action="store_true", help="run on a temporary PostgreSQL database")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="lyra-bench-cp-"))
    try:
        (home / "audit").mkdir()
        import_file(REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz", store=MarketStore(home / "market"))
        with database(args.postgres, home) as url:
            b = Bench(home, url)
            try:
                figures = run(b, args.tickets, args.stops, args.kills)
            finally:
                b.close()
        db = "postgresql" if args.postgres else "sqlite"
        print(f"control-plane reaction time, paper session paced at 1 bar/s, {db}:")
        for what, xs in figures.items():
            s = sorted(xs)
            p99 = s[min(len(s) - 1, round(0.99 * (len(s) - 1)))]
            print(f"  {what:10s} n={len(s):3d}  p50 {statistics.median(s) * 1000:8.1f} ms  "
                  f"p99 {p99 * 1000:8.1f} ms")
    finally:
        shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
