"""The main job on the embedded default: shipped data -> paper session -> audit -> research backtest of
the same strategy -> dashboards."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

from rich.console import Console

#: The demo session: SMA crossover on Coinbase BTC/USD hourly bars, 2017-07 .. 2019-10,
#: replayed through the paper broker with Coinbase's taker fee and 2 bps of slippage.
DEMO_SESSION: dict[str, Any] = {
    "session_id": "demo",
    "mode": "paper",
    "strategy": "sma_cross",
    "params": {"fast": 10, "slow": 30},
    "venue": "coinbase",
    "symbols": ["BTC/USD"],
    "timeframe": "1h",
    "quantity": Decimal("0.1"),
    "balances": {"USD": Decimal(10_000)},
    "slippage_bps": Decimal(2),
    "instruments": {
        # Coinbase's BTC-USD product: 0.01 USD tick, 1e-8 BTC lot, 1 USD minimum.
        "BTC/USD": {"price_increment": "0.01", "size_increment": "0.00000001",
                    "min_notional": "1", "maker_fee": "0.004", "taker_fee": "0.006"},
    },
    "risk": {},
}


#: The session that keeps the dashboards moving while the demo serves: three Bitstamp USD pairs
#: replayed *paced*, half a day of market per second (a daily bar of each every 2 s), an SMA
#: 5/20 cross with per-order and per-position limits that some orders hit (denials show).
LIVE_DEMO_SESSION: dict[str, Any] = {
    "mode": "paper",
    "strategy": "sma_cross",
    "params": {"fast": 5, "slow": 20},
    "venue": "bitstamp",
    "symbols": ["BTC/USD", "ETH/USD", "LTC/USD"],
    "timeframe": "1d",
    # From March 2018: every coin has 100+ days of history by then (the shipped ETH/USD starts in
    # Nov 2017), so the VaR limit has a covariance to work with from the first bar.
    "start": "2018-03-01T00:00:00Z",
    "quantity": "1",
    "balances": {"USD": "50000"},
    "slippage_bps": "5",
    "speed": 43_200.0,
    "equity_every": 1,  # a mark every bar (2 s): equity, exposure and VaR move while you watch
    "instruments": {s: {"price_increment": "0.01", "size_increment": "0.00000001", "min_notional": "10",
                        "maker_fee": "0.005", "taker_fee": "0.005"}
                    for s in ("BTC/USD", "ETH/USD", "LTC/USD")},
    "risk": {"currency": "USD",
             "defaults": {"max_order_notional": "20000", "max_position_notional": "25000",
                          "max_var": "1500"}},
}
LIVE_DEMO_PREFIX = "demo-live"


def live_demo_session_id(engine: Any) -> tuple[str, bool]:
    """The paced demo session to run now and whether it exists already: the latest
    ``demo-live-N`` if it was stopped before its data ended (it is resumed where it stopped),
    else the next unused ``demo-live-N``."""
    from lyra.session.lease import session_statuses
    from lyra.session.registry import SessionRegistry

    rows = [r for r in SessionRegistry(engine).list() if r["session_id"].startswith(LIVE_DEMO_PREFIX + "-")]
    numbers = sorted((int(r["session_id"].rsplit("-", 1)[1]), r) for r in rows
                     if r["session_id"].rsplit("-", 1)[1].isdigit())
    if numbers:
        n, row = numbers[-1]
        if session_statuses(engine, [row])[row["session_id"]] in ("stopped", "stale"):
            return row["session_id"], True
        return f"{LIVE_DEMO_PREFIX}-{n + 1}", False
    return f"{LIVE_DEMO_PREFIX}-1", False


def start_live_demo(console: Console, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start (or resume) the paced demo session in its own process, through the ``lyra`` CLI."""
    import json

    from lyra.bootstrap import open_engine

    _, engine = open_engine()
    try:
        sid, exists = live_demo_session_id(engine)
    finally:
        engine.dispose()
    cli = [sys.executable, "-m", "lyra.cli", "session"]
    if exists:
        cmd = [*cli, "resume", sid, "--quiet"]
    else:
        cmd = [*cli, "start", "--id", sid, "--quiet"]
        for key, value in LIVE_DEMO_SESSION.items():
            cmd += ["--set", f"{key}={json.dumps(value)}"]
    console.print(f"paced session [bold]{sid}[/] ({'resumed' if exists else 'started'}): "
                  "Bitstamp BTC, ETH and LTC daily bars, half a day of market per second")
    return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_live_demo(proc: subprocess.Popen[bytes], timeout_s: float = 60.0) -> None:
    """Stop the paced session cleanly (SIGTERM: it flushes and records ``session.stopped``)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: The session id (and ``$LYRA_HOME/research/<id>/`` folder) of the demo's research backtest.
RESEARCH_DEMO_ID = "research-demo"


def save_research_demo(settings: Any, config: Any) -> tuple[Any, Path]:
    """Backtest the paper session's strategy (``config``, a SessionConfig) with vectorbt on the
    same stored bars, fees and slippage, and save it as ``$LYRA_HOME/research/research-demo/``
    (replacing an earlier one atomically), where the dashboards show it as a finished session.
    Returns the backtest result and the folder."""
    from lyra.dashboards.sources import research_source
    from lyra.execution.costs import CostModel
    from lyra.feeds.store import MarketStore
    from lyra.research.backtest import backtest
    from lyra.session.strategies import build_strategy

    symbol = config.symbols[0]
    spec = config.instruments[symbol]
    quote = symbol.partition("/")[2]
    data = MarketStore(settings.market_dir).read_bars(config.venue, symbol, config.timeframe, config.start,
                                                      config.end)
    cost = CostModel(maker_fee=spec.maker_fee, taker_fee=spec.taker_fee, slippage_bps=config.slippage_bps)
    # The session's fixed quantity per signal, so the backtest makes the same trades at the same size.
    result = backtest(build_strategy(config.strategy, config.params), data, cost=cost,
                      init_cash=float(config.balances[quote]), size=float(config.quantity))
    src = research_source(result, data=data, session_id=RESEARCH_DEMO_ID, venue=config.venue, symbol=symbol)
    return result, src.save(settings.home / "research" / RESEARCH_DEMO_ID)


def run_demo(console: Console, *, serve: bool = True, serve_seconds: float = 0.0,
             port: int = 8080) -> dict[str, Any]:
    """Run (or resume) the demo session, verify the audit trail, then serve the dashboards."""
    from lyra.audit.verify import verify
    from lyra.bootstrap import open_engine
    from lyra.session.cli import _print_result, run_session
    from lyra.session.config import load_session_config

    settings, engine = open_engine()
    # The CLI defaults to ~/.lyra; say how to point it at this home (the README says so too).
    console.print(f"home: {settings.home}  (for the lyra CLI: [bold]export LYRA_HOME={settings.home}[/])")
    console.rule("[bold]1. paper session on shipped data")
    cfg = load_session_config(DEMO_SESSION)
    result = run_session(cfg)
    _print_result(result)
    console.rule("[bold]2. audit trail")
    report = verify(engine, settings.audit_dir / "events.jsonl")
    if report.ok:
        console.print(f"[green]event log intact[/]: {report.entries:,} entries; chain and mirror agree")
    else:
        console.print(f"[red]event log problem[/]: {report.first_bad}")
    console.rule("[bold]3. research backtest of the same strategy")
    research, path = save_research_demo(settings, cfg)
    total = research.final_equity / research.init_cash - 1
    console.print(f"vectorbt backtest, same bars, fees and slippage: {research.n_trades:,} trades, total "
                  f"return {total:+.2%}; viewable on the dashboards as session [bold]{RESEARCH_DEMO_ID}[/] "
                  f"({path})")
    out = {"result": result, "audit_ok": report.ok, "research": path}
    if serve:
        console.rule("[bold]4. a paced multi-asset session for the dashboards")
        live = start_live_demo(console)
        try:
            _serve(console, serve_seconds, port)
        finally:
            stop_live_demo(live)
    return out


def _serve(console: Console, serve_seconds: float = 0.0, port: int = 8080) -> None:
    """Serve the dashboards behind the login proxy with a demo user (printed once)."""
    import time

    from lyra.auth.serve import LyraServer
    from lyra.settings import load_settings

    console.rule("[bold]5. dashboards behind login")
    settings = load_settings(demo=True)
    creds = ensure_demo_user(settings)
    import pyotp

    server = LyraServer(settings, host="127.0.0.1", port=port, panel_port=0)
    console.print(f"open [bold]http://127.0.0.1:{port}/[/] and log in as [bold]{creds['username']}[/] "
                  f"with password [bold]{creds['password']}[/]")
    console.print(f"second factor: add the TOTP secret {creds['totp_secret']} to an authenticator app")
    console.print(f"a code valid now: {pyotp.TOTP(creds['totp_secret']).now()}  (Ctrl-C stops the server)")
    if serve_seconds > 0:
        with server:
            time.sleep(serve_seconds)
        return
    server.serve_forever()


def ensure_demo_user(settings: Any) -> dict[str, str]:
    """The demo admin's credentials: created once, kept in ``$LYRA_HOME/secrets/demo-user.json``
    (0600) so a second ``make demo`` logs in with the same ones. Demo mode only."""
    import json
    import os
    import secrets

    from lyra.auth.service import AuthService
    from lyra.store import create_engine_for

    path = settings.home / "secrets" / "demo-user.json"
    if path.exists():
        data: dict[str, str] = json.loads(path.read_text())
        return data
    engine = create_engine_for(settings.db_url)
    try:
        service = AuthService.from_settings(settings, engine=engine)
        password = secrets.token_urlsafe(15)
        username = "demo"
        existing = {u.username for u in service.list_users()}
        if username in existing:  # credentials file lost: reset the user's factor and password
            username = f"demo{secrets.randbelow(10_000)}"
        enrol = service.add_user(username, password, "admin", actor="lyra-demo")
    finally:
        engine.dispose()  # on errors too
    data = {"username": username, "password": password, "totp_secret": enrol.totp_secret}
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    return data
