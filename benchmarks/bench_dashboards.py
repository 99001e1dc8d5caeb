"""Dashboard figures, measured in headless Chromium through `lyra serve` (proxy + Panel).

    .venv/bin/python benchmarks/bench_dashboards.py [--reps 5] [--fills 15]

Prints, on a LYRA_HOME with a paper session on the shipped Coinbase BTC/USD hourly data:

* navigation → first meaningful paint per app (the first KPI tile holds a value), p50 / max;
* a fill written by another process → shown on the trading page, p50 / p90 (1 s target);
* the trading chart with 100,000 bars (synthetic 1-minute bars): server query + downsample
  time against the plain query (the reference), candles sent, first paint, and the browser's
  frame time after a wheel zoom;
* server memory (RSS of the Panel process) per open dashboard session.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
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
    ap.add_argument("--sessions", type=int, default=6)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="lyra-bench-dash-"))
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
                    f"({med / statistics.median(ref):.2f}x the audit log)"
                )

            print(
                f"== live update: fill written by another process -> on the trading page ({args.fills} fills)"
            )
            page.goto(f"{srv.url}/trading?session=dash")
            count = page.locator(".lyra-fill-count .lyra-kpi-value")
            expect(kpi).not_to_have_text("–")
            lat = []
            for _ in range(args.fills):
                n = len(rm.fills("dash"))
                expect(count).to_have_text(f"{n:,}")
                append_fill(rm.engine, settings.audit_dir / "events.jsonl", "dash")
                t0 = time.perf_counter()
                page.wait_for_function(FILLS_SHOWN, arg=f"{n + 1:,}", polling="raf", timeout=5_000)
                lat.append(time.perf_counter() - t0)
                time.sleep(0.07)  # de-phase from the 250 ms poll
            # The product promise (≤ 1 s p50) is checked here, on a quiet machine, not in the
            # browser test, which proves only that the update arrives by the live push.
            p50 = statistics.median(lat)
            print(
                f"  p50 {p50 * 1000:6.0f} ms   p90 {_p(lat, 90) * 1000:6.0f} ms   "
                f"max {max(lat) * 1000:6.0f} ms   target p50 <= 1000 ms: {'met' if p50 <= 1.0 else 'MISSED'}"
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
