"""Money in different currencies is never summed without a conversion: with a USD session and
a USDT session, the portfolio page's totals, weights and chart categories are per currency,
each total equal to that session's own last equity snapshot."""

from __future__ import annotations

from typing import Any

import pytest

from lyra.bootstrap import open_engine
from lyra.feeds import MarketStore, import_file
from lyra.readside import ReadModel, fmt_money
from lyra.session.factory import open_session
from lyra.testing.serving import dashboard_home

from .conftest import OHLCV, REPO

# Panel's Tabulator and Bokeh's ColumnDataSource call reset_index(inplace=True), deprecated in pandas 3.1.
pytestmark = [pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:panel.widgets.tables"),
              pytest.mark.filterwarnings("ignore::pandas.errors.Pandas4Warning:bokeh.models.sources")]

USDT_SESSION: dict[str, Any] = {
    "session_id": "tether", "mode": "paper", "strategy": "sma_cross", "params": {"fast": 5, "slow": 20},
    "venue": "binance", "symbols": ["BTC/USDT"], "timeframe": "1h", "quantity": "0.05",
    "balances": {"USDT": "5000"},
    "instruments": {"BTC/USDT": {"price_increment": "0.01", "size_increment": "0.000001",
                                 "min_notional": "10", "maker_fee": "0.001", "taker_fee": "0.001"}},
}


def test_totals_weights_and_starting_equity_are_per_currency(tmp_path) -> None:
    from lyra.dashboards import portfolio
    from lyra.session.config import load_session_config

    settings = dashboard_home(tmp_path / "home", OHLCV, end="2017-09-01")
    import_file(REPO / "data" / "ohlcv" / "binance_BTC-USDT_1h_2018-04.csv.gz", store=MarketStore(settings.market_dir))
    _s, engine = open_engine(settings)
    try:
        open_session(load_session_config(USDT_SESSION), engine=engine, market_dir=settings.market_dir).run()
        rm = ReadModel(engine, settings.market_dir)
        usd = float(rm.equity_curve("dash")["equity"].iloc[-1])
        usdt = float(rm.equity_curve("tether")["equity"].iloc[-1])
        v = portfolio.PortfolioView(rm, "dash", live=False)
        card = v._cards["Total equity"].object
        assert f"{fmt_money(usd, 'USD')} · {fmt_money(usdt, 'USDT')}" in card
        assert fmt_money(usd + usdt, "USD") not in card  # never one number across currencies
        for frame in (v.by_asset, v.by_strategy):
            weights = frame.groupby("currency")["weight"].sum()
            assert weights.to_dict() == pytest.approx({"USD": 1.0, "USDT": 1.0})
        assert v.by_strategy.set_index("currency")["equity"].to_dict() == pytest.approx({"USD": usd, "USDT": usdt})
        assert "sma_cross USD" in v._fs.x_range.factors and "sma_cross USDT" in v._fs.x_range.factors
        assert set(v.attribution["currency"]) == {"USD", "USDT"}
        # The executive page: each session in its own currency, from its own starting balance.
        from lyra.dashboards import executive

        assert executive.start_equity(rm.session("tether")) == 5000
        assert executive.ExecutiveView(rm, "tether", live=False).kpis.start_equity == 5000
        e = executive.ExecutiveView(rm, "dash", live=False)
        assert e.kpis.start_equity == 10_000
        assert e.table.set_index("session")["currency"].to_dict() == {"dash": "USD", "tether": "USDT"}
    finally:
        engine.dispose()


def test_a_start_in_several_currencies_is_not_added_up() -> None:
    from types import SimpleNamespace

    from lyra.dashboards import executive

    both = SimpleNamespace(balances={"USD": 10_000.0, "BTC": 1.0}, quote="USD")
    assert executive.start_equity(both) is None  # the first snapshot values the BTC at its mark
    assert executive.start_equity(SimpleNamespace(balances={"USD": 10_000.0, "BTC": 0.0}, quote="USD")) == 10_000
