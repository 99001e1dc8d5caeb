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
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lyra.audit import EventLog
from lyra.auth.permissions import Principal, Role
from lyra.core.enums import OrderType, Side
from lyra.core.orders import OrderIntent
from lyra.feeds import MarketStore, import_file
from lyra.risk.killswitch import KillSwitch
from lyra.risk.state import TradingStateStore
from lyra.session.commands import CommandQueue
from lyra.session.registry import SessionRegistry
from lyra.store import create_engine_for, upgrade

REPO = Path(__file__).resolve().parent.parent
CONFIG = """
session_id = "{sid}"
mode = "paper"
strategy = "sma_cross"
venue = "coinbase"
symbols = ["BTC/USD"]
timeframe = "1h"
start = "2017-07-02"
quantity = "0.01"
speed = 3600.0
[params]
fast = 2
slow = 5
[balances]
USD = "100000"
[instruments."BTC/USD"]
price_increment = "0.01"
size_increment = "0.00000001"
min_notional = "1"
maker_fee = "0.004"
taker_fee = "0.006"
"""


def wait_for(pred: Callable[[], Any], timeout: float, what: str, every: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = pred()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError(f"timed out waiting for {what}")


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
    def __init__(self, home: Path, url: str) -> None:
        self.home = home
        self.engine = create_engine_for(url)
        upgrade(self.engine)
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
        self.env.update(LYRA_HOME=str(home), LYRA_DATABASE_URL=url)
        self.reg = SessionRegistry(self.engine)
        self.jsonl = home / "audit" / "events.jsonl"
        self.procs: list[subprocess.Popen[bytes]] = []

    def session(self, *args: str) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-m", "lyra.cli", "session", *args, "--quiet"], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def start(self, sid: str, resume: bool = False) -> subprocess.Popen[bytes]:
        if resume:
            p = self.session("resume", sid)
        else:
            cfg = self.home / f"{sid}.toml"
            cfg.write_text(CONFIG.format(sid=sid))
            p = self.session("start", "--config", str(cfg))
        wait_for(lambda: (r := self.reg.get(sid)) is not None and r["status"] == "running" and r["pid"] == p.pid,
                 120, f"{sid} to run", 0.05)
        at = self.reg.get(sid)["events_processed"]  # type: ignore[index]
        wait_for(lambda: self.reg.get(sid)["events_processed"] >= at + 2, 60, f"{sid} to step", 0.05)  # type: ignore[index]
        return p

    def stopped(self, sid: str, t0: float) -> float:
        wait_for(lambda: self.reg.get(sid)["status"] == "stopped", 60, f"{sid} to stop")  # type: ignore[index]
        return time.monotonic() - t0

    def close(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()
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
        wait_for(lambda c=cmd: q.get(c.id).finished, 30, "a ticket's answer")  # type: ignore[union-attr]
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
