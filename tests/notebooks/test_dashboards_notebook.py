"""notebooks/dashboards.ipynb: the same views over a research backtest and a finished paper
session, executed with papermill; its HTML export renders offline (Bokeh and Panel inline).

References: a backtest re-run here with the notebook's inputs (vectorbt's own numbers) and
the session's run totals (the runtime's accounting, not the read side the views use).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

REPO = Path(__file__).resolve().parents[2]
NB = REPO / "notebooks"
END = "2018-01-01"  # the notebook's default: July to December 2017

pytestmark = [pytest.mark.slow, pytest.mark.subprocess]


def test_committed_clean_with_a_parameters_cell() -> None:
    nb = nbformat.read(NB / "dashboards.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert "result_path = None" in tagged[0].source and 'home = ""' in tagged[0].source


@pytest.mark.parametrize("path", sorted(NB.glob("*.ipynb")), ids=lambda p: p.name)
def test_notebooks_load_plotting_javascript_inline(path: Path) -> None:
    """Every notebook that loads HoloViews or Panel loads their JavaScript inline: an HTML export
    of it then renders its plots offline (the default loads them from a CDN)."""
    nb = nbformat.read(path, as_version=4)
    calls = [line for c in nb.cells if c.cell_type == "code" for line in c.source.splitlines()
             if re.search(r"\b(hv|pn|holoviews|panel)\.extension\(", line)]
    for line in calls:
        assert "inline=True" in line, f"{path.name}: {line.strip()}"


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path]:
    out = tmp_path_factory.mktemp("dashboards-nb")
    # a scratch home: none of the caller's LYRA_* settings (database, home) reach the kernel
    env = {k: v for k, v in os.environ.items() if not k.startswith("LYRA_") or k == "LYRA_SAMPLE_DATA"}
    executed_nb = out / "dashboards.out.ipynb"
    cmd = [sys.executable, "-m", "papermill", str(NB / "dashboards.ipynb"), str(executed_nb), "-k", "python3",
           "--no-progress-bar", "--cwd", str(out), "-p", "home", str(out / "home"),
           "-p", "result_path", str(out / "summary.json")]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1200, check=False)
    assert proc.returncode == 0, f"the notebook failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return json.loads((out / "summary.json").read_text()), executed_nb


def _last_fill(text: str) -> tuple[str, float, float]:
    side, qty, _at, price = text.split()
    return side, float(qty.replace(",", "")), float(price.replace(",", ""))


@pytest.mark.numba
def test_research_views_show_the_backtest(executed: tuple[dict[str, Any], Path]) -> None:
    import lyra
    from lyra.demo import DEMO_SESSION
    from lyra.execution.costs import CostModel
    from lyra.research import sample_data
    from lyra.strategy import SmaCross

    summary, _nb = executed
    data = sample_data("coinbase_BTC-USD_1h")
    data = data[data.index < pd.Timestamp(END, tz="UTC")]
    btc = DEMO_SESSION["instruments"]["BTC/USD"]
    cost = CostModel(maker_fee=Decimal(btc["maker_fee"]), taker_fee=Decimal(btc["taker_fee"]),
                     slippage_bps=DEMO_SESSION["slippage_bps"])
    result = lyra.backtest(SmaCross(fast=10, slow=30), data, cost=cost, init_cash=10_000.0)
    pf = result.portfolio
    rec = pf.orders.records_arr
    r = summary["research"]
    assert r["messages"] == ["", ""]
    assert r["kpis"]["pnl"] == pytest.approx(float(pf.value().iloc[-1]) - 10_000.0, rel=1e-12)
    assert r["kpis"]["trades"] == int(pf.trades.count()) == result.n_trades
    assert r["kpis"]["sharpe"] == pytest.approx(result.metrics["sharpe"], rel=1e-9)
    assert r["kpis"]["fees"] == pytest.approx(float(rec["fees"].sum()), rel=1e-9)
    assert r["fills"] == f"{len(rec):,}"
    side, qty, price = _last_fill(r["last_fill"])
    assert side == ("buy" if rec["side"][-1] == 0 else "sell")
    assert qty == pytest.approx(float(rec["size"][-1]), rel=1e-4)
    assert price == pytest.approx(float(rec["price"][-1]), abs=0.006)
    assert summary["backtest"]["bars"] == len(data)


def test_session_views_show_the_session(executed: tuple[dict[str, Any], Path]) -> None:
    summary, _nb = executed
    s, run = summary["session"], summary["session_run"]
    assert s["messages"] == ["", ""]
    assert run["fills"] > 50
    assert s["fills"] == f"{run['fills']:,}"
    assert s["kpis"]["equity"] == pytest.approx(float(run["equity"]), abs=1e-6)
    assert s["kpis"]["fees"] == pytest.approx(float(run["fees"]), abs=1e-6)
    assert _last_fill(s["last_fill"])[1] == pytest.approx(0.1)  # the demo's fixed order size


@pytest.mark.filterwarnings("ignore:Your element with mimetype:UserWarning")  # Panel's empty comm outputs
def test_html_export_renders_offline(executed: tuple[dict[str, Any], Path], tmp_path: Path) -> None:
    from nbconvert import HTMLExporter

    _summary, path = executed
    body, _res = HTMLExporter().from_notebook_node(nbformat.read(path, as_version=4))
    # BokehJS and Panel's bundle are in the page; nothing is to be fetched from their CDNs
    assert "/* BEGIN bokeh.min.js */" in body
    assert "cdn.bokeh.org" not in body
    assert not re.search(r"""(src|href)=["']https?://cdn\.(bokeh|holoviz)\.org""", body)
    loaders = re.findall(r"js_urls = \[([^\]]*)\]", body)
    assert loaders and all(not u.strip() for u in loaders), "a Bokeh loader fetches scripts"
    # the only remote scripts are nbconvert's template's own (require.js, MathJax): optional
    remote = set(re.findall(r"""<script[^>]*src=["'](https?://[^"']+)""", body))
    assert all(re.search(r"/(require\.js|mathjax)/", u) for u in remote), remote
    html = tmp_path / "dashboards.html"
    html.write_text(body)
    _render_offline(html)


def _render_offline(html: Path) -> None:
    """Open the export in Chromium with every network request refused: Bokeh must start and
    draw the views' plots."""
    from playwright.sync_api import sync_playwright

    from lyra.testing.serving import launch_chromium

    with sync_playwright() as p:
        browser = launch_chromium(p)
        try:
            page = browser.new_page()
            page.route(re.compile(r"^https?://"), lambda route: route.abort())
            page.goto(html.as_uri())
            page.wait_for_function("() => window.Bokeh !== undefined && Object.keys(Bokeh.index).length >= 4",
                                   timeout=300_000)
            page.wait_for_selector("canvas", state="attached", timeout=300_000)
            assert page.locator("canvas").count() >= 4
        finally:
            browser.close()
