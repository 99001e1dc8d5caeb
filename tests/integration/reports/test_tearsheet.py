"""The tear sheet renders offline (BokehJS inlined, no external script) with the analytics
module's figures: from `lyra report tearsheet` (a real subprocess, SQLite and PostgreSQL) and
from the functions a notebook calls (a session and a research backtest)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from lyra.readside import ReadModel
from lyra.readside.analytics import session_metrics
from lyra.reports.tearsheet import _fmt, backtest_tearsheet
from lyra.research import backtest, load_ohlcv
from lyra.session.factory import open_session
from lyra.strategy import SmaCross
from lyra.testing.sessions import demo_config

LYRA = str(Path(sys.executable).with_name("lyra"))
FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "research"


def _shown(text: str) -> dict[str, str]:
    # The metrics table travels HTML-escaped inside Bokeh's document JSON.
    return dict(re.findall(r"data-metric='([a-z_]+)'&gt;([^&]*)&lt;", text))


def _offline(text: str) -> None:
    assert "Bokeh" in text and len(text) > 500_000  # BokehJS itself is in the file
    assert not re.search(r"<script[^>]*\bsrc=", text)
    assert not re.search(r"<link[^>]*\bhref=\"?https?:", text)


@pytest.mark.slow
@pytest.mark.subprocess
def test_lyra_report_tearsheet_writes_an_offline_sheet_of_the_analytics_figures(session_home) -> None:
    home, engine, env = session_home["home"], session_home["engine"], session_home["env"]
    market_dir = Path(home) / "market"  # type: ignore[arg-type]
    open_session(demo_config(end="2017-09-01"), engine=engine, market_dir=market_dir).run()
    out = Path(home) / "sheet.html"  # type: ignore[arg-type]
    r = subprocess.run([LYRA, "report", "tearsheet", "demo", "-o", str(out)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    _offline(text)
    rm = ReadModel(engine, market_dir)  # type: ignore[arg-type]
    m = session_metrics(rm.equity_curve("demo"), rm.fills("demo"))
    shown = _shown(text)
    assert {k: shown[k] for k in m} == {k: _fmt(v) for k, v in m.items()}
    assert int(shown["n_trades"]) == m["n_trades"] > 0
    assert "Monthly returns" in text and "Rolling Sharpe" in text and "Drawdown" in text
    # An unknown session: one clear line, exit 2, no file.
    bad = Path(home) / "none.html"  # type: ignore[arg-type]
    r = subprocess.run([LYRA, "report", "tearsheet", "nope", "-o", str(bad)], env=env, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 2 and "session_id" in r.stderr and "nope" in r.stderr and "Traceback" not in r.stderr
    assert not bad.exists()


@pytest.mark.numba
def test_a_backtest_tearsheet_shows_the_result_metrics() -> None:
    # Panel's models (imported by the dashboards) carry a CDN script Bokeh would add to any
    # document in the process: the sheet must stay offline all the same.
    import panel.models.esm  # noqa: F401
    res = backtest(SmaCross(fast=5, slow=20), load_ohlcv(FIXTURES / "binance_BTC-USDT_1h_2018-04.csv.gz"))
    text = backtest_tearsheet(res, "SmaCross 5/20")
    _offline(text)
    shown = _shown(text)
    assert {k: shown[k] for k in res.metrics} == {k: _fmt(v) for k, v in res.metrics.items()}
