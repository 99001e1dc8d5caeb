"""The strategy contract: typed parameters, a vectorized form and an incremental form.

>>> import pandas as pd
>>> from lyra.strategy import SmaCross
>>> s = SmaCross(fast=2, slow=3)
>>> close = pd.Series([10.0, 9.0, 8.0, 9.0, 11.0, 12.0, 10.0, 8.0])   # or an OHLCV DataFrame
>>> sig = s.signals(close)                 # research: entries/exits for vectorbt
>>> sig.entries.nonzero()[0].tolist(), sig.exits.nonzero()[0].tolist()
([4], [7])
>>> live = s.incremental("binance:BTC/USDT", quantity="0.5")  # sessions: live.on_bar(bar)
>>> [(i, o.side.value, o.quantity) for i, c in enumerate(close) for o in live.on_close(c)]
[(4, 'buy', Decimal('0.5')), (7, 'sell', Decimal('0.5'))]

Both forms give the same trades on the same bars (the parity check relies on it).
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
