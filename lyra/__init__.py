"""Lyra: a notebook-centric research and paper-trading workbench for crypto markets.

The short way in, for notebooks::

    import lyra

    bars = lyra.load_bars("coinbase", "BTC/USD", "1h")          # the store, else the shipped file
    res = lyra.backtest(lyra.SmaCross(fast=10, slow=30), bars)   # vectorbt, shared cost model
    res.metrics["sharpe"], res.trades.head()

    with lyra.open_session(strategy="sma_cross", params={"fast": 10, "slow": 30},
                           venue="binance", symbols=["BTC/USDT"]) as s:   # a paper session
        s.run()
        s.fills().tail(), s.equity().plot()

What ``lyra`` offers (each name loads its module on first use, so ``import lyra`` stays light):

- ``load_bars`` -- OHLCV bars of one market from the local store or the shipped sample data.
- ``backtest`` -- a strategy's vectorized backtest on vectorbt; returns a ``BacktestResult``.
- ``open_session`` -- open (or resume) a paper session; returns a ``SessionHandle``.
- ``SessionHandle`` -- runs a session and reads back its orders, fills, positions and equity.
- ``BacktestResult`` -- a finished backtest: metrics, trades, orders, equity, drawdown, plot.
- ``sweep`` / ``walk_forward`` -- parameter sweeps (numba, Dask for scale-out) and walk-forward.
- ``CostModel`` -- fees and slippage, shared by backtests and the paper broker.
- ``Strategy`` / ``StrategyParams`` -- the strategy contract (base class, typed parameters).
- ``SmaCross``, ``RsiReversion``, ``Bollinger``, ``Rebalance`` -- the shipped strategies.
- ``sample_data`` -- the module that finds the shipped data (``sample_ohlcv_files()``).
- ``__version__`` -- this package's version.

Everything else lives in the subpackages (``lyra.research``, ``lyra.strategy``, ``lyra.feeds``,
``lyra.session``, ``lyra.risk``, ``lyra.audit``...); docs/ARCHITECTURE.md maps them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# Public name -> the module that defines it ("" after the colon: the module itself). Loaded on
# first access (PEP 562), because vectorbt, panel and pandas cost seconds to import and a
# notebook, the CLI or a subprocess that only needs one corner of Lyra must not pay for them.
_LAZY: dict[str, str] = {
    "BacktestResult": "lyra.research.backtest:BacktestResult",
    "Bollinger": "lyra.strategy:Bollinger",
    "CostModel": "lyra.execution.costs:CostModel",
    "Rebalance": "lyra.strategy:Rebalance",
    "RsiReversion": "lyra.strategy:RsiReversion",
    "SessionHandle": "lyra.facade:SessionHandle",
    "SmaCross": "lyra.strategy:SmaCross",
    "Strategy": "lyra.strategy:Strategy",
    "StrategyParams": "lyra.strategy:StrategyParams",
    "backtest": "lyra.facade:backtest",
    "load_bars": "lyra.facade:load_bars",
    "open_session": "lyra.facade:open_session",
    "sample_data": "lyra.sample_data:",
    "sweep": "lyra.research.sweep:sweep",
    "walk_forward": "lyra.research.walkforward:walk_forward",
}

__all__ = [
    "BacktestResult",
    "Bollinger",
    "CostModel",
    "Rebalance",
    "RsiReversion",
    "SessionHandle",
    "SmaCross",
    "Strategy",
    "StrategyParams",
    "__version__",
    "backtest",
    "load_bars",
    "open_session",
    "sample_data",
    "sweep",
    "walk_forward",
]

if TYPE_CHECKING:  # what type checkers and IDEs see; at run time __getattr__ loads these
    from lyra import sample_data
    from lyra.execution.costs import CostModel
    from lyra.facade import SessionHandle, backtest, load_bars, open_session
    from lyra.research.backtest import BacktestResult
    from lyra.research.sweep import sweep
    from lyra.research.walkforward import walk_forward
    from lyra.strategy import Bollinger, Rebalance, RsiReversion, SmaCross, Strategy, StrategyParams


def __getattr__(name: str) -> Any:
    target = _LAZY.get(name)
    if target is None:
        raise AttributeError(f"module 'lyra' has no attribute {name!r}")
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    value = getattr(module, attr) if attr else module
    # Bind it so the next access is a plain attribute lookup. A submodule (sample_data) is
    # bound by the import itself; binding it again is harmless.
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
