"""The dashboard views over a research backtest (:func:`lyra.dashboards.research_source`).

Independent reference: the vectorbt Portfolio inside the result (its order records, its value,
its trades), never the source's own frames. The protocol test scans the views' code, so a
view that starts calling a new read method fails here until the sources have it.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

import lyra
from lyra.core.errors import ValidationError
from lyra.dashboards.sources import DashboardSource, ResearchSource, research_source
from lyra.readside import ReadModel
from lyra.research import sample_data
from lyra.strategy import Rebalance, SmaCross

pytestmark = [pytest.mark.numba, pytest.mark.slow,
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:panel.widgets.tables"),
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")]

DASHBOARDS = Path(lyra.__file__).parent / "dashboards"
#: names a view's data source goes by in lyra/dashboards (``self.rm``, ``rm``, ``self._rm``)
SOURCE_NAMES = {"rm", "_rm", "source"}


def calls_on_sources() -> dict[str, set[str]]:
    """Every method called on a data source in lyra/dashboards/*.py -> the files calling it."""
    found: dict[str, set[str]] = {}
    for path in sorted(DASHBOARDS.glob("*.py")):
        if path.name == "sources.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else owner.attr if isinstance(owner, ast.Attribute) \
                else None
            if name in SOURCE_NAMES:
                found.setdefault(node.func.attr, set()).add(path.name)
    return found


def protocol_methods() -> set[str]:
    return {n for n, v in vars(DashboardSource).items() if callable(v) and not n.startswith("_")}


def test_every_method_the_views_call_is_in_the_protocol_and_the_sources() -> None:
    calls = calls_on_sources()
    # the scan itself works: the chart, KPI and session methods are seen
    assert {"fills", "equity_curve", "sessions", "head_seq", "changes_since", "bars"} <= set(calls)
    missing = {m: sorted(f) for m, f in calls.items() if m not in protocol_methods()}
    assert not missing, f"views call read methods the DashboardSource protocol lacks: {missing}"
    for m in protocol_methods():
        assert callable(getattr(ResearchSource, m, None)), f"ResearchSource has no {m}()"
        assert callable(getattr(ReadModel, m, None)), f"ReadModel has no {m}()"
        ours, theirs = inspect.signature(getattr(ResearchSource, m)), inspect.signature(getattr(ReadModel, m))
        assert list(ours.parameters) == list(theirs.parameters), m
        assert [p.kind for p in ours.parameters.values()] == [p.kind for p in theirs.parameters.values()], m


# ------------------------------------------------------------------ one instrument
@pytest.fixture(scope="module")
def bt() -> tuple[Any, Any, ResearchSource]:
    data = sample_data("coinbase_BTC-USD_1h").iloc[:6000]
    result = lyra.backtest(SmaCross(fast=10, slow=30), data)
    return data, result, research_source(result, data=data, venue="coinbase", symbol="BTC/USD")


def test_source_conforms(bt: Any) -> None:
    _data, _result, src = bt
    assert isinstance(src, DashboardSource)
    info = src.session("research")
    assert info is not None and (info.mode, info.status, info.timeframe) == ("research", "finished", "1h")
    assert src.session("other") is None and src.default_session_id() == "research"
    assert src.head_seq() == 0 and not src.changes_since(0).any
    assert src.book("coinbase:BTC/USD") is None and src.book_instruments() == []
    assert src.orders("research", open_only=True).empty and src.risk_decisions().empty


def test_fills_and_equity_equal_vectorbt(bt: Any, dash: Any) -> None:
    _data, result, src = bt
    pf = result.portfolio
    rec = pf.orders.records_arr
    f = src.fills("research")
    assert len(f) == len(rec) > 50
    np.testing.assert_array_equal(f["quantity"], rec["size"])
    np.testing.assert_array_equal(f["price"], rec["price"])
    np.testing.assert_array_equal(f["fee"], rec["fees"])
    assert list(f["side"]) == ["buy" if s == 0 else "sell" for s in rec["side"]]
    assert list(f["time"]) == list(pd.DatetimeIndex(pf.wrapper.index)[rec["idx"]])
    assert list(f["client_order_id"]) == [f"bt-{k}" for k in range(1, len(rec) + 1)]
    assert set(f["liquidity"]) == {"taker"} and set(f["fee_currency"]) == {"USD"}
    # the same columns and dtypes as the database's fills of a finished paper session
    _settings, rm = dash
    real = rm.fills("dash")
    assert len(real) > 0
    assert list(f.columns) == list(real.columns)
    assert dict(f.dtypes) == dict(real.dtypes)
    e = src.equity_curve("research")
    np.testing.assert_allclose(e["equity"], pf.value().to_numpy(), rtol=0, atol=0)
    assert list(e["time"]) == list(pd.DatetimeIndex(pf.wrapper.index))
    assert list(e.columns) == list(rm.equity_curve("dash").columns)
    assert src.last_marks("research") == {"coinbase:BTC/USD": float(result.vbt_kwargs["close"].iloc[-1])}
    # positions at the end: vectorbt's holding; realised + unrealised - fees = its PnL
    pos = src.positions("research")
    assert list(pos.columns) == list(rm.positions("dash").columns)
    assert pos["quantity"].iloc[0] == pytest.approx(float(pf.assets().iloc[-1]), abs=1e-12)
    net = float(pos["realized_pnl"].sum() + pos["unrealized_pnl"].sum() - pos["fees"].sum())
    assert net == pytest.approx(float(pf.value().iloc[-1]) - result.init_cash, rel=1e-9)


def test_bars_are_the_backtest_data(bt: Any) -> None:
    data, _result, src = bt
    b = src.bars("coinbase", "BTC/USD", "1h")
    np.testing.assert_array_equal(b["close"], data["close"].to_numpy())
    np.testing.assert_array_equal(b["high"], data["high"].to_numpy())
    end = int(b["ts"].iloc[100])
    assert len(src.bars("coinbase", "BTC/USD", "1h", end=end)) == 100  # [start, end)
    assert src.bars("coinbase", "ETH/USD", "1h").empty


def _card_value(html: str) -> str:
    return html.split('class="lyra-kpi-value">')[1].split("</div>")[0]


def test_views_show_the_backtest(bt: Any) -> None:
    from lyra.dashboards.executive import ExecutiveView
    from lyra.dashboards.fees import FeesView
    from lyra.dashboards.portfolio import PortfolioView
    from lyra.dashboards.risk_analytics import RiskAnalyticsView
    from lyra.dashboards.trading import TradingView

    _data, result, src = bt
    pf = result.portfolio
    rec = pf.orders.records_arr
    final = float(pf.value().iloc[-1])
    views = {V.__name__: V(src, live=False) for V in (TradingView, ExecutiveView, PortfolioView,
                                                     RiskAnalyticsView, FeesView)}
    for name, v in views.items():
        v.tick()  # a poll finds nothing new and changes nothing
        assert not v.message.startswith("Could not"), (name, v.message)
        assert v.session_id == "research", name
    t = views["TradingView"]
    # the book shows its empty state (no level-2 data in a backtest), not an error
    assert t._book.instrument_id == "" and t._book.note.startswith("**Order book**")
    assert "Could not" not in t._book.note
    assert _card_value(t._kpis["Fills"].object) == f"{len(rec):,}"
    side, qty, _at, price = _card_value(t._kpis["Last fill"].object).split()
    assert side == ("buy" if rec["side"][-1] == 0 else "sell")
    assert float(qty.replace(",", "")) == pytest.approx(float(rec["size"][-1]), rel=1e-4)
    assert float(price.replace(",", "")) == pytest.approx(float(rec["price"][-1]), abs=0.006)
    assert len(t.shown_bars) > 0 and t.fill_frame["price"].tolist() == rec["price"].tolist()
    k = views["ExecutiveView"].kpis
    assert k is not None
    assert k.pnl == pytest.approx(final - result.init_cash, rel=1e-12)
    assert k.trades == int(pf.trades.count()) == result.metrics["n_trades"]
    assert k.fees == pytest.approx(float(rec["fees"].sum()), rel=1e-9)
    assert k.sharpe == pytest.approx(result.metrics["sharpe"], rel=1e-9)
    assert k.max_drawdown == pytest.approx(result.metrics["max_drawdown"], rel=1e-9)
    p = views["PortfolioView"]
    assert p.balances["equity"].iloc[0] == pytest.approx(final, rel=1e-12)
    assert p.attribution["net_pnl"].sum() == pytest.approx(final - result.init_cash, rel=1e-9)
    r = views["RiskAnalyticsView"]
    assert r.figures["max_dd"] == pytest.approx(-result.metrics["max_drawdown"], rel=1e-9)
    fv = views["FeesView"]
    assert fv.figures["session"] == pytest.approx(float(rec["fees"].sum()), rel=1e-9)


def test_a_view_over_a_backtest_starts_no_poller(bt: Any) -> None:
    from lyra.dashboards import TradingView

    _data, result, src = bt
    v = TradingView(src)  # live by default: a static source still starts nothing
    assert v.store is None and v._callback is None
    assert v.session_id == "research" and v.message == ""
    assert len(v.fill_frame) == len(result.portfolio.orders.records_arr)


def test_views_without_data_build_candles_from_the_result(bt: Any) -> None:
    from lyra.dashboards.trading import TradingView

    data, result, _src = bt
    src = research_source(result, venue="coinbase", symbol="BTC/USD")  # no data: opens and closes only
    b = src.bars("coinbase", "BTC/USD", "1h")
    np.testing.assert_array_equal(b["open"], data["open"].to_numpy())  # next_open fills keep the opens
    assert (b["high"] >= b[["open", "close"]].max(axis=1)).all()
    v = TradingView(src, live=False)
    assert v.message == "" and len(v.shown_bars) > 0


# ------------------------------------------------------------------ weights (several instruments)
def test_weights_backtest() -> None:
    from lyra.dashboards.executive import ExecutiveView
    from lyra.dashboards.portfolio import PortfolioView

    btc = sample_data("binance_BTC-USDT_1d_2018-04")
    eth = sample_data("binance_ETH-USDT_1d_2018-07")
    data = {"BTC/USDT": btc, "ETH/USDT": eth}
    result = lyra.backtest(Rebalance(weights={"BTC/USDT": 0.6, "ETH/USDT": 0.4}, every=7), data)
    src = research_source(result, data=data, venue="binance")
    rec = result.portfolio.orders.records_arr
    f = src.fills()
    assert len(f) == len(rec) > 2
    cols = list(result.portfolio.wrapper.columns)
    order = np.lexsort((rec["id"], rec["idx"]))
    assert list(f["symbol"]) == [cols[c] for c in rec["col"][order]]
    np.testing.assert_array_equal(f["quantity"], rec["size"][order])
    assert src.info.symbols == ("BTC/USDT", "ETH/USDT") and src.info.quote == "USDT"
    final = float(result.portfolio.value().iloc[-1])
    ex = ExecutiveView(src, live=False)
    assert ex.kpis is not None and ex.kpis.equity == pytest.approx(final, rel=1e-12)
    pv = PortfolioView(src, live=False)
    assert set(pv.by_asset["asset"]) == {"BTC", "ETH", "USDT"}
    assert pv.by_asset["value"].sum() == pytest.approx(final, rel=1e-9)
    assert not ex.message and not pv.message


def test_bad_input_is_refused(bt: Any) -> None:
    _data, result, _src = bt
    with pytest.raises(ValidationError, match="lyra.backtest"):
        research_source("not a result")
    with pytest.raises(ValidationError, match="BASE/QUOTE"):
        research_source(result, symbol="BTCUSD")
    with pytest.raises(ValidationError, match="session_id"):
        research_source(result, session_id="")
    with pytest.raises(ValidationError, match="data"):
        research_source(result, data={"ETH/USD": pd.DataFrame()}, symbol="BTC/USD")
