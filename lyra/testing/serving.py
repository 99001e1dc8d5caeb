"""Browser test kit for ``lyra serve``: headless Debian Chromium through Playwright, users
with TOTP, sign-in, non-blank screenshots, and a served stack on a populated LYRA_HOME.

Shared by ``tests/browser`` and ``benchmarks/bench_dashboards.py``; notebooks can use it to
script a demo.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "velvet comet granite orchard"  # noqa: S105 - a test user's password
KEY = "browser-test-signing-key-" + "Hq4Wz8Lp2Vn6Rt0Yk3Xm7Bc5"


def new_user(server: Any, role: str) -> tuple[str, str]:
    """A fresh user with ``role`` on the server's auth service: (name, TOTP seed)."""
    name = f"{role[:5]}{uuid.uuid4().hex[:6]}"
    return name, server.service.add_user(name, PASSWORD, role, actor="test").totp_secret


def sign_in(page: Any, server: Any, name: str, seed: str, path: str = "/") -> None:
    """Log in through the proxy's pages (password, then the TOTP code) and land on ``path``."""
    from lyra.auth.totp import totp_code

    page.goto(server.url + path)
    assert "/auth/login" in page.url
    page.fill("#username", name)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/auth/mfa**")
    page.fill("#code", totp_code(seed, server.service.now()))
    page.click("button[type=submit]")
    page.wait_for_load_state("networkidle")


def shot(page: Any, folder: Path, name: str, *, min_colours: int = 20, full_page: bool = False) -> Path:
    """Save a screenshot and check it is not blank (more than ``min_colours`` colours)."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=full_page)
    with Image.open(path) as img:
        colours = img.convert("RGB").getcolors(maxcolors=1_000_000)
    assert colours is not None, f"{path} looks blank"
    assert len(colours) > min_colours, f"{path} looks blank"
    return path


def launch_chromium(playwright: Any) -> Any:
    """Debian's headless Chromium (``apt-get install -y chromium``)."""
    assert Path(CHROMIUM).exists(), "Debian chromium is missing: apt-get install -y chromium"
    return playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


def collect_console_errors(page: Any) -> list[str]:
    """Console errors and uncaught page errors of ``page``, as they happen."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    return errors


def dashboard_home(root: Path, ohlcv: Path, *, session_id: str = "dash", end: str = "2017-12-01") -> Any:
    """A LYRA_HOME under ``root`` with ``ohlcv`` imported and a finished paper session (the
    demo strategy on shipped data); returns its Settings (signing key: :data:`KEY`)."""
    from lyra.bootstrap import initialise, open_engine
    from lyra.feeds import MarketStore, import_file
    from lyra.session.factory import open_session
    from lyra.settings import load_settings
    from lyra.testing.sessions import demo_config

    settings = load_settings(env={}, home=str(root), jwt_secret=KEY)
    initialise(load_samples=False, settings=settings)
    import_file(ohlcv, store=MarketStore(settings.market_dir))
    _s, engine = open_engine(settings)
    try:
        open_session(
            demo_config(session_id=session_id, end=end),
            engine=engine,
            market_dir=settings.market_dir,
            jsonl_path=settings.audit_dir / "events.jsonl",
        ).run()
    finally:
        engine.dispose()
    return settings


def append_fill(
    engine: Any,
    jsonl_path: Path | None,
    session_id: str,
    *,
    price: str = "10000",
    quantity: str = "0.01",
    side: str = "buy",
    instrument_id: str = "coinbase:BTC/USD",
    ts: int | None = None,
) -> str:
    """Record one more market order and its fill for ``session_id`` through the ledger (what a
    running session does), from this process; returns the fill id. For live-update tests."""
    import time as _time
    from decimal import Decimal

    from lyra.audit import EventLog, Ledger
    from lyra.core.enums import Liquidity, OrderEventType, Side
    from lyra.core.orders import Fill, Order, OrderEvent, OrderIntent, client_order_id
    from lyra.testing.ledger import fixture_pen

    t = _time.time_ns() // 1_000_000 if ts is None else ts
    ledger = Ledger(EventLog(engine, jsonl_path), session_id=session_id)
    cid = client_order_id(session_id, 900_000 + len(ledger.state.orders))
    qty, px = Decimal(quantity), Decimal(price)
    fill = Fill(
        f"test-{cid}",
        cid,
        instrument_id,
        Side(side),
        qty,
        px,
        (qty * px * Decimal("0.006")),
        "USD",
        Liquidity.TAKER,
        t,
    )
    pen = fixture_pen()  # a seeded fill, written like the gateway would
    with ledger.transaction() as tx:
        tx.append(
            "risk.decision",
            {
                "decision_id": f"rd-{cid}",
                "client_order_id": cid,
                "approved": True,
                "reason": "",
                "check": "",
                "quantity": quantity,
                "account_id": session_id,
                "instrument_id": instrument_id,
                "requested_quantity": quantity,
                "state": "active",
                "ts": t,
            },
            actor="risk",
            session_id=session_id,
            ts=t,
            pen=pen,
        )
        tx.create_order(
            session_id,
            Order(cid, OrderIntent(instrument_id, Side(side), qty), created_ts=t),
            actor=f"session:{session_id}",
            pen=pen,
        )
        tx.order_event(session_id, cid, OrderEvent(OrderEventType.SUBMIT, t), actor=f"session:{session_id}",
                       pen=pen)
        tx.order_event(
            session_id, cid, OrderEvent(OrderEventType.FILL, t, fill=fill), actor=f"session:{session_id}",
            pen=pen,
        )
    return fill.fill_id
