"""The eight dashboards in headless Chromium through `lyra serve` (proxy + Panel), logged in, on
a LYRA_HOME holding a paper session run on the shipped Coinbase BTC/USD hourly data.

Every app renders with that session's data and no console errors (screenshots under
``test-artifacts/dashboards/``, checked non-blank); the trading page's order-book ladder and
depth chart and the HFT page's spread/depth charts render the recorded Kraken BTC/CHF level-2
capture (the session's instrument has none: a note says so); a fill written by another process appears
on the open trading page by the live push, without a reload (its latency, ≤ 1 s p50, is measured
by benchmarks/bench_dashboards.py: a wall-clock limit here would test the machine's load); a viewer sees no order ticket, an analyst no kill switch; the
kill switch pulled from the page halts the session and records who; bad query parameters give
a message. The server stack starts once for the module.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import expect

from lyra.auth.serve import LyraServer, default_apps_dir
from lyra.bootstrap import open_engine
from lyra.feeds.book_tap import BookTap, record_sample_books, replay_l2_capture
from lyra.readside import ReadModel
from lyra.testing.serving import (
    append_fill,
    dashboard_home,
    new_user,
    shot,
    sign_in,
)

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(os.environ.get("LYRA_TEST_ARTIFACTS", REPO / "test-artifacts")) / "dashboards"
OHLCV = REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"
CAPTURE = REPO / "data" / "orderbook" / "kraken_BTC-CHF_l2.csv.gz"
APPS = ["trading", "risk", "executive", "hft", "portfolio", "risk_analytics", "rebalancing", "fees"]


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("dash-browser")
    settings = dashboard_home(tmp / "home", OHLCV)
    _s, eng = open_engine(settings)
    record_sample_books(eng, REPO / "data")  # what `lyra init` records: the Kraken BTC/CHF L2 capture
    eng.dispose()
    srv = LyraServer(
        settings,
        port=0,
        apps_dir=default_apps_dir(),
        iterations=20_000,
        panel_log=tmp / "panel.log",
        per_client_logins=10_000,
    )
    srv.start()
    _s, engine = open_engine(settings)
    yield srv, settings, ReadModel(engine, settings.market_dir)
    engine.dispose()
    srv.stop()


def _signed_in(page, stack, role: str, path: str) -> None:
    srv = stack[0]
    name, seed = new_user(srv, role)
    sign_in(page, srv, name, seed, path)
    page.lyra_seed = seed  # type: ignore[attr-defined]


def _confirm_identity(page, stack) -> None:
    """Password and a code again (the next TOTP step: the login used this one), then back."""
    from lyra.auth.totp import totp_code
    from lyra.testing.serving import PASSWORD

    page.click("a.lyra-reauth-link")
    page.wait_for_url("**/auth/reauth**")
    page.fill("#password", PASSWORD)
    page.fill("#code", totp_code(page.lyra_seed, stack[0].service.now() + timedelta(seconds=30)))
    page.click("#confirm-reauth")
    page.wait_for_load_state("networkidle")


# Bokeh's own notion of "done": every document idle and every root view (with its children)
# finished rendering. Waiting on it replaces a fixed pause before a screenshot.
_BOKEH_DRAWN = """() => {
  const B = window.Bokeh;
  if (!B || !B.documents || B.documents.length === 0 || !B.documents.every(d => d.is_idle)) return false;
  const idx = B.index;
  const views = idx == null ? [] : (typeof idx[Symbol.iterator] === "function" ? [...idx] : Object.values(idx));
  return views.every(v => typeof v.has_finished !== "function" || v.has_finished());
}"""


def _drawn(page) -> None:
    """Wait until Bokeh has finished drawing what the page shows (the page's timeout)."""
    page.wait_for_function(_BOKEH_DRAWN)


def _ready(page) -> None:
    """The session line and a KPI with a value: the first data load finished."""
    page.wait_for_selector("text=sma_cross on coinbase")
    expect(page.locator(".lyra-kpi-value").first).not_to_have_text("–")


def test_every_app_renders_with_session_data(page, stack):
    _signed_in(page, stack, "admin", "/trading")
    expected = {
        "trading": "Recent fills",
        "risk": "Kill switch",
        "executive": "Performance by strategy",
        "hft": "Spread and depth",
        "portfolio": "Cash and balances by venue",
        "risk_analytics": "Window",
        "rebalancing": "Proposed trades",
        "fees": "30-day volume",
    }
    for app in APPS:
        page.goto(stack[0].url + "/" + app)
        _ready(page)
        page.wait_for_selector(f"text={expected[app]}")
        expect(page.locator(".lyra-nav a")).to_have_count(10)  # admin: the eight, audit log, admin page
        _drawn(page)
        shot(page, ARTIFACTS, app)
    assert page.console_errors == []


def test_order_book_ladder_and_spread_charts_render_real_l2_data(page, stack):
    _srv, _settings, rm = stack
    book = rm.book("kraken:BTC/CHF")
    assert book is not None
    _signed_in(page, stack, "analyst", "/trading")  # analysts may open both pages
    _ready(page)
    ladder = page.locator(".lyra-ladder")
    expect(ladder.locator(".lyra-book-title")).to_contain_text("kraken:BTC/CHF")
    expect(page.locator(".lyra-book-note")).to_contain_text("No level-2 data for coinbase:BTC/USD")
    # the rows the read model holds, formatted: best ask just above the spread line, best bid below
    asks, bids = ladder.locator("tr.lyra-ask"), ladder.locator("tr.lyra-bid")
    expect(asks).to_have_count(12)
    expect(bids).to_have_count(12)
    expect(asks.last.locator("td.px")).to_have_text(f"{book.asks[0][0]:,.1f}")
    expect(bids.first.locator("td.px")).to_have_text(f"{book.bids[0][0]:,.1f}")
    expect(bids.first.locator("td.sz")).to_have_text(f"{book.bids[0][1]:.8f}")
    expect(ladder.locator("tr.lyra-spread")).to_contain_text(f"{book.spread_bps:,.2f} bps")
    page.wait_for_selector(".lyra-depth-chart canvas")  # the page's timeout: Bokeh may draw late
    _drawn(page)
    page.locator(".lyra-depth-chart").scroll_into_view_if_needed()  # ladder and depth chart in view
    shot(page, ARTIFACTS, "trading-order-book")
    page.goto(stack[0].url + "/hft")
    _ready(page)
    caption = page.locator(".lyra-spread-caption")
    n = len(rm.spread_depth("kraken:BTC/CHF"))
    expect(caption).to_contain_text(f"kraken:BTC/CHF: {n:,} snapshots")
    for chart in (".lyra-spread-chart", ".lyra-depth-series"):
        page.wait_for_selector(f"{chart} canvas")
    page.locator(".lyra-spread-chart").scroll_into_view_if_needed()
    _drawn(page)
    shot(page, ARTIFACTS, "hft-spread-depth")
    # Live: a book for the session's own instrument is recorded by another process (a real
    # Kraken snapshot, relabelled for this test); the open trading page switches to it.
    page.goto(stack[0].url + "/trading")
    _ready(page)
    expect(ladder.locator(".lyra-book-title")).to_contain_text("kraken:BTC/CHF")
    snap = list(replay_l2_capture(CAPTURE, "coinbase:BTC/USD", checksum_decimals=(5, 8), levels=25))[-1]
    with BookTap([snap], rm.engine) as tap:
        list(tap)
    expect(ladder.locator(".lyra-book-title")).to_contain_text("coinbase:BTC/USD")  # the page's timeout
    expect(page.locator(".lyra-book-note")).to_be_hidden()
    expect(bids.first.locator("td.px")).to_have_text(f"{snap.bids[0].price:,.1f}")
    assert page.console_errors == []


def test_a_fill_from_another_process_appears_by_the_live_push(page, stack):
    _srv, settings, rm = stack
    _signed_in(page, stack, "trader", "/trading")
    _ready(page)
    count = page.locator(".lyra-fill-count .lyra-kpi-value")
    expect(count).to_have_text(f"{len(rm.fills('dash')):,}")
    n = len(rm.fills("dash"))
    # A mark on this page's window and a count of navigations: a reload would lose the first
    # and add to the second, so the fill can only arrive through the open page's live update.
    page.evaluate("() => { window.__lyra_no_reload = true }")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    append_fill(rm.engine, settings.audit_dir / "events.jsonl", "dash", price="10321.09")
    # The page's deadline (45 s), not a latency target: the ≤ 1 s p50 promise is measured by
    # benchmarks/bench_dashboards.py, where load is controlled; here it would measure the load.
    expect(count).to_have_text(f"{n + 1:,}")
    expect(page.locator("text=@ 10,321.09")).to_have_count(1)
    assert page.evaluate("() => window.__lyra_no_reload === true")
    assert navigations == []
    assert page.console_errors == []


def test_per_role_visibility(page, stack):
    srv = stack[0]
    _signed_in(page, stack, "viewer", "/trading")
    _ready(page)
    page.wait_for_selector("text=no order ticket")
    assert page.locator(".lyra-order-ticket").count() == 0
    assert page.locator("text=Review order").count() == 0
    response = page.goto(srv.url + "/risk")
    assert response is not None and response.status == 403  # a viewer may not open the risk app
    page.context.clear_cookies()
    _signed_in(page, stack, "analyst", "/risk")
    _ready(page)
    page.wait_for_selector("text=may not pull the kill switch")
    assert page.locator(".lyra-kill-switch").count() == 0
    page.context.clear_cookies()
    _signed_in(page, stack, "trader", "/trading")
    _ready(page)
    expect(page.locator("text=Review order")).to_have_count(1)
    assert [e for e in page.console_errors if "403" not in e] == []


def test_kill_switch_from_the_page_records_who(page, stack):
    _srv, _settings, rm = stack
    _signed_in(page, stack, "risk_manager", "/risk")
    _ready(page)
    page.click("text=Pull kill switch…")
    page.wait_for_selector("text=Give a reason first")
    page.fill("input[placeholder=why]", "browser drill")
    page.click("text=Pull kill switch…")
    page.click("text=Confirm: HALT trading")
    page.wait_for_selector("text=confirm it is you")  # the kill switch needs a fresh re-auth
    _confirm_identity(page, stack)
    _ready(page)
    page.fill("input[placeholder=why]", "browser drill")
    page.click("text=Pull kill switch…")
    page.click("text=Confirm: HALT trading")
    page.wait_for_selector("text=Kill switch pulled")
    page.wait_for_selector("text=HALTED")
    kills = rm.risk_state().kills
    assert kills["reason"].iloc[0] == "browser drill" and kills["scope"].iloc[0] == "account:dash"
    assert kills["actor"].iloc[0].endswith("(risk_manager)")
    assert rm.risk_state().state_of("dash") == "halted"
    shot(page, ARTIFACTS, "risk-after-kill")
    assert page.console_errors == []


def test_bad_query_parameters_give_a_message(page, stack):
    _signed_in(page, stack, "admin", "/trading?bars=abc")
    _ready(page)
    page.wait_for_selector("text=is out of range")
    page.goto(stack[0].url + "/risk_analytics?window=0&session=nope")
    _ready(page)
    page.wait_for_selector("text=must be a whole number")
    assert page.console_errors == []
