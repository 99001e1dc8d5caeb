"""Compile vectorbt's and Lyra's numba functions once, into numba's on-disk cache, so notebooks
and tests start warm (run by scripts/setup.sh; run it again by hand after upgrading vectorbt).

Why a helper and not just a warm-up: vectorbt 1.x compiles its portfolio simulators
(``Portfolio.from_signals``, ``from_orders``, ...) with ``@njit`` but without ``cache=True``, so
every new Python process spent ~10-15 s compiling them again, whatever had been warmed.
:func:`enable_vectorbt_caching` turns numba's on-disk cache on for those functions (the same
machine code, stored next to vectorbt's other cached functions in its ``__pycache__`` folders,
shared by every process and every pytest-xdist worker). Lyra's research code calls it when it
imports vectorbt, and tests/conftest.py when a test first imports vectorbt, so notebook kernels
and tests load what this script compiled instead of compiling again.
"""

from __future__ import annotations

import sys
import time

# Lyra's research code turns the cache on itself (lyra/research/_vectorbt.py); tests/conftest.py
# uses this re-export for tests that import vectorbt directly.
from lyra.research._vectorbt import VBT_NB_MODULES, enable_vectorbt_caching  # noqa: F401


def warm() -> None:
    """Run the research paths the notebooks and tests use on a short slice of the shipped data
    (numba compiles per argument type, not per length: 600 bars compile what 20,000 need)."""
    import vectorbt as vbt

    enable_vectorbt_caching()
    from lyra.research import backtest, sample_data, sweep, walk_forward
    from lyra.risk import ExitRules, FixedStop, TakeProfit, TrailingStop
    from lyra.strategy import Rebalance, RsiReversion, SmaCross

    df = sample_data("coinbase_BTC-USD_1h").iloc[:600]
    fast_slow = SmaCross(fast=5, slow=20)
    results = [backtest(SmaCross(fast=10, slow=30), df, fill=fill) for fill in ("next_open", "close")]
    results += [
        backtest(SmaCross(fast=10, slow=30, allow_short=True), df),
        backtest(fast_slow, df, stops=ExitRules(stop=FixedStop(pct=0.01), take_profit=TakeProfit(pct=0.02))),
        backtest(fast_slow, df, stops=ExitRules(trailing=TrailingStop(pct=0.01))),
        backtest(Rebalance(weights={"BTC": 0.6, "ETH": 0.4}, every=7),
                 {"BTC": df.iloc[::24], "ETH": df.iloc[::24] * 0.1}),
    ]
    for res in results:  # metrics, stats and trades compile the returns/records functions
        _ = res.metrics, res.stats(), res.trades
    results[0].direct_vectorbt()
    grid = {"fast": [5, 10], "slow": [20, 30]}
    for engine in ("auto", "vectorbt"):
        for fill in ("next_open", "close"):
            sweep(df, SmaCross, grid, engine=engine, fill=fill, progress=False)  # type: ignore[arg-type]
    sweep(df, RsiReversion, {"window": [7, 14], "lower": [20, 30]}, progress=False)
    walk_forward(df, SmaCross, grid, train_bars=300, test_bars=150)
    # The bare vectorbt calls of scripts and parity tests (numpy inputs, scalar size).
    close = df["close"].to_numpy()
    fast, slow = vbt.MA.run(df["close"], 10), vbt.MA.run(df["close"], 30)
    en, ex = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
    vbt.Portfolio.from_signals(df["close"], en, ex, fees=0.001, freq="1h").stats()
    vbt.Portfolio.from_signals(close, en.to_numpy(), ex.to_numpy(), price=df["open"].to_numpy(),
                               fees=0.001, freq="1h").stats()


if __name__ == "__main__":
    t0 = time.perf_counter()
    try:
        warm()
    except Exception as exc:  # a broken warm-up must not block setup: tests compile what is missing
        print(f"warning: warming numba failed ({type(exc).__name__}: {exc}); tests will compile on first use",
              file=sys.stderr)
        sys.exit(1)
    print(f"vectorbt warm in {time.perf_counter() - t0:.1f} s")
