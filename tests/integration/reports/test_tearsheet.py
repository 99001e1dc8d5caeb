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


def _num(text: str) -> float:
    return float(text)


@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.notebook
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_strategy_tearsheet_is_its_sessions_as_one_book_from_the_cli_and_lyra_run(session_home) -> None:
    from lyra.ops import list_runs

    home, engine, env = session_home["home"], session_home["engine"], session_home["env"]
    market_dir = Path(home) / "market"  # type: ignore[arg-type]
    for sid, start, end in (("s1", "2017-07-01", "2017-08-15"), ("s2", "2017-08-15", "2017-09-20")):
        open_session(demo_config(session_id=sid, start=start, end=end), engine=engine, market_dir=market_dir).run()
    out = Path(home) / "strategy.html"  # type: ignore[arg-type]
    r = subprocess.run([LYRA, "report", "tearsheet", "--strategy", "sma_cross", "-o", str(out)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    text = out.read_text(encoding="utf-8")
    _offline(text)
    shown = _shown(text)
    assert "2 sessions: s1, s2" in text
    # Independent of the aggregation: per-session figures add up (money, trades, fees).
    rm = ReadModel(engine, market_dir)  # type: ignore[arg-type]
    per = [session_metrics(rm.equity_curve(s), rm.fills(s)) for s in ("s1", "s2")]
    starts = [float(rm.equity_curve(s)["equity"].iloc[0]) for s in ("s1", "s2")]
    assert int(shown["n_trades"]) == sum(m["n_trades"] for m in per) > 0
    assert _num(shown["final_equity"]) == pytest.approx(sum(m["final_equity"] for m in per), rel=1e-5)
    assert _num(shown["fees_paid"]) == pytest.approx(sum(m["fees_paid"] for m in per), rel=1e-5)
    assert _num(shown["total_return"]) == pytest.approx(
        sum(m["final_equity"] for m in per) / sum(starts) - 1, rel=1e-4)
    # The same sheet from the notebook, run by `lyra run` (papermill), recorded as a run.
    nb = Path(__file__).resolve().parents[3] / "notebooks" / "tearsheet.ipynb"
    r = subprocess.run([LYRA, "run", str(nb), "-p", "strategy", "sma_cross"], env=env, capture_output=True,
                       text=True, timeout=600)
    assert r.returncode == 0, (r.stdout + r.stderr)[-3000:]
    run = list_runs(engine, notebook="tearsheet.ipynb")[0]
    assert run["status"] == "finished" and run["key_results"]["sessions"] == ["s1", "s2"]
    assert run["key_results"]["metrics"] == shown
    sheet = Path(run["key_results"]["tearsheet"])
    assert sheet.parent == Path(run["output_dir"]) and _shown(sheet.read_text(encoding="utf-8")) == shown
    # Nothing matches: one clear line, exit 2, no file.
    bad = Path(home) / "none.html"  # type: ignore[arg-type]
    r = subprocess.run([LYRA, "report", "tearsheet", "--venue", "nowhere", "-o", str(bad)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "nowhere" in r.stderr and "Traceback" not in r.stderr and not bad.exists()


def test_the_tearsheet_notebook_is_committed_clean_with_one_parameters_cell() -> None:
    import nbformat

    nb = nbformat.read(Path(__file__).resolve().parents[3] / "notebooks" / "tearsheet.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1
