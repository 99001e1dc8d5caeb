"""The research notebooks run top to bottom with papermill on the shipped sample data.

The three run in parallel (one kernel each) to keep the suite fast; each writes a JSON summary
that is checked against independent numbers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from lyra.research import expand_grid, sample_data, sweep
from lyra.strategy import SmaCross

REPO = Path(__file__).resolve().parents[2]
NOTEBOOKS = ("research_data_quality", "research_backtest", "research_sweep")


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_committed_clean_with_a_parameters_cell(name: str) -> None:
    nb = nbformat.read(REPO / "notebooks" / f"{name}.ipynb", as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(not c.outputs and c.execution_count is None for c in code)
    tagged = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1 and "result_path = None" in tagged[0].source


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    out = tmp_path_factory.mktemp("notebooks")
    procs = {}
    for name in NOTEBOOKS:
        cmd = [sys.executable, "-m", "papermill", str(REPO / "notebooks" / f"{name}.ipynb"),
               str(out / f"{name}.out.ipynb"), "-k", "python3", "--no-progress-bar", "--cwd", str(out),
               "-p", "result_path", str(out / f"{name}.json")]
        procs[name] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    logs = {name: p.communicate(timeout=240)[0] for name, p in procs.items()}
    for name, p in procs.items():
        assert p.returncode == 0, f"{name} failed:\n{logs[name][-4000:]}"
    return {name: json.loads((out / f"{name}.json").read_text()) for name in NOTEBOOKS}


def test_data_quality_notebook(executed: dict[str, dict]) -> None:
    r = executed["research_data_quality"]
    assert set(r) == {"coinbase_BTC-USD_1h", "binance_BTC-USDT_1h_2018-04", "binance_ETH-USDT_1h_2018-07",
                      "binance_BTC-USDT_1d_2018-04", "binance_ETH-USDT_1d_2018-07"}
    # Known flaws from the shared data's QC table.
    assert (r["binance_ETH-USDT_1h_2018-07"]["gaps"], r["binance_ETH-USDT_1h_2018-07"]["missing_bars"]) == (3, 18)
    assert r["coinbase_BTC-USD_1h"]["zero_volume"] == 28 and r["coinbase_BTC-USD_1h"]["flat_bars"] == 30


def test_backtest_notebook(executed: dict[str, dict]) -> None:
    r = executed["research_backtest"]
    # The same inputs as tests/acceptance/test_research_backtest_pinned.py.
    assert (r["n_trades"], r["final_equity"]) == (387, 32473.13)
    assert r["equal_to_vectorbt"] is True and r["parity_ok"] is True


def test_sweep_notebook(executed: dict[str, dict]) -> None:
    r = executed["research_sweep"]
    combos, _ = expand_grid(SmaCross, {"fast": range(5, 51, 5), "slow": range(20, 201, 10)})
    assert r["n_combos"] == len(combos) == 174
    again = sweep(sample_data("coinbase_BTC-USD_1h"), SmaCross,
                  {"fast": range(5, 51, 5), "slow": range(20, 201, 10)}, progress=False)
    assert r["best"] == again.best()
    assert r["best_metric"] == again.ranked().iloc[0]["sharpe"]
    assert r["wf_folds"] == (20111 - 6000) // 3000
    assert r["wf_oos_final_equity"] > 0
