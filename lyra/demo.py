"""The main job on the embedded default: shipped data -> paper session -> audit -> dashboards."""

from __future__ import annotations

from decimal import Decimal
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


def run_demo(console: Console, *, serve: bool = True) -> dict[str, Any]:
    """Run (or resume) the demo session, verify the audit trail, then serve the dashboards."""
    from lyra.audit.verify import verify
    from lyra.bootstrap import open_engine
    from lyra.session.cli import _print_result, run_session
    from lyra.session.config import load_session_config

    settings, engine = open_engine()
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
    out = {"result": result, "audit_ok": report.ok}
    if serve:
        _serve(console)
    return out


def _serve(console: Console) -> None:
    try:
        from lyra.auth.serve import serve_demo  # type: ignore[attr-defined,unused-ignore]
    except ImportError:
        console.print("(dashboards: not available in this build)")
        return
    console.rule("[bold]3. dashboards behind login")
    serve_demo(console)
