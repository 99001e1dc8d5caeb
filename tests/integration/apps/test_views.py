"""Each dashboard's view class, headless (no server): what it shows equals the query layer's
answer (and, where one exists, an independent figure such as final equity − start); live
polling picks up new entries; bad values, an empty database and a vanished session give a
message while the view keeps working."""

from __future__ import annotations

import threading
import time
from decimal import Decimal

import pandas as pd
import pytest
import sqlalchemy as sa

from lyra.audit import EventLog
from lyra.auth.permissions import Principal, Role
from lyra.readside import (
    ManualDesk,
    ReadModel,
    downsample_ohlc,
    fmt_money,
    kpis,
    order_flow,
    rebalance_proposal,
    returns,
    var_es,
)
from lyra.session.config import load_session_config
from lyra.session.registry import SessionRegistry
from lyra.session.runtime import session_instruments
from lyra.store.tables_session import sessions
from lyra.testing.serving import append_fill
from lyra.testing.sessions import demo_config

# Bokeh's ColumnDataSource.from_df calls reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")

TRADER = Principal("tina", Role.TRADER)
ANALYST = Principal("ann", Role.ANALYST)
START = 10_000.0


def _desk(rm: ReadModel, settings) -> ManualDesk:
    info = rm.session("dash")
    return ManualDesk(
        rm.engine,
        session_instruments(load_session_config(info.config)),
        jsonl_path=settings.audit_dir / "events.jsonl",
        equity=Decimal(10_000),
    )


def test_trading_shows_the_fills_bars_and_positions(dash):
    from lyra.dashboards import trading

    _settings, rm = dash
    v = trading.TradingView(rm, "dash", principal=ANALYST, live=False)
    fills = rm.fills("dash")
    assert v.fill_frame["fill_id"].tolist() == fills["fill_id"].tolist()
    assert f">{len(fills):,}<" in v._kpis["Fills"].object
    assert len(v._fills.value) == min(len(fills), trading.FILL_ROWS)
    # Human column names; times as UTC text; the newest fill first, at the config's precision
    # (0.01 USD tick, 1e-8 BTC lot: 0.1 BTC is "0.1", never "0.10000000" or "0.00").
    table = v._fills.value
    assert list(table.columns) == ["Time (UTC)", "Order id", "Instrument", "Side", "Quantity", "Price", "Fee",
                                   "Liquidity", "Notional"]
    newest = fills.iloc[-1]
    row = table.iloc[0]
    assert row["Time (UTC)"] == newest["time"].strftime("%Y-%m-%d %H:%M:%S")
    assert (row["Order id"], row["Instrument"], row["Quantity"]) == (newest["client_order_id"], "BTC/USD", "0.1")
    assert row["Price"] == f"{newest['price']:,.2f}"
    # The whole session on the chart: from its first bar to the last one it saw (data_ts is
    # that bar's close time), downsampled to at most MAX_CANDLES.
    info = rm.session("dash")
    raw = rm.bars("coinbase", "BTC/USD", "1h", end=info.data_ts - 3_600_000 + 1)
    assert v.candles["ts"].tolist() == raw["ts"].tolist()
    assert (
        len(v._candles.data["time"]) == len(downsample_ohlc(raw, trading.MAX_CANDLES)) <= trading.MAX_CANDLES
    )
    assert v.mark == raw["close"].iloc[-1] == rm.last_marks("dash")["coinbase:BTC/USD"]
    pos = rm.positions("dash")
    assert v._positions.value["Quantity"].tolist() == [f"{q:,.8f}".rstrip("0").rstrip(".") for q in pos["quantity"]]
    assert v.__panel__() is not None
    # an analyst sees no ticket; a value out of range is refused and the view keeps its value
    assert not hasattr(v, "_t_qty")
    with pytest.raises(ValueError, match="bars"):
        v.bars = 10
    assert v.bars is None
    v.bars = 500  # only the latest 500 candles
    assert v.candles["ts"].tolist() == raw["ts"].iloc[-500:].tolist()


def _until(pred, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


def test_trading_ticket_orders_are_executed_by_the_running_session(tmp_path_factory):
    """A real paper session runs (paced) in a thread; the ticket sends it an order and a cancel,
    and the view follows each command until the session answered."""
    from lyra.bootstrap import open_engine
    from lyra.dashboards import trading
    from lyra.session.factory import open_session
    from lyra.testing.serving import dashboard_home

    from .conftest import OHLCV

    settings = dashboard_home(tmp_path_factory.mktemp("ticket") / "home", OHLCV, end="2017-08-01")
    _s, engine = open_engine(settings)
    jsonl = settings.audit_dir / "events.jsonl"
    cfg = demo_config(session_id="desk", end="2018-06-01", speed=3_600_000.0)
    s = open_session(cfg, engine=engine, market_dir=settings.market_dir, jsonl_path=jsonl)
    failed: list[BaseException] = []

    def run() -> None:
        try:
            s.run()
        except BaseException as exc:  # surfaced by the assertion below
            failed.append(exc)

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    reg = SessionRegistry(engine)
    try:
        assert _until(lambda: (r := reg.get("desk")) is not None and r["events_processed"] > 0, 60)
        rm = ReadModel(engine, settings.market_dir)
        desk = ManualDesk(engine, dict(s.instruments), session_id="desk", jsonl_path=jsonl)
        v = trading.TradingView(rm, "desk", principal=TRADER, desk=desk, live=False)
        v._t_qty.value = "abc"
        v._review()
        assert "must be numbers" in v._t_out.object and not v._t_confirm.visible
        v._t_qty.value = "0.02"
        v._review()
        assert v._t_confirm.visible
        v._send()
        assert v._t_out.object.startswith("Sent to session desk: waiting for it to take command #")
        cmd_id = v._cmd
        # The ticket follows its order past the session's first answer to the fill.
        assert _until(lambda: (v.tick(), v._cmd is None)[1]), v._t_out.object
        cmd = desk.command(cmd_id)
        cid = cmd.client_order_id
        fill = EventLog(engine).read(session_id="desk", kinds=("order.fill",))
        price = next(e.data()["fill"]["price"] for e in fill if e.data()["client_order_id"] == cid)
        assert v._t_out.object.startswith(f"Sent to session desk: order {cid} accepted by risk (status accepted); "
                                          f"{cid} filled 0.02 at "), v._t_out.object
        assert str(Decimal(price).quantize(Decimal("0.01"))) in v._t_out.object
        created = [e.data() for e in EventLog(engine).read(session_id="desk", kinds=("order.created",))
                   if e.data()["client_order_id"] == cid]
        assert [(c["tag"], c["quantity"], c["order_type"]) for c in created] == [("manual:tina", "0.02", "market")]
        # A resting limit order far below the market, cancelled from the ticket.
        v._t_limit.value = "1000"
        v._review()
        v._send()
        assert _until(lambda: (v.tick(), "accepted by risk" in v._t_out.object)[1]), v._t_out.object
        rest = desk.command(cmd_id + 1).client_order_id
        assert rest in v._t_out.object and v._t_out.object.endswith(" — working.")
        assert v._cmd == cmd_id + 1  # still followed: it rests until it fills or is cancelled
        v._safe_update(False)
        assert rest in v._c_pick.options and all(c.startswith("desk-") for c in v._c_pick.options)
        v._c_pick.value = rest
        v._cancel()
        assert _until(lambda: (v.tick(), v._cmd is None)[1]), v._t_out.object
        assert v._t_out.object == f"Sent to session desk: order {rest} cancelled."
        assert rm.orders("desk").set_index("client_order_id").loc[rest, "status"] == "cancelled"
        assert rest not in v._c_pick.options  # no longer open
    finally:
        reg.request_stop("desk")
        runner.join(60)
        engine.dispose()
    assert not runner.is_alive() and failed == []


def test_live_poll_shows_a_new_fill(dash):
    from lyra.dashboards import trading

    settings, rm = dash
    v = trading.TradingView(rm, "dash", live=False)
    n = len(v.fill_frame)
    fid = append_fill(rm.engine, settings.audit_dir / "events.jsonl", "dash", price="10123.45")
    v.tick()
    assert len(v.fill_frame) == n + 1 and v.fill_frame["fill_id"].iloc[-1] == fid
    assert f">{n + 1:,}<" in v._kpis["Fills"].object and "10,123.45" in v._kpis["Last fill"].object


def test_risk_figures_and_the_kill_switch(dash):
    from lyra.dashboards import risk

    settings, rm = dash
    v = risk.RiskView(rm, "dash", principal=ANALYST, live=False)
    assert not hasattr(v, "_k_reason")  # an analyst may not pull it
    # VaR/ES come from the current positions (test_risk_fees_pages.py checks the figures against
    # np.quantile): flat, they are 0 and the page says why; else positive, with the horizon.
    if (rm.positions("dash")["quantity"] == 0).all():
        assert v.figures["var"] == 0 and "no open positions" in v._method.object
    else:  # the ticket test above left 0.01 BTC
        assert 0 < v.figures["var"] <= v.figures["es"] and "(1 day)" in v._method.object
    pos = rm.positions("dash")
    assert v.figures["gross"] == pytest.approx((pos["quantity"] * pos["mark"]).abs().sum())
    with pytest.raises(ValueError, match="confidence"):
        v.confidence = 1.5
    t = risk.RiskView(
        rm, "dash", principal=TRADER, jsonl_path=settings.audit_dir / "events.jsonl", live=False
    )
    t._arm()
    assert "reason" in t._k_out.object and not t._k_confirm.visible
    t._k_reason.value = "view test"
    t._arm()
    assert t._k_confirm.visible
    t._pull()
    assert "HALTED" in t._cards["Trading state"].object
    kills = rm.risk_state().kills
    assert kills["actor"].iloc[0] == "tina (trader)" and kills["scope"].iloc[0] == "account:dash"
    assert t._kills.value["id"].tolist() == kills["id"].tolist()


def test_executive_kpis_equal_the_query_layer(dash):
    from lyra.dashboards import executive

    _settings, rm = dash
    v = executive.ExecutiveView(rm, "dash", live=False)
    expected = kpis(rm.equity_curve("dash"), rm.fills("dash"), START)
    assert v.kpis == expected
    for name, text in executive.card_values(expected, "USD").items():
        assert text in v._cards[name].object
    row = v.table.set_index("session").loc["dash"]
    assert row["equity"] == pytest.approx(rm.equity_curve("dash")["equity"].iloc[-1])
    assert row["fees"] == pytest.approx(rm.fills("dash")["fee"].sum())


def test_hft_flow_latency_and_fill_ratio(dash):
    from lyra.dashboards import hft

    _settings, rm = dash
    v = hft.HftView(rm, "dash", live=False)
    orders = rm.orders("dash")
    assert v.figures["orders"] == len(orders)
    assert v.figures["fill_ratio"] == pytest.approx((orders["status"] == "filled").mean())
    pd.testing.assert_frame_equal(v.flow, order_flow(rm.fills("dash"), "1D"))
    # the demo config charges 2 bps of slippage against the bar the strategy saw
    session_fills = v.quality[~v.quality["client_order_id"].str.startswith("dash-009")]
    assert session_fills["slippage_bps"].round(1).eq(2.0).all()
    with pytest.raises(ValueError, match="freq"):
        v.freq = "3m"


def test_portfolio_attribution_adds_up_to_the_equity_change(dash):
    from lyra.dashboards import portfolio

    _settings, rm = dash
    v = portfolio.PortfolioView(rm, "dash", live=False)
    bal = v.balances.set_index("session").loc["dash"]
    last = rm.equity_curve("dash")["equity"].iloc[-1]
    assert bal["equity"] == pytest.approx(last) and bal["cash"] + bal["positions_value"] == pytest.approx(
        last
    )
    assert v.by_asset["weight"].sum() == pytest.approx(1.0)
    assert fmt_money(v.balances["equity"].sum(), "USD") in v._cards["Total equity"].object


def test_risk_analytics_equals_the_query_layer(dash):
    from lyra.dashboards import risk_analytics

    _settings, rm = dash
    v = risk_analytics.RiskAnalyticsView(rm, "dash", live=False)
    r = returns(rm.equity_curve("dash")["equity"])
    assert (v.figures["var95"], v.figures["es95"]) == pytest.approx(var_es(r, 0.95))
    assert list(pd.Series(v.corr.to_numpy().diagonal())) == pytest.approx([1.0] * len(v.corr))
    assert len(v._vol.data["vol"]) == len(r)
    with pytest.raises(ValueError, match="window"):
        v.window = 1


def test_rebalancing_proposal_and_bad_targets(dash):
    from lyra.dashboards import rebalancing

    settings, rm = dash
    v = rebalancing.RebalancingView(rm, "dash", principal=TRADER, desk=_desk(rm, settings), live=False)
    last = rm.equity_curve("dash").iloc[-1]
    exp = rebalance_proposal(
        dict(last["positions"]),
        dict(last["marks"]),
        last["equity"],
        {"coinbase:BTC/USD": 1.0},
        fee_rate=0.006,
        slippage_bps=2.0,
    )
    pd.testing.assert_frame_equal(v.proposal, exp)
    v.targets = "coinbase:BTC/USD=1.7"
    assert "0..1" in v.message  # a clear message; the last good proposal stays
    v.targets = "coinbase:BTC/USD=0.25"
    assert v.proposal["target_weight"].iloc[0] == 0.25
    head = rm.head_seq()
    v._arm()
    v._submit()
    # a rebalance is a command the session executes: "dash" has finished, so it is refused
    # with what to do, and nothing is written (a running session executes it:
    # tests/integration/session/test_operator_book.py)
    assert "session is finished, not running" in v._out.object
    assert rm.head_seq() == head
    no = rebalancing.RebalancingView(rm, "dash", principal=ANALYST, live=False)
    assert not hasattr(no, "_confirm")


def test_fees_equal_the_fills(dash):
    from lyra.dashboards import fees

    _settings, rm = dash
    v = fees.FeesView(rm, "dash", live=False)
    f = rm.fees()
    assert v.figures["total"] == pytest.approx(f["fee"].sum())
    pos = rm.positions("dash")
    gross = pos["realized_pnl"].sum() + pos["unrealized_pnl"].fillna(0).sum()
    mine = f[f["session_id"] == "dash"]["fee"].sum()
    assert v.figures["share_of_pnl"] == pytest.approx(mine / gross)
    assert v._tables["venue"].value["fee"].sum() == pytest.approx(f["fee"].sum())
    assert 0 <= v.figures["progress"] <= 1 and v.figures["tier"] >= 0


VIEWS = [
    ("trading", "TradingView"),
    ("risk", "RiskView"),
    ("executive", "ExecutiveView"),
    ("hft", "HftView"),
    ("portfolio", "PortfolioView"),
    ("risk_analytics", "RiskAnalyticsView"),
    ("rebalancing", "RebalancingView"),
    ("fees", "FeesView"),
]


def test_empty_database_and_a_vanishing_session(engine, tmp_path):
    import importlib

    from lyra.dashboards import base as _template

    rm = ReadModel(engine, tmp_path)
    empty = [getattr(importlib.import_module(f"lyra.dashboards.{m}"), c)(rm, None, live=False) for m, c in VIEWS]
    assert all(v.message == _template.NO_SESSION for v in empty)
    SessionRegistry(engine).upsert("ghost", demo_config(session_id="ghost"), status="running")
    views = [getattr(importlib.import_module(f"lyra.dashboards.{m}"), c)(rm, "ghost", live=False) for m, c in VIEWS]
    assert all(v.session_id == "ghost" and "Could not" not in v.message for v in views)
    with EventLog(engine, None).transaction() as tx:  # what a starting session logs
        tx.append("session.started", {"config": {}}, actor="session:ghost", session_id="ghost")
    for v in empty:  # the empty views pick the new session up on their next poll
        v.tick()
        assert v.session_id == "ghost" and v.message != _template.NO_SESSION
    with engine.begin() as conn:
        conn.execute(sa.delete(sessions).where(sessions.c.session_id == "ghost"))
    for v in views:
        v._safe_update(True)
        assert "no longer exists" in v.message and v.session_id == ""
