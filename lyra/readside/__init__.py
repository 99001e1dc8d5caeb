"""lyra.readside: the small query layer the dashboards (and notebooks) read through.

>>> import tempfile
>>> from pathlib import Path
>>> from lyra.feeds import MarketStore, import_file
>>> from lyra.sample_data import sample_ohlcv_dir
>>> from lyra.session.factory import open_session
>>> from lyra.store import create_engine_for, upgrade
>>> from lyra.testing.sessions import demo_config
>>> market_dir = Path(tempfile.mkdtemp())    # in a notebook: load_settings().market_dir
>>> _ = import_file(sample_ohlcv_dir() / "coinbase_BTC-USD_1h.csv.gz", store=MarketStore(market_dir))
>>> engine = create_engine_for("sqlite://")  # in a notebook: lyra.bootstrap.open_engine()[1]
>>> upgrade(engine)
>>> _ = open_session(demo_config(end="2017-09-01"), engine=engine, market_dir=market_dir).run()
>>> rm = ReadModel(engine, market_dir)
>>> rm.fills("demo")[["side", "quantity", "price"]].tail(2)   # float columns, for display
    side  quantity   price
45  sell       0.1  4587.00
46   buy       0.1  4630.94
>>> k = kpis(rm.equity_curve("demo"), rm.fills("demo"))
>>> k.trades, round(k.pnl, 2)   # round trips after fees (lyra.analytics): 23 closed + 1 open
(24, 158.08)
>>> engine.dispose()

No SQL lives in the apps: they call :class:`ReadModel` and the pure functions of
:mod:`lyra.readside.analytics`. The only writes a dashboard makes go through
:mod:`lyra.readside.actions` (kill switch, manual order ticket), permission- and risk-checked.
"""

from lyra.readside.actions import MANUAL_SESSION, ManualDesk, pull_kill_switch
from lyra.readside.analytics import (
    CHART_TIMEFRAMES,
    Kpis,
    downsample_ohlc,
    drawdown,
    execution_quality,
    fee_tier_progress,
    fmt_money,
    fmt_num,
    fmt_pct,
    kpis,
    order_flow,
    periods_per_year,
    rebalance_proposal,
    resample_ohlc,
    returns,
    rolling_volatility,
    sharpe,
    timeframe_choices,
    trade_pnls,
    var_es,
    weights,
)
from lyra.readside.model import OPEN_STATUSES, Changes, ReadModel, RiskState, SessionInfo

__all__ = [
    "CHART_TIMEFRAMES",
    "MANUAL_SESSION",
    "OPEN_STATUSES",
    "Changes",
    "Kpis",
    "ManualDesk",
    "ReadModel",
    "RiskState",
    "SessionInfo",
    "downsample_ohlc",
    "drawdown",
    "execution_quality",
    "fee_tier_progress",
    "fmt_money",
    "fmt_num",
    "fmt_pct",
    "kpis",
    "order_flow",
    "periods_per_year",
    "pull_kill_switch",
    "rebalance_proposal",
    "resample_ohlc",
    "returns",
    "rolling_volatility",
    "sharpe",
    "timeframe_choices",
    "trade_pnls",
    "var_es",
    "weights",
]
