"""Event-log figures: append throughput (SQLite, PostgreSQL) and verify on 1,000,000 entries.

Durability: each batch of at most 1,000 entries is one committed transaction (fsync'd mirror
file included). Targets: >= 50,000 entries/s appended on SQLite; verify of 1M entries <= 3 s.

    .venv/bin/python benchmarks/bench_event_log.py [--verify-n 1000000] [--append-n 200000]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from lyra.audit import EventLog, verify
from lyra.store import create_engine_for, upgrade

PG = os.environ.get("LYRA_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def append_rate(url: str, jsonl: Path | None, n: int, batch: int = 1000) -> float:
    eng = create_engine_for(url)
    upgrade(eng)
    log = EventLog(eng, jsonl)
    payload = {"client_order_id": "s1-00000001", "qty": "0.015", "price": "43125.10", "side": "buy"}
    t0 = time.perf_counter()
    for start in range(0, n, batch):
        with log.transaction() as tx:
            tx.append_many([("order.fill", payload, "session:s1", "s1", None)] * min(batch, n - start))
    dt = time.perf_counter() - t0
    eng.dispose()
    return n / dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--append-n", type=int, default=200_000)
    ap.add_argument("--verify-n", type=int, default=1_000_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        # Reference in the same run: raw sha256 of the same bytes, the floor for any hash chain.
        data = [os.urandom(200) for _ in range(100_000)]
        t0 = time.perf_counter()
        for b in data:
            hashlib.sha256(b).hexdigest()
        sha_rate = len(data) / (time.perf_counter() - t0)
        print(f"reference: bare sha256 of 200-byte entries: {sha_rate:,.0f}/s")

        r = append_rate(f"sqlite:///{tmp / 'a.db'}", tmp / "a.jsonl", args.append_n)
        print(f"append SQLite (+ fsync'd JSON-lines mirror), batches of 1,000: {r:,.0f} entries/s "
              f"(target >= 50,000) {'OK' if r >= 50_000 else 'MISSED'}")

        admin = sa.create_engine(PG, isolation_level="AUTOCOMMIT")
        name = f"lyra_bench_{uuid.uuid4().hex[:8]}"
        try:
            with admin.connect() as c:
                c.execute(sa.text(f'CREATE DATABASE "{name}"'))
            url = sa.engine.make_url(PG).set(database=name).render_as_string(hide_password=False)
            r = append_rate(url, tmp / "p.jsonl", args.append_n)
            print(f"append PostgreSQL (+ mirror), batches of 1,000: {r:,.0f} entries/s")
        except sa.exc.OperationalError as exc:
            print(f"PostgreSQL not reachable, skipped: {exc.orig}")
        finally:
            with admin.connect() as c:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()

        # verify on N entries (SQLite + file)
        url = f"sqlite:///{tmp / 'v.db'}"
        print(f"building {args.verify_n:,} entries for verify...")
        append_rate(url, tmp / "v.jsonl", args.verify_n, batch=1000)
        eng = create_engine_for(url)
        t0 = time.perf_counter()
        rep = verify(eng, None)
        t_db = time.perf_counter() - t0
        t0 = time.perf_counter()
        rep2 = verify(eng, tmp / "v.jsonl")
        t_all = time.perf_counter() - t0
        assert rep.ok and rep2.ok and rep.entries == args.verify_n
        print(f"verify {args.verify_n:,} entries, chain only: {t_db:.2f} s; chain + mirror file: {t_all:.2f} s "
              f"(target <= 3 s) {'OK' if t_all <= 3 else 'MISSED'}")


if __name__ == "__main__":
    main()
