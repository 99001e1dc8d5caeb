"""The permission table is the one source: for all six roles, every dashboard (who may open it:
the Panel server's own check) and every action in the table (offered on a page iff allowed;
refused by the service iff not), and ``apps/README.md`` says the same as the table.

Pages are built headless (no server) over a home with a finished paper session; the real
proxy's role × app answers are in test_proxy_attacks.py, the browser's in tests/browser."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from lyra.auth.admin_service import AdminService
from lyra.auth.identity import IdentitySigner
from lyra.auth.panel_auth import PanelTokenCheck, discover_apps
from lyra.auth.permissions import Action, PermissionDenied, Principal, Role, is_allowed
from lyra.auth.serve import default_apps_dir
from lyra.auth.service import AuthService
from lyra.bootstrap import open_engine
from lyra.readside import ManualDesk, ReadModel
from lyra.session.config import load_session_config
from lyra.session.runtime import session_instruments
from lyra.testing.serving import dashboard_home

from .conftest import PASSWORD, TEST_ITERATIONS

REPO = Path(__file__).resolve().parents[3]
OHLCV = REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"
APPS = default_apps_dir()
pytestmark = [
    pytest.mark.slow,
    # Bokeh's ColumnDataSource.from_df calls reset_index(inplace=True), deprecated in pandas 3.1.
    pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources"),
]


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    settings = dashboard_home(tmp_path_factory.mktemp("matrix") / "home", OHLCV)
    _s, engine = open_engine(settings)
    yield settings, ReadModel(engine, settings.market_dir)
    engine.dispose()


def offered_on_pages(rm: ReadModel, settings, principal: Principal, admin: AdminService) -> set[Action]:
    """The actions the dashboards offer ``principal`` (built as ``create_app`` builds them)."""
    from lyra.dashboards import admin as admin_app
    from lyra.dashboards import audit_log, rebalancing, risk, trading
    from lyra.dashboards.actions import ReauthGate

    info = rm.session("dash")
    desk = ManualDesk(
        rm.engine,
        session_instruments(load_session_config(info.config)),
        jsonl_path=settings.audit_dir / "events.jsonl",
        equity=Decimal(10_000),
    )
    out: set[Action] = set()
    t = trading.TradingView(rm, "dash", principal=principal, desk=desk, live=False)
    if hasattr(t, "_t_qty"):
        out.add(Action.PLACE_ORDER)
    if hasattr(t, "_c_pick"):
        out.add(Action.CANCEL_ORDER)
    r = risk.RiskView(rm, "dash", principal=principal, live=False)
    if hasattr(r, "_k_confirm"):
        out.add(Action.PULL_KILL_SWITCH)
    if r.actions.can_cancel and r.actions._layout.visible:
        out.add(Action.CANCEL_ORDER)
    if r.actions.can_rearm and r.actions._layout.visible:
        out.add(Action.REARM_KILL_SWITCH)
    b = rebalancing.RebalancingView(rm, "dash", principal=principal, desk=desk, live=False)
    if hasattr(b, "_confirm"):
        out.add(Action.SUBMIT_REBALANCE)
    try:  # the admin page needs the table's manage_users for its first read
        view = admin_app.AdminView(admin, principal, ReauthGate("admin", served=False))
    except PermissionDenied:
        pass
    else:
        assert principal.subject in view.users.value["user"].tolist()
        out.add(Action.MANAGE_USERS)
    if keys_page_offered(admin.service, principal):
        out.add(Action.MANAGE_API_KEYS)
    if is_allowed(principal.role, Action.VIEW_AUDIT):  # the audit page's downloads
        d = audit_log.AuditDownloads(rm.engine, settings.home, principal)
        if d.tax_download is not None:
            out.add(Action.DOWNLOAD_TAX_REPORT)
        if d.history_download is not None and d.sheet_download is not None:
            out.add(Action.READ_AUDIT_LOG)
    return out


def keys_page_offered(service: AuthService, principal: Principal) -> bool:
    """Does the proxy's own-keys page (``/auth/keys``) offer ``principal`` a create form?"""
    import aiohttp
    from aiohttp.test_utils import TestClient, TestServer

    from lyra.auth.proxy import AuthProxy, ProxyConfig

    pair = service.tokens.start_session(principal.subject, principal.role)

    async def main() -> bool:
        proxy = AuthProxy(service, ProxyConfig(upstream="http://127.0.0.1:9"))
        async with TestClient(TestServer(proxy.make_app()), cookie_jar=aiohttp.DummyCookieJar()) as c:
            r = await c.get("/auth/keys", headers={"Cookie": f"lyra_at={pair.access_token}"})
            text = await r.text()
            assert r.status in (200, 403), (r.status, text[:200])
            return r.status == 200 and 'id="create-key"' in text

    return asyncio.run(main())


#: Actions with no page of their own (CLI, API, notebooks): the service's check decides.
SERVICE_ONLY = {
    Action.RUN_NOTEBOOK,
    Action.MANAGE_SCHEDULE,
}
PAGE_ACTIONS = {
    Action.PLACE_ORDER,
    Action.CANCEL_ORDER,
    Action.PULL_KILL_SWITCH,
    Action.REARM_KILL_SWITCH,
    Action.SUBMIT_REBALANCE,
    Action.MANAGE_USERS,
    Action.MANAGE_API_KEYS,
    Action.READ_AUDIT_LOG,  # the audit page's trade-history and tear-sheet downloads
    Action.DOWNLOAD_TAX_REPORT,  # the audit page's ATO report download
}


def test_every_role_every_dashboard_every_action_as_the_table_says(home, tmp_path):
    settings, rm = home
    apps = discover_apps(APPS)
    view_actions = {a for a in Action if a.value.startswith("view_")}
    assert {s.requires for s in apps} == view_actions | {Action.MANAGE_USERS}  # every dashboard
    assert view_actions | SERVICE_ONLY | PAGE_ACTIONS == set(Action)  # every action is covered
    from cryptography.fernet import Fernet

    from lyra.audit import EventLog
    from lyra.auth.repository import SecretBox

    service = AuthService(
        rm.engine,
        signing_key="matrix-test-signing-key-" + "Lq2Zx7Wm4Nv8Pk1Rt5Yb3Hc6",
        event_log=EventLog(rm.engine),
        secret_box=SecretBox(Fernet.generate_key()),
        iterations=TEST_ITERATIONS,
    )
    admin = AdminService(service)
    signer = IdentitySigner(service.signing_secret())
    check = PanelTokenCheck(service.signing_secret(), apps)
    cells = 0
    for role in Role:
        who = Principal(f"m{role.value[:8]}", role)
        service.add_user(who.subject, PASSWORD, role, actor="test")
        claims = check.claims(signer.sign(who.subject, role, "s1", now=datetime.now(UTC)))
        assert claims is not None
        for spec in apps:  # who may open each dashboard (the Panel server's check)
            assert check.allowed(claims, f"/{spec.route}") == is_allowed(role, spec.requires), (
                role,
                spec.route,
            )
            cells += 1
        offered = offered_on_pages(rm, settings, who, admin)
        for action in PAGE_ACTIONS:
            assert (action in offered) == is_allowed(role, action), (role, action, sorted(offered))
            cells += 1
        for action in SERVICE_ONLY | PAGE_ACTIONS:
            allowed = is_allowed(role, action)
            try:
                service.authorize(who, action)
                assert allowed, (role, action)
            except PermissionDenied:
                assert not allowed, (role, action)
            cells += 1
    assert cells == len(Role) * (len(apps) + len(PAGE_ACTIONS) + len(SERVICE_ONLY | PAGE_ACTIONS))


def _readme_rows() -> dict[str, list[str]]:
    rows = {}
    for line in (APPS / "README.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\| `(\w+\.py)` \| `/(\w+)` \|([^|]*)\|([^|]*)\|([^|]*)\|$", line)
        if m:
            rows[m.group(1)] = [m.group(2), m.group(3).strip(), m.group(4).strip()]
    return rows


def test_apps_readme_says_what_the_permission_table_says():
    rows = _readme_rows()
    apps = discover_apps(APPS)
    assert sorted(rows) == sorted(s.path.name for s in apps)  # every app, nothing else
    text = (APPS / "README.md").read_text(encoding="utf-8")
    key_roles = ", ".join(r.value for r in Role if is_allowed(r, Action.MANAGE_API_KEYS))
    assert f"(manage_api_keys: {key_roles})" in text.replace("\n", " ")
    page_actions = {
        "trading.py": {Action.PLACE_ORDER: "admin, trader", Action.CANCEL_ORDER: "admin, trader"},
        "risk.py": {Action.PULL_KILL_SWITCH: "", Action.REARM_KILL_SWITCH: "", Action.CANCEL_ORDER: ""},
        "rebalancing.py": {Action.SUBMIT_REBALANCE: ""},
        "admin.py": {Action.MANAGE_USERS: "", Action.MANAGE_API_KEYS: ""},
        "audit_log.py": {Action.DOWNLOAD_TAX_REPORT: "", Action.READ_AUDIT_LOG: ""},
    }
    for spec in apps:
        route, who, actions = rows[spec.path.name]
        assert route == spec.route
        assert who == ", ".join(r.value for r in Role if is_allowed(r, spec.requires)), spec.path.name
        listed = dict(re.findall(r"(\w+)†? \(([^)]*)\)", actions))
        expected = page_actions.get(spec.path.name, {})
        assert set(listed) == {a.value for a in expected}, spec.path.name
        for action in expected:
            # who is offered it on this page: allowed by the table and may open the page (the
            # trading page's cancel sits in the order ticket: for those who may also trade)
            roles = [
                r.value
                for r in Role
                if is_allowed(r, action)
                and is_allowed(r, spec.requires)
                and (spec.route != "trading" or is_allowed(r, Action.PLACE_ORDER))
            ]
            assert listed[action.value] == ", ".join(roles), (spec.path.name, action.value)
