"""The strategy contract: typed parameters, a vectorized form and an incremental form.

>>> from lyra.strategy import SmaCross
>>> s = SmaCross(fast=10, slow=30)
>>> sig = s.signals(df)                    # research: entries/exits for vectorbt
>>> live = s.incremental("BTC-USDT")       # sessions: live.on_bar(bar) -> [OrderIntent]
"""

from lyra.strategy.base import (
    ENTRY,
    EXIT,
    FILL_CHOICES,
    NO_SIGNAL,
    FillAt,
    IncrementalSignalStrategy,
    IndicatorCache,
    Signals,
    Strategy,
    check_ohlcv,
)
from lyra.strategy.bollinger import Bollinger, BollingerIncremental, BollingerParams
from lyra.strategy.params import StrategyParams, make_params
from lyra.strategy.rebalance import Rebalance, RebalanceIncremental, RebalanceParams
from lyra.strategy.rsi_reversion import RsiReversion, RsiReversionIncremental, RsiReversionParams
from lyra.strategy.sma_cross import (
    EmaCrossIncremental,
    SmaCross,
    SmaCrossIncremental,
    SmaCrossParams,
    moving_average,
)

__all__ = [
    "ENTRY",
    "EXIT",
    "FILL_CHOICES",
    "NO_SIGNAL",
    "Bollinger",
    "BollingerIncremental",
    "BollingerParams",
    "EmaCrossIncremental",
    "FillAt",
    "IncrementalSignalStrategy",
    "IndicatorCache",
    "Rebalance",
    "RebalanceIncremental",
    "RebalanceParams",
    "RsiReversion",
    "RsiReversionIncremental",
    "RsiReversionParams",
    "Signals",
    "SmaCross",
    "SmaCrossIncremental",
    "SmaCrossParams",
    "Strategy",
    "StrategyParams",
    "check_ohlcv",
    "make_params",
    "moving_average",
]
