"""The covariance model behind a session's pre-trade VaR check (a ``max_var`` risk limit).

A session trades on bars; its VaR check needs the joint distribution of its instruments'
returns. :class:`SessionCovariance` estimates it from the market store: the simple returns of
each instrument's closes over the ``lookback`` bars that *ended* before the session's current
data time (never a bar still to come), on the timestamps all instruments share, re-estimated
once per UTC day of data time (an ``O(T·N²)`` estimate, then ``O(N²)`` per order). With fewer
than two returns there is no model, and the check refuses the order saying so (fail closed).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lyra.core.timeutil import timeframe_to_ms
from lyra.risk.var import CovarianceModel

DAY_MS = 86_400_000
#: Bars of returns behind the estimate unless the risk config says otherwise (``var_lookback``).
DEFAULT_LOOKBACK = 250


class SessionCovariance:
    """``model_at(t)``: the model and its column order (instrument ids) at data time ``t``."""

    def __init__(self, market_dir: Path, venue: str, symbols: Sequence[str], timeframe: str, *,
                 lookback: int = DEFAULT_LOOKBACK, until: int | None = None) -> None:
        from lyra.feeds.store import MarketStore

        if lookback < 2:
            raise ValueError(f"var lookback must be at least 2 bars, got {lookback}")
        self.instruments = tuple(f"{venue}:{s}" for s in symbols)
        self.lookback = lookback
        self.tf_ms = timeframe_to_ms(timeframe)
        store = MarketStore(market_dir)
        series = [store.read_bars_arrays(venue, s, timeframe, end=until) for s in symbols]
        common = series[0].ts
        for b in series[1:]:
            common = np.intersect1d(common, b.ts, assume_unique=True)
        closes = np.column_stack([b.close[np.searchsorted(b.ts, common)] for b in series]).astype(np.float64)
        #: bar *end* times and the simple returns ending there (row i: close[i+1] / close[i] - 1)
        self.ends = common[1:] + self.tf_ms
        self.returns = closes[1:] / closes[:-1] - 1.0
        self._cache: tuple[int, CovarianceModel | None] | None = None

    def model_at(self, t_ms: int) -> tuple[CovarianceModel | None, tuple[str, ...]]:
        """The model from the last ``lookback`` returns of bars that ended at or before the
        start of ``t_ms``'s UTC day (one estimate per day; None: fewer than 2 returns)."""
        day = t_ms - t_ms % DAY_MS
        if self._cache is None or self._cache[0] != day:
            n = int(np.searchsorted(self.ends, day, side="right"))
            window = self.returns[max(0, n - self.lookback):n]
            model = CovarianceModel.from_returns(window) if len(window) >= 2 else None
            self._cache = (day, model)
        return self._cache[1], self.instruments


def needs_covariance(risk: object) -> bool:
    """Whether a risk engine's config sets a ``max_var`` limit anywhere."""
    cfg = getattr(risk, "config", None)
    if cfg is None:
        return False
    limits = [cfg.defaults, *cfg.instruments.values()]
    for account in cfg.accounts.values():
        limits += [account, *account.instruments.values()]
    return any(getattr(lim, "max_var", None) is not None for lim in limits)


__all__ = ["DEFAULT_LOOKBACK", "SessionCovariance", "needs_covariance"]
