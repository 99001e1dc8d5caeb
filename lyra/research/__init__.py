"""Research on the strategy contract's vectorized form: vectorbt backtests, metrics,
parameter sweeps (Dask for scale-out), walk-forward analysis, plots and sample data. vectorbt
compiles with numba on first use (~30 s), so the examples here are not run as doctests (the
research tests run them)::

    from lyra.research import backtest, sample_data, sweep
    from lyra.strategy import SmaCross

    df = sample_data("coinbase_BTC-USD_1h")
    backtest(SmaCross(fast=10, slow=30), df).metrics   # a dict: sharpe, n_trades, final_equity...
"""

from lyra.research import metrics
from lyra.research.backtest import BacktestResult, Comparison, WeightsBacktestResult, backtest
from lyra.research.data import data_quality, infer_freq, load_ohlcv, sample_data, sample_data_dir
from lyra.research.metrics import METRIC_NAMES
from lyra.research.sweep import SweepResult, expand_grid, sweep
from lyra.research.walkforward import WalkForwardResult, walk_forward

__all__ = [
    "METRIC_NAMES",
    "BacktestResult",
    "Comparison",
    "SweepResult",
    "WalkForwardResult",
    "WeightsBacktestResult",
    "backtest",
    "data_quality",
    "expand_grid",
    "infer_freq",
    "load_ohlcv",
    "metrics",
    "sample_data",
    "sample_data_dir",
    "sweep",
    "walk_forward",
]
