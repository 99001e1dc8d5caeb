"""Maker/taker fees per venue, with 30-day volume tiers, on top of :class:`CostModel`.

A :class:`FeeSchedule` is a list of tiers ``(min_30d_volume, maker, taker)``; the tier that
applies is the last one whose threshold the account's trailing 30-day traded volume (in quote
currency) has reached. ``schedule.cost_model(volume)`` gives the plain :class:`CostModel` of that
tier, so a paper session and a research backtest charge with the same code.

>>> s = FeeSchedule.from_ccxt_market({"maker": 0.0016, "taker": 0.0026, "tierBased": True,
...     "tiers": {"maker": [[0, 0.0016], [50000, 0.0014]], "taker": [[0, 0.0026], [50000, 0.0024]]}})
>>> s.rates(Decimal(60000))
(Decimal('0.0014'), Decimal('0.0024'))
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from lyra.core.errors import ValidationError
from lyra.core.values import ZERO, to_decimal
from lyra.execution.costs import CostModel

#: The fee window the venues use for their tiers.
THIRTY_DAYS_MS = 30 * 24 * 3600 * 1000


@dataclass(frozen=True, slots=True)
class FeeTier:
    """One volume tier: from ``min_volume`` (30-day quote volume) on, these rates apply."""

    min_volume: Decimal
    maker: Decimal
    taker: Decimal


@dataclass(frozen=True, slots=True)
class FeeSchedule:
    """A venue's (or market's) maker/taker tiers, sorted by volume threshold.

    ``slippage_bps`` is carried into every :class:`CostModel` this schedule hands out.
    """

    tiers: tuple[FeeTier, ...]
    slippage_bps: Decimal = ZERO
    _thresholds: tuple[Decimal, ...] = field(init=False, repr=False, compare=False)
    _models: tuple[CostModel, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValidationError("fee_schedule.tiers", self.tiers, "needs at least one tier")
        tiers = tuple(sorted(self.tiers, key=lambda t: t.min_volume))
        if tiers[0].min_volume != 0:
            raise ValidationError(
                "fee_schedule.tiers", tiers[0].min_volume, "the first tier must start at volume 0"
            )
        object.__setattr__(self, "tiers", tiers)
        object.__setattr__(self, "_thresholds", tuple(t.min_volume for t in tiers))
        # One CostModel per tier, built once: the hot path only looks one up.
        object.__setattr__(
            self,
            "_models",
            tuple(CostModel(t.maker, t.taker, to_decimal(self.slippage_bps, "slippage_bps")) for t in tiers),
        )

    @classmethod
    def flat(cls, maker: object, taker: object, slippage_bps: object = 0) -> FeeSchedule:
        """A single-tier schedule."""
        return cls(
            (FeeTier(ZERO, to_decimal(maker, "maker_fee"), to_decimal(taker, "taker_fee")),),
            to_decimal(slippage_bps, "slippage_bps"),
        )

    @classmethod
    def from_ccxt_market(cls, market: dict[str, Any], slippage_bps: object = 0) -> FeeSchedule:
        """Read ``maker``/``taker`` and, when the market is tier based, ``tiers`` from a ccxt market.

        When ``tiers`` are given they win over the top-level ``maker``/``taker`` (ccxt fills those
        with one default rate; the recorded Coinbase markets even disagree with their own
        tier 0, see ``venue_markets/PROVENANCE.txt``).
        """
        sym = market.get("symbol", "?")
        tiers_raw = market.get("tiers") or {}
        if market.get("tierBased") and tiers_raw.get("maker") and tiers_raw.get("taker"):
            makers = {to_decimal(v, f"{sym}.tiers.maker"): to_decimal(r, f"{sym}.tiers.maker")
                      for v, r in tiers_raw["maker"]}
            takers = {to_decimal(v, f"{sym}.tiers.taker"): to_decimal(r, f"{sym}.tiers.taker")
                      for v, r in tiers_raw["taker"]}
            if set(makers) != set(takers):
                raise ValidationError(
                    f"market.{sym}.tiers", sorted(makers), "maker and taker tiers have different thresholds"
                )
            tiers = tuple(FeeTier(v, makers[v], takers[v]) for v in sorted(makers))
            return cls(tiers, to_decimal(slippage_bps, "slippage_bps"))
        maker = market.get("maker")
        taker = market.get("taker")
        if maker is None or taker is None:
            raise ValidationError(f"market.{sym}.maker/taker", (maker, taker), "missing fee rates")
        return cls.flat(maker, taker, slippage_bps)

    def tier_index(self, volume_30d: Decimal) -> int:
        """Index of the tier that applies at this trailing 30-day volume."""
        return bisect.bisect_right(self._thresholds, volume_30d) - 1

    def rates(self, volume_30d: Decimal = ZERO) -> tuple[Decimal, Decimal]:
        """``(maker, taker)`` at this trailing 30-day volume."""
        t = self.tiers[self.tier_index(volume_30d)]
        return t.maker, t.taker

    def cost_model(self, volume_30d: Decimal = ZERO) -> CostModel:
        """The :class:`CostModel` of the tier that applies at ``volume_30d``."""
        return self._models[self.tier_index(volume_30d)]


class VolumeTracker:
    """Trailing 30-day traded volume (quote currency) of one account on one venue.

    Volumes of different quote currencies are added as they are (USDT, USD and USDC alike),
    which is how the venues that publish tiers in USD treat stablecoin markets closely enough.
    """

    __slots__ = ("_entries", "_total", "window_ms")

    def __init__(self, window_ms: int = THIRTY_DAYS_MS) -> None:
        self.window_ms = window_ms
        self._entries: deque[tuple[int, Decimal]] = deque()
        self._total = ZERO

    def add(self, ts: int, notional: Decimal) -> None:
        self._entries.append((ts, notional))
        self._total += notional

    def volume(self, now_ms: int) -> Decimal:
        """Volume traded in ``(now - window, now]``."""
        cutoff = now_ms - self.window_ms
        entries = self._entries
        while entries and entries[0][0] <= cutoff:
            self._total -= entries.popleft()[1]
        return self._total
