"""`lyra run`: validation before anything exists, the run registry, failures, reruns.

The shipped notebooks run with papermill on the shipped Coinbase BTC/USD data (short ranges),
and their recorded key results are checked against independent computations.
"""

from __future__ import annotations

import gzip
import json
from decimal import Decimal
from pathlib import Path

import nbformat
import pandas as pd
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from lyra.core.errors import ValidationError
from lyra.ops import get_run, list_runs, plan_run, rerun, run_notebook
from lyra.ops.cli import run_command, runs_app
from lyra.session.factory import open_session
from lyra.settings import load_settings
from lyra.testing.sessions import demo_config

REPO = Path(__file__).resolve().parents[3]
NB = REPO / "notebooks"
SHIPPED = REPO / "data" / "ohlcv" / "coinbase_BTC-USD_1h.csv.gz"
END = "2017-09-01"


def _count_rows(engine) -> int:
    with engine.connect() as c:
        return c.execute(sa.text("SELECT count(*) FROM runs")).scalar()


def _cli():
    import typer

    app = typer.Typer()
    app.command("run")(run_command)
    app.add_typer(runs_app, name="runs")
    return app


@pytest.mark.parametrize("name", ["paper_session", "daily_report", "audit_tax"])
def test_notebooks_are_committed_clean_with_a_parameters_cell(name):
    nb = nbformat.read(NB / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    assert sum("parameters" in c.metadata.get("tags", []) for c in code) == 1


def test_bad_input_is_refused_before_anything_is_created(session_home, make_notebook, tmp_path):
    h = session_home
    runs_dir = h["home"] / "runs"
    no_params = make_notebook(tmp_path / "plain.ipynb", None, "x = 1")
    cases = [
        ((tmp_path / "missing.ipynb", {}), "notebook", "file not found"),
        ((no_params, {}), "notebook", "no cell tagged 'parameters'"),
        ((NB / "paper_session.ipynb", {"nosuch": 1}), "parameters.nosuch", "unknown parameter"),
        ((NB / "paper_session.ipynb", [("speed", "fast")]), "parameters.speed", "expected a number"),
        ((NB / "paper_session.ipynb", {"speed": "fast"}), "parameters.speed", "expected a number"),
        ((NB / "paper_session.ipynb", [("params", "{not json")]), "parameters.params", "JSON object"),
        ((NB / "daily_report.ipynb", {"var_confidence": True}), "parameters.var_confidence", "expected"),
    ]
    for (nb, params), field, problem in cases:
        with pytest.raises(ValidationError) as exc:
            run_notebook(nb, params, engine=h["engine"], progress=False)
        assert exc.value.field == field and problem in str(exc.value), str(exc.value)
    assert _count_rows(h["engine"]) == 0
    assert not runs_dir.exists() or not any(runs_dir.iterdir())
    # The same through the command: exit 2, a message naming the parameter, nothing registered.
    res = CliRunner().invoke(_cli(), ["run", str(NB / "paper_session.ipynb"), "-p", "speed", "fast"])
    assert res.exit_code == 2 and "parameters.speed" in res.output and "expected a number" in res.output
    res = CliRunner().invoke(_cli(), ["run", str(tmp_path / "missing.ipynb")])
    assert res.exit_code == 2 and "file not found" in res.output
    assert _count_rows(h["engine"]) == 0


def test_parameters_are_parsed_to_the_notebooks_types():
    plan = plan_run(NB / "paper_session.ipynb",
                    [("speed", "2"), ("params", '{"fast": 5, "slow": 20}'), ("symbols", '["BTC/USD"]'),
                     ("end", "2017-09-01"), ("session_id", "x1")])
    assert plan.parameters == {"speed": 2.0, "params": {"fast": 5, "slow": 20}, "symbols": ["BTC/USD"],
                               "end": "2017-09-01", "session_id": "x1"}
    assert isinstance(plan.parameters["speed"], float)
    # An int where a float is expected is fine; a number where a string is expected is not.
    assert plan_run(NB / "paper_session.ipynb", {"speed": 3}).parameters == {"speed": 3}
    with pytest.raises(ValidationError, match="parameters.end"):
        plan_run(NB / "paper_session.ipynb", {"end": 20170901})


@pytest.mark.notebook
@pytest.mark.slow
def test_a_failing_cell_marks_the_run_failed_and_keeps_the_notebook(session_home, make_notebook, tmp_path):
    h = session_home
    nb = make_notebook(tmp_path / "boom.ipynb", "n = 2\n", "x = n * 21", "raise ValueError(f'boom {x}')",
                       "never = True")
    res = CliRunner().invoke(_cli(), ["run", str(nb), "-p", "n", "3", "--quiet"])
    assert res.exit_code == 1, res.output
    (r,) = list_runs(h["engine"])
    assert r["status"] == "failed" and r["error"] == "ValueError: boom 63"
    assert r["error_cell"] == 2  # index in the source notebook: parameters, x = ..., raise
    assert r["parameters"] == {"n": 3} and r["ended_ts"] >= r["started_ts"]
    out = Path(r["output_dir"])
    executed = nbformat.read(out / "notebook.ipynb", as_version=4)
    errors = [c for c in executed.cells if c.cell_type == "code"
              and any(o.get("output_type") == "error" for o in c.outputs)]
    assert len(errors) == 1 and "raise ValueError" in errors[0].source
    meta = json.loads((out / "run.json").read_text())
    assert meta["status"] == "failed" and meta["error_cell"] == 2
    assert json.loads((out / "parameters.json").read_text()) == {"n": 3}


def _shipped(end: str) -> pd.DataFrame:
    """The shipped CSV's rows before ``end``, read with pandas (not through the store)."""
    with gzip.open(SHIPPED, "rt") as fh:
        df = pd.read_csv(fh)
    return df[df["timestamp_ms"] < pd.Timestamp(end, tz="UTC").value // 1_000_000]


def _shipped_rows_before(end: str) -> int:
    return len(_shipped(end))


@pytest.mark.notebook
@pytest.mark.slow
def test_paper_session_notebook_and_its_rerun_reproduce_fills_and_equity(session_home):
    h = session_home
    settings = load_settings()
    first = run_notebook(NB / "paper_session.ipynb", [("end", END)], engine=h["engine"], settings=settings,
                         progress=False)
    assert first["status"] == "finished", first["error"]
    k = first["key_results"]
    # Independent reference: the same config run directly (no notebook, no papermill).
    s = open_session(demo_config(session_id="ref", end=END), engine=h["engine"],
                     market_dir=h["home"] / "market", jsonl_path=h["home"] / "audit" / "events.jsonl")
    ref = s.run()
    assert k["n_fills"] == ref.fills == len(k["fills"]) > 10
    assert Decimal(k["final_equity"]) == ref.equity and Decimal(k["fees"]) == ref.fees
    ref_fills = [[f.ts, f.instrument_id, f.side.value, str(f.quantity), str(f.price), str(f.fee)]
                 for _, f in s.ledger.state.fills]
    assert k["fills"] == ref_fills
    # Provenance: files, versions, the data fingerprint of the bars the session replayed.
    out = Path(first["output_dir"])
    assert out.parent == h["home"] / "runs"
    assert {"notebook.ipynb", "parameters.json", "run.json", "environment.json", "reads.json",
            "results.json"} <= {p.name for p in out.iterdir()}
    meta = json.loads((out / "run.json").read_text())
    assert meta["fingerprint"]["ranges"][0]["rows"] == _shipped_rows_before(END)
    assert first["fingerprint"] == meta["fingerprint"]["sha256"] and len(first["fingerprint"]) == 64
    assert meta["lyra_version"] == first["lyra_version"] != ""
    assert first["git_commit"] == "unknown" or len(first["git_commit"].split("+")[0]) == 40
    env = json.loads((out / "environment.json").read_text())
    assert env["papermill"] and env["sqlalchemy"]
    assert meta["info"]["session_id"] == f"nb-{first['run_id']}"

    again = rerun(first["run_id"], engine=h["engine"], settings=settings, progress=False)
    assert again["status"] == "finished" and again["rerun_of"] == first["run_id"]
    assert again["comparison"]["results_match"] is True
    assert again["comparison"]["fingerprint_match"] and again["comparison"]["notebook_match"]
    assert again["key_results"]["fills"] == k["fills"]
    assert again["key_results"]["final_equity"] == k["final_equity"]
    assert again["key_results"]["equity_curve"] == k["equity_curve"]
    # A fresh session (derived from the new run id), not a read-back of the first one's log.
    assert json.loads((Path(again["output_dir"]) / "run.json").read_text())["info"]["session_id"] \
        == f"nb-{again['run_id']}"
    # Read side for dashboards.
    listed = list_runs(h["engine"], notebook="paper_session.ipynb")
    assert [r["run_id"] for r in listed] == [again["run_id"], first["run_id"]]
    assert listed[0]["duration_s"] > 0 and get_run(h["engine"], first["run_id"])["status"] == "finished"


@pytest.mark.notebook
@pytest.mark.slow
def test_rerun_reports_a_mismatch_when_results_differ(session_home, make_notebook, tmp_path):
    h = session_home
    counter = tmp_path / "c.txt"
    nb = make_notebook(tmp_path / "drift.ipynb", f'counter = "{counter}"\n',
                       "from lyra.ops.context import record_results\n"
                       "with open(counter, 'a') as fh:\n    fh.write('x')\n"
                       "record_results({'n': len(open(counter).read()), 'const': 1})")
    first = run_notebook(nb, {}, engine=h["engine"], progress=False)
    res = CliRunner().invoke(_cli(), ["run", "--rerun", first["run_id"], "--quiet"])
    assert res.exit_code == 1 and "MISMATCH" in res.output and "differ: n" in res.output
    again = list_runs(h["engine"])[0]
    assert again["comparison"] == {"of": first["run_id"], "results_match": False, "differences": ["n"],
                                   "fingerprint_match": True, "notebook_match": True, "status": "finished"}


@pytest.mark.notebook
@pytest.mark.slow
def test_daily_report_and_audit_notebooks_on_a_session(session_home):
    h = session_home
    s = open_session(demo_config(session_id="day", end=END), engine=h["engine"],
                     market_dir=h["home"] / "market", jsonl_path=h["home"] / "audit" / "events.jsonl")
    ref = s.run()
    report = run_notebook(NB / "daily_report.ipynb", {"start": "2017-07-01", "end": END}, engine=h["engine"],
                          progress=False)
    audit = run_notebook(NB / "audit_tax.ipynb", {}, engine=h["engine"], progress=False)
    assert report["status"] == audit["status"] == "finished", (report["error"], audit["error"])
    r = report["key_results"]
    assert r["trading"]["fills"] == ref.fills
    assert Decimal(r["trading"]["fees"]["USD"]) == ref.fees
    # The market section against the shipped CSV read with pandas.
    raw = _shipped(END)
    assert r["market"]["bars"] == len(raw)
    assert r["market"]["high"] == raw["high"].max() and r["market"]["low"] == raw["low"].min()
    assert r["market"]["first_open"] == raw["open"].iloc[0] and r["market"]["last_close"] == raw["close"].iloc[-1]
    perf = r["performance"]["day"]
    # The last equity snapshot before the end of the range (the session's closing snapshot is
    # stamped at END itself, outside [start, end)).
    snaps = [(r.ts, Decimal(r.data()["equity"])) for r in s.log.read(kinds=("session.equity",), session_id="day")]
    end_ms = pd.Timestamp(END, tz="UTC").value // 1_000_000
    inside = [e for t, e in snaps if t < end_ms]
    assert perf["last_equity"] == float(inside[-1]) and perf["snapshots"] == len(inside)
    assert snaps[-1][1] == ref.equity.quantize(Decimal("0.00000001"))
    assert 0 <= perf["max_drawdown_pct"] < 100
    a = audit["key_results"]
    with h["engine"].connect() as c:
        entries = c.execute(sa.text("SELECT count(*) FROM events")).scalar()
    assert a["verify_ok"] is True and a["log_entries"] == entries
    assert a["n_fills"] == ref.fills and Decimal(a["fees"]) == ref.fees
    assert set(a["realized_pnl"]) == {"day|coinbase:BTC/USD"}
