"""Serving figures for issue 6: a full login (PBKDF2 at the production cost + TOTP + session)
and the auth proxy's overhead on a dashboard page load against hitting Panel directly.

Run: .venv/bin/python benchmarks/bench_serve.py [--n 40]

Targets: login <= 500 ms; proxy overhead on a dashboard page load <= 20 ms p50. Token
verification p99 is in benchmarks/bench_auth.py. Each proxied request is paired with a direct
request to the Panel port (same token, same page, alternating order) so machine load hits both.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx

from lyra.auth.identity import IDENTITY_HEADER, IdentitySigner
from lyra.auth.passwords import PBKDF2_ITERATIONS
from lyra.auth.serve import LyraServer
from lyra.auth.totp import totp_code
from lyra.bootstrap import initialise
from lyra.settings import load_settings

PASSWORD = "orbit lantern cactus meadow"


class SteppingClock:
    """Wall clock that jumps 31 s per login so each TOTP code is a fresh one."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=40)
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(
            env={}, home=str(Path(tmp) / "home"), jwt_secret="bench-" + "k" * 8 + os.urandom(24).hex()
        )
        initialise(load_samples=False, settings=settings)
        clock = SteppingClock()
        server = LyraServer(settings, port=0, clock=clock, per_client_logins=10_000)
        svc = server.service
        enrol = svc.add_user("bench", PASSWORD, "auditor", actor="bench")

        print(f"== login (PBKDF2-HMAC-SHA256, {PBKDF2_ITERATIONS} iterations, SQLite, event log) ==")
        pw_ms, mfa_ms = [], []
        for _ in range(7):
            clock.offset += timedelta(seconds=31)
            t0 = time.perf_counter()
            ch = svc.login_password("bench", PASSWORD, client="bench")
            t1 = time.perf_counter()
            svc.login_mfa(ch.ticket, totp_code(enrol.totp_secret, svc.now()), client="bench")
            t2 = time.perf_counter()
            pw_ms.append((t1 - t0) * 1e3)
            mfa_ms.append((t2 - t1) * 1e3)
        total = [a + b for a, b in zip(pw_ms, mfa_ms, strict=True)]
        print(f"  password step p50 {statistics.median(pw_ms):7.1f} ms")
        print(f"  TOTP step     p50 {statistics.median(mfa_ms):7.1f} ms")
        print(
            f"  login total   p50 {statistics.median(total):7.1f} ms   max {max(total):.1f} ms   (target <= 500 ms)"
        )

        clock.offset = timedelta(0)
        server.start()
        try:
            c = httpx.Client(base_url=server.url, timeout=30)
            second = svc.add_user("bench2", PASSWORD, "auditor", actor="bench")  # fresh TOTP steps
            t = c.post("/auth/api/login", json={"username": "bench2", "password": PASSWORD}).json()["ticket"]
            c.post("/auth/api/mfa", json={"ticket": t, "code": totp_code(second.totp_secret, svc.now())})
            token = c.cookies["lyra_at"]
            # Panel takes the proxy's signed identity header (not the token): sign one per request.
            signer = IdentitySigner(svc.signing_secret())
            claims = svc.tokens.verify_access_token(token)
            direct = httpx.Client(
                base_url=server.panel_url,
                event_hooks={"request": [lambda rq: rq.headers.__setitem__(
                    IDENTITY_HEADER, signer.sign(claims.subject, claims.role, claims.session_id))]},
                timeout=30,
            )
            proxied = httpx.Client(base_url=server.url, cookies={"lyra_at": token}, timeout=30)
            html = {"Accept": "text/html"}
            for path, label in (
                ("/audit", "dashboard page (/audit HTML, new Panel session)"),
                ("/static/js/bokeh.min.js", "static asset (bokeh.min.js, 0.5 MB)"),
            ):
                for cl in (direct, proxied):  # warm up both paths
                    for _ in range(3):
                        assert cl.get(path, headers=html).status_code == 200
                via_proxy, via_panel = [], []
                for i in range(args.n):
                    order = (proxied, direct) if i % 2 else (direct, proxied)
                    for cl in order:
                        t0 = time.perf_counter()
                        r = cl.get(path, headers=html)
                        dt = (time.perf_counter() - t0) * 1e3
                        assert r.status_code == 200
                        (via_proxy if cl is proxied else via_panel).append(dt)
                over = [p - d for p, d in zip(via_proxy, via_panel, strict=True)]
                print(f"== {label}, n={args.n} ==")
                print(
                    f"  direct to Panel p50 {statistics.median(via_panel):7.2f} ms  p90 {pct(via_panel, 0.9):7.2f} ms"
                )
                print(
                    f"  through proxy   p50 {statistics.median(via_proxy):7.2f} ms  p90 {pct(via_proxy, 0.9):7.2f} ms"
                )
                print(
                    f"  overhead (paired) p50 {statistics.median(over):6.2f} ms  p99 {pct(over, 0.99):6.2f} ms"
                    "   (target <= 20 ms p50)"
                )
        finally:
            server.stop()


if __name__ == "__main__":
    main()
