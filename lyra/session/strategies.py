"""The session's strategy: the config's ``strategy`` (a shipped name or an import path
``"package.module:Class"``, see :mod:`lyra.strategy.registry`) built with its ``params``.

>>> build_strategy("sma_cross", {"fast": 5, "slow": 20, "execution": {"algo": "twap"}})
SmaCross(fast=5, slow=20, ma='sma', allow_short=False)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from lyra.execution.algos import EXECUTION_KEY
from lyra.strategy.base import Strategy
from lyra.strategy.registry import SHIPPED, load_strategy, strategy_class

__all__ = ["SHIPPED", "build_strategy", "strategy_class"]


def build_strategy(name: str, params: Mapping[str, Any]) -> Strategy[Any]:
    """The strategy ``name`` names, with validated ``params`` (``params.execution`` is the
    session's execution algorithm, not the strategy's: see ``lyra.execution.algos``).
    Raises :class:`~lyra.core.errors.ConfigError` on ``strategy`` or ``params.<name>``."""
    return load_strategy(name, {k: v for k, v in params.items() if k != EXECUTION_KEY})
