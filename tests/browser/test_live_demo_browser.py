"""The dashboards on the live demo, in headless Chromium through `lyra serve` (proxy + Panel).

One LYRA_HOME with the shipped Bitstamp daily bars, the paced multi-asset demo session running
in its own process (``lyra session start``, the flow of ``scripts/screenshots.py``, which this
module imports: the README's pictures come from the same code), and one server, for the module.

* Every page shows moving data: a live value on it (the KPI values; the audit page's last
  entry) differs between two screenshots taken while the session runs, the two pictures differ,
  and the browser logged no console error. The screenshots are kept under the test's tmp dir.
* A viewer, a trader and a risk manager each see exactly the controls the permission table
  (``lyra.auth.permissions.PERMISSIONS``) gives them: the order ticket (place_order), the kill
  switch (pull_kill_switch), re-arm (rearm_kill_switch) and the risk page's cancel
  (cancel_order), and the navigation lists exactly the pages the role may open.

Waits are on conditions (Playwright's ``expect``); their timeouts are failure limits only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest
from playwright.sync_api import expect

from lyra.auth.permissions import Action, Principal, Role
from lyra.bootstrap import open_engine
from lyra.readside import ReadModel
from lyra.testing.serving import new_user, sign_in

from .conftest import new_page

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.subprocess]

REPO = Path(__file__).resolve().parents[2]
SESSION_ID = "live-browser"


def _script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("lyra_screenshots", REPO / "scripts" / "screenshots.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


shots = _script()

#: The controls checked per role: (page, selector, the action that grants it).
CONTROLS = {
    "order ticket": ("trading", ".lyra-order-ticket", Action.PLACE_ORDER),
    "kill switch": ("risk", ".lyra-kill-switch", Action.PULL_KILL_SWITCH),
    "re-arm": ("risk", ".lyra-rearm", Action.REARM_KILL_SWITCH),
    "cancel (risk page)": ("risk", ".lyra-risk-cancel", Action.CANCEL_ORDER),
}


def _view_action(route: str) -> Action:
    return Action.VIEW_AUDIT if route == "audit" else Action(f"view_{route}")


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The home, the running demo session and the server (stopped at the module's end)."""
    tmp = tmp_path_factory.mktemp("live-demo")
    settings = shots.make_home(tmp / "home")
    proc = shots.start_session(settings, SESSION_ID, log=tmp / "session.log")
    _s, engine = open_engine(settings)
    rm = ReadModel(engine, settings.market_dir)
    srv = None
    try:
        shots.wait_running(rm, SESSION_ID, proc)
        srv = shots.start_server(settings, tmp / "panel.log")
        yield SimpleNamespace(srv=srv, rm=rm, proc=proc, folder=tmp / "screenshots")
    finally:
        if srv is not None:
            srv.stop()
        shots.stop_session(proc)
        engine.dispose()


def _signed_in(browser: Any, live: Any, role: str, path: str) -> Any:
    page = new_page(browser, width=shots.WIDTH, height=shots.HEIGHT)
    name, seed = new_user(live.srv, role)
    sign_in(page, live.srv, name, seed, path)
    return page


def _differ(a: Path, b: Path) -> bool:
    from PIL import Image, ImageChops

    with Image.open(a) as x, Image.open(b) as y:
        return ImageChops.difference(x.convert("RGB"), y.convert("RGB")).getbbox() is not None


def test_every_page_shows_moving_data_without_console_errors(browser, live):
    from lyra.testing.serving import collect_console_errors

    first = _signed_in(browser, live, "admin", "/trading")
    tabs: dict[str, Any] = {}
    try:
        # Every page in its own tab of one signed-in context, first screenshots as each loads;
        # then the second round. The waits for new data overlap instead of adding up.
        before: dict[str, Any] = {}
        for route in shots.PAGES:
            tab = first if route == "trading" else first.context.new_page()
            if tab is not first:
                tab.set_default_timeout(shots.WAIT_MS)
                tab.console_errors = collect_console_errors(tab)
                tab.goto(f"{live.srv.url}/{route}")
            tabs[route] = tab
            before[route] = shots.ready(tab, route)
            if route != "audit":  # the live session is the one shown
                expect(tab.locator(".lyra-session")).to_contain_text("sma_cross on bitstamp BTC/USD, ETH/USD")
            shots.save_png(tab, live.folder / f"{route}-1.png")
        for route, tab in tabs.items():
            tab.bring_to_front()
            after = shots.wait_changed(tab, route, before[route])
            second = shots.save_png(tab, live.folder / f"{route}-2.png")
            assert after != before[route], route
            assert _differ(live.folder / f"{route}-1.png", second), f"{route}: the two screenshots are the same"
            assert tab.console_errors == [], (route, tab.console_errors)
        assert live.proc.poll() is None  # the session ran all along
        assert len(list(live.folder.glob("*.png"))) == 2 * len(shots.PAGES)
    finally:
        first.context.close()


@pytest.mark.parametrize("role", [Role.VIEWER, Role.TRADER, Role.RISK_MANAGER])
def test_each_role_sees_exactly_the_controls_of_the_permission_table(browser, live, role):
    who = Principal("someone", role)
    page = _signed_in(browser, live, role.value, "/trading")
    try:
        # The navigation: exactly the pages this role may open.
        allowed = [r for r in shots.PAGES if who.can(_view_action(r))]
        expect(page.locator(".lyra-nav a")).to_have_count(len(allowed))
        for route in ("trading", "risk"):
            if not who.can(_view_action(route)):
                response = page.goto(f"{live.srv.url}/{route}")
                assert response is not None and response.status == 403, route
                continue
            if not page.url.endswith(f"/{route}"):
                page.goto(f"{live.srv.url}/{route}")
            shots.ready(page, route)
            for control, (where, selector, action) in CONTROLS.items():
                if where == route:
                    n = 1 if who.can(action) else 0
                    expect(page.locator(selector), f"{role}: {control}").to_have_count(n)
            if route == "trading" and not who.can(Action.PLACE_ORDER):
                expect(page.locator("text=no order ticket")).to_have_count(1)  # says why, not a gap
        if role is Role.VIEWER:  # the table gives a viewer no action at all
            assert not any(who.can(a) for _w, _s, a in CONTROLS.values())
        assert [e for e in page.console_errors if "403" not in e] == []
    finally:
        page.context.close()
