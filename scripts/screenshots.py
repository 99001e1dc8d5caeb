"""README screenshots of the real dashboards, taken from the live demo by a browser.

    .venv/bin/python scripts/screenshots.py            # writes docs/img/<page>.png (1400x900)
    .venv/bin/python scripts/screenshots.py --out /tmp/shots --keep-home /tmp/shots-home

What it does (the same flow as ``tests/browser/test_live_demo_browser.py``, which imports the
helpers below): a fresh LYRA_HOME with the shipped Bitstamp BTC, ETH and LTC daily bars; the
paced multi-asset demo session (:data:`lyra.demo.LIVE_DEMO_SESSION`, see :func:`session_config`
for what differs) started through ``lyra session start`` in its own process; the dashboards
served by ``lyra serve``'s stack (:class:`lyra.auth.serve.LyraServer`: login proxy + Panel);
headless Chromium signed in as an admin. Each page is captured once its first data has loaded
*and* a live value on it has changed at least once (so the picture shows a running session,
not a first paint). Needs Debian's ``chromium`` (``/usr/bin/chromium``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "docs" / "img"
#: Every served page, in the order the README shows them.
PAGES = ("trading", "risk", "executive", "hft", "portfolio", "risk_analytics", "rebalancing", "fees", "audit")
SESSION_ID = "demo-live-shots"
WIDTH, HEIGHT = 1400, 900
#: PNGs above this are re-encoded with a 256-colour palette (the dark UI loses nothing visible).
MAX_PNG_BYTES = 280_000
#: A ceiling for a cold Panel on a busy machine, not a target.
WAIT_MS = 180_000


def session_config(**changes: Any) -> dict[str, Any]:
    """The live demo session's config, with what a short capture needs: a start in March 2018
    (every instrument has 100+ days of history for the 99% historical VaR), a bar of each
    instrument every second (twice the demo's pace), an equity snapshot every bar (so equity,
    marks and exposure move every second) and a ``max_var`` limit the risk page shows used."""
    from lyra.demo import LIVE_DEMO_SESSION

    risk = dict(LIVE_DEMO_SESSION.get("risk") or {})
    defaults = {**risk.get("defaults", {}), "max_var": "1500"}
    cfg = {**LIVE_DEMO_SESSION, "start": "2018-03-01T00:00:00Z", "speed": 86_400.0, "equity_every": 1,
           "risk": {**risk, "currency": "USD", "defaults": defaults}}
    cfg.update(changes)
    return cfg


def make_home(root: Path) -> Any:
    """A LYRA_HOME under ``root`` with the shipped Bitstamp daily bars imported; its Settings
    (signing key: :data:`lyra.testing.serving.KEY`)."""
    from lyra.bootstrap import initialise
    from lyra.feeds import MarketStore, import_file
    from lyra.settings import load_settings
    from lyra.testing.serving import KEY

    settings = load_settings(env={}, home=str(root), jwt_secret=KEY)
    initialise(load_samples=False, settings=settings)
    store = MarketStore(settings.market_dir)
    for asset in ("BTC", "ETH", "LTC"):
        import_file(REPO / "data" / "ohlcv" / f"bitstamp_{asset}-USD_1d.csv.gz", store=store)
    return settings


def start_session(settings: Any, session_id: str = SESSION_ID, config: dict[str, Any] | None = None,
                  log: Path | None = None) -> subprocess.Popen[bytes]:
    """``lyra session start --id <session_id> --set k=v ...`` in its own process on ``settings``'
    home (as :func:`lyra.demo.start_live_demo` does); its output goes to ``log``."""
    cmd = [sys.executable, "-m", "lyra.cli", "session", "start", "--id", session_id, "--quiet"]
    for key, value in (config or session_config()).items():
        cmd += ["--set", f"{key}={json.dumps(value)}"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env["LYRA_HOME"] = str(settings.home)
    if log is None:
        return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    with open(log, "wb") as out:  # the child has its own copy of the descriptor
        return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT)


def stop_session(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM (the session flushes and records ``session.stopped``), then wait for it."""
    from lyra.demo import stop_live_demo

    stop_live_demo(proc)


def wait_running(rm: Any, session_id: str, proc: subprocess.Popen[bytes], timeout_s: float = 180.0) -> None:
    """Until the session is registered, running and has logged an equity snapshot (a failure
    limit, not a pace: returns as soon as it holds; fails at once if the process exits)."""
    from lyra.testing.sessions import wait_for

    def ready() -> bool:
        info = rm.session(session_id)
        return bool(info and info.status == "running"
                    and len(rm.events(kinds=["session.equity"], session_id=session_id, limit=1)))

    wait_for(ready, timeout_s, f"session {session_id} running", every=0.2, procs=[proc])


def start_server(settings: Any, panel_log: Path) -> Any:
    """The login proxy and the Panel server on free ports (started)."""
    from lyra.auth.serve import LyraServer, default_apps_dir

    srv = LyraServer(settings, port=0, apps_dir=default_apps_dir(), iterations=20_000, panel_log=panel_log,
                     per_client_logins=10_000)
    srv.start()
    return srv


# Bokeh's own notion of "done": every document idle and every root view finished rendering.
BOKEH_DRAWN = """() => {
  const B = window.Bokeh;
  if (!B || !B.documents || B.documents.length === 0 || !B.documents.every(d => d.is_idle)) return false;
  const idx = B.index;
  const views = idx == null ? []
    : (typeof idx[Symbol.iterator] === "function" ? [...idx] : Object.values(idx));
  return views.every(v => typeof v.has_finished !== "function" || v.has_finished());
}"""


def live_locator(page: Any, route: str) -> tuple[Any, Callable[[Any], Any]]:
    """The values on ``route`` that show live data and how to read them: the KPI values (and
    the risk page's VaR method line, which names the data time); on the audit page, the last
    entry's sequence number."""
    if route == "audit":
        loc = page.locator(".lyra-head-seq input")
        return loc, lambda lc: lc.input_value()
    # (the Markdown pane's text lives in its shadow root: select the paragraphs inside it)
    sel = ".lyra-kpi-value, .lyra-var-method p" if route == "risk" else ".lyra-kpi-value"
    loc = page.locator(sel)
    return loc, lambda lc: lc.all_inner_texts()


def ready(page: Any, route: str) -> Any:
    """Wait for the page's first data (a KPI with a value; audit: a last entry), then for Bokeh
    to finish drawing; returns the live values now."""
    from playwright.sync_api import expect

    loc, read = live_locator(page, route)
    if route == "audit":
        expect(loc).not_to_have_value("0", timeout=WAIT_MS)
    else:
        expect(loc.first).not_to_have_text("–", timeout=WAIT_MS)
    page.wait_for_function(BOKEH_DRAWN, timeout=WAIT_MS)
    return read(loc)


def wait_changed(page: Any, route: str, before: Any) -> Any:
    """Poll (every 250 ms) until a live value on the page differs from ``before`` (the live
    push brought new data), then wait for Bokeh to draw; returns the new values. ``WAIT_MS`` is
    a failure limit, not a pace. The values are read the same way as ``before``, so a moment
    of re-rendering cannot pass for a change."""
    loc, read = live_locator(page, route)
    deadline = time.monotonic() + WAIT_MS / 1000
    while (now := read(loc)) == before:
        if time.monotonic() > deadline:
            raise AssertionError(f"/{route}: no live value changed in {WAIT_MS / 1000:.0f} s: {before}")
        page.wait_for_timeout(250)  # lets the page run its updates between two reads
    page.wait_for_function(BOKEH_DRAWN, timeout=WAIT_MS)
    return now


def save_png(page: Any, path: Path) -> Path:
    """A viewport screenshot at ``path``, re-encoded with a palette when it is large."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path))
    if path.stat().st_size > MAX_PNG_BYTES:
        with Image.open(path) as img:
            small = img.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        small.save(path, optimize=True)
    return path


def main(argv: list[str] | None = None) -> int:
    """Start the live demo, serve it, and write one screenshot per page."""
    from playwright.sync_api import expect, sync_playwright

    from lyra.bootstrap import open_engine
    from lyra.readside import ReadModel
    from lyra.testing.serving import launch_chromium, new_user, sign_in
    from lyra.testing.sessions import wait_for

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=OUT, help="folder for <page>.png (default docs/img)")
    ap.add_argument("--keep-home", type=Path, default=None, help="build the LYRA_HOME here and keep it")
    ap.add_argument("--min-fills", type=int, default=12,
                    help="start capturing once the session has this many fills (a chart with trades)")
    args = ap.parse_args(argv)
    tmp = tempfile.TemporaryDirectory(prefix="lyra-shots-")
    root = args.keep_home or Path(tmp.name)
    settings = make_home(root / "home")
    proc = start_session(settings, log=root / "session.log")
    srv = None
    _s, engine = open_engine(settings)
    try:
        rm = ReadModel(engine, settings.market_dir)
        wait_running(rm, SESSION_ID, proc)
        srv = start_server(settings, root / "panel.log")
        wait_for(lambda: len(rm.fills(SESSION_ID)) >= args.min_fills, 600.0,
                 f"{args.min_fills} fills", every=0.5, procs=[proc])
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_context(viewport={"width": WIDTH, "height": HEIGHT}).new_page()
            page.set_default_timeout(WAIT_MS)
            name, seed = new_user(srv, "admin")
            sign_in(page, srv, name, seed, "/trading")
            for route in PAGES:
                t0 = time.monotonic()
                page.goto(f"{srv.url}/{route}")
                before = ready(page, route)
                t1 = time.monotonic()
                wait_changed(page, route, before)
                t2 = time.monotonic()
                if route == "risk":  # a picture with positions: VaR and limit usage in use
                    expect(page.locator(".lyra-var-method")).not_to_contain_text("no open positions",
                                                                                 timeout=WAIT_MS)
                    page.wait_for_function(BOKEH_DRAWN, timeout=WAIT_MS)
                path = save_png(page, args.out / f"{route}.png")
                print(f"{path}  {path.stat().st_size / 1024:.0f} KB  (first data {t1 - t0:.1f} s, "
                      f"a live value changed {t2 - t1:.1f} s later)")
            browser.close()
    finally:
        if srv is not None:
            srv.stop()
        stop_session(proc)
        engine.dispose()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
