"""Dashboard figures, measured in headless Chromium through `lyra serve` (proxy + Panel).

    .venv/bin/python benchmarks/bench_dashboards.py [--reps 5] [--fills 15] [--window 20]

Prints, on a LYRA_HOME with a paper session on the shipped Coinbase BTC/USD hourly data:

* database statements per second at the Panel server with 1 and with 10 open Trading pages
  while this process appends fills to the session (2 a second): the pages share one live store,
  so the two figures should be the same (±10%). Counted inside the server process:
  ``LYRA_TEST_COUNT_SQL=<file>`` makes its ``read_model()`` count the engine's statements (SQLAlchemy
  ``before_cursor_execute``; SQLite's ``BEGIN`` included, SELECTs also shown apart) into a file
  this script reads;
* navigation → first meaningful paint per app (the first KPI tile holds a value), p50 / max
  (target p50 ≤ 1.5 s);
* a fill written by another process → shown on the trading page, p50 / p95 (500 ms target);
* the trading chart with 100,000 bars (synthetic 1-minute bars): server query + downsample
  time against the plain query (the reference), candles sent, first paint, and the browser's
  frame time after a wheel zoom;
* server memory (RSS of the Panel process) per open dashboard session.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
from playwright.sync_api import expect, sync_playwright

REPO = Path(__file__).resolve().parents[1]

from lyra.auth.serve import LyraServer, default_apps_dir  # noqa: E402
from lyra.bootstrap import open_engine  # noqa: E402
from lyra.feeds import MarketStore  # noqa: E402
from lyra.readside import ReadModel, downsample_ohlc  # noqa: E402
from lyra.session.registry import SessionRegistry  # noqa: E402
from lyra.testing.serving import append_fill, dashboard_home, launch_chromium, new_user, sign_in  # noqa: E402
from lyra.testing.sessions import demo_config  # noqa: E402

APPS = ["trading", "risk", "executive", "hft", "portfolio", "risk_analytics", "rebalancing", "fees"]
BIG = 100_000


# Finds the "Fills" KPI through Panel's nested shadow roots; polled every animation frame, so
# the measurement is not limited by Playwright's back-off between retries.
FILLS_SHOWN = """(want) => {
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.classList.contains('lyra-kpi-value') && el.previousElementSibling
          && el.previousElementSibling.textContent === 'Fills') return el.textContent.trim() === want;
      if (el.shadowRoot) { const r = walk(el.shadowRoot); if (r !== null) return r; }
    }
    return null;
  };
  return walk(document) === true;
}"""


# The first KPI tile holds a value (first meaningful paint), found the same way.
FIRST_KPI = """() => {
  const walk = (root) => {
    for (const el of root.querySelectorAll('*')) {
      if (el.classList.contains('lyra-kpi-value')) return el.textContent.trim();
      if (el.shadowRoot) { const r = walk(el.shadowRoot); if (r !== null) return r; }
    }
    return null;
  };
  const v = walk(document);
  return v !== null && v !== '' && v !== '–';
}"""


def _p(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def read_count(path: Path) -> tuple[int, int, float]:
    """(statements, selects, unix time) as the Panel server last wrote them."""
    statements, selects, at = path.read_text().split()
    return int(statements), int(selects), float(at)


def statement_rate(path: Path, window: float, writer: FillWriter) -> tuple[float, float, float]:
    """Statements/s, SELECTs/s at the server and fills/s written over ``window`` seconds (the
    server's own timestamps bound the interval)."""
    s0, q0, t0 = read_count(path)
    f0 = writer.written
    time.sleep(window)
    s1, q1, t1 = read_count(path)
    return (s1 - s0) / (t1 - t0), (q1 - q0) / (t1 - t0), (writer.written - f0) / (t1 - t0)


class FillWriter:
    """Appends a fill to the ``dash`` session every ``period`` seconds on a fixed schedule (a
    running session), so both measurements see the same write rate."""

    def __init__(self, engine, jsonl: Path, period: float) -> None:
        self.engine, self.jsonl, self.period = engine, jsonl, period
        self.stop = threading.Event()
        self.written = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        rng = random.Random(3)
        due = time.monotonic()
        while not self.stop.is_set():
            append_fill(self.engine, self.jsonl, "dash", price=f"{10_000 + rng.uniform(-50, 50):.2f}")
            self.written += 1
            due += self.period
            self.stop.wait(max(0.0, due - time.monotonic()))

    def __enter__(self) -> FillWriter:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(60)


def add_big_session(settings, engine) -> None:
    """100,000 synthetic 1-minute bars for coinbase BTC/USD and a registered session on them."""
    rng = np.random.default_rng(1)
    ts = 1_600_000_000_000 + np.arange(BIG, dtype="int64") * 60_000
    close = 10_000 * np.exp(np.cumsum(rng.normal(0, 5e-4, BIG)))
    opn = np.r_[close[0], close[:-1]]
    df = pd.DataFrame(
        {
            "ts": ts,
            "open": opn,
            "high": np.maximum(opn, close) * 1.0005,
            "low": np.minimum(opn, close) * 0.9995,
            "close": close,
            "volume": rng.uniform(1, 5, BIG),
        }
    )
    MarketStore(settings.market_dir).write_bars("coinbase", "BTC/USD", "1m", df)
    cfg = demo_config(session_id="big", timeframe="1m")
    reg = SessionRegistry(engine)
    reg.upsert("big", cfg, status="finished")
    reg.update("big", data_ts=int(ts[-1]) + 60_000)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--fills", type=int, default=15)
    ap.add_argument("--sessions", type=int, default=10)
    ap.add_argument("--pages", type=int, default=10, help="open Trading pages for the query rate")
    ap.add_argument("--window", type=float, default=20.0, help="seconds per query-rate measurement")
    args = ap.parse_args()
    expect.set_options(timeout=60_000)  # a failure limit on a busy machine, not a measurement
    tmp = Path(tempfile.mkdtemp(prefix="lyra-bench-dash-"))
    counts = tmp / "sql-count"
    os.environ["LYRA_TEST_COUNT_SQL"] = str(counts)  # the Panel child inherits it
    settings = dashboard_home(tmp / "home", REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz")
    _s, engine = open_engine(settings)
    add_big_session(settings, engine)
    rm = ReadModel(engine, settings.market_dir)
    srv = LyraServer(
        settings,
        port=0,
        apps_dir=default_apps_dir(),
        iterations=20_000,
        panel_log=tmp / "panel.log",
        per_client_logins=10_000,
    )
    srv.start()
    panel = psutil.Process(srv._proc.pid)  # type: ignore[union-attr]
    try:
        with sync_playwright() as p:
            browser = launch_chromium(p)
            ctx = browser.new_context(viewport={"width": 1400, "height": 900})
            page = ctx.new_page()
            page.set_default_timeout(30_000)
            name, seed = new_user(srv, "admin")
            sign_in(page, srv, name, seed, "/")
            kpi = page.locator(".lyra-kpi-value").first

            # First, on the fresh server: no pages of other apps are left open to add load.
            print(
                f"== database statements/s at the Panel server, a fill appended every second "
                f"({args.window:.0f} s windows)"
            )
            page.goto(f"{srv.url}/trading?session=dash")
            expect(kpi).not_to_have_text("–")
            rates = {}
            with FillWriter(rm.engine, settings.audit_dir / "events.jsonl", 1.0) as writer:
                time.sleep(3.0)  # settle: the first page's load is not the steady state
                rates[1] = statement_rate(counts, args.window, writer)
                more = []
                for _ in range(args.pages - 1):
                    pg = ctx.new_page()
                    pg.goto(f"{srv.url}/trading?session=dash")
                    expect(pg.locator(".lyra-kpi-value").first).not_to_have_text("–", timeout=60_000)
                    more.append(pg)
                time.sleep(3.0)
                rates[args.pages] = statement_rate(counts, args.window, writer)
                for pg in more:
                    pg.close()
            for n, (st, sel, fills) in rates.items():
                print(
                    f"  {n:2d} Trading page(s) open: {st:6.1f} statements/s ({sel:6.1f} SELECT/s) "
                    f"while {fills:.2f} fills/s arrived"
                )
            ratio = rates[args.pages][0] / rates[1][0]
            print(
                f"  {args.pages} pages / 1 page = {ratio:.2f} (target 1.00 ± 0.10: "
                f"{'met' if abs(ratio - 1) <= 0.10 else 'MISSED'}); {writer.written} fills written"
            )

            print(
                f"== server memory per open dashboard session (fresh server; {args.sessions} extra sessions each)"
            )
            for app in ("trading", "executive", "risk_analytics"):
                page.goto(f"{srv.url}/{app}?session=dash")  # warm-up: the app's imports are not per session
                expect(kpi).not_to_have_text("–")
                time.sleep(0.5)
                before = panel.memory_info().rss
                pages = []
                for _ in range(args.sessions):
                    pg = ctx.new_page()
                    pg.goto(f"{srv.url}/{app}?session=dash")
                    expect(pg.locator(".lyra-kpi-value").first).not_to_have_text("–", timeout=30_000)
                    pages.append(pg)
                time.sleep(1.0)
                after = panel.memory_info().rss
                print(
                    f"  {app:15s} {(after - before) / args.sessions / 2**20:6.1f} MiB per session "
                    f"(Panel RSS {after / 2**20:.0f} MiB with {args.sessions} open)"
                )
                for pg in pages:
                    pg.close()

            print(f"== navigation -> first meaningful paint ({args.reps} loads per app, after one warm-up)")
            ref = []
            for i in range(args.reps + 1):
                t0 = time.perf_counter()
                page.goto(f"{srv.url}/audit", wait_until="commit")
                page.wait_for_selector("text=chain not verified yet")
                if i:
                    ref.append(time.perf_counter() - t0)
            print(f"  {'audit (reference)':15s} p50 {statistics.median(ref):5.2f} s   max {max(ref):5.2f} s")
            for app in APPS:
                times = []
                for i in range(args.reps + 1):
                    t0 = time.perf_counter()
                    page.goto(f"{srv.url}/{app}?session=dash", wait_until="commit")
                    page.wait_for_function(FIRST_KPI, polling="raf")
                    if i:
                        times.append(time.perf_counter() - t0)
                med = statistics.median(times)
                print(
                    f"  {app:15s} p50 {med:5.2f} s   max {max(times):5.2f} s   "
                    f"({med / statistics.median(ref):.2f}x the audit log; target p50 <= 1.5 s: "
                    f"{'met' if med <= 1.5 else 'MISSED'})"
                )

            print(
                f"== live update: fill written by another process -> on the trading page ({args.fills} fills)"
            )
            page.goto(f"{srv.url}/trading?session=dash")
            count = page.locator(".lyra-fill-count .lyra-kpi-value")
            expect(kpi).not_to_have_text("–")
            lat = []
            rng = random.Random(7)
            for _ in range(args.fills):
                n = len(rm.fills("dash"))
                expect(count).to_have_text(f"{n:,}")
                append_fill(rm.engine, settings.audit_dir / "events.jsonl", "dash")
                t0 = time.perf_counter()
                page.wait_for_function(FILLS_SHOWN, arg=f"{n + 1:,}", polling="raf", timeout=5_000)
                lat.append(time.perf_counter() - t0)
                time.sleep(rng.uniform(0.05, 0.3))  # sample every phase of the 250 ms poll
            # The product promise (≤ 500 ms p50) is checked here, on a quiet machine, not in the
            # browser test, which proves only that the update arrives by the live push.
            p50 = statistics.median(lat)
            print(
                f"  p50 {p50 * 1000:6.0f} ms   p95 {_p(lat, 95) * 1000:6.0f} ms   "
                f"max {max(lat) * 1000:6.0f} ms   target p50 <= 500 ms: {'met' if p50 <= 0.5 else 'MISSED'}"
            )

            print(f"== trading chart with {BIG:,} bars")
            t0 = time.perf_counter()
            raw = rm.bars("coinbase", "BTC/USD", "1m")
            t_query = time.perf_counter() - t0
            t0 = time.perf_counter()
            small = downsample_ohlc(raw, 1500)
            t_down = time.perf_counter() - t0
            print(
                f"  server: query {t_query * 1000:.0f} ms (reference) + downsample {t_down * 1000:.0f} ms "
                f"({t_down / t_query:.2f}x the query); {len(raw):,} bars -> {len(small):,} candles sent"
            )
            paints = []
            for _ in range(args.reps):
                t0 = time.perf_counter()
                page.goto(f"{srv.url}/trading?session=big&bars={BIG}", wait_until="commit")
                page.wait_for_selector("text=drawn as")
                paints.append(time.perf_counter() - t0)
            print(f"  first paint p50 {statistics.median(paints):.2f} s")
            canvas = page.locator("canvas").first
            box = canvas.bounding_box()
            assert box is not None
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            frames = []
            for i in range(10):
                page.mouse.wheel(0, -120 if i % 2 else 120)
                frames.append(
                    page.evaluate(
                        "() => new Promise(r => { const t = performance.now(); "
                        "requestAnimationFrame(() => requestAnimationFrame(() => r(performance.now() - t))); })"
                    )
                )
            print(
                f"  wheel zoom -> 2 frames p50 {statistics.median(frames):.1f} ms   max {max(frames):.1f} ms"
            )

            browser.close()
    finally:
        srv.stop()
        engine.dispose()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
