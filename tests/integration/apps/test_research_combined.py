"""Research results saved to disk and served beside the database (lyra.dashboards.combined).

Independent references: the vectorbt Portfolio inside the backtest result (its order records,
value and trades) for the research session, and SQL on the ledger's ``fills`` table for the
database session; never the sources' own frames.
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

import lyra
from lyra.core.errors import ValidationError
from lyra.dashboards.combined import CombinedSource, ResearchFileError, research_results
from lyra.dashboards.live_store import LiveStore
from lyra.dashboards.sources import DashboardSource, ResearchSource, research_source
from lyra.demo import DEMO_SESSION
from lyra.execution.costs import CostModel
from lyra.readside import ReadModel
from lyra.research import sample_data
from lyra.strategy import SmaCross

pytestmark = [pytest.mark.numba, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:panel.widgets.tables"),
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")]

FRAMES = ("_fills", "_equity", "_positions")


@pytest.fixture(scope="module")
def bt() -> tuple[Any, ResearchSource]:
    """The demo strategy with the demo's costs on 3,000 hourly bars, as ``research-demo``."""
    data = sample_data("coinbase_BTC-USD_1h").iloc[:3000]
    spec = DEMO_SESSION["instruments"]["BTC/USD"]
    cost = CostModel(maker_fee=Decimal(spec["maker_fee"]), taker_fee=Decimal(spec["taker_fee"]),
                     slippage_bps=DEMO_SESSION["slippage_bps"])
    result = lyra.backtest(SmaCross(**DEMO_SESSION["params"]), data, cost=cost)
    return result, research_source(result, data=data, session_id="research-demo", venue="coinbase",
                                   symbol="BTC/USD")


def assert_same(a: ResearchSource, b: ResearchSource) -> None:
    assert a.info == b.info
    for name in FRAMES:
        pd.testing.assert_frame_equal(getattr(a, name), getattr(b, name), check_exact=True)
        assert dict(getattr(a, name).dtypes) == dict(getattr(b, name).dtypes), name
    assert a._bars.keys() == b._bars.keys()
    for key in a._bars:
        pd.testing.assert_frame_equal(a._bars[key], b._bars[key], check_exact=True)


# ------------------------------------------------------------------ save / load
def test_save_load_round_trip_is_exact(bt: Any, tmp_path: Path) -> None:
    result, src = bt
    path = src.save(tmp_path / "research" / "research-demo")
    assert sorted(p.name for p in path.iterdir()) == ["bars-0.parquet", "equity.parquet", "fills.parquet",
                                                     "header.json", "positions.parquet"]
    assert [p.name for p in path.parent.iterdir()] == ["research-demo"]  # no temporary folder left
    for p in path.glob("*.parquet"):  # Parquet and JSON only: nothing a reader would unpickle
        assert p.read_bytes()[:4] == b"PAR1"
    assert json.loads((path / "header.json").read_text())["info"]["session_id"] == "research-demo"
    back = ResearchSource.load(path)
    assert_same(src, back)
    # and the figures are still vectorbt's
    rec = result.portfolio.orders.records_arr
    np.testing.assert_array_equal(back.fills("research-demo")["price"], rec["price"])
    assert back.equity_curve("research-demo")["equity"].iloc[-1] == float(result.portfolio.value().iloc[-1])
    assert back.events(kinds=["session.equity"], limit=3).equals(src.events(kinds=["session.equity"], limit=3))


def test_save_replaces_an_earlier_result_and_nothing_else(bt: Any, tmp_path: Path) -> None:
    _result, src = bt
    target = tmp_path / "r"
    src.renamed("first").save(target)
    src.save(target)  # replaces it
    assert ResearchSource.load(target).info.session_id == "research-demo"
    assert [p.name for p in tmp_path.iterdir()] == ["r"]  # the old copy and the temp folder are gone
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "todo.txt").write_text("keep me")
    with pytest.raises(ValidationError, match="not a saved research result"):
        src.save(foreign)
    assert (foreign / "todo.txt").read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes", "r"]


def _truncate(d: Path) -> None:
    p = d / "fills.parquet"
    p.write_bytes(p.read_bytes()[:-40])


def _flip_a_byte(d: Path) -> None:
    p = d / "equity.parquet"
    raw = bytearray(p.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    p.write_bytes(bytes(raw))


def _wrong_type_with_matching_digest(d: Path) -> None:
    """A well-formed Parquet file with a text ``quantity`` and a header updated to match it:
    the schema check, not the digest, must refuse it."""
    import hashlib

    p = d / "fills.parquet"
    t = pq.read_table(p)
    t = t.set_column(t.column_names.index("quantity"), "quantity", pa.array(["1"] * t.num_rows))
    pq.write_table(t, p)
    h = json.loads((d / "header.json").read_text())
    h["files"]["fills.parquet"].update(bytes=p.stat().st_size, sha256=hashlib.sha256(p.read_bytes()).hexdigest())
    (d / "header.json").write_text(json.dumps(h))


def _edit_header(**info: Any) -> Any:
    def edit(d: Path) -> None:
        h = json.loads((d / "header.json").read_text())
        h["info"].update(info)
        (d / "header.json").write_text(json.dumps(h))
    return edit


@pytest.mark.parametrize(("damage", "file", "problem"), [
    (_truncate, "fills.parquet", "truncated"),
    (_flip_a_byte, "equity.parquet", "SHA-256"),
    (lambda d: (d / "positions.parquet").unlink(), "positions.parquet", "is missing"),
    (lambda d: (d / "header.json").unlink(), "header.json", "is missing"),
    (lambda d: (d / "header.json").write_text('{"format": "lyra-research/1", "info": '), "header.json",
     "not valid JSON"),
    (lambda d: (d / "header.json").write_text('{"format": "pickle"}'), "header.json", "format 'pickle'"),
    (_edit_header(session_id="<script>"), "header.json", "info.session_id"),
    (_edit_header(events_processed="many"), "header.json", "info.events_processed must be a int"),
    (_wrong_type_with_matching_digest, "fills.parquet", "column 'quantity' is string"),
], ids=["truncated", "flipped-byte", "missing-file", "no-header", "partial-header", "foreign-format",
        "hostile-id", "bad-field", "bad-schema"])
def test_a_damaged_result_is_refused_naming_the_file(bt: Any, tmp_path: Path, damage: Any, file: str,
                                                     problem: str) -> None:
    _result, src = bt
    d = src.save(tmp_path / "research" / "bad")
    damage(d)
    with pytest.raises(ResearchFileError) as err:
        ResearchSource.load(d)
    assert str(d / file) in str(err.value) and problem in str(err.value), str(err.value)


def test_research_results_skips_bad_folders_with_a_warning(bt: Any, tmp_path: Path,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    _result, src = bt
    src.save(tmp_path / "research" / "research-demo")
    _truncate(src.renamed("broken").save(tmp_path / "research" / "broken"))
    (tmp_path / "research" / "empty").mkdir()
    shutil.copytree(tmp_path / "research" / "research-demo", tmp_path / "research" / ".x.tmp")  # a save in progress
    with caplog.at_level(logging.WARNING, logger="lyra.dashboards.combined"):
        found = research_results(tmp_path)
    assert [s.info.session_id for s in found] == ["research-demo"]
    skipped = [r.getMessage() for r in caplog.records]
    assert len(skipped) == 2 and all(m.startswith("skipping research result") for m in skipped)
    assert "fills.parquet" in skipped[0] and "header.json" in skipped[1]
    assert research_results(tmp_path / "nowhere") == []


# ------------------------------------------------------------------ CombinedSource
def _sql_fills(rm: ReadModel, session_id: str) -> tuple[int, Decimal]:
    with rm.engine.connect() as conn:
        fees = conn.execute(sa.text("select fee from fills where session_id = :s"), {"s": session_id}).scalars()
        values = [Decimal(str(f)) for f in fees]
    return len(values), sum(values, Decimal(0))


def test_combined_source_conforms_and_keeps_the_databases_attributes(bt: Any, dash: Any) -> None:
    _settings, rm = dash
    combined = CombinedSource(rm, [bt[1]])
    assert isinstance(combined, DashboardSource)
    protocol = {n for n, v in vars(DashboardSource).items() if callable(v) and not n.startswith("_")}
    for m in protocol:  # the same signatures as the read model's, so any view can take it
        ours, theirs = inspect.signature(getattr(CombinedSource, m)), inspect.signature(getattr(ReadModel, m))
        assert list(ours.parameters) == list(theirs.parameters), m
    assert combined.engine is rm.engine and combined.market_dir == rm.market_dir
    assert combined.head_seq() == rm.head_seq() > 0


def test_combined_source_lists_both_and_routes(bt: Any, dash: Any) -> None:
    result, src = bt
    _settings, rm = dash
    combined = CombinedSource(rm, [src])
    db_ids = [s.session_id for s in rm.sessions()]
    assert "dash" in db_ids
    assert [s.session_id for s in combined.sessions()] == [*db_ids, "research-demo"]
    assert combined.default_session_id() == rm.default_session_id() != "research-demo"
    info = combined.session("research-demo")
    assert info is not None and info.mode == "research" and combined.session("dash") == rm.session("dash")
    rec = result.portfolio.orders.records_arr
    n_db, _fees_db = _sql_fills(rm, "dash")
    np.testing.assert_array_equal(combined.fills("research-demo")["fee"], rec["fees"])
    assert len(combined.fills("dash")) == n_db and len(combined.fills("dash", limit=5)) == 5
    assert len(combined.fills()) == len(rm.fills()) + len(rec)  # "all sessions" include the research one
    assert len(combined.fills(since_seq=1)) == len(rm.fills(since_seq=1))  # nothing new in a backtest
    assert set(combined.fees()["session_id"]) == set(rm.fees()["session_id"]) | {"research-demo"}
    assert combined.positions("research-demo")["quantity"].iloc[0] == pytest.approx(
        float(result.portfolio.assets().iloc[-1]), abs=1e-12)
    assert len(combined.orders(["research-demo", "dash"])) == len(rm.orders(["dash"])) + len(rec)
    assert combined.orders(["research-demo"], open_only=True).empty
    assert combined.equity_curve("research-demo")["equity"].iloc[-1] == float(result.portfolio.value().iloc[-1])
    assert combined.equity_curve("dash").equals(rm.equity_curve("dash"))
    assert combined.last_marks("dash") == rm.last_marks("dash")
    assert not combined.changes_since(0, "research-demo").any and combined.changes_since(0).any
    assert combined.events(kinds=["session.equity"], session_id="research-demo", limit=1)["actor"].iloc[0] == \
        "research"
    assert combined.events(limit=3).equals(rm.events(limit=3))  # the event log is the database's
    assert combined.book("coinbase:BTC/USD", session_id="research-demo") is None
    assert combined.book_instruments() == rm.book_instruments()
    # bars: the market store's when it has them; the result's own for an instrument it has not
    assert combined.bars("coinbase", "BTC/USD", "1h").equals(rm.bars("coinbase", "BTC/USD", "1h"))
    lab = research_source(result, session_id="lab", venue="lab", symbol="BTC/USD")
    with_lab = CombinedSource(rm, [src, lab])
    assert rm.bars("lab", "BTC/USD", "1h").empty
    np.testing.assert_array_equal(with_lab.bars("lab", "BTC/USD", "1h")["close"],
                                  result.vbt_kwargs["close"].to_numpy())
    assert with_lab.bars("lab", "ETH/USD", "1h").empty


def _kpi_card(view: Any, name: str) -> str:
    return str(view._kpis[name].object).split('class="lyra-kpi-value">')[1].split("</div>")[0]


def test_views_over_the_combined_source(bt: Any, dash: Any) -> None:
    from lyra.dashboards.executive import ExecutiveView
    from lyra.dashboards.fees import FeesView
    from lyra.dashboards.trading import TradingView

    result, src = bt
    _settings, rm = dash
    combined = CombinedSource(rm, [src])
    pf = result.portfolio
    rec = pf.orders.records_arr
    # the research session shows vectorbt's figures
    ex = ExecutiveView(combined, "research-demo", live=False)
    assert ex.message == "" and ex.kpis is not None
    assert ex.kpis.pnl == pytest.approx(float(pf.value().iloc[-1]) - result.init_cash, rel=1e-12)
    assert ex.kpis.trades == int(pf.trades.count()) == result.metrics["n_trades"]
    assert ex.kpis.fees == pytest.approx(float(rec["fees"].sum()), rel=1e-9)
    tv = TradingView(combined, "research-demo", live=False)
    assert tv.message == "" and _kpi_card(tv, "Fills") == f"{len(rec):,}"
    assert tv.fill_frame["price"].tolist() == rec["price"].tolist() and len(tv.shown_bars) > 0
    fv = FeesView(combined, "research-demo", live=False)
    assert fv.figures["session"] == pytest.approx(float(rec["fees"].sum()), rel=1e-9)
    # the database session shows the ledger's
    n_db, fees_db = _sql_fills(rm, "dash")
    ex_db = ExecutiveView(combined, "dash", live=False)
    assert ex_db.kpis is not None and ex_db.kpis.fees == pytest.approx(float(fees_db), rel=1e-12)
    tv_db = TradingView(combined, "dash", live=False)
    assert tv_db.message == "" and _kpi_card(tv_db, "Fills") == f"{n_db:,}"
    # through the live store (as under `lyra serve`): the cached reader routes the same way
    store = LiveStore(combined, autostart=False)
    live = TradingView(combined, "research-demo", store=store)
    try:
        assert live.rm.engine is rm.engine and live.message == ""
        assert _kpi_card(live, "Fills") == f"{len(rec):,}"
        assert "research-demo" in live._picker.options
    finally:
        live.close()


class _Later(ReadModel):
    """A database in which a session ``late`` appears after the combined source was made."""

    appeared = False

    def sessions(self) -> Any:
        found = super().sessions()
        if self.appeared:
            found.append(dataclass_replace(found[0], session_id="late"))
        return found

    def session(self, session_id: str) -> Any:
        if self.appeared and session_id == "late":
            return dataclass_replace(super().session("dash"), session_id="late")
        return super().session(session_id)


def dataclass_replace(obj: Any, **changes: Any) -> Any:
    import dataclasses

    return dataclasses.replace(obj, **changes)


def test_ids_never_collide(bt: Any, dash: Any, caplog: pytest.LogCaptureFixture) -> None:
    result, src = bt
    settings, rm = dash
    clash = src.renamed("dash")  # the database has a session "dash"
    twin = src.renamed("research-demo")
    with caplog.at_level(logging.WARNING, logger="lyra.dashboards.combined"):
        combined = CombinedSource(rm, [clash, src, twin])
    ids = [s.session_id for s in combined.sessions()]
    assert len(ids) == len(set(ids)) and ids[-3:] == ["dash-2", "research-demo", "research-demo-2"]
    assert combined.session("dash") == rm.session("dash")  # the database's session keeps its id
    n_db, _fees = _sql_fills(rm, "dash")
    assert len(combined.fills("dash")) == n_db
    renamed = combined.fills("dash-2")
    assert len(renamed) == len(result.portfolio.orders.records_arr) and set(renamed["session_id"]) == {"dash-2"}
    assert sum("is taken" in r.getMessage() for r in caplog.records) == 2
    # a database session created later under a research id wins; the research one leaves the list
    later = _Later(rm.engine, settings.market_dir)
    combined = CombinedSource(later, [src.renamed("late")])
    assert combined.session("late").mode == "research"  # type: ignore[union-attr]
    later.appeared = True
    with caplog.at_level(logging.WARNING, logger="lyra.dashboards.combined"):
        assert [s.session_id for s in combined.sessions()].count("late") == 1
    assert combined.session("late").mode == "paper"  # type: ignore[union-attr]
    assert combined.fills("late").empty  # routed to the database, which has no fills for it
    assert any("is hidden" in r.getMessage() for r in caplog.records)
