"""Audit rows written by an unauthenticated flood (issue 14): bad API keys, forged MFA tickets
and malformed usernames sent as fast as one client can to the real auth proxy (aiohttp, in
this process, SQLite), for ``--seconds``; prints requests per second and the audit rows they
wrote, per source and minute. Target: <= 1 row per source, kind and minute (+1 count row when
the minute closes).

Run: .venv/bin/python benchmarks/bench_audit_flood.py [--seconds 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography.fernet import Fernet

from lyra.audit import EventLog
from lyra.auth.proxy import AuthProxy, ProxyConfig
from lyra.auth.repository import SecretBox
from lyra.auth.service import AuthService
from lyra.store import create_engine_for, upgrade


async def flood(url: str, seconds: float) -> dict[str, int]:
    sent = {"apikey": 0, "mfa": 0, "login": 0}
    deadline = time.perf_counter() + seconds
    async with aiohttp.ClientSession(base_url=url) as c:
        i = 0
        while time.perf_counter() < deadline:
            i += 1
            async with c.get("/api/whoami", headers={"Authorization": f"Bearer lyra_bad{i:05d}_" + "x" * 32}) as r:
                assert r.status == 401
            sent["apikey"] += 1
            async with c.post("/auth/api/mfa", json={"ticket": f"forged.{i}.x", "code": "123456"}) as r:
                assert r.status == 401
            sent["mfa"] += 1
            async with c.post("/auth/api/login", json={"username": "bad name!", "password": "x"}) as r:
                assert r.status == 400
            sent["login"] += 1
    return sent


async def main_async(seconds: float) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        engine = create_engine_for(f"sqlite:///{Path(tmp) / 'lyra.db'}")
        upgrade(engine)
        svc = AuthService(
            engine,
            signing_key="bench-audit-flood-signing-key-" + "Zq8xV2mN4pL7sK1wR9tY3uB6",
            event_log=EventLog(engine),
            secret_box=SecretBox(Fernet.generate_key()),
            iterations=1_000,
        )
        proxy = AuthProxy(svc, ProxyConfig(upstream="http://127.0.0.1:9"))  # no Panel needed
        runner = web.AppRunner(proxy.make_app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        before = len(list(svc.event_log.read()))
        t0 = time.perf_counter()
        sent = await flood(f"http://127.0.0.1:{port}", seconds)
        elapsed = time.perf_counter() - t0
        during = [e.kind for e in list(svc.event_log.read())[before:]]
        svc.flush_failures()  # the minute's counts (what the next minute or shutdown writes)
        after = [e.kind for e in list(svc.event_log.read())[before:]]
        await runner.cleanup()
        engine.dispose()
    total = sum(sent.values())
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(f"== unauthenticated flood from one source, {elapsed:.1f} s (within one minute window) ==")
    print(f"  requests: {total} ({total / elapsed:.0f}/s): {sent}")
    for kind, label in (("auth.apikey_rejected", "apikey"), ("auth.mfa_failed", "mfa"), ("auth.login_failed", "login")):
        print(f"  {kind:<22} {sent[label]:6d} requests ({sent[label] / elapsed:5.0f}/s) -> "
              f"{during.count(kind)} row(s) during the window, {after.count(kind)} with its closing count "
              "(target <= 1 per source and minute, +1 count row)")
    print(f"  audit rows per second during the flood: {len(during) / elapsed:.2f} (before issue 14: one per request)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    asyncio.run(main_async(ap.parse_args().seconds))


if __name__ == "__main__":
    main()
