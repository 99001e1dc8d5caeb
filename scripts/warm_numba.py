"""Compile vectorbt's numba functions once so notebooks and tests start warm."""

import time

import numpy as np
import pandas as pd

t0 = time.perf_counter()
import vectorbt as vbt  # noqa: E402

close = pd.Series(np.linspace(100.0, 120.0, 500) + np.sin(np.arange(500)), index=pd.RangeIndex(500))
fast = vbt.MA.run(close, 10)
slow = vbt.MA.run(close, 30)
entries, exits = fast.ma_crossed_above(slow), fast.ma_crossed_below(slow)
pf = vbt.Portfolio.from_signals(close, entries, exits, fees=0.001, freq="1h")
pf.stats()
print(f"vectorbt warm in {time.perf_counter() - t0:.1f} s")
