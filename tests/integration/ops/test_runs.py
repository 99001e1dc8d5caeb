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
        ((NB / "paper_session.ipynb", [("speed", "nan")]), "parameters.speed", "expected a finite number"),
        ((NB / "paper_session.ipynb", {"speed": float("inf")}), "parameters.speed", "expected a finite number"),
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
    res = CliRunner().invoke(_cli(), ["run", "--rerun", first["run_id"]])
    assert res.exit_code == 1 and "MISMATCH" in res.output and "differ: n" in res.output
    # The notebook recorded no reads: the output says its fingerprint proves nothing.
    assert "covers NO data" in res.output and "data not recorded (cannot tell if it changed)" in res.output
    assert not first["data_covered"]
    again = list_runs(h["engine"])[0]
    assert again["comparison"] == {"of": first["run_id"], "results_match": False, "differences": ["n"],
                                   "fingerprint_match": True, "data_covered": False, "notebook_match": True,
                                   "status": "finished"}


@pytest.mark.notebook
@pytest.mark.slow
def test_daily_report_and_audit_notebooks_on_a_session(session_home):
    h = session_home
    s = open_session(demo_config(session_id="day", end=END), engine=h["engine"],
                     market_dir=h["home"] / "market", jsonl_path=h["home"] / "audit" / "events.jsonl")
    ref = s.run()
    report = run_notebook(NB / "daily_report.ipynb", {"start": "2017-07-01", "end": END}, engine=h["engine"],
                          progress=False)
    # AUD/USD for the tax section: a fixture in the RBA F11.1 layout, 0.8000 on every weekday
    # of July-August 2017 (the shipped RBA sample covers 2023).
    days = pd.bdate_range("2017-06-26", "2017-09-01")
    rates = h["home"] / "f11.1-fixture.csv"
    rates.write_text("Series ID,FXRUSD\n" + "".join(f"{d:%d-%b-%Y},0.8000\n" for d in days))
    audit = run_notebook(NB / "audit_tax.ipynb", {"rates_path": str(rates)}, engine=h["engine"], progress=False)
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
    assert a["n_fills"] == ref.fills and a["fees"] == {"USD": str(ref.fees)}  # per currency
    assert sum(a["by_origin"].values()) == ref.fills
    # The tax section: FY2018 (the session ran in July-August 2017); every sell is one valued
    # disposal; the year's gains/losses equal the USD FIFO result after fees at 0.80.
    t = a["tax"]
    with h["engine"].connect() as c:
        rows = c.execute(sa.text("SELECT side, quantity, price, fee FROM fills ORDER BY ts, seq")).all()
    sells = [r for r in rows if r.side == "sell"]
    assert (t["fy"], t["entity"], t["flagged"], t["disposals"]) == (2018, "individual", 0, len(sells))
    lots, pnl = [], Decimal(0)  # FIFO by hand: [qty, cost incl. fee per unit]
    for side, qty, px, fee in rows:
        qty, px, fee = Decimal(qty), Decimal(px), Decimal(fee)
        if side == "buy":
            lots.append([qty, (qty * px + fee) / qty])
            continue
        pnl += qty * px - fee
        while qty:
            take = min(qty, lots[0][0])
            pnl -= take * lots[0][1]
            lots[0][0] -= take
            qty -= take
            if not lots[0][0]:
                lots.pop(0)
    net = Decimal(t["total_current_year_capital_gains"]) - Decimal(t["current_year_capital_losses"])
    assert abs(net - pnl / Decimal("0.8")) <= Decimal("0.01") * len(sells)


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_research_notebook_run_fingerprints_the_files_it_read(session_home):
    """research_data_quality reads five shipped CSVs directly: the run's fingerprint hashes those
    very bytes, and its key results are the notebook's summary."""
    import hashlib

    from lyra.research import data_quality, sample_data, sample_data_dir

    r = run_notebook(NB / "research_data_quality.ipynb", {"datasets": ["coinbase_BTC-USD_1h",
                                                                       "binance_ETH-USDT_1h_2018-07"]},
                     engine=session_home["engine"], progress=False)
    assert r["status"] == "finished", r["error"]
    assert r["data_covered"] is True
    meta = json.loads((Path(r["output_dir"]) / "run.json").read_text())
    files = {Path(f["file"]).name: f["sha256"] for f in meta["fingerprint"]["files"]}
    expect = {f"{n}.csv.gz": hashlib.sha256((sample_data_dir() / f"{n}.csv.gz").read_bytes()).hexdigest()
              for n in ("coinbase_BTC-USD_1h", "binance_ETH-USDT_1h_2018-07")}
    assert files == expect and meta["fingerprint"]["covers_data"] is True
    q = data_quality(sample_data("binance_ETH-USDT_1h_2018-07"))
    got = r["key_results"]["binance_ETH-USDT_1h_2018-07"]
    assert (got["gaps"], got["missing_bars"], got["rows"]) == (q["gaps"], q["missing_bars"], q["rows"]) == (3, 18,
                                                                                                           q["rows"])


@pytest.mark.notebook
@pytest.mark.slow
@pytest.mark.subprocess
@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_lyra_run_is_quiet_by_default_and_verbose_on_request(session_home, make_notebook, tmp_path):
    import subprocess
    import sys

    nb = make_notebook(tmp_path / "chatty.ipynb", "n = 1\n",
                       "for i in range(40):\n    print(f'cell line {i}')",
                       "from lyra.ops.context import record_results\nrecord_results({'n': n})")

    def lyra_run(*extra):
        return subprocess.run([sys.executable, "-m", "lyra.ops.cli", "run", str(nb), *extra], env=session_home["env"],
                              capture_output=True, text=True, timeout=300)

    quiet = lyra_run()
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    out = quiet.stdout + quiet.stderr
    assert "cell line" not in out and "finished" in out and "key results: n=1" in out
    assert len(out.strip().splitlines()) <= 4, out  # the summary only
    assert "covers NO data" in out  # and it says the fingerprint proves nothing
    loud = lyra_run("--verbose")
    assert loud.returncode == 0, loud.stderr[-3000:]
    assert all(f"cell line {i}" in loud.stdout + loud.stderr for i in range(40))
