"""The README's main job: `lyra init` then `lyra demo` on the embedded default (SQLite, shipped
data): a paper session, the audit check, the research backtest of the same strategy saved for the
dashboards, and the dashboards behind login."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

pytestmark = [pytest.mark.subprocess, pytest.mark.slow]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.numba
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:panel.widgets.tables")
@pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")
def test_demo_runs_the_session_checks_the_log_and_serves_login(lyra_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_")}
    env["LYRA_HOME"] = str(lyra_home)
    env["COLUMNS"] = "200"
    subprocess.run([sys.executable, "-m", "lyra.cli", "init"], env=env, check=True, capture_output=True,
                   timeout=300)
    port = _free_port()
    p = subprocess.Popen([sys.executable, "-m", "lyra.cli", "demo", "--serve-seconds", "8", "--port",
                          str(port)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    status = None
    deadline = time.monotonic() + 300  # a failure limit only: the paper session and the backtest run first
    while time.monotonic() < deadline and p.poll() is None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/login", timeout=2) as r:
                status = r.status
                page = r.read().decode()
            break
        except OSError:
            time.sleep(0.5)
    out, _ = p.communicate(timeout=300)
    assert p.returncode == 0, out
    assert status == 200
    assert "password" in page.lower()
    assert "772" in out  # orders of the pinned demo session
    assert "event log intact" in out
    creds = json.loads((lyra_home / "secrets" / "demo-user.json").read_text())
    assert (lyra_home / "secrets" / "demo-user.json").stat().st_mode & 0o077 == 0
    assert creds["username"] in out
    assert creds["password"] not in (lyra_home / "audit" / "events.jsonl").read_text()
    _check_research_demo(lyra_home, out)


def _check_research_demo(home, out: str) -> None:
    """The demo saved the research backtest of its strategy where `lyra serve` finds it, and
    its figures are those of a fresh `lyra.backtest` of the same strategy and costs on the bars
    the paper session replayed (the market store's: the importer drops 5 repeated bars of the
    shipped CSV, so the raw file would not be the same data)."""
    from decimal import Decimal

    import lyra
    from lyra.dashboards.executive import ExecutiveView
    from lyra.dashboards.sources import ResearchSource
    from lyra.demo import DEMO_SESSION
    from lyra.execution.costs import CostModel
    from lyra.feeds.store import MarketStore
    from lyra.settings import load_settings
    from lyra.strategy import SmaCross

    assert "viewable on the dashboards as session research-demo" in " ".join(out.split())
    assert sorted(p.name for p in (home / "research").iterdir()) == ["research-demo"]  # no temp folder left
    src = ResearchSource.load(home / "research" / "research-demo")
    assert (src.info.session_id, src.info.mode, src.info.strategy) == ("research-demo", "research", "SmaCross")
    spec = DEMO_SESSION["instruments"]["BTC/USD"]
    cost = CostModel(maker_fee=Decimal(spec["maker_fee"]), taker_fee=Decimal(spec["taker_fee"]),
                     slippage_bps=DEMO_SESSION["slippage_bps"])
    init = float(DEMO_SESSION["balances"]["USD"])
    bars = MarketStore(load_settings(env={}, home=str(home)).market_dir).read_bars("coinbase", "BTC/USD", "1h")
    qty = float(DEMO_SESSION["quantity"])  # the session's fixed size per signal: the same trades
    ref = lyra.backtest(SmaCross(**DEMO_SESSION["params"]), bars, cost=cost, init_cash=init, size=qty)
    curve = src.equity_curve("research-demo")
    assert len(curve) == len(ref.portfolio.wrapper.index) > 20_000
    assert curve["equity"].iloc[-1] / init - 1 == pytest.approx(ref.final_equity / init - 1, rel=1e-12)
    assert len(src.fills("research-demo")) == len(ref.portfolio.orders.records_arr)
    assert set(src.fills("research-demo")["quantity"]) == {qty}  # every entry and exit: 0.1 BTC
    kpis = ExecutiveView(src, live=False).kpis
    assert kpis is not None and kpis.trades == ref.n_trades > 100
    assert f"{ref.n_trades:,} trades" in out
