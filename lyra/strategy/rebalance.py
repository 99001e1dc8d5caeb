"""Multi-asset rebalancing to target weights.

Every ``every`` bars the portfolio is brought back to ``weights`` (fractions of equity per
instrument; equal weights when none are given). The vectorized form returns a weights table
(NaN between rebalances) for vectorbt's ``targetpercent`` orders; the incremental form tells
a session when a rebalance is due and which orders reach the targets from given holdings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import ROUND_DOWN, Decimal
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field, model_validator

from lyra.core.enums import Side
from lyra.core.errors import ValidationError
from lyra.core.market import Bar
from lyra.core.orders import OrderIntent
from lyra.strategy.base import IndicatorCache, Signals, Strategy
from lyra.strategy.params import ParamError, StrategyParams


class RebalanceParams(StrategyParams):
    """``weights``: instrument -> fraction of equity (≥ 0, sum ≤ 1), or None for equal
    weights; ``every``: bars between rebalances (≥ 1)."""

    weights: dict[str, float] | None = None
    every: int = Field(24, ge=1)

    @model_validator(mode="after")
    def _check(self) -> RebalanceParams:
        if self.weights is not None:
            if not self.weights:
                raise ParamError("weights", "must name at least one instrument")
            for k, v in self.weights.items():
                if not np.isfinite(v) or v < 0:
                    raise ParamError("weights", f"weight of {k} is {v}; must be >= 0")
            if sum(self.weights.values()) > 1.0 + 1e-12:
                raise ParamError("weights", "sum above 1 (leverage is not supported)")
        return self

    def __hash__(self) -> int:
        return hash((tuple(sorted((self.weights or {}).items())), self.every))


class Rebalance(Strategy[RebalanceParams]):
    """``Rebalance(weights={"BTC": 0.6, "ETH": 0.4}, every=24)``."""

    params_model = RebalanceParams
    kind = "weights"

    def resolve_weights(self, instruments: Sequence[str]) -> dict[str, float]:
        """Target weight per instrument (equal weights if none were given)."""
        w = self.params.weights
        if w is None:
            return {k: 1.0 / len(instruments) for k in instruments}
        unknown = [k for k in w if k not in instruments]
        if unknown:
            raise ValidationError("weights", unknown, f"not in the data's instruments {list(instruments)}")
        return {k: float(w.get(k, 0.0)) for k in instruments}

    def target_weights(self, closes: pd.DataFrame) -> pd.DataFrame:
        """Vectorized form: a weights table like ``closes`` (one column per instrument),
        filled on rebalance bars (0, every, 2·every, ...) and NaN elsewhere."""
        if not isinstance(closes, pd.DataFrame) or closes.shape[1] == 0:
            raise ValidationError("closes", type(closes).__name__,
                                  "need a DataFrame with one column per instrument")
        w = self.resolve_weights([str(c) for c in closes.columns])
        out = np.full(closes.shape, np.nan)
        rows = np.arange(0, len(closes), self.params.every)
        out[rows, :] = np.array([w[str(c)] for c in closes.columns])
        return pd.DataFrame(out, index=closes.index, columns=closes.columns)

    def signals(self, data: Any, cache: IndicatorCache | None = None) -> Signals:
        raise ValidationError("strategy", "Rebalance", "is a weights strategy", "use target_weights(closes)")

    def incremental(self, instrument_id: str = "", quantity: Decimal | str | int = 1) -> RebalanceIncremental:
        """``instrument_id`` names the clock instrument (first one seen if empty)."""
        return RebalanceIncremental(self, instrument_id)


class RebalanceIncremental:
    """Counts bars of the clock instrument; on a rebalance bar sets ``rebalance_due`` and
    ``target_weights``. ``on_bar`` never sizes orders itself (it does not know the
    holdings): call :meth:`orders` with the session's positions and equity."""

    __slots__ = ("_clock", "_n", "_strategy", "last_close", "rebalance_due", "target_weights")

    def __init__(self, strategy: Rebalance, clock_instrument: str = "") -> None:
        self._strategy = strategy
        self._clock = clock_instrument
        self._n = 0
        self.last_close: dict[str, float] = {}
        self.rebalance_due = False
        self.target_weights: dict[str, float] = {}

    def on_bar(self, bar: Bar) -> list[OrderIntent]:
        self.last_close[bar.instrument_id] = bar.close
        if not self._clock:
            self._clock = bar.instrument_id
        if bar.instrument_id != self._clock:
            return []
        if self._n % self._strategy.params.every == 0:
            self.rebalance_due = True
        self._n += 1
        return []

    def orders(self, positions: Mapping[str, Decimal], equity: float,
               step: Decimal = Decimal("0.00000001")) -> list[OrderIntent]:
        """Intents moving ``positions`` (units held) to the targets at the last closes.

        Quantities are rounded down to ``step``. Clears ``rebalance_due``.
        """
        instruments = sorted(self.last_close)
        self.target_weights = self._strategy.resolve_weights(instruments)
        out: list[OrderIntent] = []
        # Sells first, so that their proceeds fund the buys.
        for sell_pass in (True, False):
            for k in instruments:
                price = self.last_close[k]
                want = Decimal(repr(self.target_weights[k] * equity / price))
                delta = (want - positions.get(k, Decimal(0))).quantize(step, rounding=ROUND_DOWN)
                if delta == 0 or (delta < 0) != sell_pass:
                    continue
                side = Side.SELL if delta < 0 else Side.BUY
                out.append(OrderIntent(k, side, abs(delta), tag="rebalance"))
        self.rebalance_due = False
        return out
