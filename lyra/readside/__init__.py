"""lyra.readside: the small query layer the dashboards (and notebooks) read through.

>>> rm = ReadModel(engine, market_dir)
>>> rm.fills("demo").tail()          # DataFrames with float columns for display
>>> kpis(rm.equity_curve("demo"), rm.fills("demo"))

No SQL lives in the apps: they call :class:`ReadModel` and the pure functions of
:mod:`lyra.readside.analytics`. The only writes a dashboard makes go through
:mod:`lyra.readside.actions` (kill switch, manual order ticket), permission- and risk-checked.
"""

from lyra.readside.actions import MANUAL_SESSION, ManualDesk, pull_kill_switch
from lyra.readside.analytics import (
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
    returns,
    rolling_volatility,
    sharpe,
    trade_pnls,
    var_es,
    weights,
)
from lyra.readside.model import OPEN_STATUSES, Changes, ReadModel, RiskState, SessionInfo

__all__ = [
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
    "returns",
    "rolling_volatility",
    "sharpe",
    "trade_pnls",
    "var_es",
    "weights",
]
